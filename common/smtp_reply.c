#include <stdio.h>
#include <string.h>

#include "smtp_reply.h"

/* smtp_reply_init - an empty reply, waiting for its first line */
void smtp_reply_init(struct smtp_reply *r)
{
    r->state = SMTP_REPLY_MORE;
    r->code = 0;
    r->dsn[0] = 0;
    r->text[0] = 0;
    r->len = 0;
    r->lines = 0;
    r->total = 0;
    r->truncated = 0;
}

/* digits - how many ASCII digits start s (at most max + 1 looked at) */
static size_t digits(const char *s, size_t len, size_t max)
{
    size_t n = 0;

    while (n < len && n <= max && s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

/* find_dsn - "X.Y.Z " (RFC 3463: 1-3 digits after the first) at the start of s */
static void find_dsn(struct smtp_reply *r, const char *s, size_t len)
{
    size_t b, c;

    if (len < 5 || s[0] != '0' + r->code / 100 || s[1] != '.')
        return;
    b = digits(s + 2, len - 2, 3);
    if (b == 0 || b > 3 || 2 + b >= len || s[2 + b] != '.')
        return;
    c = digits(s + 3 + b, len - 3 - b, 3);
    if (c == 0 || c > 3 || (3 + b + c < len && s[3 + b + c] != ' '))
        return;
    snprintf(r->dsn, sizeof(r->dsn), "%.*s", (int) (3 + b + c), s);
}

/* smtp_reply_feed - one more line of the reply; see the header */
enum smtp_reply_state smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len)
{
    int code;
    int last;

    if (r->state != SMTP_REPLY_MORE)
        return r->state;
    if (len < 3 || digits(line, len, 3) != 3 || line[0] < '2' || line[0] > '5'
        || (len > 3 && line[3] != ' ' && line[3] != '-')) {
        /* 1xx is not used by SMTP (RFC 5321 4.2.1) */
        return r->state = SMTP_REPLY_BAD;
    }
    code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (r->lines > 0 && code != r->code)
        return r->state = SMTP_REPLY_BAD;
    last = len == 3 || line[3] == ' ';
    r->total += len + 2;
    if (r->total > SMTP_REPLY_LIMIT)
        return r->state = SMTP_REPLY_TOO_LONG;
    if (r->lines == 0) {
        r->code = code;
        if (len > 4)
            find_dsn(r, line + 4, len - 4);
    } else if (r->len < SMTP_REPLY_MAX) {
        r->text[r->len++] = '\n';
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char) line[i];

        if (r->len >= SMTP_REPLY_MAX) {
            r->truncated = 1;
            break;
        }
        r->text[r->len++] = ch == 0 ? '?' : (char) ch;
    }
    r->text[r->len] = 0;
    r->lines++;
    return r->state = last ? SMTP_REPLY_DONE : SMTP_REPLY_MORE;
}

/* smtp_reply_line - the text of line i after its code and separator */
int smtp_reply_line(const struct smtp_reply *r, size_t i, char *out, size_t outlen)
{
    const char *p = r->text;
    const char *end;

    if (i >= r->lines)
        return 0;
    while (i-- > 0) {
        p = strchr(p, '\n');
        if (p == NULL)
            return 0; /* past the end of a truncated text */
        p++;
    }
    end = strchr(p, '\n');
    if (end == NULL)
        end = p + strlen(p);
    p += end - p > 4 ? 4 : end - p;
    snprintf(out, outlen, "%.*s", (int) (end - p), p);
    return 1;
}

/* smtp_reply_oneline - the lines' texts joined by blanks, for logs and status */
const char *smtp_reply_oneline(const struct smtp_reply *r, char *out, size_t outlen)
{
    char line[SMTP_REPLY_MAX + 1];
    size_t len = 0;

    if (outlen == 0)
        return out;
    out[0] = 0;
    for (size_t i = 0; i < r->lines && smtp_reply_line(r, i, line, sizeof(line)); i++) {
        int n;

        if (line[0] == 0)
            continue;
        n = snprintf(out + len, outlen - len, "%s%s", len ? " " : "", line);
        if (n < 0 || (size_t) n >= outlen - len)
            break; /* cut: out holds what fitted, as much of this line as it could */
        len += (size_t) n;
    }
    return out;
}
