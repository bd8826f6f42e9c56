/*
 * queue - the mail queue's interface; the backend is chosen when it is opened
 * (queue_fs.h: files on disk, what the server runs; queue_ram.h: memory, for
 * unit tests). Callers see only the functions below, never the backend.
 *
 * Writing: queue_create (envelope) + queue_write (content) + queue_commit:
 *   only after QUEUE_OK is the message durable in incoming/ (smtpd may
 *   answer 250); queue_abort drops a message being written. With an event
 *   loop attached (queue_attach), queue_commit_async owns qf's message from
 *   then on and calls fn(ctx, id, status, error) from the loop once it is
 *   durable in incoming/ or gone; queue_pending counts those not reported
 *   yet, queue_drain reports them all now; queue_detach drains, stops what
 *   the backend runs on the loop and makes deferred work durable: call it
 *   (or queue_close) before the event base is freed.
 * Reading: queue_load (envelope, caller frees with queue_msg_free),
 *   queue_open_content (a read-only fd at the content, msg->data_offset;
 *   caller closes), queue_stat (is it in dir; its retry time), queue_walk
 *   (every ID in a directory, no order promised; a commit in flight is not
 *   seen), queue_list (the mailq listing).
 * Changing: queue_update sets one recipient's state of a loaded message,
 *   in the queue and in msg; a final state (delivered/bounced) is durable
 *   only after queue_settle(msg) (a pending one changes only the reason and
 *   never needs it). queue_set_retry_time, queue_move between directories,
 *   queue_delete: with QUEUE_LATER its durability may wait for the backend
 *   (a crash can bring the message back, never lose it) until queue_sync or
 *   at most a few milliseconds; without, it is durable on return.
 *   queue_mark_recipient = load + update + settle by ID.
 * queue_recover at startup: what was active/ goes back to incoming/, bad
 * messages go to corrupt/.
 * int functions return QUEUE_OK or a negative enum queue_status (QUEUE_NOSPACE
 * on ENOSPC/EDQUOT: 452 4.3.1) with the text in queue_error(q); IDs and
 * directories are checked before any backend sees them.
 * A backend fills a struct queue_ops and q->ops/q->be, and reports errors
 * with queue_fail; queue_header_safe/queue_dsn_valid are its checks on load.
 */
#ifndef ETRNKIT_QUEUE_H
#define ETRNKIT_QUEUE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "log.h"

#define QUEUE_ID_MAX 32      /* upper-case hex digits */
#define QUEUE_DSN_MAX 9      /* "5.123.456" */
#define QUEUE_REASON_MAX 256 /* a longer reason keeps its first 256 bytes */
#define QUEUE_RCPT_LIMIT 1000000
#define QUEUE_LATER 1        /* queue_delete flag: durable at the next sync */

enum queue_status {
    QUEUE_OK = 0,
    QUEUE_ERR = -1,      /* I/O or system error */
    QUEUE_NOSPACE = -2,  /* disk full or quota: 452 4.3.1 */
    QUEUE_NOTFOUND = -3, /* no such message in that directory */
    QUEUE_BADID = -4,    /* the ID is not a queue ID */
    QUEUE_CORRUPT = -5,  /* the message cannot be parsed */
    QUEUE_INVAL = -6,    /* bad argument (CR/LF in an address, bad DSN, index) */
};

/* message directories; the order is the order etrn-queue -p lists them */
enum queue_dir {
    QUEUE_INCOMING,
    QUEUE_ACTIVE,
    QUEUE_DEFERRED,
    QUEUE_HOLD,
    QUEUE_CORRUPT_DIR,
    QUEUE_NDIRS
};

enum queue_rcpt_state {
    QUEUE_RCPT_PENDING = 'P',
    QUEUE_RCPT_DELIVERED = 'D',
    QUEUE_RCPT_BOUNCED = 'B',
};

struct queue_ops;

struct queue {
    const struct queue_ops *ops; /* the backend */
    void *be;                    /* its state */
    char err[512];
};

/* a message being written */
struct queue_file {
    struct queue *q;
    char id[QUEUE_ID_MAX + 1];
    off_t size;             /* content bytes written so far */
    int fd;                 /* the backend's: -1 when closed */
    char tmpname[64];       /* the backend's */
    void *priv;             /* the backend's */
};

struct queue_rcpt {
    char *address;
    enum queue_rcpt_state state;
    char dsn[QUEUE_DSN_MAX + 1];      /* "" when none */
    char reason[QUEUE_REASON_MAX + 1];
    off_t offset;                     /* the backend's: where the record is */
};

struct queue_msg {
    char id[QUEUE_ID_MAX + 1];
    enum queue_dir dir;
    time_t arrival;
    time_t retry_time;
    char *sender;            /* "" for the null sender */
    char *client;            /* e.g. "pop[192.168.11.12]" */
    struct queue_rcpt *rcpts;
    size_t nrcpt;
    off_t data_offset;       /* where the content starts in queue_open_content's fd */
    off_t size;              /* content bytes */
    int unsynced;            /* queue_update wrote a final state: queue_settle */
};

