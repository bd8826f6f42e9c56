/*
 * transport_smtp - outbound SMTP over libcurl's multi interface, on worker threads.
 *
 * Why threads: one wait blocks inside libcurl (7.88 as 8.x): smtp_done() reads
 * the reply to the final "." with a blocking poll (smtp_block_statemach), and
 * the QUIT to cached connections in curl_multi_cleanup() blocks the same way.
 * On the server's one event loop that froze everything, smtpd included, for up
 * to SMTP_REPLY_TIMEOUT per receiver that stalls after the data (measured: two
 * parallel deliveries to a receiver answering "." after 2 s took 4 s). So the
 * transfers run in SMTP_TRANSPORT_WORKERS worker threads, each with its own
 * event_base, curl multi handle and DNS hub; the caller's loop only hands jobs
 * in and results out. A job goes to the worker smtp_transport_shard() picks
 * from its route, so one destination's cached connections stay in one multi
 * handle, and a stalled receiver stalls only its own worker: the other
 * destinations of that shard, for up to SMTP_REPLY_TIMEOUT.
 *
 * Hand-over: smtp_transport_deliver() copies the job, appends it to the
 * worker's inbox (mutex) and writes the worker's eventfd. A worker ends a job
 * by appending it to the transport's outbox (mutex) and writing the outbox
 * eventfd; the outbox event on the caller's base calls done() and frees the
 * job. Each libcurl and libevent object is used by one thread only; the
 * counters the caller reads (smtp_transport_active) live on its thread.
 *
 * Logging: common/log.c writes a line with one write() or syslog(), but
 * log_open() rewrites its state on the caller's thread (SIGHUP reload), so
 * workers do not call log_*: their lines go through the outbox, in order with
 * the results, and the caller's thread logs them. Exceptions: the DNS threads
 * (mx.c's warnings, a failed eventfd close), the teardown in
 * smtp_transport_free() (the caller is waiting then), and out of memory or a
 * broken invariant, which end the process from any thread. Workers block
 * every signal: signals stay with the caller's loop.
 *
 * Stopping: smtp_transport_free() sets every worker's stop flag and waits. A
 * worker shuts down the sockets of transfers in progress first (removing a
 * handle mid-transfer makes curl send "." after a partial body and wait for
 * the reply), drops its jobs without reporting them, and lets
 * curl_multi_cleanup() send QUIT on idle connections. Every socket curl opens
 * is listed by open_cb/close_cb; a worker still running SMTP_STOP_GRACE_MS
 * after the stop (a receiver that does not answer "." or QUIT) has its listed
 * sockets shut down by the caller, which ends the wait at once. A job that a
 * worker finished but whose done() had not run yet is dropped as well; if a
 * receiver accepted it, a warning says it may be sent again.
 *
 * Event wiring in a worker: CURLMOPT_SOCKETFUNCTION gives every socket curl
 * watches one persistent libevent event, CURLMOPT_TIMERFUNCTION arms one
 * libevent timer, and both call curl_multi_socket_action(); finished
 * transfers are read with curl_multi_info_read().
 *
 * DNS runs off the worker's loop in a detached thread per lookup (mx_lookup()
 * and res_nquery() block): the thread fills a struct lookup, appends it to
 * the worker's hub's done list under a mutex and writes the hub's eventfd;
 * the worker reads the eventfd and continues the job. The hub is reference
 * counted, so a lookup that outlives its worker frees its own result.
 * libcurl itself never resolves a name: every attempt connects to a numeric
 * address (CURLOPT_CONNECT_TO), the URL keeps the host name for TLS SNI and
 * for the connection cache, and the URL path is the EHLO name (myhostname).
 *
 * Replies per recipient: CURLOPT_MAIL_RCPT_ALLOWFAILS lets curl go on after a
 * refused RCPT; the debug callback (CURLOPT_VERBOSE) sees every command
 * (CURLINFO_HEADER_OUT) and reply line (CURLINFO_HEADER_IN), and since curl
 * never pipelines SMTP, each complete reply belongs to the last command sent;
 * a reply after the 354 is the end-of-data reply; "Connected to" starts a
 * new dialogue (greeting first). Texts follow Postfix: "host H[A] said: 550
 * ... (in reply to RCPT TO command)", "connect to H[A]:P: Connection refused",
 * "lost connection with H[A] while ...". A failure before MAIL FROM
 * (connect, greeting, EHLO, TLS) moves on to the next address / MX host; a
 * failed TLS handshake is retried once on the same address without STARTTLS
 * (opportunistic TLS, as Postfix's "may" level).
 */
#define LOG_SERVICE "smtp" /* its log lines: syslog_name/smtp[pid] */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "delivery.h"
#include "log.h"
#include "mx.h"
#include "server_config.h"
#include "transport_smtp.h"

#if LIBCURL_VERSION_NUM >= 0x080200
#define SMTP_OPT_RCPT_ALLOWFAILS CURLOPT_MAIL_RCPT_ALLOWFAILS
#else
#define SMTP_OPT_RCPT_ALLOWFAILS CURLOPT_MAIL_RCPT_ALLLOWFAILS /* spelled so until 8.2 */
#endif

#define SMTP_CONNECT_TIMEOUT 30L   /* seconds, as Postfix's smtp_connect_timeout */
#define SMTP_REPLY_TIMEOUT 300L    /* per reply, as Postfix's smtp_*_timeout */
#define SMTP_LOW_SPEED_TIME 300L   /* below 1 byte/s this long: give up */
#define SMTP_CONN_MAXAGE 30L       /* idle cached connections older than this are closed */
#define SMTP_MAX_TARGETS 10        /* addresses tried per delivery, over all MX hosts */
#define SMTP_REPLY_MAX 600         /* reply text kept per command */
#define SMTP_REPLY_TEXT_MAX 4096   /* a reply's text while it is read (Postfix keeps 4 KB) */
#define SMTP_STOP_GRACE_MS 2000    /* free(): a worker's time to stop before its sockets are cut */
#define SMTP_STOP_ROUNDS 10        /* then cut again once a second this often, then wait */
#define SMTP_LOG_MAX 2000          /* a worker's log line */

/* where a command or reply belongs in the dialogue */
enum stage {
    ST_NONE,
    ST_GREETING,
    ST_EHLO,
    ST_HELO,
    ST_STARTTLS,
    ST_MAIL,
    ST_RCPT,
    ST_DATA,
    ST_DOT, /* the reply after the message content */
    ST_OTHER,
};

struct reply {
    int code; /* 0: none received */
    char text[SMTP_REPLY_MAX];
};

struct target {
    char *name; /* host name (or the literal) for messages, SNI and the cache */
    char *addr; /* numeric address to connect to */
};

struct job;

/* one libcurl transfer: one target, one easy handle */
struct attempt {
    struct job *job;
    CURL *easy;
    struct curl_slist *rcpt_list;
    struct curl_slist *connect_to;
    size_t *rcpt_index;       /* curl's k-th RCPT is job recipient rcpt_index[k] */
    size_t nsent;             /* recipients given to curl */
    char errbuf[CURL_ERROR_SIZE];
    off_t pos;                /* content bytes handed to curl */
    int read_errno;           /* pread failed */
    /* the dialogue as seen by the debug callback */
    enum stage outstanding;   /* command waiting for its reply */
    int out_midline;          /* the last HEADER_OUT chunk did not end a line */
    struct buf line;          /* partial reply line */
    struct buf text;          /* reply being collected (multi-line) */
    int text_cut;             /* it went over SMTP_REPLY_TEXT_MAX: the rest was dropped */
    int mail_sent;            /* MAIL FROM went out on this attempt */
    enum stage last_cmd;      /* the last command sent */
    int tls_hello;            /* an EHLO reply came after a 220 to STARTTLS */
    struct reply greeting, hello, starttls, mail, data, dot;
    enum stage hello_stage;   /* ST_EHLO or ST_HELO */
    struct reply *rcpt;       /* per RCPT sent, in order */
    size_t nreplied;
};

struct lookup;
struct worker;

struct job {
    struct worker *w;         /* the worker that runs it; fixed at submission */
    struct job *prev, *next;  /* the worker's running jobs (worker thread) */
    struct job *qnext;        /* the worker's inbox (under worker->mu) */
    delivery_done_fn done;
    void *ctx;
    char *id, *sender, *helo, *resolver, *host;
    char **rcpts;
    char *bad;                /* bad[i]: recipient i is not sent (bad syntax, already set) */
    size_t nrcpt;
    int fd;
    off_t offset, size;
    int port, mx;
    struct target *targets;
    size_t ntargets, cur;
    int tls_off;              /* retry the current target without STARTTLS */
    struct lookup *lookup;    /* DNS in progress */
    struct attempt *att;      /* transfer in progress */
    struct delivery_report rep;
    int have_error;           /* rep holds a session failure of an earlier target */
    double setup_secs;        /* DNS and earlier targets: report->conn_time */
};

