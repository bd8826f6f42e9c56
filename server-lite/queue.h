/*
 * queue - the durable on-disk mail queue: one file per message (format: queue.c).
 *
 * incoming/ active/ deferred/ hold/ corrupt/ hold complete messages only;
 * files are written in tmp/. queue_create + queue_write + queue_commit
 * (fsync, rename into incoming/, fsync the directory): only after QUEUE_OK
 * may smtpd answer 250; queue_abort removes a partial file. With a
 * queue_async, queue_create may use an unnamed spare file (O_TMPFILE) that
 * the commit links into incoming/ instead of renaming it.
 * queue_commit_async does the same on the threads of a queue_async
 * (queue_async_new: results come back on the event base): it owns qf's file
 * from then on and calls fn(ctx, id, status, error) from the loop once that
 * file is durable in incoming/ or removed; queue_async_free drains.
 * Recipient state is updated in place: queue_mark_recipient() by ID (pwrite
 * + fsync), or queue_mark_loaded() on a message the caller holds loaded (no
 * re-read, no fsync) followed by queue_sync_loaded(), which fsyncs once for
 * all the delivered/bounced marks since the load (a pending mark changes only
 * the reason text and never needs it). The next retry time is the mtime.
 * queue_move decides itself whether a move is fsynced: a move among
 * incoming/, active/ and deferred/ (the qmgr's own steps) is not, since a file
 * keeps its recipient states in any directory and queue_recover() finds it in
 * any of them, so a rename lost in a crash repeats a step; a move into or out
 * of hold/ or corrupt/ fsyncs both directories. queue_delete fsyncs the
 * directory; queue_delete_unsynced does not: an unlink lost in a crash (until
 * the caller's queue_sync_dir) repeats a delivery, never loses one.
 * queue_open() refuses a queue directory or subdirectory that is a symbolic
 * link or not a directory; queue_open_owned() (as root, before the switch to
 * mail_owner) also makes what is missing, refuses a directory owned by
 * anyone but uid or root and gives each to uid:gid, reading nothing inside.
 * queue_recover() at startup, after that switch: it reads and removes files.
 * queue_list() appends the mailq listing to out;
 * queue_open_content() returns a read-only fd at the content (caller closes).
 * int functions return QUEUE_OK or a negative enum queue_status (QUEUE_NOSPACE on
 * ENOSPC/EDQUOT: 452 4.3.1), text in queue_error(q); IDs are checked before use;
 * queue_msg_free() frees a msg.
 */
#ifndef ETRNKIT_QUEUE_H
#define ETRNKIT_QUEUE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define QUEUE_ID_MAX 32      /* upper-case hex digits */
#define QUEUE_DSN_MAX 9      /* "5.123.456" */
#define QUEUE_REASON_MAX 256 /* a longer reason keeps its first 256 bytes */

enum queue_status {
    QUEUE_OK = 0,
    QUEUE_ERR = -1,      /* I/O or system error */
    QUEUE_NOSPACE = -2,  /* disk full or quota: 452 4.3.1 */
    QUEUE_NOTFOUND = -3, /* no such message in that directory */
    QUEUE_BADID = -4,    /* the ID is not a queue ID */
    QUEUE_CORRUPT = -5,  /* the file cannot be parsed */
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

struct queue {
    char *path;
    int dirfd[QUEUE_NDIRS];
    int tmpfd;
    unsigned long counter;
    char err[512];
    struct queue_async *async; /* set by queue_async_new: spare files for queue_create */
};

/* a message being written */
struct queue_file {
    struct queue *q;
    int fd;                 /* -1 when closed */
    char tmpname[64];
    char id[QUEUE_ID_MAX + 1];
    off_t size;             /* content bytes written so far */
};

struct queue_rcpt {
    char *address;
    enum queue_rcpt_state state;
    char dsn[QUEUE_DSN_MAX + 1];      /* "" when none */
    char reason[QUEUE_REASON_MAX + 1];
    off_t offset;                     /* of the record in the file */
};

struct queue_msg {
    char id[QUEUE_ID_MAX + 1];
    enum queue_dir dir;
    time_t arrival;
    time_t retry_time;       /* the file's mtime */
    char *sender;            /* "" for the null sender */
    char *client;            /* e.g. "pop[192.168.11.12]" */
    struct queue_rcpt *rcpts;
    size_t nrcpt;
    off_t data_offset;       /* where the content starts */
    off_t size;              /* content bytes */
    int unsynced;            /* queue_mark_loaded wrote a final state: queue_sync_loaded */
};

typedef int (*queue_walk_fn)(void *ctx, enum queue_dir dir, const char *id);

int queue_open(struct queue *q, const char *path, int create);
int queue_open_owned(struct queue *q, const char *path, uid_t uid, gid_t gid);
void queue_close(struct queue *q);
const char *queue_error(const struct queue *q);
const char *queue_dir_name(enum queue_dir dir);
int queue_id_valid(const char *id);

int queue_create(struct queue *q, const char *sender, const char *client,
                 const char *const *rcpts, size_t nrcpt, struct queue_file *qf);
int queue_write(struct queue_file *qf, const void *data, size_t len);
int queue_commit(struct queue_file *qf);
void queue_abort(struct queue_file *qf);

int queue_load(struct queue *q, enum queue_dir dir, const char *id, struct queue_msg *msg);
void queue_msg_free(struct queue_msg *msg);
int queue_open_content(struct queue *q, const struct queue_msg *msg);
int queue_move(struct queue *q, const char *id, enum queue_dir from, enum queue_dir to);
int queue_mark_loaded(struct queue *q, struct queue_msg *msg, size_t idx,
                      enum queue_rcpt_state state, const char *dsn, const char *reason);
int queue_sync_loaded(struct queue *q, struct queue_msg *msg);
int queue_mark_recipient(struct queue *q, enum queue_dir dir, const char *id, size_t idx,
                         enum queue_rcpt_state state, const char *dsn, const char *reason);
int queue_set_retry_time(struct queue *q, enum queue_dir dir, const char *id, time_t when);
int queue_delete(struct queue *q, enum queue_dir dir, const char *id);
int queue_delete_unsynced(struct queue *q, enum queue_dir dir, const char *id);
int queue_sync_dir(struct queue *q, enum queue_dir dir);
int queue_walk(struct queue *q, enum queue_dir dir, queue_walk_fn fn, void *ctx);
int queue_recover(struct queue *q);

struct buf;
int queue_list(struct queue *q, struct buf *out);

/* group commit; every queue_async function runs in the event loop's thread */
struct event_base;
struct queue_async;
/* status is QUEUE_OK or a negative enum queue_status; error is "" on success */
typedef void (*queue_done_fn)(void *ctx, const char *id, int status, const char *error);

struct queue_async *queue_async_new(struct queue *q, struct event_base *base, int nthreads,
                                    char *err, size_t errlen);
int queue_commit_async(struct queue_async *qa, struct queue_file *qf, queue_done_fn fn, void *ctx);
size_t queue_async_pending(const struct queue_async *qa);
void queue_async_drain(struct queue_async *qa);
void queue_async_free(struct queue_async *qa);

#endif
