/*
 * queue - the front end (contract in queue.h): checks arguments, hands the
 * work to the backend's queue_ops, and does what needs no backend of its own
 * (the mailq listing, marking by ID, freeing an envelope).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "queue.h"

static const char *const dir_names[QUEUE_NDIRS] = {
    "incoming", "active", "deferred", "hold", "corrupt",
};

/* queue_fail - record the last error text; returns status */
int queue_fail(struct queue *q, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(q->err, sizeof(q->err), fmt, ap);
    va_end(ap);
    return status;
}

/* queue_error - text of the last error */
const char *queue_error(const struct queue *q)
{
    return q->err;
}

/* queue_dir_name - "incoming", "active", ... */
const char *queue_dir_name(enum queue_dir dir)
{
    return (unsigned) dir < QUEUE_NDIRS ? dir_names[dir] : "?";
}

/* queue_id_valid - 1..QUEUE_ID_MAX upper-case hex digits, nothing else */
int queue_id_valid(const char *id)
{
    size_t n = 0;

    if (id == NULL)
        return 0;
    for (; id[n]; n++)
        if (n >= QUEUE_ID_MAX || !((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'A' && id[n] <= 'F')))
            return 0;
    return n > 0;
}

/* queue_header_safe - no control characters (CR, LF, ...) in a header value */
int queue_header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char) *s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* queue_dsn_valid - "" or class.subject.detail (RFC 3463) */
int queue_dsn_valid(const char *dsn)
{
    int parts = 0, digits = 0;

    if (*dsn == 0)
        return 1;
    if (strlen(dsn) > QUEUE_DSN_MAX || (dsn[0] != '2' && dsn[0] != '4' && dsn[0] != '5'))
        return 0;
    for (const char *p = dsn;; p++) {
        if (isdigit((unsigned char) *p)) {
            if (++digits > 3)
                return 0;
        } else if (*p == '.' || *p == 0) {
            if (digits == 0 || (parts == 0 && digits != 1))
                return 0;
            parts++;
            digits = 0;
            if (*p == 0)
                break;
        } else {
            return 0;
        }
    }
    return parts == 3;
}

/* check_dir - a message directory index */
static int check_dir(struct queue *q, enum queue_dir dir)
{
    if ((unsigned) dir >= QUEUE_NDIRS)
        return queue_fail(q, QUEUE_INVAL, "bad queue directory %d", (int) dir);
    return QUEUE_OK;
}

/* check_args - a message directory index and a valid queue ID */
static int check_args(struct queue *q, enum queue_dir dir, const char *id)
{
    if ((unsigned) dir >= QUEUE_NDIRS)
        return queue_fail(q, QUEUE_INVAL, "bad queue directory %d", (int) dir);
    if (!queue_id_valid(id))
        return queue_fail(q, QUEUE_BADID, "bad queue ID");
    return QUEUE_OK;
}

/* queue_close - release what the backend holds (detaching it first) */
void queue_close(struct queue *q)
{
    if (q->ops)
        q->ops->close(q);
    q->ops = NULL;
    q->be = NULL;
}

/* queue_create - start a message with its envelope */
int queue_create(struct queue *q, const char *sender, const char *client,
                 const char *const *rcpts, size_t nrcpt, struct queue_file *qf)
{
    memset(qf, 0, sizeof(*qf));
    qf->q = q;
    qf->fd = -1;
    if (nrcpt == 0 || nrcpt > QUEUE_RCPT_LIMIT)
        return queue_fail(q, QUEUE_INVAL, "a message needs 1..%d recipients", QUEUE_RCPT_LIMIT);
    if (!queue_header_safe(sender) || !queue_header_safe(client))
        return queue_fail(q, QUEUE_INVAL, "control character in sender or client");
    for (size_t i = 0; i < nrcpt; i++)
        if (!queue_header_safe(rcpts[i]) || *rcpts[i] == 0)
            return queue_fail(q, QUEUE_INVAL, "empty recipient or control character in recipient");
    return q->ops->create(q, sender, client, rcpts, nrcpt, qf);
}

/* queue_write - append content */
int queue_write(struct queue_file *qf, const void *data, size_t len)
{
    return qf->q->ops->write(qf, data, len);
}

/* queue_commit - make the message durable in incoming/ */
int queue_commit(struct queue_file *qf)
{
    return qf->q->ops->commit(qf);
}

/* queue_abort - drop a message being written (harmless after a commit) */
void queue_abort(struct queue_file *qf)
{
    if (qf->q)
        qf->q->ops->abort(qf);
}

