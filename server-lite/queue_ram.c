/*
 * queue_ram - the queue in memory (contract in queue_ram.h). One hash table
 * by ID holds every committed message; each directory is a list in the order
 * its messages entered it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "fileio.h"
#include "htable.h"
#include "printable.h"
#include "queue_ram.h"

struct ram_msg {
    char id[QUEUE_ID_MAX + 1];
    enum queue_dir dir;
    time_t arrival;
    time_t retry_time;
    char *sender;
    char *client;
    struct queue_rcpt *rcpts;      /* reasons stored masked, as a queue file holds them */
    size_t nrcpt;
    struct buf content;
    TAILQ_ENTRY(ram_msg) link;     /* its directory's list */
};

/* a commit_async waiting for the next loop pass */
struct ram_job {
    struct queue_ram *r;
    struct ram_msg *msg;
    queue_done_fn fn;
    void *ctx;
    struct event *ev;
    TAILQ_ENTRY(ram_job) link;
};

struct queue_ram {
    struct queue *front;
    struct htable *msgs;           /* id -> committed struct ram_msg */
    TAILQ_HEAD(, ram_msg) dirs[QUEUE_NDIRS];
    unsigned long counter;
    struct event_base *base;       /* queue_attach */
    TAILQ_HEAD(, ram_job) jobs;
    size_t njobs;
};

/* msg_free - release one message */
static void msg_free(void *p)
{
    struct ram_msg *m = p;

    for (size_t i = 0; i < m->nrcpt; i++)
        free(m->rcpts[i].address);
    free(m->rcpts);
    free(m->sender);
    free(m->client);
    buf_free(&m->content);
    free(m);
}

/* find - message id in dir, or NULL with QUEUE_NOTFOUND's text set */
static struct ram_msg *find(struct queue_ram *r, enum queue_dir dir, const char *id)
{
    struct ram_msg *m = htable_find(r->msgs, id);

    if (m == NULL || m->dir != dir) {
        queue_fail(r->front, QUEUE_NOTFOUND, "%s/%s: no such message", queue_dir_name(dir), id);
        return NULL;
    }
    return m;
}

/* ram_create - start a message with its envelope */
static int ram_create(struct queue *q, const char *sender, const char *client,
                      const char *const *rcpts, size_t nrcpt, struct queue_file *qf)
{
    struct queue_ram *r = q->be;
    struct ram_msg *m = xcalloc(1, sizeof(*m));
    double now = clock_wall();

    m->arrival = (time_t) now;
    /* as on disk: the arrival's microseconds, then a number unique while it exists */
    snprintf(m->id, sizeof(m->id), "%05lX%lX",
             (unsigned long) ((now - (double) m->arrival) * 1e6) & 0xFFFFF, ++r->counter);
    m->sender = xstrdup(sender);
    m->client = xstrdup(client);
    m->rcpts = xcalloc(nrcpt, sizeof(*m->rcpts));
    for (size_t i = 0; i < nrcpt; i++) {
        m->rcpts[i].address = xstrdup(rcpts[i]);
        m->rcpts[i].state = QUEUE_RCPT_PENDING;
        m->rcpts[i].offset = (off_t) i;
    }
    m->nrcpt = nrcpt;
    snprintf(qf->id, sizeof(qf->id), "%s", m->id);
    qf->priv = m;
    return QUEUE_OK;
}

/* ram_write - append content */
static int ram_write(struct queue_file *qf, const void *data, size_t len)
{
    struct ram_msg *m = qf->priv;

    if (m == NULL)
        return queue_fail(qf->q, QUEUE_INVAL, "queue_write: no open message");
    buf_append(&m->content, data, len);
    qf->size += (off_t) len;
    return QUEUE_OK;
}

/* enter - a complete message arrives in incoming/ */
static void enter(struct queue_ram *r, struct ram_msg *m)
{
    m->dir = QUEUE_INCOMING;
    m->retry_time = clock_wall_sec();
    if (htable_insert(r->msgs, m->id, m) != 0)
        log_panic("queue_ram: duplicate queue ID %s", m->id);
    TAILQ_INSERT_TAIL(&r->dirs[QUEUE_INCOMING], m, link);
}

/* ram_commit - the message is in incoming/ */
static int ram_commit(struct queue_file *qf)
{
    struct ram_msg *m = qf->priv;

    if (m == NULL)
        return queue_fail(qf->q, QUEUE_INVAL, "queue_commit: no open message");
    enter(qf->q->be, m);
    qf->priv = NULL;
    return QUEUE_OK;
}

/* ram_abort - drop a message being written */
static void ram_abort(struct queue_file *qf)
{
    if (qf->priv)
        msg_free(qf->priv);
    qf->priv = NULL;
}

