/*
 * Queue file format (version 1). Text header, one field per line, then the
 * content exactly as smtpd stored it:
 *
 *   ETRNKIT-QUEUE 1\n
 *   size NNNNNNNNNNNNNNNNNNNN\n    content bytes, 20 digits, written at commit
 *   arrival SECONDS\n              arrival time, seconds since the epoch
 *   id QUEUEID\n                   must equal the file name
 *   sender ADDRESS\n               empty for the null sender <>
 *   client TEXT\n                  e.g. "pop[192.168.11.12]"
 *   rcpts N\n                      N >= 1 records follow
 *   R S DDDDDDDDD REASON... ADDRESS\n   one per recipient, see below
 *   data\n
 *   CONTENT (size bytes; the file ends right after it)
 *
 * A recipient record has fixed-width fields so that it can be updated in
 * place with one pwrite and fsync: "R", blank, state (P pending, D
 * delivered, B bounced), blank, the enhanced status code left-aligned in 9
 * bytes (blanks when none), blank, the last reason left-aligned in 256 bytes
 * (blanks pad it; bytes outside printable ASCII become '?'), blank, the
 * address.
 * Header values never hold CR, LF or NUL. A file whose size is not
 * data_offset + size, or whose header does not parse, is corrupt.
 * The next retry time is the file's mtime.
 */
#define LOG_SERVICE "qmgr" /* its log lines: syslog_name/qmgr[pid] */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>


#include "alloc.h"
#include "buf.h"
#include "fileio.h"
#include "handoff.h"
#include "log.h"
#include "printable.h"
#include "queue.h"

#define MAGIC "ETRNKIT-QUEUE 1\n"
#define SIZE_DIGITS 20
#define SIZE_FIELD_OFF (sizeof(MAGIC) - 1 + 5) /* after "size " */
#define RCPT_FIXED (2 + 1 + 1 + QUEUE_DSN_MAX + 1 + QUEUE_REASON_MAX + 1)
#define RCPT_MAX 1000000
#define UNNAMED "(unnamed)"   /* tmpname of a spare (O_TMPFILE) file: linked, not renamed */
#define SPARE_TARGET 32       /* spare files the commit threads keep ready */
#define RECYCLE_MAX 4096      /* files of removed messages kept in tmp/ for reuse */

static const char *const dir_names[QUEUE_NDIRS] = {
    "incoming", "active", "deferred", "hold", "corrupt",
};

/* qerr - record the last error text; returns status */
static int qerr(struct queue *q, int status, const char *fmt, ...) LOG_PRINTF(3, 4);
static int qerr(struct queue *q, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(q->err, sizeof(q->err), fmt, ap);
    va_end(ap);
    return status;
}

/* io_status - map errno to a queue status */
static int io_status(int err)
{
    if (err == ENOSPC || err == EDQUOT)
        return QUEUE_NOSPACE;
    if (err == ENOENT)
        return QUEUE_NOTFOUND;
    return QUEUE_ERR;
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

/* check_args - a message directory index and a valid queue ID */
static int check_args(struct queue *q, enum queue_dir dir, const char *id)
{
    if ((unsigned) dir >= QUEUE_NDIRS)
        return qerr(q, QUEUE_INVAL, "bad queue directory %d", (int) dir);
    if (!queue_id_valid(id))
        return qerr(q, QUEUE_BADID, "bad queue ID");
    return QUEUE_OK;
}

/*
 * Opening the tree. As root (queue_open_owned) nothing the unprivileged
 * mail_owner controls may steer what root does: every directory is opened
 * with O_NOFOLLOW relative to the descriptor of its parent, a symbolic link,
 * a non-directory or a directory owned by anyone but mail_owner or root is
 * refused, and the owner is changed through the descriptor that was checked
 * (fchown: no name is looked up twice). Nothing inside a directory is read.
 */
struct queue_owner {
    uid_t uid;
    gid_t gid;
};

/* refuse_entry - why parent/name could not be opened as a plain directory */
static int refuse_entry(struct queue *q, int parent, const char *name, const char *shown, int err)
{
    struct stat st;

    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode))
            return qerr(q, QUEUE_ERR, "%s is a symbolic link: refusing to follow it (a queue "
                        "directory must be a plain directory; remove the link)", shown);
        if (!S_ISDIR(st.st_mode))
            return qerr(q, QUEUE_ERR, "%s is not a directory: refusing it", shown);
    }
    return qerr(q, io_status(err), "open %s: %s", shown, strerror(err));
}

/* check_owner - fd (a directory) belongs to own->uid or root: hand it to own */
static int check_owner(struct queue *q, int fd, const char *shown, const struct queue_owner *own)
{
    struct stat st;

    if (own == NULL)
        return QUEUE_OK;
    if (fstat(fd, &st) != 0)
        return qerr(q, io_status(errno), "stat %s: %s", shown, strerror(errno));
    if (st.st_uid != own->uid && st.st_uid != 0)
        return qerr(q, QUEUE_ERR, "%s is owned by uid %ld, not by mail_owner (uid %ld) or root: "
                    "refusing it", shown, (long) st.st_uid, (long) own->uid);
    if ((st.st_uid != own->uid || st.st_gid != own->gid) && fchown(fd, own->uid, own->gid) != 0)
        return qerr(q, io_status(errno), "chown %s: %s", shown, strerror(errno));
    return QUEUE_OK;
}

