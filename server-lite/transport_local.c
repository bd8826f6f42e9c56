/*
 * transport_local - Maildir delivery (contract in transport_local.h).
 *
 * Directories below local_maildir_base are opened one component at a time
 * with O_NOFOLLOW (recipient_maildir_open), so a symlink planted in a Maildir
 * path is never followed.
 *
 * Threads: local_transport_deliver() copies the job (addresses, a dup() of
 * the content fd, the settings it needs from the configuration, and for each
 * recipient whether a recipient map allows its Maildir to be made) and puts
 * it in the inbox; one of LOCAL_TRANSPORT_WORKERS threads takes it, writes
 * the copies, and hands it back with its report and any log lines
 * (common/handoff) to the caller's loop, which logs the lines and calls done().
 * Workers never touch the configuration (a SIGHUP may free it), never log
 * (log_open() is not thread-safe) and block every signal. local_transport_free()
 * asks the workers to stop after the recipient in progress and joins them.
 */
#define LOG_SERVICE "local" /* its log lines: syslog_name/local[pid] */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "domain.h"
#include "fileio.h"
#include "handoff.h"
#include "log.h"
#include "recipient.h"
#include "server_config.h"
#include "transport_local.h"

#define COPY_BLOCK 65536

/* one job, owned by whichever side holds it (inbox: workers; outbox: the loop) */
struct local_job {
    struct handoff_item back;    /* first: the hand-off gives it back as a job */
    STAILQ_ENTRY(local_job) inbox;
    /* input: private copies, valid whatever the qmgr or a reload does meanwhile */
    struct delivery_msg msg;
    unsigned char *may_create;   /* a recipient map accepted msg.rcpts[i]: make its Maildir */
    int fd;                      /* a dup() of the qmgr's content fd */
    off_t offset, size;
    char *base, *mailbox, *host; /* local_maildir_base, home_mailbox, myhostname */
    /* output */
    struct delivery_report report;
    struct buf warnings;         /* lines for log_warn, '\n'-separated */
    delivery_done_fn done;
    void *ctx;
};

struct local_transport {
    struct event_base *base;
    const struct server_config *conf;
    pthread_mutex_t mu;
    pthread_cond_t work;         /* the inbox got a job, or stop */
    STAILQ_HEAD(, local_job) inbox;
    int stop;                    /* under mu; workers also read it between recipients */
    struct handoff *back;        /* finished jobs, to the loop */
    pthread_t threads[LOCAL_TRANSPORT_WORKERS];
    int nthreads;
};

static unsigned long delivery_counter; /* atomic: workers share it */

/* io_fail - a TEMP result for an I/O error */
static void io_fail(struct delivery_report *r, size_t i, int err, const char *what,
                    const char *path)
{
    const char *dsn = err == ENOSPC ? "4.3.1" : err == EDQUOT ? "4.2.2" : "4.3.0";

    delivery_set(r, i, DELIVERY_TEMP, dsn, "cannot deliver to maildir: %s %s: %s", what, path,
                 strerror(err));
}

/* copy_content - write the headers and the content with LF line ends to fd */
static int copy_content(int fd, const struct local_job *job, const char *rcpt, int *rerr)
{
    struct buf b = BUF_INIT;
    char *in = xmalloc(COPY_BLOCK);
    off_t off = 0;
    int rc = -1, held_cr = 0;

    buf_printf(&b, "Return-Path: <%s>\nDelivered-To: %s\n", job->msg.sender, rcpt);
    while (off < job->size) {
        size_t want = (size_t) (job->size - off) < COPY_BLOCK
                          ? (size_t) (job->size - off) : COPY_BLOCK;
        ssize_t got = pread(job->fd, in, want, job->offset + off);

        if (got <= 0) {
            *rerr = got == 0 ? EIO : errno;
            goto out;
        }
        for (ssize_t i = 0; i < got; i++) {
            if (held_cr && in[i] != '\n')
                buf_putc(&b, '\r');
            held_cr = in[i] == '\r';
            if (!held_cr)
                buf_putc(&b, in[i]);
        }
        off += got;
        if (b.len >= COPY_BLOCK || off >= job->size) {
            if (held_cr && off >= job->size)
                buf_putc(&b, '\r');
            if (fileio_write_all(fd, b.data, b.len) != 0) {
                *rerr = errno;
                goto out;
            }
            buf_reset(&b);
        }
    }
    if (job->size == 0 && fileio_write_all(fd, b.data, b.len) != 0) {
        *rerr = errno;
        goto out;
    }
    rc = 0;
out:
    free(in);
    buf_free(&b);
    return rc;
}