/* the DNS threads' way back to their worker's loop */
struct dns_hub {
    pthread_mutex_t mu;
    int efd;
    int refs;                 /* the worker + running lookups */
    int closed;               /* the worker is gone */
    struct lookup *done;      /* finished lookups not yet taken by the worker */
};

struct lookup {
    struct dns_hub *hub;
    struct lookup *next;
    struct job *job;          /* read and written by the worker thread only */
    /* input */
    char *resolver, *domain, *self;
    int mx;
    /* output: targets, or a failure */
    struct target *targets;
    size_t ntargets;
    enum delivery_status status;
    char dsn[QUEUE_DSN_MAX + 1];
    char why[QUEUE_REASON_MAX + 1];
    double secs;
};

/* a socket curl asked a worker to watch */
struct sock {
    struct worker *w;
    struct sock *prev, *next;
    curl_socket_t fd;
    struct event *ev;
};

/* what a worker hands to the caller's thread: a finished job, or a log line */
enum wlevel { WL_DEBUG, WL_INFO, WL_WARN };

struct msg {
    struct msg *next;
    struct job *job;          /* non-NULL: call its done() */
    enum wlevel level;        /* else: log text at this level */
    char *text;
};

struct worker {
    struct smtp_transport *t;
    unsigned index;
    pthread_t tid;
    int started;              /* the thread runs (or ran): join it */
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct dns_hub *hub;
    struct event *hub_ev;
    int efd;                  /* written by the caller: look at the inbox */
    struct event *wake_ev;
    /* the worker thread only (the caller before the start and after the join) */
    struct job *jobs;
    struct sock *socks;
    int verbose;
    /* from the caller, under mu */
    pthread_mutex_t mu;
    struct job *inbox, *inbox_tail;
    int stop;
    int conf_changed;
    long limit;
    int new_verbose;
    /* every socket curl has open, under fdmu (open_cb, close_cb, cut_sockets) */
    pthread_mutex_t fdmu;
    curl_socket_t *fds;
    size_t nfds;
    int cut;                  /* the caller shut them down: open no more */
};

struct smtp_transport {
    struct event_base *base;  /* the caller's loop: done() runs there */
    char *helo, *resolver;    /* the config jobs are started with (caller thread) */
    size_t njobs;             /* accepted, done() not yet called (caller thread) */
    pthread_mutex_t mu;       /* the outbox */
    struct msg *out, *out_tail;
    int efd;                  /* written by workers: look at the outbox */
    struct event *out_ev;
    struct worker w[SMTP_TRANSPORT_WORKERS];
};

static void start_attempt(struct job *job);
static void check_done(struct worker *w);
static void wlog(struct worker *w, enum wlevel level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---------------------------------------------------------------- helpers */

/* is_ip - whether s is a numeric IPv4 or IPv6 address; 6 for IPv6, 4 for IPv4, 0 otherwise */
static int is_ip(const char *s)
{
    unsigned char bin[16];

    if (inet_pton(AF_INET, s, bin) == 1)
        return 4;
    if (inet_pton(AF_INET6, s, bin) == 1)
        return 6;
    return 0;
}

/* targets_free - release a target array */
static void targets_free(struct target *tg, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(tg[i].name);
        free(tg[i].addr);
    }
    free(tg);
}

/* target_add - append name/addr unless the list is full */
static void target_add(struct target **tg, size_t *n, const char *name, const char *addr)
{
    if (*n >= SMTP_MAX_TARGETS)
        return;
    *tg = xreallocarray(*tg, *n + 1, sizeof(**tg));
    (*tg)[*n].name = xstrdup(name);
    (*tg)[*n].addr = xstrdup(addr);
    (*n)++;
}

/* ---------------------------------------------------------------- DNS (lookup threads) */

/* resolve_addrs - A then AAAA of lk->domain as the targets (no MX involved) */
static void resolve_addrs(struct lookup *lk)
{
    char why[512];
    struct mx_resolver *r = mx_resolver_new(lk->resolver, why, sizeof(why));
    struct mx_list list = { NULL, 0 };
    enum mx_status st;

    if (r == NULL) {
        lk->status = DELIVERY_TEMP;
        snprintf(lk->dsn, sizeof(lk->dsn), "4.3.5");
        snprintf(lk->why, sizeof(lk->why), "cannot initialise the resolver for %s", lk->domain);
        return;
    }
    st = mx_lookup_host(r, lk->domain, &list, why, sizeof(why));
    mx_resolver_free(r);
    for (size_t i = 0; i < list.count; i++)
        for (size_t k = 0; k < list.hosts[i].naddrs; k++)
            target_add(&lk->targets, &lk->ntargets, lk->domain, list.hosts[i].addrs[k]);
    mx_list_free(&list);
    if (lk->ntargets > 0)
        return;
    if (st == MX_TEMPFAIL) {
        lk->status = DELIVERY_TEMP;
        snprintf(lk->dsn, sizeof(lk->dsn), "4.4.3");
        snprintf(lk->why, sizeof(lk->why), "Host or domain name not found. Name service error "
                 "for name=%s type=A: Host not found, try again", lk->domain);
    } else {
        lk->status = DELIVERY_PERM;
        snprintf(lk->dsn, sizeof(lk->dsn), "5.4.4");
        snprintf(lk->why, sizeof(lk->why), "Host or domain name not found. Name service error "
                 "for name=%s type=%s: Host not found", lk->domain,
                 st == MX_NXDOMAIN ? "A" : "AAAA");
    }
}

/* resolve_mx - the MX hosts of lk->domain in preference order, their addresses as
   targets; no MX records: the domain's own A/AAAA */
static void resolve_mx(struct lookup *lk)
{
    struct mx_list list = { NULL, 0 };
    char why[512];
    struct mx_resolver *r = mx_resolver_new(lk->resolver, why, sizeof(why));
    enum mx_status st;

    if (r == NULL) {
        lk->status = DELIVERY_TEMP;
        snprintf(lk->dsn, sizeof(lk->dsn), "4.3.5");
        snprintf(lk->why, sizeof(lk->why), "dns_resolver: %s", why);
        return;
    }
    st = mx_lookup(r, lk->domain, lk->self, &list, why, sizeof(why));
    mx_resolver_free(r);
    switch (st) {
    case MX_OK:
        break;
    case MX_NODATA:
        /* mx.h: MX_NODATA is "no MX", a null MX, or every MX being this host */
        if (strstr(why, "null MX") != NULL) {
            lk->status = DELIVERY_PERM;
            snprintf(lk->dsn, sizeof(lk->dsn), "5.1.10");
            snprintf(lk->why, sizeof(lk->why), "Domain %s does not accept mail (nullMX)",
                     lk->domain);
        } else if (strstr(why, "this host") != NULL) {
            lk->status = DELIVERY_PERM;
            snprintf(lk->dsn, sizeof(lk->dsn), "5.4.6");
            snprintf(lk->why, sizeof(lk->why), "mail for %s loops back to myself", lk->domain);
        } else {
            resolve_addrs(lk);
        }
        mx_list_free(&list);
        return;
    case MX_NXDOMAIN:
        lk->status = DELIVERY_PERM;
        snprintf(lk->dsn, sizeof(lk->dsn), "5.4.4");
        snprintf(lk->why, sizeof(lk->why), "Host or domain name not found. Name service error "
                 "for name=%s type=MX: Host not found", lk->domain);
        mx_list_free(&list);
        return;
    case MX_TEMPFAIL:
        lk->status = DELIVERY_TEMP;
        snprintf(lk->dsn, sizeof(lk->dsn), "4.4.3");
        snprintf(lk->why, sizeof(lk->why), "Host or domain name not found. Name service error "
                 "for name=%s type=MX: Host not found, try again (%s)", lk->domain, why);
        mx_list_free(&list);
        return;
    }
    int temp = 0;
    const char *first_why = NULL;

    for (size_t i = 0; i < list.count; i++) {
        const struct mx_host *h = &list.hosts[i];

        if (h->naddrs == 0) {
            temp |= h->addr_status == MX_TEMPFAIL;
            if (first_why == NULL)
                first_why = h->addr_why;
        }
        for (size_t j = 0; j < h->naddrs; j++)
            target_add(&lk->targets, &lk->ntargets, h->name, h->addrs[j]);
    }
    if (lk->ntargets == 0) {
        lk->status = temp ? DELIVERY_TEMP : DELIVERY_PERM;
        snprintf(lk->dsn, sizeof(lk->dsn), temp ? "4.4.3" : "5.4.4");
        snprintf(lk->why, sizeof(lk->why), "Host or domain name not found. %s",
                 first_why ? first_why : "no address for any MX host");
    }
    mx_list_free(&list);
}

