/*
 * transport_local - Maildir delivery (contract in transport_local.h).
 *
 * Directories below local_maildir_base are opened one component at a time
 * with O_NOFOLLOW, so a symlink planted in a Maildir path is never followed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "domain.h"
#include "log.h"
#include "server_config.h"
#include "transport_local.h"

#define COPY_BLOCK 65536
#define LOCAL_PART_MAX 64

/* one finished job waiting to be reported from the event loop */
struct local_pending {
    struct local_transport *t;
    struct event *ev;
    struct delivery_report report;
    delivery_done_fn done;
    void *ctx;
    struct local_pending *prev, *next;
};

struct local_transport {
    struct event_base *base;
    const struct server_config *conf;
    struct local_pending *pending;
};

static unsigned long delivery_counter;

/* io_fail - a TEMP result for an I/O error */
static void io_fail(struct delivery_report *r, size_t i, int err, const char *what,
                    const char *path)
{
    const char *dsn = err == ENOSPC ? "4.3.1" : err == EDQUOT ? "4.2.2" : "4.3.0";

    delivery_set(r, i, DELIVERY_TEMP, dsn, "cannot deliver to maildir: %s %s: %s", what, path,
                 strerror(err));
}

/* open_child - open (creating when missing) a directory below dirfd, never via a symlink */
static int open_child(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd >= 0 || errno != ENOENT)
        return fd;
    if (mkdirat(dirfd, name, 0700) != 0 && errno != EEXIST)
        return -1;
    return openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* open_path - open dir components of rel ("a/b/c/") below dirfd; closes nothing of dirfd */
static int open_path(int dirfd, const char *rel, char *failed, size_t failedlen)
{
    char *copy = xstrdup(rel), *save = NULL;
    int fd = dup(dirfd);

    for (char *part = strtok_r(copy, "/", &save); part && fd >= 0;
         part = strtok_r(NULL, "/", &save)) {
        int next = open_child(fd, part);
        int err = errno;

        close(fd);
        if (next < 0) {
            snprintf(failed, failedlen, "%s", part);
            errno = err;
        }
        fd = next;
    }
    free(copy);
    return fd;
}

/* local_part_ok - the user name can be a directory name */
static int local_part_ok(const char *user)
{
    size_t n = strlen(user);

    if (n == 0 || n > LOCAL_PART_MAX || user[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = user[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_'
              || c == '+' || c == '=' || c == '-'))
            return 0;
    }
    return 1;
}

/* copy_content - write the headers and the content with LF line ends to fd */
static int copy_content(int fd, const struct delivery_job *job, const char *rcpt, int *rerr)
{
    struct buf b = BUF_INIT;
    char *in = xmalloc(COPY_BLOCK);
    off_t off = 0;
    int rc = -1, held_cr = 0;

    buf_printf(&b, "Return-Path: <%s>\nDelivered-To: %s\n", job->sender, rcpt);
    while (off < job->content_size) {
        size_t want = (size_t) (job->content_size - off) < COPY_BLOCK
                          ? (size_t) (job->content_size - off) : COPY_BLOCK;
        ssize_t got = pread(job->content_fd, in, want, job->content_offset + off);

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
        if (b.len >= COPY_BLOCK || off >= job->content_size) {
            if (held_cr && off >= job->content_size)
                buf_putc(&b, '\r');
            for (size_t done = 0; done < b.len;) {
                ssize_t w = write(fd, b.data + done, b.len - done);

                if (w < 0) {
                    if (errno == EINTR)
                        continue;
                    *rerr = errno;
                    goto out;
                }
                done += (size_t) w;
            }
            buf_reset(&b);
        }
    }
    if (job->content_size == 0) {
        for (size_t done = 0; done < b.len;) {
            ssize_t w = write(fd, b.data + done, b.len - done);

            if (w < 0) {
                *rerr = errno;
                goto out;
            }
            done += (size_t) w;
        }
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
             (long) getpid(), ++delivery_counter, h);
}

/* deliver_one - one recipient into its Maildir */
static void deliver_one(const struct server_config *conf, const struct delivery_job *job,
                        struct delivery_report *r, size_t i)
{
    const char *addr = job->rcpts[i], *at = strrchr(addr, '@');
    char user[LOCAL_PART_MAX + 2], domain[DOMAIN_MAX + 2], rel[1024], name[256], failed[256];
    char rcpt[LOCAL_PART_MAX + DOMAIN_MAX + 4];
    int basefd = -1, mdfd = -1, tmpfd = -1, newfd = -1, fd = -1, err = 0;