/* queue_attach - run on base: commits in the background, deferred syncs */
int queue_attach(struct queue *q, struct event_base *base, int nthreads, char *err,
                 size_t errlen)
{
    return q->ops->attach(q, base, nthreads, err, errlen);
}

/* queue_commit_async - commit in the background; fn reports from the loop */
int queue_commit_async(struct queue_file *qf, queue_done_fn fn, void *ctx)
{
    return qf->q->ops->commit_async(qf, fn, ctx);
}

/* queue_pending - background commits not reported yet */
size_t queue_pending(const struct queue *q)
{
    return q->ops ? q->ops->pending(q) : 0;
}

/* queue_drain - report every background commit now */
void queue_drain(struct queue *q)
{
    q->ops->drain(q);
}

/* queue_detach - drain, make deferred work durable, leave the event loop */
void queue_detach(struct queue *q)
{
    q->ops->detach(q);
}

/* queue_load - read a message's envelope */
int queue_load(struct queue *q, enum queue_dir dir, const char *id, struct queue_msg *msg)
{
    int rc;

    memset(msg, 0, sizeof(*msg));
    if ((rc = check_args(q, dir, id)) != QUEUE_OK)
        return rc;
    snprintf(msg->id, sizeof(msg->id), "%s", id);
    msg->dir = dir;
    if ((rc = q->ops->load(q, dir, id, msg)) != QUEUE_OK)
        queue_msg_free(msg);
    return rc;
}

/* queue_msg_free - release a loaded envelope */
void queue_msg_free(struct queue_msg *msg)
{
    for (size_t i = 0; i < msg->nrcpt; i++)
        free(msg->rcpts[i].address);
    free(msg->rcpts);
    free(msg->sender);
    free(msg->client);
    memset(msg, 0, sizeof(*msg));
}

/* queue_open_content - read-only fd positioned at the content, or a negative status */
int queue_open_content(struct queue *q, const struct queue_msg *msg)
{
    int rc;

    if ((rc = check_args(q, msg->dir, msg->id)) != QUEUE_OK)
        return rc;
    return q->ops->open_content(q, msg);
}

/* queue_stat - QUEUE_OK: id is in dir (with retry_time non-NULL, its retry time) */
int queue_stat(struct queue *q, enum queue_dir dir, const char *id, time_t *retry_time)
{
    int rc;

    if ((rc = check_args(q, dir, id)) != QUEUE_OK)
        return rc;
    return q->ops->stat(q, dir, id, retry_time);
}

/* queue_walk - call fn for every queue ID in dir; fn returns non-zero to stop */
int queue_walk(struct queue *q, enum queue_dir dir, queue_walk_fn fn, void *ctx)
{
    int rc;

    if ((rc = check_dir(q, dir)) != QUEUE_OK)
        return rc;
    return q->ops->walk(q, dir, fn, ctx);
}

/* queue_update - set one recipient of a loaded message; final states need queue_settle */
int queue_update(struct queue *q, struct queue_msg *msg, size_t idx,
                 enum queue_rcpt_state state, const char *dsn, const char *reason)
{
    if (state != QUEUE_RCPT_PENDING && state != QUEUE_RCPT_DELIVERED && state != QUEUE_RCPT_BOUNCED)
        return queue_fail(q, QUEUE_INVAL, "bad recipient state %d", (int) state);
    if (dsn == NULL)
        dsn = "";
    if (reason == NULL)
        reason = "";
    if (!queue_dsn_valid(dsn))
        return queue_fail(q, QUEUE_INVAL, "bad status code \"%s\"", dsn);
    if (idx >= msg->nrcpt)
        return queue_fail(q, QUEUE_INVAL, "%s: no recipient %zu", msg->id, idx);
    return q->ops->update(q, msg, idx, state, dsn, reason);
}

/* queue_settle - make the final states queue_update wrote durable */
int queue_settle(struct queue *q, struct queue_msg *msg)
{
    if (!msg->unsynced)
        return QUEUE_OK;
    return q->ops->settle(q, msg);
}

/* queue_mark_recipient - load message id, update one recipient, settle */
int queue_mark_recipient(struct queue *q, enum queue_dir dir, const char *id, size_t idx,
                         enum queue_rcpt_state state, const char *dsn, const char *reason)
{
    struct queue_msg msg;
    int rc;

    if ((rc = queue_load(q, dir, id, &msg)) != QUEUE_OK)
        return rc;
    if ((rc = queue_update(q, &msg, idx, state, dsn, reason)) == QUEUE_OK)
        rc = queue_settle(q, &msg);
    queue_msg_free(&msg);
    return rc;
}