/* lookup_free - release a lookup and whatever it found */
static void lookup_free(struct lookup *lk)
{
    free(lk->resolver);
    free(lk->domain);
    free(lk->self);
    targets_free(lk->targets, lk->ntargets);
    free(lk);
}

/* hub_unref_locked - drop one reference; the last one frees the hub (mutex held on entry) */
static void hub_unref_locked(struct dns_hub *hub)
{
    int last = --hub->refs == 0;

    pthread_mutex_unlock(&hub->mu);
    if (last) {
        while (hub->done != NULL) {
            struct lookup *lk = hub->done;

            hub->done = lk->next;
            lookup_free(lk);
        }
        if (close(hub->efd) < 0)
            log_warn("smtp: close eventfd: %m");
        pthread_mutex_destroy(&hub->mu);
        free(hub);
    }
}

/* dns_worker - thread body: resolve, then hand the result to the worker's loop */
static void *dns_worker(void *arg)
{
    struct lookup *lk = arg;
    struct dns_hub *hub = lk->hub;
    long long t0 = clock_now_ms();
    uint64_t one = 1;

    if (lk->mx)
        resolve_mx(lk);
    else
        resolve_addrs(lk);
    lk->secs = (double) (clock_now_ms() - t0) / 1000.0;
    pthread_mutex_lock(&hub->mu);
    if (hub->closed) {
        lookup_free(lk);
    } else {
        lk->next = hub->done;
        hub->done = lk;
        /* an eventfd write only fails when the counter would overflow */
        if (write(hub->efd, &one, sizeof(one)) != (ssize_t) sizeof(one) && errno != EAGAIN)
            log_panic("smtp: eventfd write: %m");
    }
    hub_unref_locked(hub);
    return NULL;
}

/* ---------------------------------------------------------------- hand-over between threads */

/* wake - add one to an eventfd; only a counter about to overflow refuses, and
   then the reader is due anyway */
static void wake(int efd)
{
    uint64_t one = 1;

    if (write(efd, &one, sizeof(one)) != (ssize_t) sizeof(one) && errno != EAGAIN)
        log_panic("smtp: eventfd write: %m");
}

/* post - hand a finished job or a log line to the caller's thread */
static void post(struct smtp_transport *t, struct msg *m)
{
    m->next = NULL;
    pthread_mutex_lock(&t->mu);
    if (t->out_tail)
        t->out_tail->next = m;
    else
        t->out = m;
    t->out_tail = m;
    pthread_mutex_unlock(&t->mu);
    wake(t->efd);
}

/* wlog - a worker's log line, logged by the caller's thread (see the top) */
static void wlog(struct worker *w, enum wlevel level, const char *fmt, ...)
{
    char text[SMTP_LOG_MAX];
    struct msg *m;
    va_list ap;

    if (level == WL_DEBUG && !w->verbose)
        return;
    va_start(ap, fmt);
    if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
        snprintf(text, sizeof(text), "(unformattable log text)");
    va_end(ap);
    m = xcalloc(1, sizeof(*m));
    m->level = level;
    m->text = xstrdup(text);
    post(w->t, m);
}

/* ---------------------------------------------------------------- job end */

/* job_free - release a finished or cancelled job (its attempt is already gone);
   on the caller's thread, or on a worker's while the caller waits in free */
static void job_free(struct job *job)
{
    free(job->id);
    free(job->sender);
    free(job->helo);
    free(job->resolver);
    free(job->host);
    for (size_t i = 0; i < job->nrcpt; i++)
        free(job->rcpts[i]);
    free(job->rcpts);
    free(job->bad);
    if (job->fd >= 0 && close(job->fd) < 0)
        log_warn("%s: close content: %m", job->id);
    targets_free(job->targets, job->ntargets);
    delivery_report_free(&job->rep);
    free(job);
}

/* job_link - put a job on its worker's list of running jobs */
static void job_link(struct job *job)
{
    struct worker *w = job->w;

    job->prev = NULL;
    job->next = w->jobs;
    if (w->jobs)
        w->jobs->prev = job;
    w->jobs = job;
}

/* job_unlink - take a job off its worker's list */
static void job_unlink(struct job *job)
{
    struct worker *w = job->w;

    if (job->prev)
        job->prev->next = job->next;
    else
        w->jobs = job->next;
    if (job->next)
        job->next->prev = job->prev;
    job->prev = job->next = NULL;
}

/* finish - the job is over: hand it to the caller's thread, which calls done */
static void finish(struct job *job)
{
    struct msg *m = xcalloc(1, sizeof(*m));

    job_unlink(job);
    m->job = job;
    post(job->w->t, m);
}

/* attempt_free - remove the transfer from the multi handle and release it */
static void attempt_free(struct worker *w, struct attempt *a)
{
    if (a->easy) {
        curl_multi_remove_handle(w->multi, a->easy);
        curl_easy_cleanup(a->easy);
    }
    curl_slist_free_all(a->rcpt_list);
    curl_slist_free_all(a->connect_to);
    buf_free(&a->line);
    buf_free(&a->text);
    free(a->rcpt_index);
    free(a->rcpt);
    free(a);
}

/* ---------------------------------------------------------------- curl callbacks */

/* read_cb - CURLOPT_READFUNCTION: the next content bytes from the queue file */
static size_t read_cb(char *out, size_t size, size_t nmemb, void *arg)
{
    struct attempt *a = arg;
    struct job *job = a->job;
    size_t want = size * nmemb;
    off_t left = job->size - a->pos;
    ssize_t n;

    if (left <= 0)
        return 0;
    if ((off_t) want > left)
        want = (size_t) left;
    do
        n = pread(job->fd, out, want, job->offset + a->pos);
    while (n < 0 && errno == EINTR);
    if (n <= 0) {
        a->read_errno = n < 0 ? errno : EIO; /* 0: the file is shorter than it says */
        return CURL_READFUNC_ABORT;
    }
    a->pos += n;
    return (size_t) n;
}

/* seek_cb - CURLOPT_SEEKFUNCTION: curl rewinds when it resends on a fresh connection */
static int seek_cb(void *arg, curl_off_t offset, int origin)
{
    struct attempt *a = arg;

    if (origin != SEEK_SET || offset < 0 || offset > a->job->size)
        return CURL_SEEKFUNC_CANTSEEK;
    a->pos = (off_t) offset;
    return CURL_SEEKFUNC_OK;
}

/* stage_of - the stage of a command line curl sent */
static enum stage stage_of(const char *cmd, size_t len)
{
    static const struct {
        const char *verb;
        enum stage stage;
    } verbs[] = {
        { "EHLO", ST_EHLO }, { "HELO", ST_HELO }, { "STARTTLS", ST_STARTTLS },
        { "MAIL", ST_MAIL }, { "RCPT", ST_RCPT }, { "DATA", ST_DATA },
    };

    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
        size_t vl = strlen(verbs[i].verb);

        if (len >= vl && strncasecmp(cmd, verbs[i].verb, vl) == 0
            && (len == vl || cmd[vl] == ' ' || cmd[vl] == '\r' || cmd[vl] == '\n'
                || cmd[vl] == ':'))
            return verbs[i].stage;
    }
    return ST_OTHER;
}

/* dialogue_reset - a new connection: forget the replies of an earlier one */
static void dialogue_reset(struct attempt *a)
{
    a->outstanding = ST_GREETING;
    a->greeting.code = a->hello.code = a->starttls.code = 0;
    a->mail.code = a->data.code = a->dot.code = 0;
    a->nreplied = 0;
    a->mail_sent = a->tls_hello = 0;
    a->last_cmd = ST_NONE;
    buf_reset(&a->line);
    buf_reset(&a->text);
    a->text_cut = 0;
}

/* store - copy a complete reply */
static void store(struct reply *r, int code, const char *text)
{
    r->code = code;
    snprintf(r->text, sizeof(r->text), "%s", text);
}

