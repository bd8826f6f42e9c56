/*
 * bounce - delivery status notifications (RFC 3464) for failed recipients.
 *
 * bounce_format() builds a complete DSN message (CRLF lines) into out:
 * From MAILER-DAEMON@myhostname, multipart/report; report-type=delivery-status
 * with a human-readable text/plain part, a message/delivery-status part
 * (Reporting-MTA: dns; myhostname, Arrival-Date, then per recipient
 * Final-Recipient: rfc822; addr, Action: failed, Status: 5.x.y, Diagnostic-Code:
 * smtp; text) and a text/rfc822-headers part with the original header block.
 * A recipient that expired with a temporary code 4.x.y is reported as 5.x.y
 * (RFC 3464: Action failed goes with a permanent class).
 * bounce_headers() reads a message's header block (up to the first empty line,
 * at most BOUNCE_HEADERS_MAX bytes, cut at a line end) from a queue content fd.
 * bounce_send() formats the DSN and commits it to the queue with the null
 * sender and the original sender as its only recipient; it returns QUEUE_OK
 * with the new queue ID and its size, or a negative queue status (text in queue_error(q)).
 * The caller never bounces null-sender mail; bounce_send refuses it (QUEUE_INVAL).
 */
#ifndef ETRNKIT_BOUNCE_H
#define ETRNKIT_BOUNCE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "queue.h"

#define BOUNCE_HEADERS_MAX 65536

struct buf;

struct bounce_rcpt {
    const char *address;
    const char *dsn;   /* "5.1.1", or the last "4.x.y" of an expired recipient */
    const char *text;  /* the reply or reason */
};

struct bounce_info {
    const char *myhostname;
    const char *queue_id;    /* of the failed message */
    const char *sender;      /* its sender, the DSN's recipient */
    time_t arrival;
    time_t now;              /* Date: of the DSN */
    const struct bounce_rcpt *rcpts;
    size_t nrcpt;
    const char *headers;     /* original header block, CRLF lines; may be empty */
    size_t headers_len;
};

void bounce_format(struct buf *out, const struct bounce_info *info);
void bounce_headers(int content_fd, off_t offset, off_t size, struct buf *out);
int bounce_send(struct queue *q, const struct bounce_info *info, char *id, size_t idlen,
                size_t *size);

#endif