/* unique_name - a Maildir file name: time.MusecPpidQn.host */
static void unique_name(char *out, size_t outlen, const char *host)
{
    struct timeval tv;
    char h[128];
    size_t j = 0;

    for (size_t i = 0; host[i] && j < sizeof(h) - 5; i++) {
        if (host[i] == '/') {
            memcpy(h + j, "\\057", 4), j += 4;
        } else if (host[i] == ':') {
            memcpy(h + j, "\\072", 4), j += 4;
        } else {
            h[j++] = host[i];
        }
    }
    h[j] = 0;
    gettimeofday(&tv, NULL);
    snprintf(out, outlen, "%lld.M%ldP%ldQ%lu.%s", (long long) tv.tv_sec, (long) tv.tv_usec,
             (long) getpid(), __atomic_add_fetch(&delivery_counter, 1, __ATOMIC_RELAXED), h);
}

/* deliver_one - one recipient into its Maildir */
static void deliver_one(struct local_job *job, struct delivery_report *r, size_t i)
{
    const char *addr = job->msg.rcpts[i], *at = strrchr(addr, '@');
    char user[RECIPIENT_LOCAL_PART_MAX + 2], domain[DOMAIN_MAX + 2], name[256], failed[256];
    char rcpt[RECIPIENT_LOCAL_PART_MAX + DOMAIN_MAX + 4];
    int mdfd = -1, tmpfd = -1, newfd = -1, fd = -1, err = 0;

    if (job->base == NULL) {
        delivery_set(r, i, DELIVERY_TEMP, "4.3.5",
                     "local delivery is not configured: local_maildir_base is empty");
        return;
    }
    if (at == NULL || (size_t) (at - addr) > RECIPIENT_LOCAL_PART_MAX
        || strlen(at + 1) > DOMAIN_MAX) {
        delivery_set(r, i, DELIVERY_PERM, "5.1.3", "bad recipient address syntax");
        return;
    }
    memcpy(user, addr, (size_t) (at - addr));
    user[at - addr] = 0;
    snprintf(domain, sizeof(domain), "%s", at + 1);
    domain_lowercase(user);
    domain_lowercase(domain);
    if (!recipient_local_part_ok(user) || !domain_is_hostname(domain, NULL)) {
        delivery_set(r, i, DELIVERY_PERM, "5.1.3", "bad recipient address syntax");
        return;
    }
    snprintf(rcpt, sizeof(rcpt), "%s@%s", user, domain);
    mdfd = recipient_maildir_open(job->base, job->mailbox, user, domain, job->may_create[i],
                                  failed, sizeof(failed));
    if (mdfd < 0) {
        if (!job->may_create[i] && (errno == ENOENT || errno == ENOTDIR))
            delivery_set(r, i, DELIVERY_PERM, "5.1.1",
                         "user unknown: no maildir, and no local_recipient_maps entry");
        else
            io_fail(r, i, errno, "open directory", failed);
        return;
    }
    if ((tmpfd = recipient_dir_open(mdfd, "tmp", 1)) < 0
        || (newfd = recipient_dir_open(mdfd, "new", 1)) < 0) {
        io_fail(r, i, errno, "open directory", tmpfd < 0 ? "tmp" : "new");
        goto out;
    }
    int cur = recipient_dir_open(mdfd, "cur", 1);
    if (cur < 0) {
        io_fail(r, i, errno, "open directory", "cur");
        goto out;
    }
    close(cur);
    for (int tries = 0; fd < 0; tries++) {
        unique_name(name, sizeof(name), job->host);
        fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && (errno != EEXIST || tries > 10)) {
            io_fail(r, i, errno, "create", "tmp file");
            goto out;
        }
    }
    if (copy_content(fd, job, rcpt, &err) != 0) {
        io_fail(r, i, err, "write", "tmp file");
        goto fail_unlink;
    }
    if (fsync(fd) != 0) {
        io_fail(r, i, errno, "fsync", "tmp file");
        goto fail_unlink;
    }
    err = close(fd);
    fd = -1;
    if (err != 0) {
        io_fail(r, i, errno, "close", "tmp file");
        goto fail_unlink;
    }
    if (linkat(tmpfd, name, newfd, name, 0) != 0) {
        io_fail(r, i, errno, "link into", "new/");
        goto fail_unlink;
    }
    if (unlinkat(tmpfd, name, 0) != 0)
        buf_printf(&job->warnings, "%s: cannot remove maildir tmp/%s: %s\n", job->msg.id, name,
                   strerror(errno));
    if (fsync(newfd) != 0) {
        io_fail(r, i, errno, "fsync", "new/");
        goto out;
    }
    delivery_set(r, i, DELIVERY_OK, "2.0.0", "delivered to maildir");
    goto out;