/* got_reply - a complete reply: file it under the command it answers */
static void got_reply(struct attempt *a, int code, const char *text)
{
    enum stage st = a->outstanding;

    a->outstanding = ST_NONE;
    switch (st) {
    case ST_GREETING:
        store(&a->greeting, code, text);
        break;
    case ST_EHLO:
    case ST_HELO:
        store(&a->hello, code, text);
        a->hello_stage = st;
        a->tls_hello = a->starttls.code == 220;
        break;
    case ST_STARTTLS:
        store(&a->starttls, code, text);
        break;
    case ST_MAIL:
        store(&a->mail, code, text);
        break;
    case ST_RCPT:
        if (a->nreplied < a->nsent)
            store(&a->rcpt[a->nreplied++], code, text);
        break;
    case ST_DATA:
        store(&a->data, code, text);
        if (code == 354)
            a->outstanding = ST_DOT;
        break;
    case ST_DOT:
        store(&a->dot, code, text);
        break;
    case ST_NONE:
    case ST_OTHER:
        break;
    }
}

/* reply_line - one server line: collect multi-line replies, file complete ones */
static void reply_line(struct attempt *a, const char *line)
{
    int code = 0;
    int last = 1;

    if (strlen(line) >= 3 && line[0] >= '1' && line[0] <= '5' && line[1] >= '0'
        && line[1] <= '9' && line[2] >= '0' && line[2] <= '9'
        && (line[3] == 0 || line[3] == ' ' || line[3] == '-')) {
        code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        last = line[3] != '-';
    }
    const char *add = a->text.len == 0 || !code ? line : line + (line[3] ? 4 : 3);
    size_t n = strlen(add) + (a->text.len > 0);

    /* a reply of any number of lines is kept to SMTP_REPLY_TEXT_MAX bytes */
    if (a->text.len + n > SMTP_REPLY_TEXT_MAX) {
        n = SMTP_REPLY_TEXT_MAX - a->text.len;
        a->text_cut = 1;
    }
    if (n > 0 && a->text.len > 0) {
        buf_putc(&a->text, ' ');
        n--;
    }
    buf_append(&a->text, add, n);
    if (code && last) {
        if (a->text_cut) {
            const struct target *tg = &a->job->targets[a->job->cur];

            wlog(a->job->w, WL_WARN, "%s: reply from %s[%s] truncated to %d bytes", a->job->id,
                 tg->name, tg->addr, SMTP_REPLY_TEXT_MAX);
        }
        got_reply(a, code, buf_cstr(&a->text));
        buf_reset(&a->text);
        a->text_cut = 0;
    }
}

/* debug_cb - CURLOPT_DEBUGFUNCTION: follow commands and replies */
static int debug_cb(CURL *easy, curl_infotype type, char *data, size_t size, void *arg)
{
    struct attempt *a = arg;

    (void) easy;
    switch (type) {
    case CURLINFO_TEXT:
        if (size > 13 && strncmp(data, "Connected to ", 13) == 0)
            dialogue_reset(a);
        wlog(a->job->w, WL_DEBUG, "%s: curl: %.*s", a->job->id,
             (int) (size && data[size - 1] == '\n' ? size - 1 : size), data);
        break;
    case CURLINFO_HEADER_OUT:
        if (!a->out_midline) {
            a->outstanding = a->last_cmd = stage_of(data, size);
            if (a->outstanding == ST_MAIL)
                a->mail_sent = 1;
        }
        a->out_midline = size == 0 || data[size - 1] != '\n';
        wlog(a->job->w, WL_DEBUG, "%s: > %.*s", a->job->id, (int) (size >= 2 ? size - 2 : size),
             data);
        break;
    case CURLINFO_HEADER_IN:
        for (size_t i = 0; i < size; i++) {
            if (data[i] == '\n') {
                if (a->line.len && a->line.data[a->line.len - 1] == '\r')
                    a->line.data[--a->line.len] = 0;
                wlog(a->job->w, WL_DEBUG, "%s: < %s", a->job->id, buf_cstr(&a->line));
                reply_line(a, buf_cstr(&a->line));
                buf_reset(&a->line);
            } else if (a->line.len < SMTP_REPLY_TEXT_MAX) {
                buf_putc(&a->line, data[i]);
            } else {
                a->text_cut = 1;
            }
        }
        break;
    default:
        break;
    }
    return 0;
}

/* sock_cb - CURLMOPT_SOCKETFUNCTION: watch a socket as curl asks */
static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp);

/* sock_event - a watched socket is ready */
static void sock_event(evutil_socket_t fd, short what, void *arg)
{
    struct sock *s = arg;
    struct worker *w = s->w;
    int flags = 0, running = 0;

    if (what & EV_READ)
        flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(w->multi, fd, flags, &running);
    check_done(w);
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
    struct worker *w = arg;
    struct sock *s = sockp;
    short events = 0;

    (void) easy;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            event_free(s->ev);
            if (s->prev)
                s->prev->next = s->next;
            else
                w->socks = s->next;
            if (s->next)
                s->next->prev = s->prev;
            free(s);
            curl_multi_assign(w->multi, fd, NULL);
        }
        return 0;
    }
    if (what & CURL_POLL_IN)
        events |= EV_READ;
    if (what & CURL_POLL_OUT)
        events |= EV_WRITE;
    if (s == NULL) {
        s = xcalloc(1, sizeof(*s));
        s->w = w;
        s->fd = fd;
        s->next = w->socks;
        if (w->socks)
            w->socks->prev = s;
        w->socks = s;
        curl_multi_assign(w->multi, fd, s);
    } else {
        event_free(s->ev);
    }
    s->ev = event_new(w->base, fd, events | EV_PERSIST, sock_event, s);
    if (s->ev == NULL || event_add(s->ev, NULL) < 0)
        log_fatal("smtp: cannot watch socket %d with libevent", (int) fd);
    return 0;
}

/* timer_event - curl's timeout is due */
static void timer_event(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    int running = 0;

    (void) fd;
    (void) what;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(w);
}

/* timer_cb - CURLMOPT_TIMERFUNCTION: (re)arm or stop the one timer */
static int timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
    struct worker *w = arg;

    (void) multi;
    if (timeout_ms < 0) {
        evtimer_del(w->timer);
    } else {
        struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

        if (evtimer_add(w->timer, &tv) < 0)
            return -1;
    }
    return 0;
}

/* open_cb - CURLOPT_OPENSOCKETFUNCTION: a socket for curl, listed so that
   smtp_transport_free() can cut a worker stuck in a blocking wait */
static curl_socket_t open_cb(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct worker *w = arg;
    curl_socket_t fd = CURL_SOCKET_BAD;
    int saved;

    (void) purpose;
    pthread_mutex_lock(&w->fdmu);
    if (w->cut) {
        errno = ECONNABORTED;
    } else if ((fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol)) >= 0) {
        w->fds = xreallocarray(w->fds, w->nfds + 1, sizeof(*w->fds));
        w->fds[w->nfds++] = fd;
    }
    saved = errno;
    pthread_mutex_unlock(&w->fdmu);
    errno = saved;
    return fd;
}

/* close_cb - CURLOPT_CLOSESOCKETFUNCTION: unlist and close (under the lock, so
   cut_sockets never meets a number that was closed and reused) */
static int close_cb(void *arg, curl_socket_t fd)
{
    struct worker *w = arg;
    int rc, saved;

    pthread_mutex_lock(&w->fdmu);
    for (size_t i = 0; i < w->nfds; i++)
        if (w->fds[i] == fd) {
            w->fds[i] = w->fds[--w->nfds];
            break;
        }
    rc = close(fd);
    saved = errno;
    pthread_mutex_unlock(&w->fdmu);
    errno = saved;
    return rc;
}

/* cut_sockets - the caller's thread: shut down every socket of a worker that does
   not stop; its blocking wait in libcurl returns at once, and no new one opens */
static void cut_sockets(struct worker *w)
{
    pthread_mutex_lock(&w->fdmu);
    w->cut = 1;
    for (size_t i = 0; i < w->nfds; i++)
        shutdown(w->fds[i], SHUT_RDWR); /* ENOTCONN: already down; nothing to do */
    pthread_mutex_unlock(&w->fdmu);
}

/* ---------------------------------------------------------------- results */

/* peer - "name[addr]" of the current target */
static void peer(const struct job *job, char *out, size_t outlen)
{
    const struct target *tg = &job->targets[job->cur];

    snprintf(out, outlen, "%s[%s]", tg->name, tg->addr);
}