/* queue_set_retry_time - the next retry time */
int queue_set_retry_time(struct queue *q, enum queue_dir dir, const char *id, time_t when)
{
    int rc;

    if ((rc = check_args(q, dir, id)) != QUEUE_OK)
        return rc;
    return q->ops->set_retry_time(q, dir, id, when);
}

/* queue_move - move a message between directories */
int queue_move(struct queue *q, const char *id, enum queue_dir from, enum queue_dir to)
{
    int rc;

    if ((rc = check_args(q, from, id)) != QUEUE_OK || (rc = check_args(q, to, id)) != QUEUE_OK)
        return rc;
    return q->ops->move(q, id, from, to);
}

/* queue_delete - remove a message; with QUEUE_LATER durable at the backend's next sync */
int queue_delete(struct queue *q, enum queue_dir dir, const char *id, int flags)
{
    int rc;

    if ((rc = check_args(q, dir, id)) != QUEUE_OK)
        return rc;
    return q->ops->delete(q, dir, id, flags);
}

/* queue_sync - make every QUEUE_LATER delete durable now */
int queue_sync(struct queue *q)
{
    return q->ops->sync(q);
}

/* queue_recover - startup: active/ back to incoming/, bad messages to corrupt/ */
int queue_recover(struct queue *q)
{
    return q->ops->recover(q);
}

/* IDs collected by a walk */
struct id_list {
    char **ids;
    size_t count;
};

/* collect_id - queue_walk callback: remember one ID */
static int collect_id(void *ctx, enum queue_dir dir, const char *id)
{
    struct id_list *l = ctx;

    (void) dir;
    l->ids = xreallocarray(l->ids, l->count + 1, sizeof(char *));
    l->ids[l->count++] = xstrdup(id);
    return 0;
}

/* list_message - one message in Postfix mailq format */
static void list_message(struct buf *out, const struct queue_msg *msg)
{
    char when[32], idstat[QUEUE_ID_MAX + 2];
    struct tm tm;
    const char *last = "";

    if (localtime_r(&msg->arrival, &tm) == NULL || strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm) == 0)
        snprintf(when, sizeof(when), "?");
    snprintf(idstat, sizeof(idstat), "%s%s", msg->id,
             msg->dir == QUEUE_ACTIVE ? "*" : msg->dir == QUEUE_HOLD ? "!" : "");
    buf_printf(out, "%-11s %7lld %-20.20s %s\n", idstat, (long long) msg->size, when,
               *msg->sender ? msg->sender : "MAILER-DAEMON");
    for (size_t i = 0; i < msg->nrcpt; i++) {
        const struct queue_rcpt *r = &msg->rcpts[i];

        if (r->state != QUEUE_RCPT_PENDING)
            continue;
        /* as Postfix's mailq: "(reason)" ends in column 78, printed when it changes */
        if (strcmp(r->reason, last) != 0) {
            const char *show = *r->reason ? r->reason : "reason unavailable";
            int pad = 76 - (int) strlen(show);

            buf_printf(out, "%*s(%s)\n", pad > 0 ? pad : 0, "", show);
        }
        last = r->reason;
        buf_printf(out, "%41s%s\n", "", r->address);
    }
    buf_puts(out, "\n");
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* queue_list - the mailq listing of incoming, active, deferred and hold */
int queue_list(struct queue *q, struct buf *out)
{
    static const enum queue_dir dirs[] = { QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED, QUEUE_HOLD };
    long long total = 0;
    size_t count = 0;
    int rc = QUEUE_OK;
    struct buf body = BUF_INIT;

    for (size_t d = 0; d < sizeof(dirs) / sizeof(dirs[0]) && rc == QUEUE_OK; d++) {
        struct id_list l = { NULL, 0 };

        rc = queue_walk(q, dirs[d], collect_id, &l);
        if (l.count)
            qsort(l.ids, l.count, sizeof(char *), cmp_id);
        for (size_t i = 0; i < l.count; i++) {
            struct queue_msg msg;

            /* a message that moved or was finished meanwhile is skipped */
            if (rc == QUEUE_OK && queue_load(q, dirs[d], l.ids[i], &msg) == QUEUE_OK) {
                if (count == 0)
                    buf_puts(&body, "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n");
                list_message(&body, &msg);
                total += (long long) msg.size;
                count++;
                queue_msg_free(&msg);
            }
            free(l.ids[i]);
        }
        free(l.ids);
    }
    if (rc == QUEUE_OK) {
        if (count == 0)
            buf_puts(out, "Mail queue is empty\n");
        else {
            buf_append(out, body.data, body.len);
            buf_printf(out, "-- %lld Kbytes in %zu Request%s.\n", total / 1024, count,
                       count == 1 ? "" : "s");
        }
    }
    buf_free(&body);
    return rc;
}
