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
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "buf.h"
#include "fileio.h"
#include "handoff.h"
#include "log.h"
#include "workq.h"
#include "printable.h"
#include "queue_fs.h"

#define MAGIC "ETRNKIT-QUEUE 1\n"
#define SIZE_DIGITS 20
#define SIZE_FIELD_OFF (sizeof(MAGIC) - 1 + 5) /* after "size " */
#define RCPT_FIXED (2 + 1 + 1 + QUEUE_DSN_MAX + 1 + QUEUE_REASON_MAX + 1)
#define UNNAMED "(unnamed)"   /* tmpname of a spare (O_TMPFILE) file: linked, not renamed */
#define SPARE_TARGET 32       /* spare files the commit threads keep ready */
#define RECYCLE_MAX 4096      /* files of removed messages kept in tmp/ for reuse */
#define RECYCLED_PREFIX "r"   /* tmp/ names of recycled files; new files are "t...", spares UNNAMED */
#define SYNC_DELAY_MS 10      /* QUEUE_LATER deletes wait this long for their fsync */

/* the backend's state: q->be */
struct queue_fs {
    struct queue *front;     /* for its error text */
    char *path;
    int dirfd[QUEUE_NDIRS];
    int tmpfd;
    unsigned long counter;
    struct queue_async *async; /* queue_attach: commit threads, spare and recycled files */
    struct event *sync_ev;   /* fsync the directories with QUEUE_LATER deletes */
    unsigned later;          /* those directories, one bit each */
};

static const char *const dir_names[QUEUE_NDIRS] = {
    "incoming", "active", "deferred", "hold", "corrupt",
};

#define qerr(q, ...) queue_fail((q)->front, __VA_ARGS__)

/* io_status - map errno to a queue status */
static int io_status(int err)
{
    if (err == ENOSPC || err == EDQUOT)
        return QUEUE_NOSPACE;
    if (err == ENOENT)
        return QUEUE_NOTFOUND;
    return QUEUE_ERR;
}