/* open_subdir - mkdir (when creating), open and check one subdirectory; fd or error */
static int open_subdir(struct queue *q, int top, const char *name, int create,
                       const struct queue_owner *own)
{
    char shown[4096];
    int fd, rc;

    snprintf(shown, sizeof(shown), "%s/%s", q->path, name);
    if (create && mkdirat(top, name, 0700) != 0 && errno != EEXIST)
        return refuse_entry(q, top, name, shown, errno);
    fd = openat(top, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return refuse_entry(q, top, name, shown, errno);
    if ((rc = check_owner(q, fd, shown, own)) != QUEUE_OK) {
        close(fd);
        return rc;
    }
    return fd;
}

/* open_tree - open (with create, make) the tree; with own, check and chown it */
static int open_tree(struct queue *q, const char *path, int create, const struct queue_owner *own)
{
    static const char *const extra[] = { "flush", "public" };
    int top, rc = QUEUE_OK;

    memset(q, 0, sizeof(*q));
    for (int i = 0; i < QUEUE_NDIRS; i++)
        q->dirfd[i] = -1;
    q->tmpfd = -1;
    q->path = xstrdup(path);
    if (create && mkdir(path, 0700) != 0 && errno != EEXIST)
        return refuse_entry(q, AT_FDCWD, path, path, errno);
    top = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (top < 0)
        return refuse_entry(q, AT_FDCWD, path, path, errno);
    rc = check_owner(q, top, path, own);
    for (int i = 0; i < QUEUE_NDIRS && rc == QUEUE_OK; i++) {
        int fd = open_subdir(q, top, dir_names[i], create, own);

        if (fd < 0)
            rc = fd;
        else
            q->dirfd[i] = fd;
    }
    if (rc == QUEUE_OK) {
        int fd = open_subdir(q, top, "tmp", create, own);

        if (fd < 0)
            rc = fd;
        else
            q->tmpfd = fd;
    }
    for (size_t i = 0; i < 2 && rc == QUEUE_OK; i++) {
        int fd = open_subdir(q, top, extra[i], create, own);

        if (fd < 0)
            rc = fd;
        else if (close(fd) != 0)
            rc = qerr(q, QUEUE_ERR, "close %s/%s: %s", path, extra[i], strerror(errno));
    }
    if (create && rc == QUEUE_OK && fsync(top) != 0)
        rc = qerr(q, io_status(errno), "fsync %s: %s", path, strerror(errno));
    if (close(top) != 0 && rc == QUEUE_OK)
        rc = qerr(q, QUEUE_ERR, "close %s: %s", path, strerror(errno));
    return rc;
}

/* queue_open - open (and with create, make) the queue directory tree; links are refused */
int queue_open(struct queue *q, const char *path, int create)
{
    return open_tree(q, path, create, NULL);
}

/* queue_open_owned - as root: make, check and hand the tree to uid:gid, reading nothing in it */
int queue_open_owned(struct queue *q, const char *path, uid_t uid, gid_t gid)
{
    struct queue_owner own = { uid, gid };

    return open_tree(q, path, 1, &own);
}

/* queue_close - release the directory handles */
void queue_close(struct queue *q)
{
    for (int i = 0; i < QUEUE_NDIRS; i++)
        if (q->dirfd[i] >= 0)
            close(q->dirfd[i]);
    if (q->tmpfd >= 0)
        close(q->tmpfd);
    free(q->path);
    q->path = NULL;
    for (int i = 0; i < QUEUE_NDIRS; i++)
        q->dirfd[i] = -1;
    q->tmpfd = -1;
}

/* header_safe - no control characters (CR, LF, ...) in a header value */
static int header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char) *s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

/* dsn_valid - "" or class.subject.detail (RFC 3463) */
static int dsn_valid(const char *dsn)
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

/* fill_fixed - state, DSN and reason fields of a record (without "R " and address) */
static void fill_fixed(char *out, int state, const char *dsn, const char *reason)
{
    size_t n;

    memset(out, ' ', RCPT_FIXED - 2);
    out[0] = (char) state;
    memcpy(out + 2, dsn, strlen(dsn));
    n = strlen(reason);
    if (n > QUEUE_REASON_MAX)
        n = QUEUE_REASON_MAX;
    memcpy(out + 2 + QUEUE_DSN_MAX + 1, reason, n);
    printable_mem(out + 2 + QUEUE_DSN_MAX + 1, n, '?');
}

static int take_spare(struct queue_async *qa, int *fd, char *name, size_t namelen);