fail_unlink:
    if (fd >= 0)
        close(fd);
    fd = -1;
    unlinkat(tmpfd, name, 0);
out:
    if (fd >= 0)
        close(fd);
    if (newfd >= 0)
        close(newfd);
    if (tmpfd >= 0)
        close(tmpfd);
    if (mdfd >= 0)
        close(mdfd);
}

/* job_run - deliver every recipient of job into report; stops early when *stop is set */
static void job_run(struct local_job *job, struct delivery_report *report, const int *stop)
{
    long long start = clock_now_ms();

    snprintf(report->relay, sizeof(report->relay), "local");
    for (size_t i = 0; i < job->msg.nrcpt && i < report->nrcpt; i++) {
        if (stop && __atomic_load_n(stop, __ATOMIC_RELAXED))
            break; /* the rest stay "delivery not attempted" and are not reported anyway */
        deliver_one(job, report, i);
    }
    report->conn_time = 0;
    report->xmit_time = (double) (clock_now_ms() - start) / 1000.0;
}

/* job_new - a private copy of what delivering job needs (on the caller's thread) */
static struct local_job *job_new(const struct server_config *conf, const struct delivery_job *job)
{
    struct local_job *lj = xcalloc(1, sizeof(*lj));

    lj->fd = -1;
    delivery_msg_copy(&lj->msg, job);
    lj->may_create = xcalloc(job->nrcpt ? job->nrcpt : 1, 1);
    for (size_t i = 0; i < job->nrcpt; i++) {
        /* a Maildir is made only for a recipient a local_recipient_maps entry names */
        lj->may_create[i] = conf->local_recipients != NULL
                            && recipient_map_lookup(conf->local_recipients, job->rcpts[i], 1);
    }
    lj->offset = job->content_offset;
    lj->size = job->content_size;
    if (conf->local_maildir_base && *conf->local_maildir_base)
        lj->base = xstrdup(conf->local_maildir_base);
    lj->mailbox = xstrdup(conf->home_mailbox ? conf->home_mailbox : "Maildir/");
    lj->host = xstrdup(conf->myhostname ? conf->myhostname : "localhost");
    delivery_report_init(&lj->report, job->nrcpt);
    return lj;
}

/* job_free - release a job and its copies */
static void job_free(struct local_job *lj)
{
    delivery_msg_free(&lj->msg);
    free(lj->may_create);
    if (lj->fd >= 0 && close(lj->fd) != 0)
        log_warn("local: close content: %s", strerror(errno));
    free(lj->base);
    free(lj->mailbox);
    free(lj->host);
    delivery_report_free(&lj->report);
    buf_free(&lj->warnings);
    free(lj);
}