/*
 * Opening the tree. As root (queue_fs_open_owned) nothing the unprivileged
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
static int refuse_entry(struct queue_fs *q, int parent, const char *name, const char *shown, int err)
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
static int check_owner(struct queue_fs *q, int fd, const char *shown, const struct queue_owner *own)
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
static int open_subdir(struct queue_fs *q, int top, const char *name, int create,
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

static const struct queue_ops fs_ops;

/* open_tree - open (with create, make) the tree; with own, check and chown it */
static int open_tree(struct queue *fq, const char *path, int create, const struct queue_owner *own)
{
    static const char *const extra[] = { "flush", "public" };
    struct queue_fs *q = xcalloc(1, sizeof(*q));
    int top, rc = QUEUE_OK;

    memset(fq, 0, sizeof(*fq));
    fq->ops = &fs_ops;
    fq->be = q;
    q->front = fq;
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

/* queue_fs_open - open (and with create, make) the queue directory tree; links are refused */
int queue_fs_open(struct queue *q, const char *path, int create)
{
    return open_tree(q, path, create, NULL);
}

/* queue_fs_open_owned - as root: make, check and hand the tree to uid:gid, reading nothing in it */
int queue_fs_open_owned(struct queue *q, const char *path, uid_t uid, gid_t gid)
{
    struct queue_owner own = { uid, gid };

    return open_tree(q, path, 1, &own);
}

static void fs_detach(struct queue *fq);

/* fs_close - detach, release the directory handles */
static void fs_close(struct queue *fq)
{
    struct queue_fs *q = fq->be;

    fs_detach(fq);
    for (int i = 0; i < QUEUE_NDIRS; i++)
        if (q->dirfd[i] >= 0)
            close(q->dirfd[i]);
    if (q->tmpfd >= 0)
        close(q->tmpfd);
    free(q->path);
    free(q);
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

static void fs_abort(struct queue_file *qf);

/* fs_create - start a message with its envelope: a spare file, or a new one in tmp/ */
static int fs_create(struct queue *fq, const char *sender, const char *client,
                     const char *const *rcpts, size_t nrcpt, struct queue_file *qf)
{
    struct queue_fs *q = fq->be;
    struct buf b = BUF_INIT;
    struct timeval tv;
    struct stat st;
    char fixed[RCPT_FIXED];
    int rc;

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
    fs_abort(qf);
    return rc;
}

/* fs_write - append content */
static int fs_write(struct queue_file *qf, const void *data, size_t len)
{
    struct queue_fs *q = qf->q->be;

    if (qf->fd < 0)
        return qerr(q, QUEUE_INVAL, "queue_write: no open file");
    if (fileio_write_all(qf->fd, data, len) != 0)
        return qerr(q, io_status(errno), "write %s/tmp/%s: %s", q->path, qf->tmpname,
                    strerror(errno));
    qf->size += (off_t) len;
    return QUEUE_OK;
}

/*
 * The commit steps below write their error text into err (not q->err) and
 * never log, so that the commit threads can run them: they only read q.
 */

/* remove_tmp - remove a file from tmp/ (an unnamed one has no name); a failure is appended to err */
static void remove_tmp(struct queue_fs *q, const char *tmpname, char *err, size_t errlen)
{
    size_t n = strlen(err);

    if (strcmp(tmpname, UNNAMED) != 0 && unlinkat(q->tmpfd, tmpname, 0) != 0 && errno != ENOENT && n < errlen)
        snprintf(err + n, errlen - n, "; cannot remove %s/tmp/%s: %s", q->path, tmpname,
                 strerror(errno));
}

/* recycled_name - whether a tmp/ name is a recycled file's (see recycle()) */
static int recycled_name(const char *name)
{
    return name[0] == RECYCLED_PREFIX[0];
}

/* commit_file - size field, fsync, close (an unnamed file stays open for its link); on failure the file is removed */
static int commit_file(struct queue_file *qf, char *err, size_t errlen)
{
    struct queue_fs *q = qf->q->be;
    char size[SIZE_DIGITS + 1];
    const char *step;
    int rc, fd = qf->fd;
    off_t end;

    snprintf(size, sizeof(size), "%0*lld", SIZE_DIGITS, (long long) qf->size);
    /* a recycled file held a removed message: cut what is left of it after ours */
    step = "truncate";
    if (recycled_name(qf->tmpname)
        && ((end = lseek(fd, 0, SEEK_CUR)) < 0 || ftruncate(fd, end) != 0))
        goto fail;
    step = "write";
    if (fileio_pwrite_all(fd, size, SIZE_DIGITS, (off_t) SIZE_FIELD_OFF) != 0 || fsync(fd) != 0)
        goto fail;
    if (strcmp(qf->tmpname, UNNAMED) == 0)
        return QUEUE_OK;
    qf->fd = -1;
    step = "close";
    rc = close(fd);
    fd = -1;
    if (rc != 0)
        goto fail;
    return QUEUE_OK;
fail:
    rc = io_status(errno);
    snprintf(err, errlen, "%s %s/tmp/%s: %s", step, q->path, qf->tmpname, strerror(errno));
    if (fd >= 0)
        close(fd);
    qf->fd = -1;
    remove_tmp(q, qf->tmpname, err, errlen);
    return rc;
}

/* link_unnamed - give an unnamed file its name in incoming/ and close it */
static int link_unnamed(struct queue_file *qf, char *err, size_t errlen)
{
    struct queue_fs *q = qf->q->be;
    char proc[64];
    int rc = QUEUE_OK;

    /* linkat(fd, "", ..., AT_EMPTY_PATH) would need CAP_DAC_READ_SEARCH */
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", qf->fd);
    if (linkat(AT_FDCWD, proc, q->dirfd[QUEUE_INCOMING], qf->id, AT_SYMLINK_FOLLOW) != 0) {
        rc = io_status(errno);
        snprintf(err, errlen, "link %s/tmp/%s to incoming/%s: %s", q->path, qf->tmpname, qf->id,
                 strerror(errno));
    }
    /* an unnamed file that was not linked is gone with it */
    if (close(qf->fd) != 0 && rc == QUEUE_OK) {
        rc = io_status(errno);
        snprintf(err, errlen, "close incoming/%s: %s", qf->id, strerror(errno));
    }
    qf->fd = -1;
    return rc;
}

/* commit_rename - move a synced file into incoming/; on failure it is removed */
static int commit_rename(struct queue_file *qf, char *err, size_t errlen)
{
    struct queue_fs *q = qf->q->be;
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
static int commit_dirsync(struct queue_fs *q, char *err, size_t errlen)
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
    struct queue_fs *q = qf->q->be;
    size_t n = strlen(err);

    /* not known to be durable: take it back so nobody delivers it after a 4xx */
    if (unlinkat(q->dirfd[QUEUE_INCOMING], qf->id, 0) != 0 && n < errlen)
        snprintf(err + n, errlen - n, "; cannot remove %s/incoming/%s after a failed fsync: %s",
                 q->path, qf->id, strerror(errno));
}

/* fs_commit - size field, fsync, rename into incoming/, fsync the directory */
static int fs_commit(struct queue_file *qf)
{
    struct queue_fs *q = qf->q->be;
    char err[sizeof(qf->q->err)] = "";
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

/* fs_abort - close and remove a partial file */
static void fs_abort(struct queue_file *qf)
{
    struct queue_fs *q = qf->q->be;

    if (qf->fd >= 0) {
        close(qf->fd);
        qf->fd = -1;
    }
    if (qf->tmpname[0] && strcmp(qf->tmpname, UNNAMED) != 0
        && unlinkat(q->tmpfd, qf->tmpname, 0) != 0 && errno != ENOENT)
        log_warn("cannot remove %s/tmp/%s: %s", q->path, qf->tmpname, strerror(errno));
    qf->tmpname[0] = 0;
}

/*
 * Group commit. queue_commit_async hands a file to the threads of a
 * common/workq: each job writes its file's size field and fsyncs it (several
 * at once, so the filesystem can join them in one journal commit); whichever
 * job finds no other one busy with incoming/ then renames every synced file
 * into it and fsyncs the directory once for the whole batch, repeating while
 * files were synced meanwhile (a job that finds the step busy leaves its file
 * to that one and ends). Renamed files go back to the event loop through a
 * hand-off (common/handoff: a list and an eventfd), which calls each one's
 * done function. The threads never log and never touch q->err or q->counter.
 */
struct queue_job {
    struct handoff_item link; /* first: the hand-off gives it back as a job */
    STAILQ_ENTRY(queue_job) next;
    struct queue_async *qa;
    struct queue_file qf;
    queue_done_fn fn;
    void *ctx;
    int status;
    char err[512];
};

/* a FIFO of jobs */
STAILQ_HEAD(job_list, queue_job);

/* a file in tmp/ left by a removed message */
struct recycled {
    char name[24];
    enum queue_dir from;     /* the directory it left */
    int ready;               /* that directory was fsynced since: reusable */
};

struct queue_async {
    struct queue_fs *q;
    struct workq *wq;        /* the threads: commits and spare refills */
    struct handoff *back;    /* committed files, to the event loop */
    pthread_mutex_t mu;      /* synced, dir_busy and the spares */
    struct job_list synced;  /* fsynced, waiting for the directory step */
    int dir_busy;            /* a thread runs the directory step */
    int spares[SPARE_TARGET]; /* unnamed files ready for queue_create */
    size_t nspares;
    int spares_usable;       /* -1 not yet tried, 0 no (no O_TMPFILE or no link), 1 yes */
    struct recycled *recycled; /* emptied files of removed messages, in tmp/ */
    size_t nrecycled;
    char (*busy)[QUEUE_ID_MAX + 1]; /* IDs submitted whose done function has not run yet
                                       (loop thread only): queue_pending */
    size_t nbusy, busycap;
    int refill_blocked;      /* the last refill failed: wait for the next take */
    int refilling;           /* a refill job is queued or running */
};

/* job_done - (mutex held) hand a finished job back to the loop */
static void job_done(struct queue_async *qa, struct queue_job *j)
{
    handoff_post(qa->back, &j->link);
}

/* dir_step - rename a batch of synced files into incoming/, one directory fsync */
static void dir_step(struct queue_async *qa, struct job_list *batch)
{
    char err[512] = "";
    int renamed = 0, rc;
    struct queue_job *j;

    STAILQ_FOREACH(j, batch, next) {
        j->status = commit_rename(&j->qf, j->err, sizeof(j->err));
        j->qf.tmpname[0] = 0;
        renamed |= j->status == QUEUE_OK;
    }
    if (!renamed || (rc = commit_dirsync(qa->q, err, sizeof(err))) == QUEUE_OK)
        return;
    STAILQ_FOREACH(j, batch, next) {
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
 * minute) takes longer than the fsyncs. So a refill job on the commit
 * threads makes unnamed files (O_TMPFILE in tmp/) ahead of need; queue_create takes one when there is one, and the commit gives it
 * its name in incoming/ with linkat. Such a file has no name until it is
 * complete and synced, and vanishes with its descriptor. Refills start at
 * the first take, so spares are made with the server's final uid.
 */

/* refill_due - (mutex held) a refill job should start */
static int refill_due(const struct queue_async *qa)
{
    return qa->spares_usable != 0 && !qa->refill_blocked && !qa->refilling
           && qa->nspares < SPARE_TARGET;
}

/* spares_work - 1: unnamed files can be made and linked here (tried once) */
static int spares_work(struct queue_fs *q)
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

/* refill_work - (a commit thread) make spares up to SPARE_TARGET */
static void refill_work(void *arg)
{
    struct queue_async *qa = arg;
    struct queue_fs *q = qa->q;
    int usable, more = 1;

    pthread_mutex_lock(&qa->mu);
    usable = qa->spares_usable;
    pthread_mutex_unlock(&qa->mu);
    if (usable < 0)
        usable = spares_work(q);
    while (more) {
        int fd = usable > 0 ? openat(q->tmpfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600) : -1;

        pthread_mutex_lock(&qa->mu);
        qa->spares_usable = usable;
        if (fd < 0)
            qa->refill_blocked = 1; /* e.g. disk full: queue_create makes its own file */
        else if (qa->nspares < SPARE_TARGET)
            qa->spares[qa->nspares++] = fd;
        else
            close(fd);
        more = fd >= 0 && qa->nspares < SPARE_TARGET;
        if (!more)
            qa->refilling = 0;
        pthread_mutex_unlock(&qa->mu);
    }
}

/*
 * Recycled files. Removing a message with a queue_async frees no inode: the
 * file (a regular file with one link) is renamed from its directory into
 * tmp/ under a new name (RECYCLED_PREFIX...), and queue_create takes it before
 * any spare or new file (as PostgreSQL recycles WAL segments). It is not
 * emptied: the next message is written over the old bytes and commit_file
 * cuts the file at its end, on a commit thread. Emptying it on the loop cost
 * an ftruncate per delivered message that freed its blocks, and on a
 * filesystem mounted with "discard" waited for the device to discard them.
 * queue_recover removes tmp/ and what is in it at startup. A file becomes reusable only once the directory
 * it left is fsynced (a queue_delete at once, a QUEUE_LATER one
 * within SYNC_DELAY_MS): until then a crash could bring its
 * old name back, pointing at the next message's content. Only the event
 * loop's thread touches the list. Queue IDs stay unique: one inode holds
 * one message at a time, and the ID adds the arrival's microseconds.
 */

/* recycle - (loop thread) 1: not recycled, remove it; QUEUE_OK: recycled; <0: error */
static int recycle(struct queue_fs *q, enum queue_dir dir, const char *id)
{
    struct queue_async *qa = q->async;
    struct recycled *r;
    struct stat st;
    char name[sizeof(r->name)];

    if (qa == NULL || qa->nrecycled >= RECYCLE_MAX)
        return 1;
    if (fstatat(q->dirfd[dir], id, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return qerr(q, QUEUE_NOTFOUND, "remove %s/%s: %s", dir_names[dir], id, strerror(errno));
        return 1;
    }
    if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
        return 1;
    snprintf(name, sizeof(name), RECYCLED_PREFIX "%ld.%lu", (long) getpid(), q->counter++);
    if (renameat(q->dirfd[dir], id, q->tmpfd, name) != 0) {
        if (errno == ENOENT)
            return qerr(q, QUEUE_NOTFOUND, "remove %s/%s: %s", dir_names[dir], id, strerror(errno));
        return 1;
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
static void recycled_ready(struct queue_fs *q, enum queue_dir dir)
{
    struct queue_async *qa = q->async;

    for (size_t i = 0; qa && i < qa->nrecycled; i++)
        if (qa->recycled[i].from == dir)
            qa->recycled[i].ready = 1;
}

/* take_recycled - (loop thread) a reusable file for queue_create, its old content still in it; 0: none */
static int take_recycled(struct queue_async *qa, int *fd, char *name, size_t namelen)
{
    for (size_t i = qa->nrecycled; i-- > 0;) {
        struct recycled r = qa->recycled[i];

        if (!r.ready)
            continue;
        qa->recycled[i] = qa->recycled[--qa->nrecycled];
        *fd = openat(qa->q->tmpfd, r.name, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
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
    int got = 0, refill;

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
    if ((refill = refill_due(qa)) != 0)
        qa->refilling = 1;
    pthread_mutex_unlock(&qa->mu);
    if (refill)
        workq_submit(qa->wq, refill_work, NULL, qa);
    return got;
}

/* commit_work - (a commit thread) fsync one file, then the directory step if nobody runs it */
static void commit_work(void *arg)
{
    struct queue_job *j = arg;
    struct queue_async *qa = j->qa;

    j->status = commit_file(&j->qf, j->err, sizeof(j->err));
    pthread_mutex_lock(&qa->mu);
    if (j->status != QUEUE_OK) {
        j->qf.tmpname[0] = 0;
        job_done(qa, j);
        pthread_mutex_unlock(&qa->mu);
        return;
    }
    STAILQ_INSERT_TAIL(&qa->synced, j, next);
    /* files synced while the step ran are picked up by the same thread */
    while (!STAILQ_EMPTY(&qa->synced) && !qa->dir_busy) {
        struct job_list batch = STAILQ_HEAD_INITIALIZER(batch);

        STAILQ_CONCAT(&batch, &qa->synced);
        qa->dir_busy = 1;
        pthread_mutex_unlock(&qa->mu);
        dir_step(qa, &batch);
        pthread_mutex_lock(&qa->mu);
        qa->dir_busy = 0;
        while ((j = STAILQ_FIRST(&batch)) != NULL) {
            STAILQ_REMOVE_HEAD(&batch, next);
            job_done(qa, j);
        }
    }
    pthread_mutex_unlock(&qa->mu);
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

static void async_free(struct queue_async *qa);
static void sync_cb(evutil_socket_t fd, short what, void *arg);

/* async_new - start nthreads commit threads; results come back on base */
static struct queue_async *async_new(struct queue_fs *q, struct event_base *base, int nthreads,
                                     char *err, size_t errlen)
{
    struct queue_async *qa = xcalloc(1, sizeof(*qa));

    qa->q = q;
    STAILQ_INIT(&qa->synced);
    qa->spares_usable = -1;
    qa->refill_blocked = 1; /* until the first queue_create: see "Spare files" */
    pthread_mutex_init(&qa->mu, NULL);
    if ((qa->back = handoff_new(base, job_back, qa, err, errlen)) == NULL
        || (qa->wq = workq_new(base, nthreads, err, errlen)) == NULL) {
        async_free(qa);
        return NULL;
    }
    return qa;
}

/* fs_attach - commit threads and the deferred-sync timer on base */
static int fs_attach(struct queue *fq, struct event_base *base, int nthreads, char *err,
                     size_t errlen)
{
    struct queue_fs *q = fq->be;

    if (q->async != NULL) {
        snprintf(err, errlen, "the queue is already attached to an event loop");
        return QUEUE_INVAL;
    }
    if ((q->sync_ev = evtimer_new(base, sync_cb, q)) == NULL) {
        snprintf(err, errlen, "cannot create the queue sync timer");
        return QUEUE_ERR;
    }
    if ((q->async = async_new(q, base, nthreads, err, errlen)) == NULL) {
        event_free(q->sync_ev);
        q->sync_ev = NULL;
        return QUEUE_ERR;
    }
    return QUEUE_OK;
}

/* fs_commit_async - hand qf over to the commit threads; fn reports the result */
static int fs_commit_async(struct queue_file *qf, queue_done_fn fn, void *ctx)
{
    struct queue_fs *q = qf->q->be;
    struct queue_async *qa = q->async;
    struct queue_job *j;

    if (qa == NULL)
        return qerr(q, QUEUE_INVAL, "queue_commit_async: no event loop attached");
    if (qf->fd < 0)
        return qerr(q, QUEUE_INVAL, "queue_commit_async: no open file");
    j = xcalloc(1, sizeof(*j));
    j->qa = qa;
    j->qf = *qf;
    j->fn = fn;
    j->ctx = ctx;
    /* the job owns the file now: queue_abort(qf) is harmless */
    qf->fd = -1;
    qf->tmpname[0] = 0;
    busy_add(qa, j->qf.id);
    workq_submit(qa->wq, commit_work, NULL, j);
    return QUEUE_OK;
}

/* fs_pending - commits whose done function has not been called yet */
static size_t fs_pending(const struct queue *fq)
{
    const struct queue_fs *q = fq->be;

    return q->async ? q->async->nbusy : 0;
}

/* async_drain - wait for every commit and call the done functions, repeatedly */
static void async_drain(struct queue_async *qa)
{
    /* once the threads are idle, every commit was handed back */
    while (qa && qa->nbusy > 0) {
        workq_drain(qa->wq);
        handoff_run(qa->back);
    }
}

/* fs_drain - report every commit now */
static void fs_drain(struct queue *fq)
{
    struct queue_fs *q = fq->be;

    async_drain(q->async);
}

/* async_free - drain, stop the threads, unregister from the event base */
static void async_free(struct queue_async *qa)
{
    if (qa == NULL)
        return;
    if (qa->wq)
        async_drain(qa);
    workq_free(qa->wq); /* a refill job ends first */
    while (qa->nspares > 0)
        close(qa->spares[--qa->nspares]);
    while (qa->nrecycled > 0) {
        const char *name = qa->recycled[--qa->nrecycled].name;

        if (unlinkat(qa->q->tmpfd, name, 0) != 0 && errno != ENOENT)
            log_warn("cannot remove %s/tmp/%s: %s", qa->q->path, name, strerror(errno));
    }
    free(qa->recycled);
    free(qa->busy);
    pthread_mutex_destroy(&qa->mu);
    handoff_free(qa->back);
    free(qa);
}

static int sync_later(struct queue_fs *q);

/* fs_detach - drain, sync what waits, stop the threads, leave the event loop */
static void fs_detach(struct queue *fq)
{
    struct queue_fs *q = fq->be;

    async_free(q->async);
    q->async = NULL;
    if (q->later && sync_later(q) != QUEUE_OK)
        log_error("qmgr: %s", fq->err);
    if (q->sync_ev)
        event_free(q->sync_ev);
    q->sync_ev = NULL;
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
static int parse_file(struct queue_fs *q, FILE *fp, const char *id, struct queue_msg *msg)
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
    if (!NEXT() || (val = field(line, "sender")) == NULL || !queue_header_safe(val))
        BAD("bad sender line");
    msg->sender = xstrdup(val);
    if (!NEXT() || (val = field(line, "client")) == NULL || !queue_header_safe(val))
        BAD("bad client line");
    msg->client = xstrdup(val);
    if (!NEXT() || (val = field(line, "rcpts")) == NULL || parse_num(val, &nrcpt) != 0
        || nrcpt < 1 || nrcpt > QUEUE_RCPT_LIMIT)
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
        if (r->address[0] == 0 || !queue_header_safe(r->address))
            BAD("recipient %lld: empty address or a control character in it", i + 1);
        if (!queue_dsn_valid(r->dsn))
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

/* fs_load - read a message's envelope (the front end set msg->id and msg->dir) */
static int fs_load(struct queue *fq, enum queue_dir dir, const char *id, struct queue_msg *msg)
{
    struct queue_fs *q = fq->be;
    int rc, fd;
    FILE *fp;

    fd = openat(q->dirfd[dir], id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return qerr(q, io_status(errno), "%s/%s: %s", dir_names[dir], id, strerror(errno));
    if ((fp = fdopen(fd, "r")) == NULL) {
        close(fd);
        return qerr(q, QUEUE_ERR, "fdopen: %s", strerror(errno));
    }
    rc = parse_file(q, fp, id, msg);
    fclose(fp);
    return rc;
}

/* fs_open_content - read-only fd positioned at the content, or a negative status */
static int fs_open_content(struct queue *fq, const struct queue_msg *msg)
{
    struct queue_fs *q = fq->be;
    int fd;

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
static int sync_dir(struct queue_fs *q, int fd, const char *name)
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

/* fs_move - rename a message between directories; fsynced as move_durable() says */
static int fs_move(struct queue *fq, const char *id, enum queue_dir from, enum queue_dir to)
{
    struct queue_fs *q = fq->be;
    int rc;

    if (renameat(q->dirfd[from], id, q->dirfd[to], id) != 0)
        return qerr(q, io_status(errno), "rename %s/%s to %s/%s: %s", dir_names[from], id,
                    dir_names[to], id, strerror(errno));
    if (!move_durable(from, to))
        return QUEUE_OK;
    if ((rc = sync_dir(q, q->dirfd[to], dir_names[to])) != QUEUE_OK)
        return rc;
    return sync_dir(q, q->dirfd[from], dir_names[from]);
}

/* sync_msg_dir - fsync one message directory after QUEUE_LATER deletes */
static int sync_msg_dir(struct queue_fs *q, enum queue_dir dir)
{
    int rc;

    if ((rc = sync_dir(q, q->dirfd[dir], dir_names[dir])) == QUEUE_OK)
        recycled_ready(q, dir);
    return rc;
}

/* fs_update - set one recipient of a loaded message in place (pwrite, no fsync), and in msg */
static int fs_update(struct queue *fq, struct queue_msg *msg, size_t idx,
                     enum queue_rcpt_state state, const char *dsn, const char *reason)
{
    struct queue_fs *q = fq->be;
    char fixed[RCPT_FIXED];
    struct queue_rcpt *r;
    int rc, fd;

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

/* fs_settle - fsync the recipient states fs_update wrote */
static int fs_settle(struct queue *fq, struct queue_msg *msg)
{
    struct queue_fs *q = fq->be;
    int fd, rc = QUEUE_OK;

    fd = openat(q->dirfd[msg->dir], msg->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return qerr(q, io_status(errno), "%s/%s: %s", dir_names[msg->dir], msg->id,
                    strerror(errno));
    if (fsync(fd) != 0)
        rc = qerr(q, io_status(errno), "%s/%s: fsync: %s", dir_names[msg->dir], msg->id,
                  strerror(errno));
    if (close(fd) != 0 && rc == QUEUE_OK)
        rc = qerr(q, io_status(errno), "%s/%s: close: %s", dir_names[msg->dir], msg->id,
                  strerror(errno));
    if (rc == QUEUE_OK)
        msg->unsynced = 0;
    return rc;
}

/* fs_set_retry_time - store the next retry time as the file's mtime */
static int fs_set_retry_time(struct queue *fq, enum queue_dir dir, const char *id, time_t when)
{
    struct queue_fs *q = fq->be;
    struct timespec ts[2];

    ts[0].tv_sec = ts[1].tv_sec = when;
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    if (utimensat(q->dirfd[dir], id, ts, AT_SYMLINK_NOFOLLOW) != 0)
        return qerr(q, io_status(errno), "%s/%s: utimensat: %s", dir_names[dir], id, strerror(errno));
    return QUEUE_OK;
}

static int recycle(struct queue_fs *q, enum queue_dir dir, const char *id);

/* fs_stat - QUEUE_OK: id is in dir; its retry time is the mtime */
static int fs_stat(struct queue *fq, enum queue_dir dir, const char *id, time_t *retry_time)
{
    struct queue_fs *q = fq->be;
    struct stat st;

    if (fstatat(q->dirfd[dir], id, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return qerr(q, io_status(errno), "%s/%s: %s", dir_names[dir], id, strerror(errno));
    if (retry_time)
        *retry_time = st.st_mtime;
    return QUEUE_OK;
}

/* sync_later - fsync every directory a QUEUE_LATER delete left */
static int sync_later(struct queue_fs *q)
{
    int rc = QUEUE_OK;

    for (int d = 0; d < QUEUE_NDIRS; d++) {
        int r;

        if (!(q->later & (1u << d)))
            continue;
        if ((r = sync_msg_dir(q, (enum queue_dir) d)) == QUEUE_OK)
            q->later &= ~(1u << d);
        else
            rc = r;
    }
    return rc;
}

/* sync_cb - SYNC_DELAY_MS after the first QUEUE_LATER delete: one fsync for all of them */
static void sync_cb(evutil_socket_t fd, short what, void *arg)
{
    static const struct timeval retry = { 1, 0 };
    struct queue_fs *q = arg;

    (void) fd;
    (void) what;
    if (sync_later(q) == QUEUE_OK)
        return;
    log_error("qmgr: %s; trying again in 1s", q->front->err);
    if (evtimer_add(q->sync_ev, &retry) != 0)
        log_error("qmgr: cannot arm the queue sync timer");
}

/* fs_delete - remove a message (recycling its file); QUEUE_LATER: fsync its directory soon */
static int fs_delete(struct queue *fq, enum queue_dir dir, const char *id, int flags)
{
    static const struct timeval soon = { 0, SYNC_DELAY_MS * 1000 };
    struct queue_fs *q = fq->be;
    int rc;

    if ((rc = recycle(q, dir, id)) == 1 && unlinkat(q->dirfd[dir], id, 0) != 0)
        return qerr(q, io_status(errno), "remove %s/%s: %s", dir_names[dir], id, strerror(errno));
    if (rc < 0)
        return rc;
    if (!(flags & QUEUE_LATER) || q->sync_ev == NULL)
        return sync_msg_dir(q, dir);
    /* pending, not q->later: a retry that could not be armed is armed again here */
    if (!evtimer_pending(q->sync_ev, NULL) && evtimer_add(q->sync_ev, &soon) != 0) {
        log_error("qmgr: cannot arm the queue sync timer; syncing now");
        return sync_msg_dir(q, dir);
    }
    q->later |= 1u << dir;
    return QUEUE_OK;
}

/* fs_sync - make the QUEUE_LATER deletes durable now */
static int fs_sync(struct queue *fq)
{
    struct queue_fs *q = fq->be;
    int rc = sync_later(q);

    if (q->later == 0 && q->sync_ev)
        evtimer_del(q->sync_ev);
    return rc;
}

/* open_dir_stream - a DIR for one queue directory (its own descriptor) */
static DIR *open_dir_stream(struct queue_fs *q, int dirfd, const char *name)
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

/* fs_walk - call fn for every queue ID in dir; fn returns non-zero to stop */
static int fs_walk(struct queue *fq, enum queue_dir dir, queue_walk_fn fn, void *ctx)
{
    struct queue_fs *q = fq->be;
    struct dirent *de;
    DIR *d;

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
static void to_corrupt(struct queue_fs *q, enum queue_dir dir, const char *name, const char *why)
{
    if (renameat(q->dirfd[dir], name, q->dirfd[QUEUE_CORRUPT_DIR], name) != 0) {
        log_warn("%s/%s/%s: %s; cannot move it to corrupt/: %s", q->path, dir_names[dir], name,
                 why, strerror(errno));
        return;
    }
    log_warn("%s/%s/%s: %s; moved to corrupt/", q->path, dir_names[dir], name, why);
}

/* recover_dir - check every file of dir; active/ files go back to incoming/ */
static int recover_dir(struct queue_fs *q, enum queue_dir dir, int *moved)
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
        int lrc = queue_load(q->front, dir, name, &msg);
        if (lrc == QUEUE_CORRUPT) {
            to_corrupt(q, dir, name, q->front->err);
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

/* fs_recover - startup: empty tmp/, active/ back to incoming/, bad files to corrupt/ */
static int fs_recover(struct queue *fq)
{
    struct queue_fs *q = fq->be;
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

static const struct queue_ops fs_ops = QUEUE_OPS(fs);