/* queue_create - start a message with its envelope: a spare file, or a new one in tmp/ */
int queue_create(struct queue *q, const char *sender, const char *client,
                 const char *const *rcpts, size_t nrcpt, struct queue_file *qf)
{
    struct buf b = BUF_INIT;
    struct timeval tv;
    struct stat st;
    char fixed[RCPT_FIXED];
    int rc;

    memset(qf, 0, sizeof(*qf));
    qf->q = q;
    qf->fd = -1;
    if (nrcpt == 0 || nrcpt > RCPT_MAX)
        return qerr(q, QUEUE_INVAL, "a message needs 1..%d recipients", RCPT_MAX);
    if (!header_safe(sender) || !header_safe(client))
        return qerr(q, QUEUE_INVAL, "control character in sender or client");
    for (size_t i = 0; i < nrcpt; i++)
        if (!header_safe(rcpts[i]) || *rcpts[i] == 0)
            return qerr(q, QUEUE_INVAL, "empty recipient or control character in recipient");
    take_spare(q->async, &qf->fd, qf->tmpname, sizeof(qf->tmpname));
    for (int tries = 0; qf->fd < 0; tries++) {
        snprintf(qf->tmpname, sizeof(qf->tmpname), "t%ld.%lu", (long) getpid(), q->counter++);
        qf->fd = openat(q->tmpfd, qf->tmpname, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (qf->fd < 0 && (errno != EEXIST || tries > 100))
            return qerr(q, io_status(errno), "create %s/tmp/%s: %s", q->path, qf->tmpname,
                        strerror(errno));
    }
    /* Postfix-style ID: microseconds and inode; unique while the file exists */
    if (fstat(qf->fd, &st) != 0) {
        rc = qerr(q, QUEUE_ERR, "fstat %s/tmp/%s: %s", q->path, qf->tmpname, strerror(errno));
        goto fail;
    }
    gettimeofday(&tv, NULL);
    snprintf(qf->id, sizeof(qf->id), "%05lX%lX", (unsigned long) tv.tv_usec & 0xFFFFF,
             (unsigned long) st.st_ino);
    buf_printf(&b, "%ssize %0*d\narrival %lld\nid %s\nsender %s\nclient %s\nrcpts %zu\n", MAGIC,
               SIZE_DIGITS, 0, (long long) tv.tv_sec, qf->id, sender, client, nrcpt);
    fill_fixed(fixed, QUEUE_RCPT_PENDING, "", "");
    for (size_t i = 0; i < nrcpt; i++) {
        buf_puts(&b, "R ");
        buf_append(&b, fixed, sizeof(fixed) - 2);
        buf_printf(&b, "%s\n", rcpts[i]);
    }
    buf_puts(&b, "data\n");
    if (fileio_write_all(qf->fd, b.data, b.len) != 0) {
        rc = qerr(q, io_status(errno), "write %s/tmp/%s: %s", q->path, qf->tmpname, strerror(errno));
        goto fail;
    }
    buf_free(&b);
    return QUEUE_OK;
fail:
    buf_free(&b);
    queue_abort(qf);
    return rc;
}

/* queue_write - append content */
int queue_write(struct queue_file *qf, const void *data, size_t len)
{
    if (qf->fd < 0)
        return qerr(qf->q, QUEUE_INVAL, "queue_write: no open file");
    if (fileio_write_all(qf->fd, data, len) != 0)
        return qerr(qf->q, io_status(errno), "write %s/tmp/%s: %s", qf->q->path, qf->tmpname,
                    strerror(errno));
    qf->size += (off_t) len;
    return QUEUE_OK;
}

/*
 * The commit steps below write their error text into err (not q->err) and
 * never log, so that the commit threads can run them: they only read q.
 */

/* remove_tmp - remove a file from tmp/ (an unnamed one has no name); a failure is appended to err */
static void remove_tmp(struct queue *q, const char *tmpname, char *err, size_t errlen)
{
    size_t n = strlen(err);

    if (strcmp(tmpname, UNNAMED) != 0 && unlinkat(q->tmpfd, tmpname, 0) != 0 && errno != ENOENT && n < errlen)
        snprintf(err + n, errlen - n, "; cannot remove %s/tmp/%s: %s", q->path, tmpname,
                 strerror(errno));
}

/* commit_file - size field, fsync, close (an unnamed file stays open for its link); on failure the file is removed */
static int commit_file(struct queue_file *qf, char *err, size_t errlen)
{
    struct queue *q = qf->q;
    char size[SIZE_DIGITS + 1];
    int rc, fd = qf->fd;

    snprintf(size, sizeof(size), "%0*lld", SIZE_DIGITS, (long long) qf->size);
    if (fileio_pwrite_all(fd, size, SIZE_DIGITS, (off_t) SIZE_FIELD_OFF) != 0 || fsync(fd) != 0) {
        rc = io_status(errno);
        snprintf(err, errlen, "write %s/tmp/%s: %s", q->path, qf->tmpname, strerror(errno));
        close(fd);
        qf->fd = -1;
        remove_tmp(q, qf->tmpname, err, errlen);
        return rc;
    }
    if (strcmp(qf->tmpname, UNNAMED) == 0)
        return QUEUE_OK;
    qf->fd = -1;
    if (close(fd) != 0) {
        rc = io_status(errno);
        snprintf(err, errlen, "close %s/tmp/%s: %s", q->path, qf->tmpname, strerror(errno));
        remove_tmp(q, qf->tmpname, err, errlen);
        return rc;
    }
    return QUEUE_OK;
}

/* link_unnamed - give an unnamed file its name in incoming/ and close it */
static int link_unnamed(struct queue_file *qf, char *err, size_t errlen)
{
    struct queue *q = qf->q;
    char proc[64];
    int rc = QUEUE_OK;

    /* linkat(fd, "", ..., AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH */
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", qf->fd);
    if (linkat(AT_FDCWD, proc, q->dirfd[QUEUE_INCOMING], qf->id, AT_SYMLINK_FOLLOW) != 0) {
        rc = io_status(errno);
        snprintf(err, errlen, "link %s/tmp/%s to incoming/%s: %s", q->path, qf->tmpname, qf->id,
                 strerror(errno));
    }
    close(qf->fd); /* an unnamed file that was not linked is gone with it */
    qf->fd = -1;
    return rc;
}

/* commit_rename - move a synced file into incoming/; on failure it is removed */
static int commit_rename(struct queue_file *qf, char *err, size_t errlen)
{
    struct queue *q = qf->q;
    int rc;

    if (strcmp(qf->tmpname, UNNAMED) == 0)
        return link_unnamed(qf, err, errlen);
    if (renameat(q->tmpfd, qf->tmpname, q->dirfd[QUEUE_INCOMING], qf->id) != 0) {
        rc = io_status(errno);
        snprintf(err, errlen, "rename %s/tmp/%s to incoming/%s: %s", q->path, qf->tmpname,
                 qf->id, strerror(errno));
        remove_tmp(q, qf->tmpname, err, errlen);
        return rc;
    }
    return QUEUE_OK;
}

/* commit_dirsync - fsync incoming/; the error goes to err */
static int commit_dirsync(struct queue *q, char *err, size_t errlen)
{
    if (fsync(q->dirfd[QUEUE_INCOMING]) != 0) {
        int rc = io_status(errno);

        snprintf(err, errlen, "fsync %s/incoming: %s", q->path, strerror(errno));
        return rc;
    }
    return QUEUE_OK;
}

/* commit_unrename - take a file back out of incoming/ after a failed directory fsync */
static void commit_unrename(struct queue_file *qf, char *err, size_t errlen)
{
    struct queue *q = qf->q;
    size_t n = strlen(err);

    /* not known to be durable: take it back so nobody delivers it after a 4xx */
    if (unlinkat(q->dirfd[QUEUE_INCOMING], qf->id, 0) != 0 && n < errlen)
        snprintf(err + n, errlen - n, "; cannot remove %s/incoming/%s after a failed fsync: %s",
                 q->path, qf->id, strerror(errno));
}

/* queue_commit - size field, fsync, rename into incoming/, fsync the directory */
int queue_commit(struct queue_file *qf)
{
    struct queue *q = qf->q;
    char err[sizeof(q->err)] = "";
    int rc;

    if (qf->fd < 0)
        return qerr(q, QUEUE_INVAL, "queue_commit: no open file");
    rc = commit_file(qf, err, sizeof(err));
    if (rc == QUEUE_OK)
        rc = commit_rename(qf, err, sizeof(err));
    if (rc == QUEUE_OK && (rc = commit_dirsync(q, err, sizeof(err))) != QUEUE_OK)
        commit_unrename(qf, err, sizeof(err));
    qf->tmpname[0] = 0;
    if (rc != QUEUE_OK)
        return qerr(q, rc, "%s", err);
    return QUEUE_OK;
}

/* queue_abort - close and remove a partial file */
void queue_abort(struct queue_file *qf)
{
    if (qf->fd >= 0) {
        close(qf->fd);
        qf->fd = -1;
    }
    if (qf->tmpname[0] && strcmp(qf->tmpname, UNNAMED) != 0
        && unlinkat(qf->q->tmpfd, qf->tmpname, 0) != 0 && errno != ENOENT)
        log_warn("cannot remove %s/tmp/%s: %s", qf->q->path, qf->tmpname, strerror(errno));
    qf->tmpname[0] = 0;
}

/*
 * Group commit. queue_commit_async hands a file to a pool of threads: each
 * takes a file, writes its size field and fsyncs it (several at once, so the
 * filesystem can join them in one journal commit); whichever thread finds no
 * other one busy with incoming/ then renames every synced file into it and
 * fsyncs the directory once for the whole batch. Finished jobs go back to
 * the event loop through a hand-off (common/handoff: a list and an eventfd),
 * which calls each job's done function.
 * The threads never log and never touch q->err or q->counter.
 */
struct queue_job {
    struct handoff_item link; /* first: the hand-off gives it back as a job */
    struct queue_job *next;
    struct queue_file qf;
    queue_done_fn fn;
    void *ctx;
    int status;
    char err[512];
};

/* a FIFO of jobs */
struct job_list {
    struct queue_job *head, *tail;
};

/* a file in tmp/ left by a removed message */
struct recycled {
    char name[24];
    enum queue_dir from;     /* the directory it left */
    int ready;               /* that directory was fsynced since: reusable */
};

struct queue_async {
    struct queue *q;
    struct handoff *back;    /* finished jobs, to the event loop */
    pthread_mutex_t mu;
    pthread_cond_t work;     /* submitted got a job, a refill is due, or stop */
    pthread_cond_t idle;     /* a job reached done */
    struct job_list submitted; /* not yet fsynced */
    struct job_list synced;  /* fsynced, waiting for the directory step */
    size_t inflight;         /* submitted, not yet handed back */
    int dir_busy;            /* a thread runs the directory step */
    int stop;
    pthread_t *threads;
    int nthreads;
    int spares[SPARE_TARGET]; /* unnamed files ready for queue_create */
    size_t nspares;
    int spares_usable;       /* -1 not yet tried, 0 no (no O_TMPFILE or no link), 1 yes */
    struct recycled *recycled; /* emptied files of removed messages, in tmp/ */
    size_t nrecycled;
    char (*busy)[QUEUE_ID_MAX + 1]; /* IDs submitted whose done function has not run yet
                                       (loop thread only): queue_async_pending */
    size_t nbusy, busycap;
    int refill_blocked;      /* the last refill failed: wait for the next take */
    int refilling;           /* a thread is making a spare */
};

/* job_push - append a job to a list */
static void job_push(struct job_list *l, struct queue_job *j)
{
    j->next = NULL;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
}

/* job_take - remove and return the whole list */
static struct queue_job *job_take(struct job_list *l)
{
    struct queue_job *j = l->head;

    l->head = l->tail = NULL;
    return j;
}

/* jobs_done - (mutex held) hand a chain of finished jobs back to the loop */
static void jobs_done(struct queue_async *qa, struct queue_job *j)
{
    int woke = 0;

    while (j) {
        struct queue_job *next = j->next;

        handoff_post(qa->back, &j->link);
        qa->inflight--;
        j = next;
        woke = 1;
    }
    if (woke)
        pthread_cond_broadcast(&qa->idle);
}

/* dir_step - rename a batch of synced files into incoming/, one directory fsync */
static void dir_step(struct queue_async *qa, struct queue_job *batch)
{
    char err[512] = "";
    int renamed = 0, rc;

    for (struct queue_job *j = batch; j; j = j->next) {
        j->status = commit_rename(&j->qf, j->err, sizeof(j->err));
        j->qf.tmpname[0] = 0;
        renamed |= j->status == QUEUE_OK;
    }
    if (!renamed || (rc = commit_dirsync(qa->q, err, sizeof(err))) == QUEUE_OK)
        return;
    for (struct queue_job *j = batch; j; j = j->next) {
        if (j->status != QUEUE_OK)
            continue;
        j->status = rc;
        snprintf(j->err, sizeof(j->err), "%s", err);
        commit_unrename(&j->qf, j->err, sizeof(j->err));
    }
}

/*
 * Spare files. Creating a file costs an inode allocation, which on some
 * filesystems (ext4 without a journal skips every inode freed in the last
 * minute) takes longer than the fsyncs. So the commit threads, when they
 * have no commit to do, make unnamed files (O_TMPFILE in tmp/) ahead of
 * need; queue_create takes one when there is one, and the commit gives it
 * its name in incoming/ with linkat. Such a file has no name until it is
 * complete and synced, and vanishes with its descriptor. Refills start at
 * the first take, so spares are made with the server's final uid.
 */

/* refill_due - (mutex held) a commit thread should make a spare */
static int refill_due(const struct queue_async *qa)
{
    return qa->spares_usable != 0 && !qa->refill_blocked && !qa->refilling && !qa->stop
           && qa->nspares < SPARE_TARGET;
}

/* spares_work - 1: unnamed files can be made and linked here (tried once) */
static int spares_work(struct queue *q)
{
    char proc[64], name[64];
    int fd, ok;

    if ((fd = openat(q->tmpfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)) < 0)
        return 0;
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    snprintf(name, sizeof(name), "probe.%ld", (long) getpid());
    ok = linkat(AT_FDCWD, proc, q->tmpfd, name, AT_SYMLINK_FOLLOW) == 0;
    if (ok)
        unlinkat(q->tmpfd, name, 0);
    close(fd);
    return ok;
}

/* refill_one - (mutex held, dropped meanwhile) make one spare */
static void refill_one(struct queue_async *qa)
{
    struct queue *q = qa->q;
    int fd = -1, usable = qa->spares_usable;

    qa->refilling = 1;
    pthread_mutex_unlock(&qa->mu);
    if (usable < 0)
        usable = spares_work(q);
    if (usable > 0)
        fd = openat(q->tmpfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    pthread_mutex_lock(&qa->mu);
    qa->refilling = 0;
    qa->spares_usable = usable;
    if (fd < 0)
        qa->refill_blocked = 1; /* e.g. disk full: queue_create makes its own file */
    else if (qa->nspares < SPARE_TARGET && !qa->stop)
        qa->spares[qa->nspares++] = fd;
    else
        close(fd);
}

/*
 * Recycled files. Removing a message with a queue_async frees no inode: the
 * file (a regular file with one link) is renamed from its directory into
 * tmp/ under a new name and emptied, and queue_create takes it before any
 * spare or new file (as PostgreSQL recycles WAL segments). queue_recover
 * empties tmp/ at startup. A file becomes reusable only once the directory
 * it left is fsynced (queue_delete does it at once, the qmgr's
 * queue_sync_dir within SYNC_DELAY_MS): until then a crash could bring its
 * old name back, pointing at the next message's content. Only the event
 * loop's thread touches the list. Queue IDs stay unique: one inode holds
 * one message at a time, and the ID adds the arrival's microseconds.
 */

/* recycle - (loop thread) 1: not recycled, remove it; QUEUE_OK: recycled; <0: error */
static int recycle(struct queue *q, enum queue_dir dir, const char *id)
{
    struct queue_async *qa = q->async;
    struct recycled *r;
    struct stat st;
    char name[sizeof(r->name)];
    int fd, ok;

    if (qa == NULL || qa->nrecycled >= RECYCLE_MAX)
        return 1;
    if (fstatat(q->dirfd[dir], id, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return qerr(q, QUEUE_NOTFOUND, "remove %s/%s: %s", dir_names[dir], id, strerror(errno));
        return 1;
    }
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
        return 1;
    snprintf(name, sizeof(name), "r%ld.%lu", (long) getpid(), q->counter++);
    if (renameat(q->dirfd[dir], id, q->tmpfd, name) != 0) {
        if (errno == ENOENT)
            return qerr(q, QUEUE_NOTFOUND, "remove %s/%s: %s", dir_names[dir], id, strerror(errno));
        return 1;
    }
    fd = openat(q->tmpfd, name, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1
         && ftruncate(fd, 0) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        unlinkat(q->tmpfd, name, 0);
        return QUEUE_OK;
    }
    if (qa->recycled == NULL)
        qa->recycled = xcalloc(RECYCLE_MAX, sizeof(*qa->recycled));
    r = &qa->recycled[qa->nrecycled++];
    memcpy(r->name, name, sizeof(name));
    r->from = dir;
    r->ready = 0;
    return QUEUE_OK;
}

/* recycled_ready - (loop thread) dir was fsynced: the files that left it may be reused */
static void recycled_ready(struct queue *q, enum queue_dir dir)
{
    struct queue_async *qa = q->async;

    for (size_t i = 0; qa && i < qa->nrecycled; i++)
        if (qa->recycled[i].from == dir)
            qa->recycled[i].ready = 1;
}

/* take_recycled - (loop thread) an emptied, reusable file for queue_create; 0: none */
static int take_recycled(struct queue_async *qa, int *fd, char *name, size_t namelen)
{
    for (size_t i = qa->nrecycled; i-- > 0;) {
        struct recycled r = qa->recycled[i];

        if (!r.ready)
            continue;
        qa->recycled[i] = qa->recycled[--qa->nrecycled];
        *fd = openat(qa->q->tmpfd, r.name, O_RDWR | O_TRUNC | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
        if (*fd >= 0) {
            snprintf(name, namelen, "%s", r.name);
            return 1;
        }
    }
    return 0;
}

/* busy_add - (loop thread) id has a commit in flight */
static void busy_add(struct queue_async *qa, const char *id)
{
    if (qa->nbusy == qa->busycap) {
        qa->busycap = qa->busycap ? 2 * qa->busycap : 16;
        qa->busy = xreallocarray(qa->busy, qa->busycap, sizeof(*qa->busy));
    }
    snprintf(qa->busy[qa->nbusy++], sizeof(qa->busy[0]), "%s", id);
}

/* busy_find - (loop thread) index of id among the commits in flight, or -1 */
static long busy_find(const struct queue_async *qa, const char *id)
{
    for (size_t i = 0; qa && i < qa->nbusy; i++)
        if (strcmp(qa->busy[i], id) == 0)
            return (long) i;
    return -1;
}

/* busy_del - (loop thread) id's commit is over */
static void busy_del(struct queue_async *qa, const char *id)
{
    long i = busy_find(qa, id);

    if (i >= 0)
        memcpy(qa->busy[i], qa->busy[--qa->nbusy], sizeof(qa->busy[0]));
}

/* take_spare - a file for queue_create (loop thread): recycled, or unnamed; 0: none */
static int take_spare(struct queue_async *qa, int *fd, char *name, size_t namelen)
{
    int got = 0;

    if (qa == NULL)
        return 0;
    if (take_recycled(qa, fd, name, namelen))
        return 1;
    pthread_mutex_lock(&qa->mu);
    if (qa->nspares > 0) {
        snprintf(name, namelen, "%s", UNNAMED);
        *fd = qa->spares[--qa->nspares];
        got = 1;
    }
    qa->refill_blocked = 0;
    if (refill_due(qa))
        pthread_cond_signal(&qa->work);
    pthread_mutex_unlock(&qa->mu);
    return got;
}

/* commit_thread - take jobs until told to stop; make spares when there is none */
static void *commit_thread(void *arg)
{
    struct queue_async *qa = arg;

    pthread_mutex_lock(&qa->mu);
    for (;;) {
        struct queue_job *j;

        while (qa->submitted.head == NULL && !qa->stop && !refill_due(qa))
            pthread_cond_wait(&qa->work, &qa->mu);
        if (qa->submitted.head == NULL && qa->stop)
            break;
        if (qa->submitted.head == NULL) {
            refill_one(qa);
            continue;
        }
        j = qa->submitted.head;
        qa->submitted.head = j->next;
        if (qa->submitted.head == NULL)
            qa->submitted.tail = NULL;
        pthread_mutex_unlock(&qa->mu);
        j->status = commit_file(&j->qf, j->err, sizeof(j->err));
        pthread_mutex_lock(&qa->mu);
        if (j->status != QUEUE_OK) {
            j->qf.tmpname[0] = 0;
            j->next = NULL;
            jobs_done(qa, j);
            continue;
        }
        job_push(&qa->synced, j);
        /* files synced while the step ran are picked up by the same thread */
        while (qa->synced.head && !qa->dir_busy) {
            struct queue_job *batch = job_take(&qa->synced);

            qa->dir_busy = 1;
            pthread_mutex_unlock(&qa->mu);
            dir_step(qa, batch);
            pthread_mutex_lock(&qa->mu);
            qa->dir_busy = 0;
            jobs_done(qa, batch);
        }
    }
    pthread_mutex_unlock(&qa->mu);
    return NULL;
}

/* job_back - (event loop thread) a finished job: its done function */
static void job_back(void *ctx, struct handoff_item *item)
{
    struct queue_async *qa = ctx;
    struct queue_job *j = (struct queue_job *) item;

    busy_del(qa, j->qf.id);
    j->fn(j->ctx, j->qf.id, j->status, j->status == QUEUE_OK ? "" : j->err);
    free(j);
}

/* queue_async_new - start nthreads commit threads; results come back on base */
struct queue_async *queue_async_new(struct queue *q, struct event_base *base, int nthreads,
                                    char *err, size_t errlen)
{
    struct queue_async *qa = xcalloc(1, sizeof(*qa));
    sigset_t all, old;
    int rc;

    qa->q = q;
    qa->spares_usable = -1;
    qa->refill_blocked = 1; /* until the first queue_create: see "Spare files" */
    if ((qa->back = handoff_new(base, job_back, qa, err, errlen)) == NULL) {
        free(qa);
        return NULL;
    }
    pthread_mutex_init(&qa->mu, NULL);
    pthread_cond_init(&qa->work, NULL);
    pthread_cond_init(&qa->idle, NULL);
    qa->threads = xcalloc((size_t) (nthreads > 0 ? nthreads : 1), sizeof(pthread_t));
    /* signals stay with the event loop's thread */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < (nthreads > 0 ? nthreads : 1); i++) {
        if ((rc = pthread_create(&qa->threads[i], NULL, commit_thread, qa)) != 0) {
            snprintf(err, errlen, "cannot start a queue commit thread: %s", strerror(rc));
            break;
        }
        qa->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (qa->nthreads < (nthreads > 0 ? nthreads : 1)) {
        queue_async_free(qa);
        return NULL;
    }
    q->async = qa;
    return qa;
}

/* queue_commit_async - hand qf over to the commit threads; fn reports the result */
int queue_commit_async(struct queue_async *qa, struct queue_file *qf, queue_done_fn fn, void *ctx)
{
    struct queue_job *j;

    if (qf->fd < 0)
        return qerr(qf->q, QUEUE_INVAL, "queue_commit_async: no open file");
    j = xcalloc(1, sizeof(*j));
    j->qf = *qf;
    j->fn = fn;
    j->ctx = ctx;
    /* the job owns the file now: queue_abort(qf) is harmless */
    qf->fd = -1;
    qf->tmpname[0] = 0;
    busy_add(qa, j->qf.id);
    pthread_mutex_lock(&qa->mu);
    qa->inflight++;
    job_push(&qa->submitted, j);
    pthread_cond_signal(&qa->work);
    pthread_mutex_unlock(&qa->mu);
    return QUEUE_OK;
}

/* queue_async_pending - commits whose done function has not been called yet */
size_t queue_async_pending(const struct queue_async *qa)
{
    return qa ? qa->nbusy : 0;
}

/* queue_async_drain - wait for every commit and call the done functions, repeatedly */
void queue_async_drain(struct queue_async *qa)
{
    if (qa == NULL)
        return;
    while (qa->nbusy > 0) {
        pthread_mutex_lock(&qa->mu);
        while (qa->inflight > 0)
            pthread_cond_wait(&qa->idle, &qa->mu);
        pthread_mutex_unlock(&qa->mu);
        handoff_run(qa->back);
    }
}

/* queue_async_free - drain, stop the threads, unregister from the event base */
void queue_async_free(struct queue_async *qa)
{
    if (qa == NULL)
        return;
    queue_async_drain(qa);
    pthread_mutex_lock(&qa->mu);
    qa->stop = 1;
    pthread_cond_broadcast(&qa->work);
    pthread_mutex_unlock(&qa->mu);
    for (int i = 0; i < qa->nthreads; i++)
        pthread_join(qa->threads[i], NULL);
    free(qa->threads);
    while (qa->nspares > 0)
        close(qa->spares[--qa->nspares]);
    while (qa->nrecycled > 0)
        unlinkat(qa->q->tmpfd, qa->recycled[--qa->nrecycled].name, 0);
    free(qa->recycled);
    free(qa->busy);
    if (qa->q->async == qa)
        qa->q->async = NULL;
    pthread_cond_destroy(&qa->work);
    pthread_cond_destroy(&qa->idle);
    pthread_mutex_destroy(&qa->mu);
    handoff_free(qa->back);
    free(qa);
}

/* field - "name value" line: the value, or NULL */
static const char *field(const char *line, const char *name)
{
    size_t n = strlen(name);

    if (strncmp(line, name, n) != 0 || line[n] != ' ')
        return NULL;
    return line + n + 1;
}

/* parse_num - all digits, no overflow */
static int parse_num(const char *s, long long *v)
{
    *v = 0;
    if (*s == 0)
        return -1;
    for (; *s; s++) {
        if (!isdigit((unsigned char) *s) || *v > (0x7fffffffffffffffLL - 9) / 10)
            return -1;
        *v = *v * 10 + (*s - '0');
    }
    return 0;
}

/* trim_copy - copy a fixed-width field without its trailing blanks */
static void trim_copy(char *out, const char *in, size_t width)
{
    while (width > 0 && in[width - 1] == ' ')
        width--;
    memcpy(out, in, width);
    out[width] = 0;
}

/* parse_file - read and check a queue file's header from fp */
static int parse_file(struct queue *q, FILE *fp, const char *id, struct queue_msg *msg)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long long v, nrcpt = 0, room;
    const char *val;
    int rc = QUEUE_CORRUPT;
    struct stat st;

#define NEXT() ((n = getline(&line, &cap, fp)) > 0 && line[n - 1] == '\n' ? (line[--n] = 0, 1) : 0)
#define BAD(...) do { qerr(q, QUEUE_CORRUPT, __VA_ARGS__); goto out; } while (0)
    if (fstat(fileno(fp), &st) != 0) {
        rc = qerr(q, QUEUE_ERR, "fstat: %s", strerror(errno));
        goto out;
    }
    if (!NEXT() || strcmp(line, "ETRNKIT-QUEUE 1") != 0)
        BAD("not a version 1 queue file");
    if (!NEXT() || (val = field(line, "size")) == NULL || strlen(val) != SIZE_DIGITS
        || parse_num(val, &v) != 0)
        BAD("bad size line");
    msg->size = (off_t) v;
    if (!NEXT() || (val = field(line, "arrival")) == NULL || parse_num(val, &v) != 0)
        BAD("bad arrival line");
    msg->arrival = (time_t) v;
    if (!NEXT() || (val = field(line, "id")) == NULL || strcmp(val, id) != 0)
        BAD("id line does not match the file name");
    if (!NEXT() || (val = field(line, "sender")) == NULL || !header_safe(val))
        BAD("bad sender line");
    msg->sender = xstrdup(val);
    if (!NEXT() || (val = field(line, "client")) == NULL || !header_safe(val))
        BAD("bad client line");
    msg->client = xstrdup(val);
    if (!NEXT() || (val = field(line, "rcpts")) == NULL || parse_num(val, &nrcpt) != 0
        || nrcpt < 1 || nrcpt > RCPT_MAX)
        BAD("bad rcpts line");
    /* a record takes at least RCPT_FIXED + 2 bytes: check before allocating for them */
    room = ((long long) st.st_size - (long long) ftello(fp)) / (long long) (RCPT_FIXED + 2);
    if (nrcpt > room)
        BAD("rcpts %lld, but the file has room for at most %lld recipient records", nrcpt,
            room > 0 ? room : 0);
    msg->rcpts = xcalloc((size_t) nrcpt, sizeof(*msg->rcpts));
    for (long long i = 0; i < nrcpt; i++) {
        struct queue_rcpt *r = &msg->rcpts[i];
        off_t at = ftello(fp);

        if (!NEXT())
            BAD("recipient %lld: truncated", i + 1);
        if ((size_t) n <= RCPT_FIXED || line[0] != 'R' || line[1] != ' '
            || line[3] != ' ' || line[4 + QUEUE_DSN_MAX] != ' ' || line[RCPT_FIXED - 1] != ' ')
            BAD("recipient %lld: bad record", i + 1);
        if (line[2] != QUEUE_RCPT_PENDING && line[2] != QUEUE_RCPT_DELIVERED
            && line[2] != QUEUE_RCPT_BOUNCED)
            BAD("recipient %lld: bad state '%c'", i + 1, line[2]);
        r->state = line[2];
        r->offset = at;
        trim_copy(r->dsn, line + 4, QUEUE_DSN_MAX);
        trim_copy(r->reason, line + 5 + QUEUE_DSN_MAX, QUEUE_REASON_MAX);
        r->address = xstrdup(line + RCPT_FIXED);
        msg->nrcpt++;
        /* queue_create never writes them; RCPT TO and a bounce's header would carry them.
           (A reason is only shown, masked; older versions wrote raw bytes there.) */
        if (r->address[0] == 0 || !header_safe(r->address))
            BAD("recipient %lld: empty address or a control character in it", i + 1);
        if (!dsn_valid(r->dsn))
            BAD("recipient %lld: bad status code", i + 1);
    }
    if (!NEXT() || strcmp(line, "data") != 0)
        BAD("missing data line");
    msg->data_offset = ftello(fp);
    if (st.st_size != msg->data_offset + msg->size)
        BAD("file is %lld bytes, header says %lld", (long long) st.st_size,
            (long long) (msg->data_offset + msg->size));
    msg->retry_time = st.st_mtime;
    rc = QUEUE_OK;
out:
#undef NEXT
#undef BAD
    free(line);
    return rc;
}

/* queue_load - read a message's envelope */
int queue_load(struct queue *q, enum queue_dir dir, const char *id, struct queue_msg *msg)
{
    int rc, fd;
    FILE *fp;

    memset(msg, 0, sizeof(*msg));
    if ((rc = check_args(q, dir, id)) != QUEUE_OK)
        return rc;
    fd = openat(q->dirfd[dir], id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return qerr(q, io_status(errno), "%s/%s: %s", dir_names[dir], id, strerror(errno));
    if ((fp = fdopen(fd, "r")) == NULL) {
        close(fd);
        return qerr(q, QUEUE_ERR, "fdopen: %s", strerror(errno));
    }
    snprintf(msg->id, sizeof(msg->id), "%s", id);
    msg->dir = dir;
    rc = parse_file(q, fp, id, msg);
    fclose(fp);
    if (rc != QUEUE_OK)
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
    int rc, fd;

    if ((rc = check_args(q, msg->dir, msg->id)) != QUEUE_OK)
        return rc;
    fd = openat(q->dirfd[msg->dir], msg->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return qerr(q, io_status(errno), "%s/%s: %s", dir_names[msg->dir], msg->id, strerror(errno));
    if (lseek(fd, msg->data_offset, SEEK_SET) != msg->data_offset) {
        close(fd);
        return qerr(q, QUEUE_ERR, "%s/%s: seek: %s", dir_names[msg->dir], msg->id, strerror(errno));
    }
    return fd;
}

/* sync_dir - fsync one queue directory */
static int sync_dir(struct queue *q, int fd, const char *name)
{
    if (fsync(fd) != 0)
        return qerr(q, io_status(errno), "fsync %s/%s: %s", q->path, name, strerror(errno));
    return QUEUE_OK;
}

/* move_durable - whether a move between from and to is fsynced. The qmgr's own
   steps among incoming/, active/ and deferred/ are not: a file keeps its recipient
   states in any directory and queue_recover() finds it in any of them, so a rename
   lost in a crash repeats a step. A move into or out of hold/ or corrupt/ (an
   operator's action, a verdict on the file) is made durable. */
static int move_durable(enum queue_dir from, enum queue_dir to)
{
    return from == QUEUE_HOLD || from == QUEUE_CORRUPT_DIR || to == QUEUE_HOLD
           || to == QUEUE_CORRUPT_DIR;
}

/* queue_move - rename a message between directories; fsynced as move_durable() says */
int queue_move(struct queue *q, const char *id, enum queue_dir from, enum queue_dir to)
{
    int rc;

    if ((rc = check_args(q, from, id)) != QUEUE_OK || (rc = check_args(q, to, id)) != QUEUE_OK)
        return rc;
    if (renameat(q->dirfd[from], id, q->dirfd[to], id) != 0)
        return qerr(q, io_status(errno), "rename %s/%s to %s/%s: %s", dir_names[from], id,
                    dir_names[to], id, strerror(errno));
    if (!move_durable(from, to))
        return QUEUE_OK;
    if ((rc = sync_dir(q, q->dirfd[to], dir_names[to])) != QUEUE_OK)
        return rc;
    return sync_dir(q, q->dirfd[from], dir_names[from]);
}

/* queue_sync_dir - fsync one message directory (after unsynced moves or deletes) */
int queue_sync_dir(struct queue *q, enum queue_dir dir)
{
    int rc;

    if ((int) dir < 0 || dir >= QUEUE_NDIRS)
        return qerr(q, QUEUE_INVAL, "bad queue directory %d", (int) dir);
    if ((rc = sync_dir(q, q->dirfd[dir], dir_names[dir])) == QUEUE_OK)
        recycled_ready(q, dir);
    return rc;
}

/* queue_mark_loaded - set one recipient of a loaded message in place, durably, and in msg */
int queue_mark_loaded(struct queue *q, struct queue_msg *msg, size_t idx,
                      enum queue_rcpt_state state, const char *dsn, const char *reason)
{
    char fixed[RCPT_FIXED];
    struct queue_rcpt *r;
    int rc, fd;

    if (state != QUEUE_RCPT_PENDING && state != QUEUE_RCPT_DELIVERED && state != QUEUE_RCPT_BOUNCED)
        return qerr(q, QUEUE_INVAL, "bad recipient state %d", (int) state);
    if (dsn == NULL)
        dsn = "";
    if (reason == NULL)
        reason = "";
    if (!dsn_valid(dsn))
        return qerr(q, QUEUE_INVAL, "bad status code \"%s\"", dsn);
    if (idx >= msg->nrcpt)
        return qerr(q, QUEUE_INVAL, "%s: no recipient %zu", msg->id, idx);
    r = &msg->rcpts[idx];
    fill_fixed(fixed, state, dsn, reason);
    fd = openat(q->dirfd[msg->dir], msg->id, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return qerr(q, io_status(errno), "%s/%s: %s", dir_names[msg->dir], msg->id,
                    strerror(errno));
    if (fileio_pwrite_all(fd, fixed, sizeof(fixed) - 2, r->offset + 2) != 0) {
        rc = qerr(q, io_status(errno), "%s/%s: update: %s", dir_names[msg->dir], msg->id,
                  strerror(errno));
        close(fd);
        return rc;
    }
    if (close(fd) != 0)
        return qerr(q, io_status(errno), "%s/%s: close: %s", dir_names[msg->dir], msg->id,
                    strerror(errno));
    if (state != QUEUE_RCPT_PENDING)
        msg->unsynced = 1;
    r->state = (int) state;
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    return QUEUE_OK;
}

/* queue_sync_loaded - fsync the recipient states queue_mark_loaded wrote */
int queue_sync_loaded(struct queue *q, struct queue_msg *msg)
{
    int fd, rc = QUEUE_OK;

    if (!msg->unsynced)
        return QUEUE_OK;
    fd = openat(q->dirfd[msg->dir], msg->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return qerr(q, io_status(errno), "%s/%s: %s", dir_names[msg->dir], msg->id,
                    strerror(errno));
    if (fsync(fd) != 0)
        rc = qerr(q, io_status(errno), "%s/%s: fsync: %s", dir_names[msg->dir], msg->id,
                  strerror(errno));
    close(fd);
    if (rc == QUEUE_OK)
        msg->unsynced = 0;
    return rc;
}

/* queue_mark_recipient - load message id, then queue_mark_loaded() */
int queue_mark_recipient(struct queue *q, enum queue_dir dir, const char *id, size_t idx,
                         enum queue_rcpt_state state, const char *dsn, const char *reason)
{
    struct queue_msg msg;
    int rc;

    if ((rc = queue_load(q, dir, id, &msg)) != QUEUE_OK)
        return rc;
    if ((rc = queue_mark_loaded(q, &msg, idx, state, dsn, reason)) == QUEUE_OK)
        rc = queue_sync_loaded(q, &msg);
    queue_msg_free(&msg);
    return rc;
}

/* queue_set_retry_time - store the next retry time as the file's mtime */
int queue_set_retry_time(struct queue *q, enum queue_dir dir, const char *id, time_t when)
{
    struct timespec ts[2];
    int rc;

    if ((rc = check_args(q, dir, id)) != QUEUE_OK)
        return rc;
    ts[0].tv_sec = ts[1].tv_sec = when;
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    if (utimensat(q->dirfd[dir], id, ts, AT_SYMLINK_NOFOLLOW) != 0)
        return qerr(q, io_status(errno), "%s/%s: utimensat: %s", dir_names[dir], id, strerror(errno));
    return QUEUE_OK;
}

static int recycle(struct queue *q, enum queue_dir dir, const char *id);

/* queue_delete_unsynced - remove a message; no fsync of its directory */
int queue_delete_unsynced(struct queue *q, enum queue_dir dir, const char *id)
{
    int rc;

    if ((rc = check_args(q, dir, id)) != QUEUE_OK)
        return rc;
    if ((rc = recycle(q, dir, id)) != 1)
        return rc;
    if (unlinkat(q->dirfd[dir], id, 0) != 0)
        return qerr(q, io_status(errno), "remove %s/%s: %s", dir_names[dir], id, strerror(errno));
    return QUEUE_OK;
}

/* queue_delete - remove a message, durably */
int queue_delete(struct queue *q, enum queue_dir dir, const char *id)
{
    int rc;

    if ((rc = queue_delete_unsynced(q, dir, id)) != QUEUE_OK)
        return rc;
    return queue_sync_dir(q, dir);
}

/* open_dir_stream - a DIR for one queue directory (its own descriptor) */
static DIR *open_dir_stream(struct queue *q, int dirfd, const char *name)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d;

    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        qerr(q, io_status(errno), "open %s/%s: %s", q->path, name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    return d;
}

/* queue_walk - call fn for every queue ID in dir; fn returns non-zero to stop */
int queue_walk(struct queue *q, enum queue_dir dir, queue_walk_fn fn, void *ctx)
{
    struct dirent *de;
    DIR *d;

    if ((unsigned) dir >= QUEUE_NDIRS)
        return qerr(q, QUEUE_INVAL, "bad queue directory %d", (int) dir);
    if ((d = open_dir_stream(q, q->dirfd[dir], dir_names[dir])) == NULL)
        return QUEUE_ERR;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (!queue_id_valid(de->d_name))
            continue;
        /* renamed into incoming/ but not yet durable: its committer reports it */
        if (dir == QUEUE_INCOMING && busy_find(q->async, de->d_name) >= 0)
            continue;
        if (fn(ctx, dir, de->d_name) != 0)
            break;
        errno = 0;
    }
    if (de == NULL && errno != 0) {
        int err = errno;

        closedir(d);
        return qerr(q, io_status(err), "read %s/%s: %s", q->path, dir_names[dir], strerror(err));
    }
    closedir(d);
    return QUEUE_OK;
}

/* to_corrupt - move a file that cannot be used to corrupt/, with a warning */
static void to_corrupt(struct queue *q, enum queue_dir dir, const char *name, const char *why)
{
    if (renameat(q->dirfd[dir], name, q->dirfd[QUEUE_CORRUPT_DIR], name) != 0) {
        log_warn("%s/%s/%s: %s; cannot move it to corrupt/: %s", q->path, dir_names[dir], name,
                 why, strerror(errno));
        return;
    }
    log_warn("%s/%s/%s: %s; moved to corrupt/", q->path, dir_names[dir], name, why);
}

/* recover_dir - check every file of dir; active/ files go back to incoming/ */
static int recover_dir(struct queue *q, enum queue_dir dir, int *moved)
{
    struct dirent *de;
    DIR *d;
    int rc = QUEUE_OK;

    if ((d = open_dir_stream(q, q->dirfd[dir], dir_names[dir])) == NULL)
        return QUEUE_ERR;
    while ((de = readdir(d)) != NULL) {
        struct queue_msg msg;
        struct stat st;
        const char *name = de->d_name;

        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (fstatat(q->dirfd[dir], name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (!S_ISREG(st.st_mode)) {
            log_warn("%s/%s/%s: not a regular file; left alone", q->path, dir_names[dir], name);
            continue;
        }
        if (!queue_id_valid(name)) {
            to_corrupt(q, dir, name, "file name is not a queue ID");
            *moved = 1;
            continue;
        }
        int lrc = queue_load(q, dir, name, &msg);
        if (lrc == QUEUE_CORRUPT) {
            to_corrupt(q, dir, name, q->err);
            *moved = 1;
            continue;
        }
        if (lrc != QUEUE_OK) {
            rc = lrc;
            continue;
        }
        queue_msg_free(&msg);
        if (dir == QUEUE_ACTIVE) {
            if (renameat(q->dirfd[QUEUE_ACTIVE], name, q->dirfd[QUEUE_INCOMING], name) != 0)
                rc = qerr(q, io_status(errno), "rename active/%s to incoming/: %s", name,
                          strerror(errno));
            else
                *moved = 1;
        }
    }
    closedir(d);
    return rc;
}

/* queue_recover - startup: empty tmp/, active/ back to incoming/, bad files to corrupt/ */
int queue_recover(struct queue *q)
{
    static const enum queue_dir check[] = { QUEUE_ACTIVE, QUEUE_INCOMING, QUEUE_DEFERRED, QUEUE_HOLD };
    struct dirent *de;
    DIR *d;
    int rc = QUEUE_OK, moved = 0;

    if ((d = open_dir_stream(q, q->tmpfd, "tmp")) == NULL)
        return QUEUE_ERR;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(q->tmpfd, de->d_name, 0) != 0)
            rc = qerr(q, io_status(errno), "remove tmp/%s: %s", de->d_name, strerror(errno));
        else
            log_info("removed unfinished %s/tmp/%s", q->path, de->d_name);
    }
    closedir(d);
    for (size_t i = 0; i < sizeof(check) / sizeof(check[0]); i++) {
        int r = recover_dir(q, check[i], &moved);

        if (r != QUEUE_OK && rc == QUEUE_OK)
            rc = r;
    }
    if (moved || rc == QUEUE_OK) {
        for (int i = 0; i < QUEUE_NDIRS; i++) {
            int r = sync_dir(q, q->dirfd[i], dir_names[i]);

            if (r != QUEUE_OK && rc == QUEUE_OK)
                rc = r;
        }
        int r = sync_dir(q, q->tmpfd, "tmp");
        if (r != QUEUE_OK && rc == QUEUE_OK)
            rc = r;
    }
    return rc;
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
