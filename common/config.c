#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "alloc.h"
#include "config.h"
#include "duration.h"
#include "log.h"

/* What the inih callbacks share while one file is read. */
struct cfg_parse_state {
    FILE *fp;
    const char *path;
    int line;          /* line most recently handed to inih */
    int indented;      /* that line started with white space */
    int section_line;  /* line of the latest [section] header */
    int too_long_line; /* first line over the limit, 0 if none */
    cfg_handler handler;
    void *ctx;
    char why[512];
    int failed_line;
};

/* cfg_reader - fgets for inih that counts lines and refuses long ones */
static char *cfg_reader(char *str, int num, void *stream)
{
    struct cfg_parse_state *st = stream;
    int c;
    int n = 0;

    if (st->too_long_line)
        return NULL;
    while ((c = getc(st->fp)) != EOF) {
        if (n >= num - 2 && c != '\n') {
            st->too_long_line = st->line + 1;
            return NULL;
        }
        str[n++] = (char) c;
        if (c == '\n')
            break;
    }
    if (n == 0)
        return NULL;
    str[n] = 0;
    st->line++;
    st->indented = str[0] == ' ' || str[0] == '\t';
    if (str[strspn(str, " \t")] == '[')
        st->section_line = st->line;
    return str;
}

/* cfg_ini_handler - pass one key to the caller's handler */
static int cfg_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_parse_state *st = user;
    struct cfg_item item = { st->path, section, name, value, st->line, st->indented,
                             st->section_line };

    if (st->failed_line)
        return 0;
    if (st->handler(st->ctx, &item, st->why, sizeof(st->why)) != 0) {
        st->failed_line = st->line;
        return 0;
    }
    return 1;
}

