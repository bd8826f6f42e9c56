/*
 * delivery - what a transport is asked to do and what it reports back.
 *
 * The qmgr fills a delivery_job (one message, the recipients of one
 * destination, the route from server_transport_lookup) and hands it to a
 * transport; the transport answers with one delivery_report whose rcpt[i]
 * belongs to job->rcpts[i]: ok, temporary or permanent, an enhanced status
 * code and the reply text or reason (Postfix's "status=... (text)").
 * delivery_report_init() sizes a report for a job (every recipient starts as
 * DELIVERY_TEMP "4.3.0" "delivery not attempted"); delivery_report_free()
 * releases it. delivery_set() fills one recipient, delivery_set_all() every
 * one (a connection failure). delivery_from_reply() turns an SMTP reply code
 * and text into a status and a DSN code (the text's own "X.Y.Z" when it has
 * one, else X.0.0 from the code). All text is truncated at QUEUE_REASON_MAX
 * and every byte outside printable ASCII (CR, LF, ESC, UTF-8) becomes '?',
 * as Postfix's smtp client masks reply text (printable.h).
 * delivery_msg_copy() gives a transport its own copy of a job's ID ("?" when
 * NULL), sender and recipients, for work that outlives the deliver call;
 * delivery_msg_free() releases it.
 */
#ifndef ETRNKIT_DELIVERY_H
#define ETRNKIT_DELIVERY_H

#include <stddef.h>
#include <sys/types.h>

#include "queue.h"
#include "server_config.h"

enum delivery_status {
    DELIVERY_OK,   /* delivered: mark D, drop from the flush log */
    DELIVERY_TEMP, /* try again later: stays P, deferred */
    DELIVERY_PERM, /* give up: mark B, bounce to the sender */
};

struct delivery_job {
    const char *id;               /* queue ID, for log lines */
    const char *sender;           /* "" = null sender */
    const char *const *rcpts;     /* addresses, all for one destination */
    size_t nrcpt;
    int content_fd;               /* read-only, positioned anywhere; the qmgr owns it */
    off_t content_offset;         /* where the content starts in content_fd (use pread) */
    off_t content_size;           /* content bytes, CRLF lines, not dot-stuffed */
    struct server_route route;    /* transport, next hop host/port, mx, ... */
};

/* a transport's own copy of a job's ID, sender and recipients (deliver's job is
   valid only during the call); delivery_msg_free releases it */
struct delivery_msg {
    char *id, *sender;
    char **rcpts;
    size_t nrcpt;
};

struct delivery_rcpt {
    enum delivery_status status;
    char dsn[QUEUE_DSN_MAX + 1];      /* "2.0.0", "4.4.1", "5.1.1" */
    char text[QUEUE_REASON_MAX + 1];  /* reply or reason, for status=... (text) */
};

struct delivery_report {
    struct delivery_rcpt *rcpt;   /* nrcpt entries, same order as the job */
    size_t nrcpt;
    char relay[300];              /* "host[addr]:port", or "none" when nothing answered */
    double conn_time;             /* delays=a/b/c/d: c, connection setup, seconds */
    double xmit_time;             /* d, transmission, seconds */
};

/* the transport's answer; called exactly once per accepted job, never from inside
   the call that started the job; the report is valid only during the call */
typedef void (*delivery_done_fn)(void *ctx, const struct delivery_report *report);

void delivery_msg_copy(struct delivery_msg *m, const struct delivery_job *job);
void delivery_msg_free(struct delivery_msg *m);
void delivery_report_init(struct delivery_report *r, size_t nrcpt);
void delivery_report_free(struct delivery_report *r);
void delivery_set(struct delivery_report *r, size_t i, enum delivery_status status,
                  const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void delivery_set_all(struct delivery_report *r, enum delivery_status status, const char *dsn,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
enum delivery_status delivery_from_reply(int code, const char *text, char *dsn, size_t dsnlen);
const char *delivery_status_name(enum delivery_status status); /* sent, deferred, bounced */

#endif