/* while_text - Postfix's "while ..." for a connection lost at a stage */
static const char *while_text(const struct attempt *a, enum stage st)
{
    switch (st) {
    case ST_GREETING:
    case ST_NONE:
        return "receiving the initial server greeting";
    case ST_EHLO:
        return "performing the EHLO handshake";
    case ST_HELO:
        return "performing the HELO handshake";
    case ST_STARTTLS:
        return "performing the STARTTLS handshake";
    case ST_MAIL:
        return "sending MAIL FROM";
    case ST_RCPT:
        return "sending RCPT TO";
    case ST_DATA:
        return "sending DATA command";
    case ST_DOT:
        return a->pos >= a->job->size ? "sending end of data -- message may be sent more than once"
                                      : "sending message body";
    case ST_OTHER:
        break;
    }
    return "talking to it";
}

/* set_said - recipient i from a reply: "host H[A] said: REPLY (in reply to WHAT)" */
static void set_said(struct job *job, size_t i, const struct reply *r, const char *what)
{
    char dsn[QUEUE_DSN_MAX + 1], who[300];
    enum delivery_status st = delivery_from_reply(r->code, r->text, dsn, sizeof(dsn));

    peer(job, who, sizeof(who));
    if (st == DELIVERY_OK) {
        /* a 2xx where a 354 or a failure was due: a protocol error, try later */
        st = DELIVERY_TEMP;
        snprintf(dsn, sizeof(dsn), "4.5.0");
    }
    delivery_set(&job->rep, i, st, dsn, "host %s said: %s (in reply to %s)", who, r->text, what);
}

/* set_lost - recipient i: the connection broke or timed out at stage st */
static void set_lost(struct job *job, size_t i, const struct attempt *a, CURLcode rc,
                     enum stage st)
{
    char who[300];

    peer(job, who, sizeof(who));
    if (st == ST_NONE)
        st = a->last_cmd; /* the reply came, the connection broke before the next step */
    if (a->read_errno) {
        delivery_set(&job->rep, i, DELIVERY_TEMP, "4.3.0", "error reading the queue file: %s",
                     strerror(a->read_errno));
        return;
    }
    if (rc == CURLE_OPERATION_TIMEDOUT)
        delivery_set(&job->rep, i, DELIVERY_TEMP, "4.4.2",
                     "conversation with %s timed out while %s", who, while_text(a, st));
    else
        delivery_set(&job->rep, i, DELIVERY_TEMP, "4.4.2", "lost connection with %s while %s",
                     who, while_text(a, st));
}

/* set_relay - report->relay from what curl connected to */
static void set_relay(struct job *job, CURL *easy)
{
    char *ip = NULL;
    long port = 0;

    if (curl_easy_getinfo(easy, CURLINFO_PRIMARY_IP, &ip) != CURLE_OK || ip == NULL || !*ip)
        ip = job->targets[job->cur].addr;
    if (curl_easy_getinfo(easy, CURLINFO_PRIMARY_PORT, &port) != CURLE_OK || port <= 0)
        port = job->port;
    snprintf(job->rep.relay, sizeof(job->rep.relay), "%s[%s]:%ld", job->targets[job->cur].name,
             ip, port);
}