/* cfg_error_set - "FILE:LINE: message" */
void cfg_error_set(struct cfg_error *err, const char *file, int line, const char *fmt, ...)
{
    char text[sizeof(err->msg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(err->msg, sizeof(err->msg), "%s:%d: %s", file, line, text);
    else
        snprintf(err->msg, sizeof(err->msg), "%s: %s", file, text);
    /* values from the file may hold CR or other controls: never echo them raw */
    for (char *p = err->msg; *p; p++)
        if ((unsigned char) *p < 0x20 || *p == 0x7f)
            *p = '?';
}

/* cfg_parse - read one INI file, calling handler for each key */
int cfg_parse(const char *path, cfg_handler handler, void *ctx, struct cfg_error *err)
{
    struct cfg_parse_state st;
    int rc;

    memset(&st, 0, sizeof(st));
    st.path = path;
    st.handler = handler;
    st.ctx = ctx;
    if ((st.fp = fopen(path, "r")) == NULL) {
        cfg_error_set(err, path, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    rc = ini_parse_stream(cfg_reader, &st, cfg_ini_handler, &st);
    if (ferror(st.fp)) {
        cfg_error_set(err, path, 0, "read error: %s", strerror(errno));
        fclose(st.fp);
        return -1;
    }
    fclose(st.fp);
    if (st.too_long_line) {
        cfg_error_set(err, path, st.too_long_line,
                      "line longer than %d characters (split a list over indented "
                      "continuation lines, or name a file with /path)", CFG_LINE_MAX);
        return -1;
    }
    if (st.failed_line) {
        cfg_error_set(err, path, st.failed_line, "%s", st.why);
        return -1;
    }
    if (rc != 0) {
        cfg_error_set(err, path, rc, "syntax error: expected \"[section]\" or \"key = value\"");
        return -1;
    }
    return 0;
}

/* cfg_parse_bool - yes/no, true/false, on/off, 1/0 */
int cfg_parse_bool(const char *text, int *value)
{
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0)
            return *value = 1, 0;
        if (strcasecmp(text, no[i]) == 0)
            return *value = 0, 0;
    }
    return -1;
}

/* cfg_map_read - each "key  value" line of a lookup table file to fn */
int cfg_map_read(const char *path, cfg_map_fn fn, void *ctx, int *line, char *why, size_t whylen)
{
    FILE *fp = fopen(path, "re");
    char *text = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = -1;

    *line = 0;
    if (fp == NULL) {
        snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    while ((n = getline(&text, &cap, fp)) >= 0) {
        char *s = text, *key;

        ++*line;
        if ((size_t) n != strlen(text)) {
            snprintf(why, whylen, "a NUL byte in the line");
            goto out;
        }
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
            text[--n] = 0;
        s += strspn(s, " \t");
        if (*s == 0 || *s == '#')
            continue;
        if (s != text) {
            snprintf(why, whylen, "continuation lines are not supported");
            goto out;
        }
        key = s;
        s += strcspn(s, " \t");
        if (*s)
            *s++ = 0;
        if (fn(ctx, *line, key, s + strspn(s, " \t"), why, whylen) != 0)
            goto out;
    }
    if (ferror(fp)) {
        snprintf(why, whylen, "read error: %s", strerror(errno));
        goto out;
    }
    rc = 0;
out:
    free(text);
    fclose(fp);
    return rc;
}

void cfg_list_add(struct cfg_list *list, const char *item)
{
    list->items = xreallocarray(list->items, list->count + 1, sizeof(*list->items));
    list->items[list->count++] = xstrdup(item);
}

/* cfg_list_split - append the blank- or comma-separated words of text */
void cfg_list_split(struct cfg_list *list, const char *text)
{
    const char *p = text;

    while (*p) {
        size_t n;

        p += strspn(p, " \t,");
        n = strcspn(p, " \t,");
        if (n == 0)
            break;
        char *word = xstrndup(p, n);
        cfg_list_add(list, word);
        free(word);
        p += n;
    }
}

void cfg_list_free(struct cfg_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static size_t cfg_key_count(const struct cfg_key *keys)
{
    size_t n = 0;

    while (keys[n].name)
        n++;
    return n;
}

/* cfg_store - convert text to the key's type and store it in obj */
static int cfg_store(const struct cfg_key *key, void *obj, const char *text, int append,
                     char *why, size_t whylen)
{
    char *field = (char *) obj + key->offset;
    const char *reason;
    long long num;

    switch (key->type) {
    case CFG_STRING: {
        char **sp = (char **) field;

        free(*sp);
        *sp = xstrdup(text);
        return 0;
    }
    case CFG_INT: {
        char *end;

        errno = 0;
        num = strtoll(text, &end, 10);
        if (*text == 0 || *end != 0 || errno == ERANGE) {
            snprintf(why, whylen, "\"%s\" is not a whole number", text);
            return -1;
        }
        goto check_range;
    }
    case CFG_DURATION:
        if (duration_parse(text, &num, &reason) != 0) {
            snprintf(why, whylen, "\"%s\": %s", text, reason);
            return -1;
        }
    check_range:
        if (num < key->min || (key->max && num > key->max)) {
            if (key->max)
                snprintf(why, whylen, "%s is out of range (%lld..%lld%s)", text, key->min, key->max,
                         key->type == CFG_DURATION ? " seconds" : "");
            else
                snprintf(why, whylen, "%s is below the minimum %lld", text, key->min);
            return -1;
        }
        *(long long *) field = num;
        return 0;
    case CFG_BOOL:
        if (cfg_parse_bool(text, (int *) field) != 0) {
            snprintf(why, whylen, "\"%s\" is not yes or no", text);
            return -1;
        }
        return 0;
    case CFG_ENUM:
        for (int i = 0; key->choices[i]; i++) {
            if (strcmp(text, key->choices[i]) == 0) {
                *(int *) field = i;
                return 0;
            }
        }
        {
            char list[256] = "";
            for (int i = 0; key->choices[i]; i++) {
                size_t used = strlen(list);
                snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", key->choices[i]);
            }
            snprintf(why, whylen, "\"%s\" is not one of: %s", text, list);
        }
        return -1;
    case CFG_LIST: {
        struct cfg_list *list = (struct cfg_list *) field;

        if (!append)
            cfg_list_free(list);
        cfg_list_split(list, text);
        return 0;
    }
    }
    log_panic("cfg_store: bad type %d for %s", (int) key->type, key->name);
}

/* cfg_section_init - set defaults and start tracking which keys are set */
void cfg_section_init(struct cfg_section *sec, const char *file, const char *name,
                      const struct cfg_key *keys, void *obj)
{
    char why[256];

    sec->file = file;
    sec->name = name;
    sec->keys = keys;
    sec->obj = obj;
    sec->lines = xcalloc(cfg_key_count(keys) + 1, sizeof(int));
    for (const struct cfg_key *k = keys; k->name; k++)
        if (k->def && cfg_store(k, obj, k->def, 0, why, sizeof(why)) != 0)
            log_panic("built-in default for %s is bad: %s", k->name, why);
}

/* cfg_section_set - store one value; unknown, duplicate or bad values fail */
int cfg_section_set(struct cfg_section *sec, const struct cfg_item *item, char *why, size_t whylen)
{
    for (size_t i = 0; sec->keys[i].name; i++) {
        const struct cfg_key *k = &sec->keys[i];
        char reason[512];

        if (strcmp(k->name, item->key) != 0)
            continue;
        if (sec->lines[i] && !(item->continued && k->type == CFG_LIST)) {
            snprintf(why, whylen, "[%s] %s: set twice (first at line %d)", sec->name, k->name,
                     sec->lines[i]);
            return -1;
        }
        if (cfg_store(k, sec->obj, item->value, sec->lines[i] != 0, reason, sizeof(reason)) != 0) {
            snprintf(why, whylen, "[%s] %s: %s", sec->name, k->name, reason);
            return -1;
        }
        if (!sec->lines[i])
            sec->lines[i] = item->line;
        return 0;
    }
    snprintf(why, whylen, "[%s] %s: unknown key", sec->name, item->key);
    return -1;
}

/* cfg_section_check - every required key present */
int cfg_section_check(const struct cfg_section *sec, int section_line, struct cfg_error *err)
{
    for (size_t i = 0; sec->keys[i].name; i++) {
        if ((sec->keys[i].flags & CFG_REQUIRED) && !sec->lines[i]) {
            cfg_error_set(err, sec->file, section_line, "[%s] %s: required key is missing",
                          sec->name, sec->keys[i].name);
            return -1;
        }
    }
    return 0;
}

/* cfg_section_line - the line where key was set, 0 when defaulted */
int cfg_section_line(const struct cfg_section *sec, const char *key)
{
    for (size_t i = 0; sec->keys[i].name; i++)
        if (strcmp(sec->keys[i].name, key) == 0)
            return sec->lines[i];
    log_panic("cfg_section_line: no key %s", key);
}

void cfg_section_done(struct cfg_section *sec)
{
    free(sec->lines);
    sec->lines = NULL;
}

/* cfg_section_free - release the strings and lists a table filled */
void cfg_section_free(const struct cfg_key *keys, void *obj)
{
    for (const struct cfg_key *k = keys; k->name; k++) {
        char *field = (char *) obj + k->offset;

        if (k->type == CFG_STRING) {
            free(*(char **) field);
            *(char **) field = NULL;
        } else if (k->type == CFG_LIST) {
            cfg_list_free((struct cfg_list *) field);
        }
    }
}
