/*
 * bounce - RFC 3464 delivery status notifications (contract in bounce.h).
 *
 * The layout follows Postfix's bounce(8) messages, so people and tools that
 * read Postfix bounces recognise these.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "bounce.h"
#include "queue.h"

/* rfc5322_date - "Wed, 22 Dec 2021 00:10:37 +0900" in local time */
static void rfc5322_date(char *out, size_t outlen, time_t t)
{
    static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;
    long off;

    localtime_r(&t, &tm);
    off = tm.tm_gmtoff / 60;
    snprintf(out, outlen, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec, off < 0 ? '-' : '+', (off < 0 ? -off : off) / 60,
             (off < 0 ? -off : off) % 60);
}

/* failed_status - the Status: of a failed recipient: class 5 */
static void failed_status(char *out, size_t outlen, const char *dsn)
{
    if (dsn == NULL || strlen(dsn) < 5 || (dsn[0] != '4' && dsn[0] != '5') || dsn[1] != '.')
        snprintf(out, outlen, "5.0.0");
    else
        snprintf(out, outlen, "5%s", dsn + 1);
}

/* bounce_format - the whole DSN message, CRLF lines */
void bounce_format(struct buf *out, const struct bounce_info *info)
{
    char date[64], arrival[64], boundary[QUEUE_ID_MAX + 300], status[QUEUE_DSN_MAX + 2];

    rfc5322_date(date, sizeof(date), info->now);
    rfc5322_date(arrival, sizeof(arrival), info->arrival);
    snprintf(boundary, sizeof(boundary), "%s.%lld/%s", info->queue_id, (long long) info->now,
             info->myhostname);
    buf_printf(out, "Date: %s\r\n", date);
    buf_printf(out, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n", info->myhostname);
    buf_printf(out, "To: <%s>\r\n", info->sender);
    buf_puts(out, "Subject: Undelivered Mail Returned to Sender\r\n");
    buf_printf(out, "Message-Id: <%s.%lld.bounce@%s>\r\n", info->queue_id,
               (long long) info->now, info->myhostname);
    buf_puts(out, "Auto-Submitted: auto-replied\r\n");
    buf_puts(out, "MIME-Version: 1.0\r\n");
    buf_printf(out, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
                    "\tboundary=\"%s\"\r\n", boundary);
    buf_puts(out, "Content-Transfer-Encoding: 7bit\r\n\r\n");
    buf_puts(out, "This is a MIME-encapsulated message.\r\n\r\n");

    buf_printf(out, "--%s\r\n", boundary);
    buf_puts(out, "Content-Description: Notification\r\n"
                  "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
    buf_printf(out, "This is the mail system at host %s.\r\n\r\n", info->myhostname);
    buf_puts(out, "I'm sorry to have to inform you that your message could not\r\n"
                  "be delivered to one or more recipients. It's attached below.\r\n\r\n"
                  "For further assistance, please send mail to postmaster.\r\n\r\n"
                  "If you do so, please include this problem report. You can\r\n"
                  "delete your own text from the attached returned message.\r\n\r\n"
                  "                   The mail system\r\n\r\n");
    for (size_t i = 0; i < info->nrcpt; i++)
        buf_printf(out, "<%s>: %s\r\n", info->rcpts[i].address, info->rcpts[i].text);
    buf_puts(out, "\r\n");

    buf_printf(out, "--%s\r\n", boundary);
    buf_puts(out, "Content-Description: Delivery report\r\n"
                  "Content-Type: message/delivery-status\r\n\r\n");
    buf_printf(out, "Reporting-MTA: dns; %s\r\n", info->myhostname);
    buf_printf(out, "X-Etrnkit-Queue-ID: %s\r\n", info->queue_id);
    buf_printf(out, "X-Etrnkit-Sender: rfc822; %s\r\n", info->sender);
    buf_printf(out, "Arrival-Date: %s\r\n", arrival);
    for (size_t i = 0; i < info->nrcpt; i++) {
        failed_status(status, sizeof(status), info->rcpts[i].dsn);
        buf_printf(out, "\r\nFinal-Recipient: rfc822; %s\r\n", info->rcpts[i].address);
        buf_puts(out, "Action: failed\r\n");
        buf_printf(out, "Status: %s\r\n", status);
        buf_printf(out, "Diagnostic-Code: smtp; %s\r\n", info->rcpts[i].text);
    }
    buf_puts(out, "\r\n");

    buf_printf(out, "--%s\r\n", boundary);
    buf_puts(out, "Content-Description: Undelivered Message Headers\r\n"
                  "Content-Type: text/rfc822-headers\r\n\r\n");
    if (info->headers_len > 0) {
        buf_append(out, info->headers, info->headers_len);
        if (info->headers_len < 2 || memcmp(info->headers + info->headers_len - 2, "\r\n", 2) != 0)
            buf_puts(out, "\r\n");
    }
    buf_printf(out, "\r\n--%s--\r\n", boundary);
}

/* bounce_headers - the header block of a queued message (without the empty line) */
void bounce_headers(int content_fd, off_t offset, off_t size, struct buf *out)
{
    size_t want = size < BOUNCE_HEADERS_MAX ? (size_t) size : BOUNCE_HEADERS_MAX;
    char *text = xmalloc(want + 1);
    size_t have = 0, end = 0;

    while (have < want) {
        ssize_t n = pread(content_fd, text + have, want - have, offset + (off_t) have);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t) n;
    }
    /* keep whole lines up to the empty line that ends the header */
    for (size_t i = 0; i < have; i++) {
        if (text[i] != '\n')
            continue;
        size_t line_start = end;

        if (i + 1 - line_start <= 2 && (i == line_start || text[line_start] == '\r'))
            break;
        end = i + 1;
    }
    buf_append(out, text, end);
    free(text);
}

/* bounce_send - commit a DSN to the queue; its new ID in id */
int bounce_send(struct queue *q, const struct bounce_info *info, char *id, size_t idlen,
                size_t *size)
{
    const char *rcpt = info->sender;
    struct buf msg = BUF_INIT;
    struct queue_file qf;
    int rc;

    if (info->sender == NULL || *info->sender == 0)
        return QUEUE_INVAL;
    bounce_format(&msg, info);
    if ((rc = queue_create(q, "", "MAILER-DAEMON", &rcpt, 1, &qf)) != QUEUE_OK)
        goto out;
    if ((rc = queue_write(&qf, msg.data, msg.len)) != QUEUE_OK) {
        queue_abort(&qf);
        goto out;
    }
    if ((rc = queue_commit(&qf)) != QUEUE_OK)
        goto out;
    snprintf(id, idlen, "%s", qf.id);
    *size = msg.len;
out:
    buf_free(&msg);
    return rc;
}
