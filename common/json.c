#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "json.h"

struct jparse {
    const char *p;
    int depth;
};

static int parse_value(struct jparse *jp, struct json_val *v);

/* skip - skip blanks */
static void skip(struct jparse *jp)
{
    while (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r')
        jp->p++;
}

/* parse_string - a JSON string into a new C string */
static int parse_string(struct jparse *jp, char **out)
{
    struct buf b = BUF_INIT;

    if (*jp->p++ != '"')
        return -1;
    while (*jp->p && *jp->p != '"') {
        char c = *jp->p++;

        if ((unsigned char) c < 0x20)
            goto bad;
        if (c == '\\') {
            c = *jp->p++;
            switch (c) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                unsigned u = 0;

                for (int i = 0; i < 4; i++, jp->p++) {
                    char h = *jp->p;

                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F')))
                        goto bad;
                    u = u * 16 + (unsigned) (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
                }
                c = u < 0x20 || u > 0x7e ? '?' : (char) u;
                break;
            }
            case '"': case '\\': case '/':
                break;
            default:
                goto bad;
            }
        }
        buf_putc(&b, c);
    }
    if (*jp->p++ != '"')
        goto bad;
    buf_cstr(&b);
    *out = buf_steal(&b);
    return 0;
bad:
    buf_free(&b);
    return -1;
}

/* parse_list - the items of an array or object after its opening bracket */
static int parse_list(struct jparse *jp, struct json_val *v, char close)
{
    skip(jp);
    if (*jp->p == close) {
        jp->p++;
        return 0;
    }
    for (;;) {
        v->items = xreallocarray(v->items, v->n + 1, sizeof(*v->items));
        memset(&v->items[v->n], 0, sizeof(v->items[0]));
        if (close == '}') {
            v->keys = xreallocarray(v->keys, v->n + 1, sizeof(*v->keys));
            v->keys[v->n] = NULL;
            skip(jp);
            if (parse_string(jp, &v->keys[v->n]) != 0) {
                v->n++;
                return -1;
            }
            skip(jp);
            if (*jp->p++ != ':') {
                v->n++;
                return -1;
            }
        }
        if (parse_value(jp, &v->items[v->n++]) != 0)
            return -1;
        skip(jp);
        if (*jp->p == ',') {
            jp->p++;
            continue;
        }
        if (*jp->p++ == close)
            return 0;
        return -1;
    }
}

/* parse_value - one JSON value */
static int parse_value(struct jparse *jp, struct json_val *v)
{
    char *end;
    int rc;

    memset(v, 0, sizeof(*v));
    skip(jp);
    if (++jp->depth > JSON_DEPTH_MAX)
        return -1;
    switch (*jp->p) {
    case '{':
    case '[':
        v->type = *jp->p == '{' ? JSON_OBJ : JSON_ARR;
        rc = parse_list(jp, v, *jp->p++ == '{' ? '}' : ']');
        jp->depth--;
        return rc;
    case '"':
        v->type = JSON_STR;
        jp->depth--;
        return parse_string(jp, &v->str);
    default:
        break;
    }
    jp->depth--;
    if (strncmp(jp->p, "true", 4) == 0 || strncmp(jp->p, "false", 5) == 0) {
        v->type = JSON_BOOL;
        v->num = jp->p[0] == 't';
        jp->p += jp->p[0] == 't' ? 4 : 5;
        return 0;
    }
    if (strncmp(jp->p, "null", 4) == 0) {
        v->type = JSON_NULL;
        jp->p += 4;
        return 0;
    }
    if (*jp->p != '-' && (*jp->p < '0' || *jp->p > '9'))
        return -1;
    v->type = JSON_NUM;
    v->num = strtod(jp->p, &end);
    if (end == jp->p)
        return -1;
    jp->p = end;
    return 0;
}

/* json_parse - one value from text, nothing but blanks after it */
int json_parse(const char *text, struct json_val *v)
{
    struct jparse jp = { text, 0 };

    if (parse_value(&jp, v) != 0)
        return -1;
    skip(&jp);
    return *jp.p == 0 ? 0 : -1;
}

/* json_free - release a parsed value */
void json_free(struct json_val *v)
{
    for (size_t i = 0; i < v->n; i++) {
        json_free(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof(*v));
}

/* json_get - member key of an object, or NULL */
const struct json_val *json_get(const struct json_val *obj, const char *key)
{
    if (obj == NULL || obj->type != JSON_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (obj->keys[i] && strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

/* json_num - a numeric member, or def */
long long json_num(const struct json_val *obj, const char *key, long long def)
{
    const struct json_val *v = json_get(obj, key);

    return v && (v->type == JSON_NUM || v->type == JSON_BOOL) ? (long long) v->num : def;
}

/* json_str - a string member, or def */
const char *json_str(const struct json_val *obj, const char *key, const char *def)
{
    const struct json_val *v = json_get(obj, key);

    return v && v->type == JSON_STR ? v->str : def;
}
