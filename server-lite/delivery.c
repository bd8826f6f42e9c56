/*
 * delivery - the result type every transport reports in (contract: delivery.h).
 *
 * Texts come from remote servers and resolvers, so they are cleaned before
 * they reach a log line or the queue file: every control character (CR, LF,
 * TAB, DEL, ...) becomes one blank and the text keeps its first
 * QUEUE_REASON_MAX bytes. Bytes >= 0x80 stay (UTF-8 in a reply is legal).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "delivery.h"
#include "printable.h"

/* set_dsn - copy a DSN code, "4.3.0" when it is empty or too long */
static void set_dsn(char *out, size_t outlen, const char *dsn, enum delivery_status status)
{
    if (dsn == NULL || *dsn == 0 || strlen(dsn) >= outlen) {
        snprintf(out, outlen, "%s", status == DELIVERY_OK ? "2.0.0"
                 : status == DELIVERY_PERM ? "5.0.0" : "4.3.0");
        return;
    }
    snprintf(out, outlen, "%s", dsn);
}

/* delivery_msg_copy - a transport's own copy of the job's ID, sender and recipients */
void delivery_msg_copy(struct delivery_msg *m, const struct delivery_job *job)
{
    m->id = xstrdup(job->id ? job->id : "?");
    m->sender = xstrdup(job->sender ? job->sender : "");
    m->nrcpt = job->nrcpt;
    m->rcpts = xcalloc(job->nrcpt ? job->nrcpt : 1, sizeof(*m->rcpts));
    for (size_t i = 0; i < job->nrcpt; i++)
        m->rcpts[i] = xstrdup(job->rcpts[i]);
}

/* delivery_msg_free - release a copy */
void delivery_msg_free(struct delivery_msg *m)
{
    free(m->id);
    free(m->sender);
    for (size_t i = 0; i < m->nrcpt; i++)
        free(m->rcpts[i]);
    free(m->rcpts);
}

/* delivery_report_init - size a report for nrcpt recipients, none attempted yet */
void delivery_report_init(struct delivery_report *r, size_t nrcpt)
{
    memset(r, 0, sizeof(*r));
    r->rcpt = xcalloc(nrcpt ? nrcpt : 1, sizeof(*r->rcpt));
    r->nrcpt = nrcpt;
    for (size_t i = 0; i < nrcpt; i++) {
        r->rcpt[i].status = DELIVERY_TEMP;
        snprintf(r->rcpt[i].dsn, sizeof(r->rcpt[i].dsn), "4.3.0");
        snprintf(r->rcpt[i].text, sizeof(r->rcpt[i].text), "delivery not attempted");
    }
    snprintf(r->relay, sizeof(r->relay), "none");
}

/* delivery_report_free - release the recipient array */
void delivery_report_free(struct delivery_report *r)
{
    free(r->rcpt);
    r->rcpt = NULL;
    r->nrcpt = 0;
}

/* set_one - fill recipient i from a formatted text */
static void set_one(struct delivery_report *r, size_t i, enum delivery_status status,
                    const char *dsn, const char *fmt, va_list ap)
{
    struct delivery_rcpt *rc = &r->rcpt[i];

    rc->status = status;
    set_dsn(rc->dsn, sizeof(rc->dsn), dsn, status);
    /* vsnprintf truncates at the buffer: QUEUE_REASON_MAX bytes kept */
    if (vsnprintf(rc->text, sizeof(rc->text), fmt, ap) < 0)
        snprintf(rc->text, sizeof(rc->text), "(unprintable reason)");
    printable(rc->text, '?'); /* remote reply text: no escapes, no forged log lines */
}

/* delivery_set - fill recipient i (ignored when i is out of range) */
void delivery_set(struct delivery_report *r, size_t i, enum delivery_status status,
                  const char *dsn, const char *fmt, ...)
{
    va_list ap;

    if (i >= r->nrcpt)
        return;
    va_start(ap, fmt);
    set_one(r, i, status, dsn, fmt, ap);
    va_end(ap);
}

/* delivery_set_all - fill every recipient with the same result */
void delivery_set_all(struct delivery_report *r, enum delivery_status status, const char *dsn,
                      const char *fmt, ...)
{
    for (size_t i = 0; i < r->nrcpt; i++) {
        va_list ap;

        va_start(ap, fmt);
        set_one(r, i, status, dsn, fmt, ap);
        va_end(ap);
    }
}

/* enhanced_len - length of an RFC 3463 code "C.SSS.DDD" at s (0: none) */
static size_t enhanced_len(const char *s)
{
    const char *p = s;
    int n;

    if (*p != '2' && *p != '4' && *p != '5')
        return 0;
    p++;
    for (int part = 0; part < 2; part++) {
        if (*p++ != '.')
            return 0;
        for (n = 0; isdigit((unsigned char) *p) && n < 4; n++)
            p++;
        if (n < 1 || n > 3)
            return 0;
    }
    if (*p != 0 && *p != ' ' && *p != '\t')
        return 0;
    return (size_t) (p - s);
}

/* delivery_from_reply - status and DSN code of an SMTP reply */
enum delivery_status delivery_from_reply(int code, const char *text, char *dsn, size_t dsnlen)
{
    enum delivery_status st;
    char cls;
    size_t n;

    if (code >= 200 && code <= 299) {
        st = DELIVERY_OK;
        cls = '2';
    } else if (code >= 500 && code <= 599) {
        st = DELIVERY_PERM;
        cls = '5';
    } else {
        /* 4xx, and anything a server should not have said here, is tried again */
        st = DELIVERY_TEMP;
        cls = '4';
    }
    if (text == NULL)
        text = "";
    /* the text may still carry its reply code: "550 5.1.1 ..." or "550-5.1.1 ..." */
    if (isdigit((unsigned char) text[0]) && isdigit((unsigned char) text[1])
        && isdigit((unsigned char) text[2]) && (text[3] == ' ' || text[3] == '-'))
        text += 4;
    while (*text == ' ' || *text == '\t')
        text++;
    n = enhanced_len(text);
    if (n > 0 && n < dsnlen && n <= QUEUE_DSN_MAX) {
        memcpy(dsn, text, n);
        dsn[n] = 0;
        dsn[0] = cls; /* a code whose class disagrees with the reply follows the reply */
    } else if (dsnlen > 0) {
        snprintf(dsn, dsnlen, "%c.0.0", cls);
    }
    return st;
}

/* delivery_status_name - Postfix's word for a status in "status=..." */
const char *delivery_status_name(enum delivery_status status)
{
    static const char *const names[] = {
        [DELIVERY_OK] = "sent", [DELIVERY_TEMP] = "deferred", [DELIVERY_PERM] = "bounced",
    };

    return (size_t) status < sizeof(names) / sizeof(names[0]) ? names[status] : "deferred";
}