/* set_valid_all - every recipient that was sent gets the same result */
static void set_valid_all(struct job *job, enum delivery_status st, const char *dsn,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set_valid_all(struct job *job, enum delivery_status st, const char *dsn,
                          const char *fmt, ...)
{
    char text[QUEUE_REASON_MAX + 1];
    va_list ap;

    va_start(ap, fmt);
    if (vsnprintf(text, sizeof(text), fmt, ap) < 0)
        snprintf(text, sizeof(text), "(unprintable reason)");
    va_end(ap);
    for (size_t i = 0; i < job->nrcpt; i++)
        if (!job->bad[i])
            delivery_set(&job->rep, i, st, dsn, "%s", text);
}

/* session_failed - the session never reached MAIL FROM: fill every recipient
   with why, and say whether another target is worth a try (1) */
static int session_failed(struct job *job, const struct attempt *a, CURLcode rc)
{
    char who[300];
    const struct target *tg = &job->targets[job->cur];

    peer(job, who, sizeof(who));
    job->have_error = 1;
    if (a->greeting.code == 0 && a->outstanding != ST_GREETING
        && (rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT)) {
        long oserr = 0;
        const char *why;

        curl_easy_getinfo(a->easy, CURLINFO_OS_ERRNO, &oserr);
        if (oserr != 0)
            why = strerror((int) oserr);
        else if (rc == CURLE_OPERATION_TIMEDOUT)
            why = "Connection timed out";
        else
            why = *a->errbuf ? a->errbuf : curl_easy_strerror(rc);
        snprintf(job->rep.relay, sizeof(job->rep.relay), "none");
        set_valid_all(job, DELIVERY_TEMP, "4.4.1", "connect to %s[%s]:%d: %s", tg->name,
                         tg->addr, job->port, why);
        return 1;
    }
    set_relay(job, a->easy);
    if (a->greeting.code != 0 && a->greeting.code / 100 != 2) {
        char dsn[QUEUE_DSN_MAX + 1];

        /* a refused greeting is never final (Postfix's smtp_skip_5xx_greeting) */
        delivery_from_reply(a->greeting.code, a->greeting.text, dsn, sizeof(dsn));
        dsn[0] = '4';
        set_valid_all(job, DELIVERY_TEMP, dsn, "host %s refused to talk to me: %s",
                         who, a->greeting.text);
        return 1;
    }
    if (a->starttls.code == 220 && !a->tls_hello) {
        set_valid_all(job, DELIVERY_TEMP, "4.7.5", "Cannot start TLS: handshake failure "
                              "with %s: %s", who, *a->errbuf ? a->errbuf : curl_easy_strerror(rc));
        return 1;
    }
    if (a->hello.code != 0 && a->hello.code / 100 != 2 && a->outstanding == ST_NONE) {
        for (size_t k = 0; k < a->nsent; k++)
            set_said(job, a->rcpt_index[k], &a->hello,
                     a->hello_stage == ST_HELO ? "HELO command" : "EHLO command");
        return 1;
    }
    for (size_t k = 0; k < a->nsent; k++)
        set_lost(job, a->rcpt_index[k], a, rc, a->outstanding);
    return 1;
}

/* transaction_result - the session reached MAIL FROM: a result per recipient */
static void transaction_result(struct job *job, const struct attempt *a, CURLcode rc)
{
    size_t accepted = 0;

    set_relay(job, a->easy);
    job->have_error = 0;
    if (a->mail.code == 0) {
        for (size_t k = 0; k < a->nsent; k++)
            set_lost(job, a->rcpt_index[k], a, rc, ST_MAIL);
        return;
    }
    if (a->mail.code / 100 != 2) {
        for (size_t k = 0; k < a->nsent; k++)
            set_said(job, a->rcpt_index[k], &a->mail, "MAIL FROM command");
        return;
    }
    for (size_t k = 0; k < a->nsent; k++) {
        if (k >= a->nreplied)
            set_lost(job, a->rcpt_index[k], a, rc, ST_RCPT);
        else if (a->rcpt[k].code / 100 != 2)
            set_said(job, a->rcpt_index[k], &a->rcpt[k], "RCPT TO command");
        else
            accepted++;
    }
    if (accepted == 0)
        return;
    for (size_t k = 0; k < a->nreplied; k++) {
        size_t i = a->rcpt_index[k];

        if (a->rcpt[k].code / 100 != 2)
            continue;
        if (a->data.code == 0) {
            set_lost(job, i, a, rc, ST_DATA);
        } else if (a->data.code != 354) {
            set_said(job, i, &a->data, "DATA command");
        } else if (a->dot.code == 0) {
            set_lost(job, i, a, rc, ST_DOT);
        } else if (a->dot.code / 100 != 2) {
            set_said(job, i, &a->dot, "end of DATA command");
        } else {
            char dsn[QUEUE_DSN_MAX + 1];

            delivery_from_reply(a->dot.code, a->dot.text, dsn, sizeof(dsn));
            delivery_set(&job->rep, i, DELIVERY_OK, dsn, "%s", a->dot.text);
        }
    }
}

/* attempt_done - one transfer ended: judge it, then try the next target or finish */
static void attempt_done(struct job *job, CURLcode rc)
{
    struct worker *w = job->w;
    struct attempt *a = job->att;
    curl_off_t connect_us = 0, setup_us = 0, total_us = 0;
    int next;

    /* Postfix's "c" is connection setup including EHLO and TLS: for SMTP that
       ends where curl's transfer phase starts (pretransfer) */
    curl_easy_getinfo(a->easy, CURLINFO_CONNECT_TIME_T, &connect_us);
    curl_easy_getinfo(a->easy, CURLINFO_PRETRANSFER_TIME_T, &setup_us);
    curl_easy_getinfo(a->easy, CURLINFO_TOTAL_TIME_T, &total_us);
    if (setup_us > connect_us)
        connect_us = setup_us;
    wlog(w, WL_DEBUG, "%s: %s[%s]:%d: curl result %d (%s)", job->id,
         job->targets[job->cur].name, job->targets[job->cur].addr, job->port, (int) rc,
         *a->errbuf ? a->errbuf : curl_easy_strerror(rc));
    if (!a->mail_sent) {
        /* never got to (an answer for) MAIL FROM: the session itself failed */
        /* STARTTLS was answered 220, but no EHLO reply came over TLS */
        int tls_failed = a->starttls.code == 220 && !a->tls_hello && !job->tls_off;

        session_failed(job, a, rc);
        job->setup_secs += (double) total_us / 1e6;
        job->att = NULL;
        attempt_free(w, a);
        if (tls_failed) {
            job->tls_off = 1; /* opportunistic TLS: the same host once more in plaintext */
            start_attempt(job);
            return;
        }
        job->tls_off = 0;
        next = job->cur + 1 < job->ntargets;
        if (next) {
            job->cur++;
            start_attempt(job);
            return;
        }
        job->rep.conn_time = job->setup_secs;
        finish(job);
        return;
    }
    transaction_result(job, a, rc);
    job->rep.conn_time = job->setup_secs + (double) connect_us / 1e6;
    job->rep.xmit_time = (double) (total_us - connect_us) / 1e6;
    if (job->rep.xmit_time < 0)
        job->rep.xmit_time = 0;
    job->att = NULL;
    attempt_free(w, a);
    finish(job);
}

/* check_done - collect finished transfers */
static void check_done(struct worker *w)
{
    CURLMsg *msg;
    int left = 0;

    while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
        struct job *job = NULL;

        if (msg->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;

        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        job = (struct job *) (void *) priv;
        if (job == NULL || job->att == NULL || job->att->easy != msg->easy_handle)
            continue;
        attempt_done(job, msg->data.result);
    }
}

/* ---------------------------------------------------------------- starting */

/* url_host - a host for a URL: IPv6 literals in brackets */
static void url_host(const char *name, char *out, size_t outlen)
{
    if (is_ip(name) == 6)
        snprintf(out, outlen, "[%s]", name);
    else
        snprintf(out, outlen, "%s", name);
}

/* fail_job - no attempt possible: every recipient gets why, then finish */
static void fail_job(struct job *job, enum delivery_status st, const char *dsn, const char *why)
{
    set_valid_all(job, st, dsn, "%s", why);
    job->rep.conn_time = job->setup_secs;
    finish(job);
}

/* start_attempt - one curl transfer to job->targets[job->cur] */
static void start_attempt(struct job *job)
{
    struct worker *w = job->w;
    const struct target *tg = &job->targets[job->cur];
    struct attempt *a = xcalloc(1, sizeof(*a));
    char host[300], addr[300], url[700], conn[700], from[QUEUE_REASON_MAX + 8];
    CURL *e;

    a->job = job;
    a->rcpt_index = xcalloc(job->nrcpt, sizeof(*a->rcpt_index));
    a->rcpt = xcalloc(job->nrcpt, sizeof(*a->rcpt));
    a->outstanding = ST_NONE;
    for (size_t i = 0; i < job->nrcpt; i++) {
        char r[1100];

        if (job->bad[i])
            continue;
        snprintf(r, sizeof(r), "<%s>", job->rcpts[i]);
        a->rcpt_list = curl_slist_append(a->rcpt_list, r);
        if (a->rcpt_list == NULL)
            log_fatal("smtp: out of memory");
        a->rcpt_index[a->nsent++] = i;
    }
    url_host(tg->name, host, sizeof(host));
    url_host(tg->addr, addr, sizeof(addr));
    snprintf(url, sizeof(url), "smtp://%s:%d/%s", host, job->port, job->helo);
    snprintf(conn, sizeof(conn), "::%s:%d", addr, job->port);
    snprintf(from, sizeof(from), "<%s>", job->sender);
    a->connect_to = curl_slist_append(NULL, conn);
    if ((e = curl_easy_init()) == NULL || a->connect_to == NULL) {
        if (e)
            curl_easy_cleanup(e);
        attempt_free(w, a);
        fail_job(job, DELIVERY_TEMP, "4.3.0", "cannot create a libcurl handle");
        return;
    }
    a->easy = e;
    job->att = a;
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *) job);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp");
    curl_easy_setopt(e, CURLOPT_CONNECT_TO, a->connect_to);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, a->rcpt_list);
    curl_easy_setopt(e, SMTP_OPT_RCPT_ALLOWFAILS, 1L);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(e, CURLOPT_READDATA, a);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_cb);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, a);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t) job->size);
    curl_easy_setopt(e, CURLOPT_USE_SSL, job->tls_off ? (long) CURLUSESSL_NONE
                                                      : (long) CURLUSESSL_TRY);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, SMTP_CONNECT_TIMEOUT);
    curl_easy_setopt(e, CURLOPT_SERVER_RESPONSE_TIMEOUT, SMTP_REPLY_TIMEOUT);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, SMTP_LOW_SPEED_TIME);
    curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, SMTP_CONN_MAXAGE);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, a->errbuf);
    curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, debug_cb);
    curl_easy_setopt(e, CURLOPT_DEBUGDATA, a);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, w);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, w);
    wlog(w, WL_DEBUG, "%s: trying %s[%s]:%d%s (worker %u)", job->id, tg->name, tg->addr,
         job->port, job->tls_off ? " without STARTTLS" : "", w->index);
    if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
        job->att = NULL;
        attempt_free(w, a);
        fail_job(job, DELIVERY_TEMP, "4.3.0", "cannot start a libcurl transfer");
    }
}

/* lookup_event - lookup threads have results: continue their jobs */
static void lookup_event(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct lookup *list;
    uint64_t count;

    (void) what;
    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        wlog(w, WL_WARN, "smtp: worker %u: eventfd read: %m", w->index);
    pthread_mutex_lock(&w->hub->mu);
    list = w->hub->done;
    w->hub->done = NULL;
    pthread_mutex_unlock(&w->hub->mu);
    while (list != NULL) {
        struct lookup *lk = list;
        struct job *job = lk->job;

        list = lk->next;
        job->lookup = NULL;
        job->setup_secs += lk->secs;
        if (lk->ntargets == 0) {
            fail_job(job, lk->status, lk->dsn, lk->why);
        } else {
            job->targets = lk->targets;
            job->ntargets = lk->ntargets;
            lk->targets = NULL;
            lk->ntargets = 0;
            start_attempt(job);
        }
        lookup_free(lk);
    }
}

/* job_start - the job's first step, on its worker: resolve or connect */
static void job_start(struct job *job)
{
    struct worker *w = job->w;
    struct lookup *lk;
    pthread_attr_t attr;
    pthread_t tid;
    int err;

    for (size_t i = 0; i < job->nrcpt; i++)
        if (!job->bad[i])
            break;
        else if (i + 1 == job->nrcpt) {
            finish(job); /* nothing to send: every address was refused already */
            return;
        }
    if (!job->mx && is_ip(job->host)) {
        target_add(&job->targets, &job->ntargets, job->host, job->host);
        start_attempt(job);
        return;
    }
    lk = xcalloc(1, sizeof(*lk));
    lk->hub = w->hub;
    lk->job = job;
    lk->resolver = job->resolver ? xstrdup(job->resolver) : NULL;
    lk->domain = xstrdup(job->host);
    lk->self = xstrdup(job->helo);
    lk->mx = job->mx;
    pthread_mutex_lock(&w->hub->mu);
    w->hub->refs++;
    pthread_mutex_unlock(&w->hub->mu);
    if ((err = pthread_attr_init(&attr)) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        err = pthread_create(&tid, &attr, dns_worker, lk);
        pthread_attr_destroy(&attr);
    }
    if (err != 0) {
        char why[200];

        pthread_mutex_lock(&w->hub->mu);
        w->hub->refs--;
        pthread_mutex_unlock(&w->hub->mu);
        lookup_free(lk);
        snprintf(why, sizeof(why), "cannot start a resolver thread: %s", strerror(err));
        fail_job(job, DELIVERY_TEMP, "4.3.0", why);
        return;
    }
    job->lookup = lk;
}