/* ram_attach - commit_async reports on base */
static int ram_attach(struct queue *q, struct event_base *base, int nthreads, char *err,
                      size_t errlen)
{
    struct queue_ram *r = q->be;

    (void) nthreads;
    if (r->base != NULL) {
        snprintf(err, errlen, "the queue is already attached to an event loop");
        return QUEUE_INVAL;
    }
    r->base = base;
    return QUEUE_OK;
}

/* job_run - commit a job's message and report it */
static void job_run(struct ram_job *j)
{
    struct queue_ram *r = j->r;
    char id[QUEUE_ID_MAX + 1];

    TAILQ_REMOVE(&r->jobs, j, link);
    r->njobs--;
    event_free(j->ev);
    enter(r, j->msg);
    memcpy(id, j->msg->id, sizeof(id));
    j->fn(j->ctx, id, QUEUE_OK, "");
    free(j);
}

/* job_cb - the loop pass after a commit_async */
static void job_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    job_run(arg);
}

/* ram_commit_async - the message enters incoming/ on the next loop pass, then fn */
static int ram_commit_async(struct queue_file *qf, queue_done_fn fn, void *ctx)
{
    static const struct timeval now = { 0, 0 };
    struct queue_ram *r = qf->q->be;
    struct ram_job *j;

    if (r->base == NULL)
        return queue_fail(qf->q, QUEUE_INVAL, "queue_commit_async: no event loop attached");
    if (qf->priv == NULL)
        return queue_fail(qf->q, QUEUE_INVAL, "queue_commit_async: no open message");
    j = xcalloc(1, sizeof(*j));
    j->r = r;
    j->msg = qf->priv;
    j->fn = fn;
    j->ctx = ctx;
    if ((j->ev = evtimer_new(r->base, job_cb, j)) == NULL || evtimer_add(j->ev, &now) != 0) {
        if (j->ev)
            event_free(j->ev);
        free(j);
        return queue_fail(qf->q, QUEUE_ERR, "queue_commit_async: cannot arm a timer");
    }
    qf->priv = NULL;
    TAILQ_INSERT_TAIL(&r->jobs, j, link);
    r->njobs++;
    return QUEUE_OK;
}

/* ram_pending - commit_async reports still to come */
static size_t ram_pending(const struct queue *q)
{
    const struct queue_ram *r = q->be;

    return r->njobs;
}

/* ram_drain - report every commit_async now */
static void ram_drain(struct queue *q)
{
    struct queue_ram *r = q->be;

    while (!TAILQ_EMPTY(&r->jobs))
        job_run(TAILQ_FIRST(&r->jobs));
}

/* ram_detach - drain and forget the event base */
static void ram_detach(struct queue *q)
{
    struct queue_ram *r = q->be;

    ram_drain(q);
    r->base = NULL;
}

/* ram_load - copy a message's envelope into msg (the front end set id and dir) */
static int ram_load(struct queue *q, enum queue_dir dir, const char *id, struct queue_msg *msg)
{
    struct ram_msg *m = find(q->be, dir, id);

    if (m == NULL)
        return QUEUE_NOTFOUND;
    msg->arrival = m->arrival;
    msg->retry_time = m->retry_time;
    msg->sender = xstrdup(m->sender);
    msg->client = xstrdup(m->client);
    msg->rcpts = xcalloc(m->nrcpt, sizeof(*msg->rcpts));
    for (size_t i = 0; i < m->nrcpt; i++) {
        msg->rcpts[i] = m->rcpts[i];
        msg->rcpts[i].address = xstrdup(m->rcpts[i].address);
    }
    msg->nrcpt = m->nrcpt;
    msg->data_offset = 0;
    msg->size = (off_t) m->content.len;
    return QUEUE_OK;
}

/* ram_open_content - a memory file holding the content, positioned at its start */
static int ram_open_content(struct queue *q, const struct queue_msg *msg)
{
    struct ram_msg *m = find(q->be, msg->dir, msg->id);
    int fd;

    if (m == NULL)
        return QUEUE_NOTFOUND;
    if ((fd = memfd_create("etrnkit-queue", MFD_CLOEXEC)) < 0)
        return queue_fail(q, QUEUE_ERR, "memfd_create: %s", strerror(errno));
    if (fileio_write_all(fd, m->content.data, m->content.len) != 0
        || lseek(fd, 0, SEEK_SET) != 0) {
        int rc = queue_fail(q, QUEUE_ERR, "%s: content: %s", m->id, strerror(errno));

        close(fd);
        return rc;
    }
    return fd;
}

/* ram_stat - id is in dir; its retry time */
static int ram_stat(struct queue *q, enum queue_dir dir, const char *id, time_t *retry_time)
{
    struct ram_msg *m = find(q->be, dir, id);

    if (m == NULL)
        return QUEUE_NOTFOUND;
    if (retry_time)
        *retry_time = m->retry_time;
    return QUEUE_OK;
}