    if (conf->local_maildir_base == NULL || *conf->local_maildir_base == 0) {
        delivery_set(r, i, DELIVERY_TEMP, "4.3.5",
                     "local delivery is not configured: local_maildir_base is empty");
        return;
    }
    if (at == NULL || (size_t) (at - addr) > LOCAL_PART_MAX || strlen(at + 1) > DOMAIN_MAX) {
        delivery_set(r, i, DELIVERY_PERM, "5.1.3", "bad recipient address syntax");
        return;
    }
    memcpy(user, addr, (size_t) (at - addr));
    user[at - addr] = 0;
    snprintf(domain, sizeof(domain), "%s", at + 1);
    domain_lowercase(user);
    domain_lowercase(domain);
    if (!local_part_ok(user) || !domain_is_hostname(domain, NULL)) {
        delivery_set(r, i, DELIVERY_PERM, "5.1.3", "bad recipient address syntax");
        return;
    }
    snprintf(rcpt, sizeof(rcpt), "%s@%s", user, domain);
    if (mkdir(conf->local_maildir_base, 0700) != 0 && errno != EEXIST) {
        io_fail(r, i, errno, "mkdir", conf->local_maildir_base);
        return;
    }
    if ((basefd = open(conf->local_maildir_base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        io_fail(r, i, errno, "open", conf->local_maildir_base);
        return;
    }
    snprintf(rel, sizeof(rel), "%s/%s/%s", domain, user, conf->home_mailbox);
    if ((mdfd = open_path(basefd, rel, failed, sizeof(failed))) < 0) {
        io_fail(r, i, errno, "open directory", failed);
        goto out;
    }
    if ((tmpfd = open_child(mdfd, "tmp")) < 0 || (newfd = open_child(mdfd, "new")) < 0) {
        io_fail(r, i, errno, "open directory", tmpfd < 0 ? "tmp" : "new");
        goto out;
    }
    int cur = open_child(mdfd, "cur");
    if (cur < 0) {
        io_fail(r, i, errno, "open directory", "cur");
        goto out;
    }
    close(cur);
    for (int tries = 0; fd < 0; tries++) {
        unique_name(name, sizeof(name), conf->myhostname ? conf->myhostname : "localhost");
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
        log_warn("%s: cannot remove maildir tmp/%s: %s", job->id, name, strerror(errno));
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
    if (basefd >= 0)
        close(basefd);
}

/* local_transport_deliver_now - deliver every recipient of job, synchronously */
void local_transport_deliver_now(const struct server_config *conf, const struct delivery_job *job,
                                 struct delivery_report *report)
{
    long long start = clock_now_ms();

    snprintf(report->relay, sizeof(report->relay), "local");
    for (size_t i = 0; i < job->nrcpt && i < report->nrcpt; i++)
        deliver_one(conf, job, report, i);
    report->conn_time = 0;
    report->xmit_time = (double) (clock_now_ms() - start) / 1000.0;
}

/* unlink_pending - take p off the transport's list */
static void unlink_pending(struct local_pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        p->t->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

/* report_cb - hand one finished job's report to the qmgr */
static void report_cb(evutil_socket_t fd, short what, void *arg)
{
    struct local_pending *p = arg;

    (void) fd;
    (void) what;
    unlink_pending(p);
    p->done(p->ctx, &p->report);
    delivery_report_free(&p->report);
    event_free(p->ev);
    free(p);
}

/* local_transport_new - a local transport on base */
struct local_transport *local_transport_new(struct event_base *base,
                                            const struct server_config *conf)
{
    struct local_transport *t = xcalloc(1, sizeof(*t));

    t->base = base;
    t->conf = conf;
    return t;
}

/* local_transport_set_config - use a reloaded configuration */
void local_transport_set_config(struct local_transport *t, const struct server_config *conf)
{
    t->conf = conf;
}

/* local_transport_deliver - deliver now, report from the event loop */
int local_transport_deliver(struct local_transport *t, const struct delivery_job *job,
                            delivery_done_fn done, void *ctx)
{
    struct local_pending *p = xcalloc(1, sizeof(*p));
    struct timeval zero = { 0, 0 };

    p->t = t;
    p->done = done;
    p->ctx = ctx;
    if ((p->ev = evtimer_new(t->base, report_cb, p)) == NULL) {
        free(p);
        return -1;
    }
    if (evtimer_add(p->ev, &zero) != 0) {
        event_free(p->ev);
        free(p);
        return -1;
    }
    /* the report goes out only when the loop runs again, after this call returned */
    delivery_report_init(&p->report, job->nrcpt);
    local_transport_deliver_now(t->conf, job, &p->report);
    p->next = t->pending;
    if (p->next)
        p->next->prev = p;
    t->pending = p;
    return 0;
}

/* local_transport_free - drop unreported results (the queue keeps them pending) */
void local_transport_free(struct local_transport *t)
{
    if (t == NULL)
        return;
    while (t->pending) {
        struct local_pending *p = t->pending;

        unlink_pending(p);
        delivery_report_free(&p->report);
        event_free(p->ev);
        free(p);
    }
    free(t);
}