/* ---------------------------------------------------------------- workers */

/* apply_limit - the destination concurrency limit on a worker's multi handle */
static void apply_limit(struct worker *w, long limit)
{
    /* the qmgr never runs more than limit jobs per destination, so curl never has to
       queue a transfer; idle connections stay cached for the next job to that host */
    curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS, limit);
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, limit * 4 < 400 ? limit * 4 : 400L);
}

/* worker_step - take what the caller left: a new config, new jobs (started), the
   stop flag (returned; the jobs are then only linked, for worker_teardown) */
static int worker_step(struct worker *w)
{
    struct job *list;
    int changed, stop;
    long limit;

    pthread_mutex_lock(&w->mu);
    list = w->inbox;
    w->inbox = w->inbox_tail = NULL;
    stop = w->stop;
    changed = w->conf_changed;
    w->conf_changed = 0;
    limit = w->limit;
    if (changed)
        w->verbose = w->new_verbose;
    pthread_mutex_unlock(&w->mu);
    if (changed)
        apply_limit(w, limit);
    while (list != NULL) {
        struct job *job = list;

        list = job->qnext;
        job->qnext = NULL;
        job_link(job);
        if (!stop)
            job_start(job);
    }
    return stop;
}

/* wake_event - the caller wrote the worker's eventfd (read first, then look, so
   no wake-up is lost) */
static void wake_event(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t count;

    (void) what;
    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        wlog(w, WL_WARN, "smtp: worker %u: eventfd read: %m", w->index);
    if (worker_step(w))
        event_base_loopbreak(w->base);
}

/* worker_teardown - drop the worker's jobs (no report) and release its curl and
   event objects; on the worker at its end, or on the caller if it never started */
static void worker_teardown(struct worker *w)
{
    struct job *list;

    /* transfers in progress first: a handle removed mid-transfer makes curl send
       "." after a partial body and wait for the reply; on a shut down socket the
       send fails and nothing is waited for */
    for (struct sock *s = w->socks; s != NULL; s = s->next)
        shutdown(s->fd, SHUT_RDWR); /* ENOTCONN: not connected yet or already down */
    pthread_mutex_lock(&w->mu);
    list = w->inbox;
    w->inbox = w->inbox_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    while (list != NULL) {
        struct job *job = list;

        list = job->qnext;
        job_free(job);
    }
    while (w->jobs != NULL) {
        struct job *job = w->jobs;

        job_unlink(job);
        if (job->att) {
            attempt_free(w, job->att);
            job->att = NULL;
        }
        if (job->lookup)
            job->lookup->job = NULL; /* the lookup thread frees it: the hub is closed below */
        job_free(job);
    }
    if (w->multi) {
        /* QUIT to cached connections; it must not call back into freed events */
        curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, NULL);
        curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, NULL);
        curl_multi_cleanup(w->multi);
        w->multi = NULL;
    }
    while (w->socks != NULL) {
        struct sock *s = w->socks;

        w->socks = s->next;
        event_free(s->ev);
        free(s);
    }
    if (w->timer)
        event_free(w->timer);
    if (w->hub_ev)
        event_free(w->hub_ev);
    if (w->wake_ev)
        event_free(w->wake_ev);
    w->timer = w->hub_ev = w->wake_ev = NULL;
    if (w->hub) {
        pthread_mutex_lock(&w->hub->mu);
        w->hub->closed = 1;
        hub_unref_locked(w->hub);
        w->hub = NULL;
    }
}

/* worker_main - thread body: the worker's loop until the stop flag */
static void *worker_main(void *arg)
{
    struct worker *w = arg;

    /* a stop set before the loop runs: event_base_loopbreak() would be forgotten */
    if (!worker_step(w) && event_base_dispatch(w->base) != 0)
        log_fatal("smtp: worker %u: event loop failed", w->index);
    worker_teardown(w);
    return NULL;
}

/* worker_init - a worker's loop, multi handle, DNS hub and eventfds (not started) */
static int worker_init(struct smtp_transport *t, struct worker *w, unsigned index, char *err,
                       size_t errlen)
{
    struct dns_hub *hub = xcalloc(1, sizeof(*hub));

    w->t = t;
    w->index = index;
    hub->refs = 1;
    pthread_mutex_init(&hub->mu, NULL);
    if ((hub->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0
        || (w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        if (hub->efd >= 0 && close(hub->efd) < 0)
            log_warn("smtp: close eventfd: %m");
        pthread_mutex_destroy(&hub->mu);
        free(hub);
        return -1;
    }
    w->hub = hub;
    w->base = event_base_new();
    w->multi = curl_multi_init();
    if (w->base == NULL || w->multi == NULL) {
        snprintf(err, errlen, "cannot create an event loop and a libcurl multi handle");
        return -1;
    }
    w->timer = evtimer_new(w->base, timer_event, w);
    w->hub_ev = event_new(w->base, hub->efd, EV_READ | EV_PERSIST, lookup_event, w);
    w->wake_ev = event_new(w->base, w->efd, EV_READ | EV_PERSIST, wake_event, w);
    if (w->timer == NULL || w->hub_ev == NULL || w->wake_ev == NULL
        || event_add(w->hub_ev, NULL) < 0 || event_add(w->wake_ev, NULL) < 0) {
        snprintf(err, errlen, "cannot set up libcurl multi on libevent");
        return -1;
    }
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    return 0;
}

/* worker_join - the caller waits for a stopping worker: until deadline, then with
   its sockets cut (a receiver that does not answer "." or QUIT) */
static void worker_join(struct worker *w, const struct timespec *deadline)
{
    struct timespec ts = *deadline;
    int err = pthread_timedjoin_np(w->tid, NULL, &ts);

    for (int round = 0; err == ETIMEDOUT && round < SMTP_STOP_ROUNDS; round++) {
        if (round == 0)
            log_warn("smtp: worker %u has not stopped after %d ms (a receiver is not "
                     "answering); closing its connections", w->index, SMTP_STOP_GRACE_MS);
        cut_sockets(w);
        if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
            log_panic("smtp: clock_gettime: %m");
        ts.tv_sec += 1;
        err = pthread_timedjoin_np(w->tid, NULL, &ts);
    }
    if (err == ETIMEDOUT) {
        log_error("smtp: worker %u still runs with its connections closed; waiting for it",
                  w->index);
        err = pthread_join(w->tid, NULL);
    }
    if (err != 0)
        log_panic("smtp: worker %u: join: %s", w->index, strerror(err));
    w->started = 0;
}

/* worker_release - the caller frees what is left of a stopped worker */
static void worker_release(struct worker *w)
{
    if (w->base)
        event_base_free(w->base);
    if (w->efd >= 0 && close(w->efd) < 0)
        log_warn("smtp: close eventfd: %m");
    free(w->fds);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->fdmu);
}

/* ---------------------------------------------------------------- the caller's side */

/* out_take - take the outbox; with report, call done for finished jobs and log
   the workers' lines, else (free) only log */
static void out_take(struct smtp_transport *t, int report)
{
    struct msg *list;

    pthread_mutex_lock(&t->mu);
    list = t->out;
    t->out = t->out_tail = NULL;
    pthread_mutex_unlock(&t->mu);
    while (list != NULL) {
        struct msg *m = list;

        list = m->next;
        if (m->job != NULL) {
            const struct delivery_report *rep = &m->job->rep;
            size_t ok = 0;

            t->njobs--;
            if (report) {
                m->job->done(m->job->ctx, rep);
            } else {
                for (size_t i = 0; i < rep->nrcpt; i++)
                    ok += rep->rcpt[i].status == DELIVERY_OK;
                if (ok > 0)
                    log_warn("%s: smtp: %s accepted %zu recipient(s) after the transport was "
                             "told to stop; not reported, so the message stays queued and "
                             "may be sent again", m->job->id, rep->relay, ok);
            }
            job_free(m->job);
        } else if (m->level == WL_WARN) {
            log_warn("%s", m->text);
        } else if (m->level == WL_INFO) {
            log_info("%s", m->text);
        } else {
            log_debug("%s", m->text);
        }
        free(m->text);
        free(m);
    }
}

/* out_event - a worker wrote the outbox eventfd */
static void out_event(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_transport *t = arg;
    uint64_t count;

    (void) what;
    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        log_warn("smtp: eventfd read: %m");
    out_take(t, 1);
}

/* ---------------------------------------------------------------- public */

/* smtp_transport_shard - the worker for a route: a hash of host (any case), port, mx */
unsigned smtp_transport_shard(const struct server_route *route)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    char tail[32];

    for (const char *p = route->host; *p; p++) {
        h ^= (uint32_t) tolower((unsigned char) *p);
        h *= 16777619u;
    }
    snprintf(tail, sizeof(tail), ":%d/%d", route->port > 0 ? route->port : 25, route->mx ? 1 : 0);
    for (const char *p = tail; *p; p++) {
        h ^= (uint32_t) (unsigned char) *p;
        h *= 16777619u;
    }
    /* FNV's low bits depend on the inputs' low bits only: mix before the modulo */
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h % SMTP_TRANSPORT_WORKERS;
}

