/*
 * fuzz_smtp_reply - the SMTP reply parser the server's smtp client reads every
 * remote reply with (common/smtp_reply.c). Input: one byte R, then bytes as a
 * server sends them; each CRLF- or LF-ended line goes to smtp_reply_feed()
 * 1 + R % 64 times (so inputs of a few KB reach the 4 KB text cap and the 64 KB
 * limit), a new reply starting after each complete one. Checks: the kept text never passes SMTP_REPLY_MAX
 * bytes and is NUL-terminated where len says; a complete reply has a code from
 * 200 to 599 whose class its enhanced status code (when it has one) shares;
 * truncated only when the text is full; TOO_LONG only past SMTP_REPLY_LIMIT; a
 * refused reply stays refused; every line smtp_reply_line() gives is shorter
 * than the text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"
#include "support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    support_init("smtp_reply");
    return 0;
}

/* check - the invariants of a reply after a feed that returned st */
static void check(const struct smtp_reply *r, enum smtp_reply_state st)
{
    char line[SMTP_REPLY_MAX + 1];

    if (r->len > SMTP_REPLY_MAX || r->text[r->len] != 0 || strlen(r->text) != r->len)
        abort();
    if (r->truncated && r->len != SMTP_REPLY_MAX)
        abort();
    if (st == SMTP_REPLY_TOO_LONG && r->total <= SMTP_REPLY_LIMIT)
        abort();
    if (st == SMTP_REPLY_DONE) {
        if (r->code < 200 || r->code > 599 || r->lines == 0)
            abort();
        if (r->dsn[0] && (r->dsn[0] != '0' + r->code / 100 || r->dsn[1] != '.'))
            abort();
        for (size_t i = 0; i < r->lines; i++)
            if (smtp_reply_line(r, i, line, sizeof(line)) && strlen(line) > r->len)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct smtp_reply r;
    size_t start = 1, repeat;

    if (size == 0)
        return 0;
    repeat = 1 + data[0] % 64;
    smtp_reply_init(&r);
    for (size_t i = 1; i < size; i++) {
        enum smtp_reply_state st = SMTP_REPLY_MORE;
        size_t n;

        if (data[i] != '\n')
            continue;
        n = i - start;
        if (n > 0 && data[i - 1] == '\r')
            n--;
        for (size_t k = 0; k < repeat; k++) {
            st = smtp_reply_feed(&r, (const char *) data + start, n);
            check(&r, st);
            if (st == SMTP_REPLY_BAD || st == SMTP_REPLY_TOO_LONG) {
                if (smtp_reply_feed(&r, "250 x", 5) != st)
                    abort(); /* refused stays refused */
                smtp_reply_init(&r);
            } else if (st == SMTP_REPLY_DONE) {
                smtp_reply_init(&r);
            }
        }
        start = i + 1;
    }
    return 0;
}