/* log_warnings - a job's worker lines, logged on the caller's thread */
static void log_warnings(struct local_job *lj)
{
    char *save = NULL;

    if (lj->warnings.len == 0)
        return;
    for (char *line = strtok_r(lj->warnings.data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
        log_warn("%s", line);
    buf_reset(&lj->warnings);
}

/* local_transport_deliver_now - deliver every recipient of job, synchronously */
void local_transport_deliver_now(const struct server_config *conf, const struct delivery_job *job,
                                 struct delivery_report *report)
{
    struct local_job *lj = job_new(conf, job);

    lj->fd = job->content_fd; /* borrowed: not closed by job_free */
    job_run(lj, report, NULL);
    lj->fd = -1;
    log_warnings(lj);
    job_free(lj);
}

/* worker - thread body: take jobs from the inbox, deliver, hand them to the outbox */
static void *worker(void *arg)
{
    struct local_transport *t = arg;

    pthread_mutex_lock(&t->mu);
    for (;;) {
        struct local_job *lj;

        while (!t->stop && STAILQ_EMPTY(&t->inbox))
            pthread_cond_wait(&t->work, &t->mu);
        if (t->stop)
            break;
        lj = STAILQ_FIRST(&t->inbox);
        STAILQ_REMOVE_HEAD(&t->inbox, inbox);
        pthread_mutex_unlock(&t->mu);
        job_run(lj, &lj->report, &t->stop);
        handoff_post(t->back, &lj->back);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* drop_job - free an unreported job; a finished one may have delivered copies already */
static void drop_job(struct local_job *lj, int finished)
{
    size_t ok = 0;

    for (size_t i = 0; finished && i < lj->report.nrcpt; i++)
        ok += lj->report.rcpt[i].status == DELIVERY_OK;
    if (ok)
        log_warn("%s: stopping: %zu maildir deliveries not recorded in the queue; "
                 "they will be delivered again", lj->msg.id, ok);
    job_free(lj);
}

/* job_back - (loop) a finished job: log its lines, hand its report to the qmgr; when
   stopping, drop it */
static void job_back(void *arg, struct handoff_item *item)
{
    struct local_transport *t = arg;
    struct local_job *lj = (struct local_job *) item;

    if (t->stop) {
        drop_job(lj, 1);
        return;
    }
    log_warnings(lj);
    lj->done(lj->ctx, &lj->report);
    job_free(lj);
}

/* local_transport_new - a local transport on base, with its worker threads */
struct local_transport *local_transport_new(struct event_base *base,
                                            const struct server_config *conf, char *err,
                                            size_t errlen)
{
    struct local_transport *t = xcalloc(1, sizeof(*t));
    char why[256];
    sigset_t all, old;
    int rc = 0;

    t->base = base;
    t->conf = conf;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->work, NULL);
    STAILQ_INIT(&t->inbox);
    if ((t->back = handoff_new(base, job_back, t, why, sizeof(why))) == NULL) {
        snprintf(err, errlen, "local: %s", why);
        goto fail;
    }
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < LOCAL_TRANSPORT_WORKERS && rc == 0; i++)
        if ((rc = pthread_create(&t->threads[i], NULL, worker, t)) == 0)
            t->nthreads++;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "local: cannot start a delivery thread: %s", strerror(rc));
        goto fail;
    }
    return t;
fail:
    local_transport_free(t);
    return NULL;
}

/* local_transport_set_config - use a reloaded configuration for jobs started from now on */
void local_transport_set_config(struct local_transport *t, const struct server_config *conf)
{
    t->conf = conf;
}

/* local_transport_deliver - queue job for a worker; done follows from the event loop */
int local_transport_deliver(struct local_transport *t, const struct delivery_job *job,
                            delivery_done_fn done, void *ctx)
{
    struct local_job *lj;
    int fd = fcntl(job->content_fd, F_DUPFD_CLOEXEC, 0);

    if (fd < 0) {
        log_warn("%s: local: cannot duplicate the content descriptor: %s", job->id,
                 strerror(errno));
        return -1;
    }
    lj = job_new(t->conf, job);
    lj->fd = fd;
    lj->done = done;
    lj->ctx = ctx;
    pthread_mutex_lock(&t->mu);
    STAILQ_INSERT_TAIL(&t->inbox, lj, inbox);
    pthread_cond_signal(&t->work);
    pthread_mutex_unlock(&t->mu);
    return 0;
}

/* local_transport_free - stop the workers (after their current recipient), drop unreported jobs */
void local_transport_free(struct local_transport *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    __atomic_store_n(&t->stop, 1, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&t->work);
    pthread_mutex_unlock(&t->mu);
    for (int i = 0; i < t->nthreads; i++)
        pthread_join(t->threads[i], NULL);
    while (!STAILQ_EMPTY(&t->inbox)) {
        struct local_job *lj = STAILQ_FIRST(&t->inbox);

        STAILQ_REMOVE_HEAD(&t->inbox, inbox);
        drop_job(lj, 0);
    }
    handoff_free(t->back); /* drops the finished jobs: t->stop is set */
    pthread_cond_destroy(&t->work);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