typedef int (*queue_walk_fn)(void *ctx, enum queue_dir dir, const char *id);
/* status is QUEUE_OK or a negative enum queue_status; error is "" on success */
typedef void (*queue_done_fn)(void *ctx, const char *id, int status, const char *error);

struct event_base;
struct buf;

void queue_close(struct queue *q);
const char *queue_error(const struct queue *q);
const char *queue_dir_name(enum queue_dir dir);
int queue_id_valid(const char *id);

int queue_create(struct queue *q, const char *sender, const char *client,
                 const char *const *rcpts, size_t nrcpt, struct queue_file *qf);
int queue_write(struct queue_file *qf, const void *data, size_t len);
int queue_commit(struct queue_file *qf);
void queue_abort(struct queue_file *qf);

int queue_attach(struct queue *q, struct event_base *base, int nthreads, char *err,
                 size_t errlen);
int queue_commit_async(struct queue_file *qf, queue_done_fn fn, void *ctx);
size_t queue_pending(const struct queue *q);
void queue_drain(struct queue *q);
void queue_detach(struct queue *q);

int queue_load(struct queue *q, enum queue_dir dir, const char *id, struct queue_msg *msg);
void queue_msg_free(struct queue_msg *msg);
int queue_open_content(struct queue *q, const struct queue_msg *msg);
int queue_stat(struct queue *q, enum queue_dir dir, const char *id, time_t *retry_time);
int queue_walk(struct queue *q, enum queue_dir dir, queue_walk_fn fn, void *ctx);
int queue_list(struct queue *q, struct buf *out);

int queue_update(struct queue *q, struct queue_msg *msg, size_t idx,
                 enum queue_rcpt_state state, const char *dsn, const char *reason);
int queue_settle(struct queue *q, struct queue_msg *msg);
int queue_mark_recipient(struct queue *q, enum queue_dir dir, const char *id, size_t idx,
                         enum queue_rcpt_state state, const char *dsn, const char *reason);
int queue_set_retry_time(struct queue *q, enum queue_dir dir, const char *id, time_t when);
int queue_move(struct queue *q, const char *id, enum queue_dir from, enum queue_dir to);
int queue_delete(struct queue *q, enum queue_dir dir, const char *id, int flags);
int queue_sync(struct queue *q);
int queue_recover(struct queue *q);

/* ---- for backends ---- */

/* every function gets arguments the front end checked (directories, IDs,
   recipient index, state, DSN); errors go through queue_fail */
struct queue_ops {
    int (*create)(struct queue *q, const char *sender, const char *client,
                  const char *const *rcpts, size_t nrcpt, struct queue_file *qf);
    int (*write)(struct queue_file *qf, const void *data, size_t len);
    int (*commit)(struct queue_file *qf);
    void (*abort)(struct queue_file *qf);
    int (*attach)(struct queue *q, struct event_base *base, int nthreads, char *err,
                  size_t errlen);
    int (*commit_async)(struct queue_file *qf, queue_done_fn fn, void *ctx);
    size_t (*pending)(const struct queue *q);
    void (*drain)(struct queue *q);
    void (*detach)(struct queue *q);
    int (*load)(struct queue *q, enum queue_dir dir, const char *id, struct queue_msg *msg);
    int (*open_content)(struct queue *q, const struct queue_msg *msg);
    int (*stat)(struct queue *q, enum queue_dir dir, const char *id, time_t *retry_time);
    int (*walk)(struct queue *q, enum queue_dir dir, queue_walk_fn fn, void *ctx);
    int (*update)(struct queue *q, struct queue_msg *msg, size_t idx,
                  enum queue_rcpt_state state, const char *dsn, const char *reason);
    int (*settle)(struct queue *q, struct queue_msg *msg);
    int (*set_retry_time)(struct queue *q, enum queue_dir dir, const char *id, time_t when);
    int (*move)(struct queue *q, const char *id, enum queue_dir from, enum queue_dir to);
    int (*delete)(struct queue *q, enum queue_dir dir, const char *id, int flags);
    int (*sync)(struct queue *q);
    int (*recover)(struct queue *q);
    void (*close)(struct queue *q);
};

/* a backend's table: QUEUE_OPS(fs) names fs_create, fs_write, ... for every member,
   so a backend that lacks one does not compile */
#define QUEUE_OPS(p)                                                                       \
    {                                                                                      \
        .create = p##_create, .write = p##_write, .commit = p##_commit,                    \
        .abort = p##_abort, .attach = p##_attach, .commit_async = p##_commit_async,        \
        .pending = p##_pending, .drain = p##_drain, .detach = p##_detach,                  \
        .load = p##_load, .open_content = p##_open_content, .stat = p##_stat,              \
        .walk = p##_walk, .update = p##_update, .settle = p##_settle,                      \
        .set_retry_time = p##_set_retry_time, .move = p##_move, .delete = p##_delete,      \
        .sync = p##_sync, .recover = p##_recover, .close = p##_close,                      \
    }

int queue_fail(struct queue *q, int status, const char *fmt, ...) LOG_PRINTF(3, 4);
int queue_header_safe(const char *s);
int queue_dsn_valid(const char *dsn);

#endif