/* ram_walk - fn for every ID of dir, in the order they entered it, over a copy */
static int ram_walk(struct queue *q, enum queue_dir dir, queue_walk_fn fn, void *ctx)
{
    struct queue_ram *r = q->be;
    char (*ids)[QUEUE_ID_MAX + 1] = NULL;
    size_t n = 0, cap = 0;
    struct ram_msg *m;

    TAILQ_FOREACH(m, &r->dirs[dir], link) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            ids = xreallocarray(ids, cap, sizeof(*ids));
        }
        memcpy(ids[n++], m->id, sizeof(ids[0]));
    }
    for (size_t i = 0; i < n; i++)
        if (fn(ctx, dir, ids[i]) != 0)
            break;
    free(ids);
    return QUEUE_OK;
}

/* ram_update - one recipient's state, in the queue and in msg */
static int ram_update(struct queue *q, struct queue_msg *msg, size_t idx,
                      enum queue_rcpt_state state, const char *dsn, const char *reason)
{
    struct ram_msg *m = find(q->be, msg->dir, msg->id);
    struct queue_rcpt *stored, *r = &msg->rcpts[idx];

    if (m == NULL)
        return QUEUE_NOTFOUND;
    if (idx >= m->nrcpt)
        return queue_fail(q, QUEUE_INVAL, "%s: no recipient %zu", msg->id, idx);
    stored = &m->rcpts[idx];
    stored->state = state;
    snprintf(stored->dsn, sizeof(stored->dsn), "%s", dsn);
    snprintf(stored->reason, sizeof(stored->reason), "%s", reason);
    printable_mem(stored->reason, strlen(stored->reason), '?');
    /* a queue file pads the field with blanks and loads it without them */
    for (size_t n = strlen(stored->reason); n > 0 && stored->reason[n - 1] == ' '; n--)
        stored->reason[n - 1] = 0;
    if (state != QUEUE_RCPT_PENDING)
        msg->unsynced = 1;
    r->state = state;
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    return QUEUE_OK;
}

/* ram_settle - nothing to make durable */
static int ram_settle(struct queue *q, struct queue_msg *msg)
{
    (void) q;
    msg->unsynced = 0;
    return QUEUE_OK;
}

/* ram_set_retry_time - the next retry time */
static int ram_set_retry_time(struct queue *q, enum queue_dir dir, const char *id, time_t when)
{
    struct ram_msg *m = find(q->be, dir, id);

    if (m == NULL)
        return QUEUE_NOTFOUND;
    m->retry_time = when;
    return QUEUE_OK;
}

/* ram_move - to the end of another directory's list */
static int ram_move(struct queue *q, const char *id, enum queue_dir from, enum queue_dir to)
{
    struct queue_ram *r = q->be;
    struct ram_msg *m = find(r, from, id);

    if (m == NULL)
        return QUEUE_NOTFOUND;
    if (from == to)
        return QUEUE_OK;
    TAILQ_REMOVE(&r->dirs[from], m, link);
    m->dir = to;
    TAILQ_INSERT_TAIL(&r->dirs[to], m, link);
    return QUEUE_OK;
}

/* ram_delete - remove a message (QUEUE_LATER changes nothing here) */
static int ram_delete(struct queue *q, enum queue_dir dir, const char *id, int flags)
{
    struct queue_ram *r = q->be;
    struct ram_msg *m = find(r, dir, id);

    (void) flags;
    if (m == NULL)
        return QUEUE_NOTFOUND;
    TAILQ_REMOVE(&r->dirs[dir], m, link);
    htable_remove(r->msgs, id);
    msg_free(m);
    return QUEUE_OK;
}

/* ram_sync - nothing waits */
static int ram_sync(struct queue *q)
{
    (void) q;
    return QUEUE_OK;
}

/* ram_recover - what was active goes back to incoming */
static int ram_recover(struct queue *q)
{
    struct queue_ram *r = q->be;
    struct ram_msg *m;

    while ((m = TAILQ_FIRST(&r->dirs[QUEUE_ACTIVE])) != NULL)
        ram_move(q, m->id, QUEUE_ACTIVE, QUEUE_INCOMING);
    return QUEUE_OK;
}

/* ram_close - detach, free every message */
static void ram_close(struct queue *q)
{
    struct queue_ram *r = q->be;

    ram_detach(q);
    htable_free(r->msgs, msg_free);
    free(r);
}

static const struct queue_ops ram_ops = QUEUE_OPS(ram);

/* queue_ram_open - an empty queue in memory */
int queue_ram_open(struct queue *q)
{
    struct queue_ram *r = xcalloc(1, sizeof(*r));

    memset(q, 0, sizeof(*q));
    q->ops = &ram_ops;
    q->be = r;
    r->front = q;
    r->msgs = htable_new(64);
    for (int i = 0; i < QUEUE_NDIRS; i++)
        TAILQ_INIT(&r->dirs[i]);
    TAILQ_INIT(&r->jobs);
    return QUEUE_OK;
}