/* smtp_transport_new - the workers, and the outbox on the caller's base */
struct smtp_transport *smtp_transport_new(struct event_base *base,
                                          const struct server_config *conf, char *err,
                                          size_t errlen)
{
    struct smtp_transport *t;
    sigset_t all, old;

    /* not thread-safe in libcurl 7.88: before any thread of ours exists */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "curl_global_init failed");
        return NULL;
    }
    t = xcalloc(1, sizeof(*t));
    t->base = base;
    pthread_mutex_init(&t->mu, NULL);
    for (unsigned i = 0; i < SMTP_TRANSPORT_WORKERS; i++) {
        t->w[i].efd = -1;
        pthread_mutex_init(&t->w[i].mu, NULL);
        pthread_mutex_init(&t->w[i].fdmu, NULL);
    }
    t->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->efd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        smtp_transport_free(t);
        return NULL;
    }
    t->out_ev = event_new(base, t->efd, EV_READ | EV_PERSIST, out_event, t);
    if (t->out_ev == NULL || event_add(t->out_ev, NULL) < 0) {
        snprintf(err, errlen, "cannot watch an eventfd with libevent");
        smtp_transport_free(t);
        return NULL;
    }
    for (unsigned i = 0; i < SMTP_TRANSPORT_WORKERS; i++)
        if (worker_init(t, &t->w[i], i, err, errlen) < 0) {
            smtp_transport_free(t);
            return NULL;
        }
    smtp_transport_set_config(t, conf);
    /* signals stay with the caller's thread (libevent's signal events there) */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < SMTP_TRANSPORT_WORKERS; i++) {
        int e = pthread_create(&t->w[i].tid, NULL, worker_main, &t->w[i]);

        if (e != 0) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            snprintf(err, errlen, "cannot start an smtp worker thread: %s", strerror(e));
            smtp_transport_free(t);
            return NULL;
        }
        t->w[i].started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return t;
}

/* smtp_transport_set_config - copy what jobs started from now on need; conf may go
   after the call */
void smtp_transport_set_config(struct smtp_transport *t, const struct server_config *conf)
{
    long limit = conf->default_destination_concurrency_limit > 0
                 ? (long) conf->default_destination_concurrency_limit : 20;
    int verbose = log_verbose();

    free(t->helo);
    free(t->resolver);
    t->helo = xstrdup(conf->myhostname ? conf->myhostname : "localhost");
    t->resolver = conf->dns_resolver && *conf->dns_resolver ? xstrdup(conf->dns_resolver) : NULL;
    for (unsigned i = 0; i < SMTP_TRANSPORT_WORKERS; i++) {
        struct worker *w = &t->w[i];

        pthread_mutex_lock(&w->mu);
        w->limit = limit;
        w->new_verbose = verbose;
        w->conf_changed = 1;
        pthread_mutex_unlock(&w->mu);
        if (w->started)
            wake(w->efd);
    }
}

/* bad_address - whether an address cannot go into MAIL FROM:<...> or RCPT TO:<...> */
static int bad_address(const char *s)
{
    for (const unsigned char *p = (const unsigned char *) s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>')
            return 1;
    return 0;
}

/* smtp_transport_deliver - copy one job into its worker's inbox; done() follows
   from the caller's loop */
int smtp_transport_deliver(struct smtp_transport *t, const struct delivery_job *in,
                           delivery_done_fn done, void *ctx)
{
    struct job *job;
    struct worker *w;

    if (in->nrcpt == 0 || in->route.host[0] == 0 || in->content_size < 0 || done == NULL) {
        log_warn("%s: smtp: refusing a job without recipients, next hop or content",
                 in->id ? in->id : "?");
        return -1;
    }
    job = xcalloc(1, sizeof(*job));
    job->fd = fcntl(in->content_fd, F_DUPFD_CLOEXEC, 0);
    if (job->fd < 0) {
        log_warn("%s: smtp: dup content fd: %m", in->id ? in->id : "?");
        free(job);
        return -1;
    }
    w = &t->w[smtp_transport_shard(&in->route)];
    job->w = w;
    job->done = done;
    job->ctx = ctx;
    job->id = xstrdup(in->id ? in->id : "?");
    job->sender = xstrdup(in->sender ? in->sender : "");
    job->helo = xstrdup(t->helo);
    job->resolver = t->resolver ? xstrdup(t->resolver) : NULL;
    job->host = xstrdup(in->route.host);
    job->port = in->route.port > 0 ? in->route.port : 25;
    job->mx = in->route.mx;
    job->offset = in->content_offset;
    job->size = in->content_size;
    job->rcpts = xcalloc(in->nrcpt, sizeof(*job->rcpts));
    for (size_t i = 0; i < in->nrcpt; i++)
        job->rcpts[i] = xstrdup(in->rcpts[i]);
    job->nrcpt = in->nrcpt;
    delivery_report_init(&job->rep, in->nrcpt);
    job->bad = xcalloc(in->nrcpt, 1);
    for (size_t i = 0; i < in->nrcpt; i++) {
        if (bad_address(job->sender)) {
            job->bad[i] = 1;
            delivery_set(&job->rep, i, DELIVERY_PERM, "5.1.7", "bad sender address syntax");
        } else if (bad_address(job->rcpts[i]) || job->rcpts[i][0] == 0) {
            job->bad[i] = 1;
            delivery_set(&job->rep, i, DELIVERY_PERM, "5.1.3", "bad recipient address syntax");
        }
    }
    log_debug("%s: smtp: %s%s:%d goes to worker %u", job->id, job->mx ? "mx:" : "", job->host,
              job->port, w->index);
    pthread_mutex_lock(&w->mu);
    if (w->inbox_tail)
        w->inbox_tail->qnext = job;
    else
        w->inbox = job;
    w->inbox_tail = job;
    pthread_mutex_unlock(&w->mu);
    wake(w->efd);
    t->njobs++;
    return 0;
}

/* smtp_transport_active - jobs accepted whose done() has not run yet */
size_t smtp_transport_active(const struct smtp_transport *t)
{
    return t->njobs;
}

/* smtp_transport_free - stop the workers (bounded, see the top), drop every
   unreported job without done, release all */
void smtp_transport_free(struct smtp_transport *t)
{
    struct timespec deadline;

    if (t == NULL)
        return;
    for (unsigned i = 0; i < SMTP_TRANSPORT_WORKERS; i++) {
        struct worker *w = &t->w[i];

        if (!w->started)
            continue;
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_mutex_unlock(&w->mu);
        wake(w->efd);
    }
    if (clock_gettime(CLOCK_REALTIME, &deadline) != 0)
        log_panic("smtp: clock_gettime: %m");
    deadline.tv_sec += SMTP_STOP_GRACE_MS / 1000;
    deadline.tv_nsec += (long) (SMTP_STOP_GRACE_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    for (unsigned i = 0; i < SMTP_TRANSPORT_WORKERS; i++) {
        if (t->w[i].started)
            worker_join(&t->w[i], &deadline);
        else
            worker_teardown(&t->w[i]);
    }
    out_take(t, 0);
    for (unsigned i = 0; i < SMTP_TRANSPORT_WORKERS; i++)
        worker_release(&t->w[i]);
    if (t->out_ev)
        event_free(t->out_ev);
    if (t->efd >= 0 && close(t->efd) < 0)
        log_warn("smtp: close eventfd: %m");
    pthread_mutex_destroy(&t->mu);
    free(t->helo);
    free(t->resolver);
    free(t);
    curl_global_cleanup();
}
