/*
 * transport_smtp - outbound SMTP on the server's event loop (contract: transport_smtp.h).
 *
 * A job: copy the delivery job, look for a cached connection to its next hop
 * (destination key "host:port/mx"), else resolve (a detached thread per lookup:
 * mx_lookup() and res_nquery() block; the result comes back to the loop through
 * a hand-off (common/handoff) each lookup thread holds, so a lookup that
 * outlives the transport frees its own result), then connect to the targets in order
 * until one gets as far as MAIL FROM. smtp_client runs the session; this module
 * picks targets, keeps the connection cache and turns setup failures into the
 * recipients' results. Every callback to the qmgr comes from the loop.
 */
#define LOG_SERVICE "smtp" /* its log lines: syslog_name/smtp[pid] */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "delivery.h"
#include "handoff.h"
#include "log.h"
#include "loop.h"
#include "mx.h"
#include "server_config.h"
#include "smtp_client.h"
#include "transport_smtp.h"

#define SMTP_MAX_TARGETS 10 /* addresses tried per delivery, over all MX hosts */

struct target {
    char *name; /* host name (or the literal) for texts, SNI and certificate checks */
    char *addr; /* numeric address to connect to */
};

struct job;

struct lookup {
    struct handoff_item link; /* first: the hand-off gives it back as a lookup */
    struct handoff *back;
    struct job *job;          /* loop thread only; NULL: the job is gone */
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

/* a cached (idle) connection */
struct idle {
    TAILQ_ENTRY(idle) link;
    struct smtp_transport *t;
    struct smtp_client *c;
    struct dest *d;
};
TAILQ_HEAD(idle_list, idle);

/* one next hop: its cached connections and how many of its connections are busy */
struct dest {
    LIST_ENTRY(dest) link;
    char *key;
    struct idle_list idle;
    size_t nidle, nbusy;      /* cached and busy connections */
    size_t njobs;             /* jobs that point here */
};

/* a connection sending QUIT */
struct quitting {
    LIST_ENTRY(quitting) link;
    struct smtp_transport *t;
    struct smtp_client *c;
};

struct job {
    LIST_ENTRY(job) link;
    struct smtp_transport *t;
    delivery_done_fn done;
    void *ctx;
    struct delivery_msg msg;
    char *host;
    unsigned char *bad;       /* bad[i]: recipient i is not sent (result set already) */
    int fd;
    off_t offset, size;
    int port, mx;
    struct dest *d;
    struct target *targets;
    size_t ntargets, cur;
    enum server_tls_level tls_level; /* smtp_tls_security_level or the policy map's */
    int tls_off;              /* retry the current target without STARTTLS */
    int fresh;                /* a cached connection died: no cache for this job */
    struct lookup *lookup;    /* DNS in progress */
    struct smtp_client *c;    /* session in use */
    struct event *later;      /* finish from the loop */
    struct delivery_report rep;
    long long t_setup, t_xmit; /* ms: when setup and transmission started */
    double setup_secs;
};

struct smtp_transport {
    struct event_base *base;
    struct smtp_client_conf cconf;
    enum server_tls_level tls_level;
    struct server_tls_policy *policies; /* copy of smtp_tls_policy_maps */
    size_t npolicies;
    long long cache_ms, reuse_ms;
    size_t limit;
    char *helo, *resolver;
    struct handoff *back;     /* lookups' results, from their threads */
    LIST_HEAD(, job) jobs;
    LIST_HEAD(, dest) dests;
    LIST_HEAD(, quitting) quitting;
    size_t njobs, nconn, opened;
};

static void connect_target(struct job *job);
static void job_resolve(struct job *job);

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

/* lookup_fail - no targets: the DSN code (4.x.x: try again later, 5.x.x: bounce) and why */
static void lookup_fail(struct lookup *lk, const char *dsn, const char *fmt, ...) LOG_PRINTF(3, 4);
static void lookup_fail(struct lookup *lk, const char *dsn, const char *fmt, ...)
{
    va_list ap;

    lk->status = dsn[0] == '4' ? DELIVERY_TEMP : DELIVERY_PERM;
    snprintf(lk->dsn, sizeof(lk->dsn), "%s", dsn);
    va_start(ap, fmt);
    vsnprintf(lk->why, sizeof(lk->why), fmt, ap);
    va_end(ap);
}

/* resolve_addrs - A then AAAA of lk->domain as the targets (no MX involved) */
static void resolve_addrs(struct lookup *lk)
{
    char why[512];
    struct mx_resolver *r = mx_resolver_new(lk->resolver, why, sizeof(why));
    struct mx_list list = { NULL, 0 };
    enum mx_status st;

    if (r == NULL) {
        lookup_fail(lk, "4.3.5", "cannot initialise the resolver for %s", lk->domain);
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
        lookup_fail(lk, "4.4.3", "Host or domain name not found. Name service error "
                    "for name=%s type=A: Host not found, try again", lk->domain);
    } else {
        lookup_fail(lk, "5.4.4", "Host or domain name not found. Name service error "
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
        lookup_fail(lk, "4.3.5", "dns_resolver: %s", why);
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
            lookup_fail(lk, "5.1.10", "Domain %s does not accept mail (nullMX)",
                        lk->domain);
        } else if (strstr(why, "this host") != NULL) {
            lookup_fail(lk, "5.4.6", "mail for %s loops back to myself", lk->domain);
        } else {
            resolve_addrs(lk);
        }
        mx_list_free(&list);
        return;
    case MX_NXDOMAIN:
        lookup_fail(lk, "5.4.4", "Host or domain name not found. Name service error "
                    "for name=%s type=MX: Host not found", lk->domain);
        mx_list_free(&list);
        return;
    case MX_TEMPFAIL:
        lookup_fail(lk, "4.4.3", "Host or domain name not found. Name service error "
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
        lookup_fail(lk, temp ? "4.4.3" : "5.4.4", "Host or domain name not found. %s",
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

/* lookup_drop - a lookup finished after the transport was freed */
static void lookup_drop(struct handoff_item *item)
{
    lookup_free((struct lookup *) item);
}

/* dns_worker - thread body: resolve, then hand the result to the worker's loop */
static void *dns_worker(void *arg)
{
    struct lookup *lk = arg;
    long long t0 = clock_now_ms();

    if (lk->mx)
        resolve_mx(lk);
    else
        resolve_addrs(lk);
    lk->secs = (double) (clock_now_ms() - t0) / 1000.0;
    handoff_post_release(lk->back, &lk->link);
    return NULL;
}

/* ---------------------------------------------------------------- jobs */

/* job_free - release a finished or cancelled job (its session is gone or handed back) */
static void job_free(struct job *job)
{
    delivery_msg_free(&job->msg);
    free(job->host);
    free(job->bad);
    if (job->fd >= 0 && close(job->fd) < 0)
        log_warn("%s: close content: %m", job->msg.id);
    targets_free(job->targets, job->ntargets);
    delivery_report_free(&job->rep);
    loop_event_free(&job->later);
    free(job);
}

/* dest_gc - drop an entry nobody uses */
static void dest_gc(struct dest *d)
{
    if (d->nidle > 0 || d->nbusy > 0 || d->njobs > 0)
        return;
    LIST_REMOVE(d, link);
    free(d->key);
    free(d);
}

/* finish - the job is over: done, then release */
static void finish(struct job *job)
{
    struct smtp_transport *t = job->t;

    LIST_REMOVE(job, link);
    t->njobs--;
    job->rep.conn_time = job->setup_secs;
    if (job->t_xmit > 0)
        job->rep.xmit_time = (double) (clock_now_ms() - job->t_xmit) / 1000.0;
    job->done(job->ctx, &job->rep);
    job->d->njobs--;
    dest_gc(job->d);
    job_free(job);
}

/* later_cb - finish a job that ended inside smtp_transport_deliver */
static void later_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    finish(arg);
}

/* finish_later - finish from the loop, not inside the current call */
static void finish_later(struct job *job)
{
    event_active(job->later, 0, 0);
}

/* set_valid_all - every recipient that is sent gets the same result */
static void set_valid_all(struct job *job, enum delivery_status st, const char *dsn,
                          const char *text)
{
    for (size_t i = 0; i < job->msg.nrcpt; i++)
        if (!job->bad[i])
            delivery_set(&job->rep, i, st, dsn, "%s", text);
}

/* ---------------------------------------------------------------- connection cache */

/* dest_get - the next hop's entry, made on first use */
static struct dest *dest_get(struct smtp_transport *t, const char *host, int port, int mx)
{
    char key[DOMAIN_MAX + 32];
    struct dest *d;

    snprintf(key, sizeof(key), "%s:%d/%d", host, port, mx);
    for (char *p = key; *p; p++)
        *p = (char) tolower((unsigned char) *p);
    LIST_FOREACH(d, &t->dests, link)
        if (strcmp(d->key, key) == 0)
            return d;
    d = xcalloc(1, sizeof(*d));
    d->key = xstrdup(key);
    TAILQ_INIT(&d->idle);
    LIST_INSERT_HEAD(&t->dests, d, link);
    return d;
}

/* quit_gone - a QUIT finished: the session freed itself */
static void quit_gone(void *ctx, struct smtp_client *c)
{
    struct quitting *q = ctx;

    (void) c;
    q->t->nconn--;
    LIST_REMOVE(q, link);
    free(q);
}

/* close_session - QUIT on a healthy idle session (tracked until it ends), else free */
static void close_session(struct smtp_transport *t, struct smtp_client *c)
{
    if (smtp_client_alive(c)) {
        struct quitting *q = xcalloc(1, sizeof(*q));

        q->t = t;
        q->c = c;
        LIST_INSERT_HEAD(&t->quitting, q, link);
        smtp_client_quit(c, quit_gone, q);
        return;
    }
    t->nconn--;
    smtp_client_free(c);
}

/* idle_take - unlink a cached session */
static struct smtp_client *idle_take(struct idle *e)
{
    struct smtp_client *c = e->c;

    TAILQ_REMOVE(&e->d->idle, e, link);
    e->d->nidle--;
    free(e);
    return c;
}

/* idle_lost - a cached session closed, talked or reached the cache time limit */
static void idle_lost(void *ctx, struct smtp_client *c)
{
    struct idle *e = ctx;
    struct smtp_transport *t = e->t;
    struct dest *d = e->d;

    log_debug("smtp: %s: cached connection closed", smtp_client_relay(c));
    idle_take(e);
    close_session(t, c);
    dest_gc(d);
}

/* cache_put - a session that finished a message waits for the next job to its next hop */
static void cache_put(struct smtp_transport *t, struct dest *d, struct smtp_client *c)
{
    struct idle *e;

    /* no dead-connection check here: cache_get makes it before any reuse, and
       the idle watch sees the peer close meanwhile (one recv per message less) */
    if (t->cache_ms <= 0 || d->nidle + d->nbusy >= t->limit
        || smtp_client_age_ms(c) >= t->reuse_ms * 1000) {
        close_session(t, c);
        return;
    }
    e = xcalloc(1, sizeof(*e));
    e->t = t;
    e->c = c;
    e->d = d;
    TAILQ_INSERT_HEAD(&d->idle, e, link); /* the most recently used first */
    d->nidle++;
    smtp_client_idle(c, t->cache_ms * 1000, idle_lost, e);
}

/* cache_get - a live cached session for d, or NULL */
static struct smtp_client *cache_get(struct smtp_transport *t, struct dest *d)
{
    while (!TAILQ_EMPTY(&d->idle)) {
        struct smtp_client *c = idle_take(TAILQ_FIRST(&d->idle));

        if (smtp_client_alive(c) && smtp_client_age_ms(c) < t->reuse_ms * 1000)
            return c;
        close_session(t, c);
    }
    return NULL;
}

/* ---------------------------------------------------------------- one job's sessions */

/* msg_of - the job as smtp_client sees it */
static void msg_of(const struct job *job, struct smtp_client_msg *m)
{
    m->id = job->msg.id;
    m->sender = job->msg.sender;
    m->rcpts = (const char *const *) job->msg.rcpts;
    m->nrcpt = job->msg.nrcpt;
    m->skip = job->bad;
    m->fd = job->fd;
    m->offset = job->offset;
    m->size = job->size;
}

/* sent_cb - the transaction ended */
static void sent_cb(void *ctx, struct smtp_client *c, enum smtp_client_after after)
{
    struct job *job = ctx;
    struct smtp_transport *t = job->t;
    struct dest *d = job->d;

    job->c = NULL;
    d->nbusy--;
    if (after == SMTP_CLIENT_RETRY) {
        /* a cached connection was dead: a new one, through DNS when needed */
        t->nconn--;
        smtp_client_free(c);
        job->fresh = 1;
        job->t_xmit = 0;
        if (job->ntargets > 0)
            connect_target(job);
        else
            job_resolve(job);
        return;
    }
    if (after == SMTP_CLIENT_REUSABLE) {
        cache_put(t, d, c);
    } else {
        t->nconn--;
        smtp_client_free(c);
    }
    finish(job);
}

/* send_on - run the job's transaction on session c */
static void send_on(struct job *job, struct smtp_client *c)
{
    struct smtp_client_msg m;

    job->c = c;
    job->t_xmit = clock_now_ms();
    msg_of(job, &m);
    if (smtp_client_send(c, &m, &job->rep, sent_cb, job) < 0)
        log_panic("%s: smtp: session not idle", job->msg.id);
}

/* ready_cb - a new session is set up, or failed to be */
static void ready_cb(void *ctx, struct smtp_client *c, const struct smtp_client_setup *setup)
{
    struct job *job = ctx;
    struct smtp_transport *t = job->t;

    job->setup_secs += (double) (clock_now_ms() - job->t_setup) / 1000.0;
    if (setup->ok) {
        send_on(job, c);
        return;
    }
    job->c = NULL;
    job->d->nbusy--;
    if (setup->answered)
        snprintf(job->rep.relay, sizeof(job->rep.relay), "%s", smtp_client_relay(c));
    else
        snprintf(job->rep.relay, sizeof(job->rep.relay), "none");
    set_valid_all(job, setup->status, setup->dsn, setup->text);
    t->nconn--;
    smtp_client_free(c);
    if (setup->tls_failed && !job->tls_off) {
        job->tls_off = 1; /* opportunistic TLS: the same address once more in plaintext */
        connect_target(job);
        return;
    }
    job->tls_off = 0;
    if (job->cur + 1 < job->ntargets) {
        job->cur++;
        connect_target(job);
        return;
    }
    finish(job);
}

/* connect_target - a new session to job->targets[job->cur] */
static void connect_target(struct job *job)
{
    struct smtp_transport *t = job->t;
    const struct target *tg = &job->targets[job->cur];
    int level = job->tls_off ? SERVER_TLS_NONE : job->tls_level;

    log_debug("%s: trying %s[%s]:%d%s", job->msg.id, tg->name, tg->addr, job->port,
              job->tls_off ? " without STARTTLS" : "");
    job->t_setup = clock_now_ms();
    job->d->nbusy++;
    t->nconn++;
    t->opened++;
    job->c = smtp_client_connect(t->base, &t->cconf, tg->name, tg->addr, job->port, level,
                                 job->host, ready_cb, job);
}

/* lookup_back - a lookup finished: continue its job, if the job is still there */
static void lookup_back(void *arg, struct handoff_item *item)
{
    struct lookup *lk = (struct lookup *) item;
    struct job *job = lk->job;

    (void) arg;
    if (job == NULL) {
        lookup_free(lk);
        return;
    }
    job->lookup = NULL;
    job->setup_secs += lk->secs;
    if (lk->ntargets == 0) {
        set_valid_all(job, lk->status, lk->dsn, lk->why);
        finish(job);
    } else {
        job->targets = lk->targets;
        job->ntargets = lk->ntargets;
        lk->targets = NULL;
        lk->ntargets = 0;
        connect_target(job);
    }
    lookup_free(lk);
}

/* job_resolve - the targets: a literal at once, else a lookup thread */
static void job_resolve(struct job *job)
{
    struct smtp_transport *t = job->t;
    struct lookup *lk;
    pthread_attr_t attr;
    pthread_t tid;
    int err;

    if (!job->mx && is_ip(job->host)) {
        target_add(&job->targets, &job->ntargets, job->host, job->host);
        connect_target(job);
        return;
    }
    lk = xcalloc(1, sizeof(*lk));
    lk->back = t->back;
    lk->job = job;
    lk->resolver = t->resolver ? xstrdup(t->resolver) : NULL;
    lk->domain = xstrdup(job->host);
    lk->self = xstrdup(t->helo);
    lk->mx = job->mx;
    handoff_hold(t->back);
    if ((err = pthread_attr_init(&attr)) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        err = pthread_create(&tid, &attr, dns_worker, lk);
        pthread_attr_destroy(&attr);
    }
    if (err != 0) {
        char why[200];

        handoff_release(t->back);
        lookup_free(lk);
        snprintf(why, sizeof(why), "cannot start a resolver thread: %s", strerror(err));
        set_valid_all(job, DELIVERY_TEMP, "4.3.0", why);
        finish_later(job);
        return;
    }
    job->lookup = lk;
}

/* ---------------------------------------------------------------- public */

/* make_ssl_ctx - the client's TLS context with smtp_tls_CAfile (or the system's CAs) */
static SSL_CTX *make_ssl_ctx(const struct server_config *conf, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[256];

    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS client context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (conf->smtp_tls_CAfile && *conf->smtp_tls_CAfile) {
        if (SSL_CTX_load_verify_locations(ctx, conf->smtp_tls_CAfile, NULL) != 1) {
            ERR_error_string_n(ERR_get_error(), why, sizeof(why));
            ERR_clear_error();
            snprintf(err, errlen, "%s: smtp_tls_CAfile %s: %s", conf->path ? conf->path : "",
                     conf->smtp_tls_CAfile, why);
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        ERR_clear_error(); /* no system CAs: verify/secure will fail, may/encrypt work */
    }
    return ctx;
}

/* policies_free - drop the copy of the TLS policy table */
static void policies_free(struct smtp_transport *t)
{
    for (size_t i = 0; i < t->npolicies; i++)
        free(t->policies[i].nexthop);
    free(t->policies);
    t->policies = NULL;
    t->npolicies = 0;
}

/* apply_config - copy what new jobs need; -1 (err) when the TLS context fails */
static int apply_config(struct smtp_transport *t, const struct server_config *conf, char *err,
                        size_t errlen)
{
    SSL_CTX *ctx = make_ssl_ctx(conf, err, errlen);
    struct smtp_client_conf *cc = &t->cconf;

    if (ctx == NULL)
        return -1;
    if (cc->ssl_ctx)
        SSL_CTX_free(cc->ssl_ctx); /* sessions hold their own reference */
    smtp_client_conf_set(cc, conf, ctx);
    t->tls_level = conf->smtp_tls_security_level;
    policies_free(t);
    t->policies = xcalloc(conf->ntls_policies ? conf->ntls_policies : 1, sizeof(*t->policies));
    for (size_t i = 0; i < conf->ntls_policies; i++) {
        t->policies[i].nexthop = xstrdup(conf->tls_policies[i].nexthop);
        t->policies[i].level = conf->tls_policies[i].level;
    }
    t->npolicies = conf->ntls_policies;
    t->cache_ms = conf->smtp_connection_cache_time_limit;
    t->reuse_ms = conf->smtp_connection_reuse_time_limit;
    t->limit = conf->default_destination_concurrency_limit > 0
               ? (size_t) conf->default_destination_concurrency_limit : 20;
    free(t->helo);
    free(t->resolver);
    t->helo = xstrdup(cc->helo);
    t->resolver = conf->dns_resolver && *conf->dns_resolver ? xstrdup(conf->dns_resolver) : NULL;
    return 0;
}

/* smtp_transport_new - the transport on base */
struct smtp_transport *smtp_transport_new(struct event_base *base,
                                          const struct server_config *conf, char *err,
                                          size_t errlen)
{
    struct smtp_transport *t = xcalloc(1, sizeof(*t));

    t->base = base;
    LIST_INIT(&t->jobs);
    LIST_INIT(&t->dests);
    LIST_INIT(&t->quitting);
    if ((t->back = handoff_new(base, lookup_back, t, err, errlen)) == NULL) {
        smtp_transport_free(t);
        return NULL;
    }
    if (apply_config(t, conf, err, errlen) < 0) {
        smtp_transport_free(t);
        return NULL;
    }
    return t;
}

/* smtp_transport_set_config - new settings for jobs started from now on */
void smtp_transport_set_config(struct smtp_transport *t, const struct server_config *conf)
{
    char err[512];

    if (apply_config(t, conf, err, sizeof(err)) < 0)
        log_warn("reload: %s; the smtp client keeps its old settings", err);
}

/* bad_address - whether an address cannot go into MAIL FROM:<...> or RCPT TO:<...> */
static int bad_address(const char *s)
{
    for (const unsigned char *p = (const unsigned char *) s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>')
            return 1;
    return 0;
}

/* smtp_transport_deliver - copy one job and start it; done() follows from the loop */
int smtp_transport_deliver(struct smtp_transport *t, const struct delivery_job *in,
                           delivery_done_fn done, void *ctx)
{
    struct job *job;
    int level;
    size_t nbad = 0;
    struct smtp_client *c;

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
    job->t = t;
    job->done = done;
    job->ctx = ctx;
    delivery_msg_copy(&job->msg, in);
    job->host = xstrdup(in->route.host);
    job->port = in->route.port > 0 ? in->route.port : 25;
    job->mx = in->route.mx;
    job->offset = in->content_offset;
    job->size = in->content_size;
    level = server_tls_policy_lookup(t->policies, t->npolicies, &in->route);
    job->tls_level = level < 0 ? t->tls_level : (enum server_tls_level) level;
    job->later = event_new(t->base, -1, 0, later_cb, job);
    if (job->later == NULL)
        log_fatal("smtp: cannot create an event");
    delivery_report_init(&job->rep, in->nrcpt);
    job->bad = xcalloc(in->nrcpt, 1);
    for (size_t i = 0; i < in->nrcpt; i++) {
        if (bad_address(job->msg.sender)) {
            job->bad[i] = 1;
            delivery_set(&job->rep, i, DELIVERY_PERM, "5.1.7", "bad sender address syntax");
        } else if (bad_address(job->msg.rcpts[i]) || job->msg.rcpts[i][0] == 0) {
            job->bad[i] = 1;
            delivery_set(&job->rep, i, DELIVERY_PERM, "5.1.3", "bad recipient address syntax");
        }
        nbad += job->bad[i];
    }
    LIST_INSERT_HEAD(&t->jobs, job, link);
    t->njobs++;
    job->d = dest_get(t, job->host, job->port, job->mx);
    job->d->njobs++;
    if (nbad == job->msg.nrcpt) {
        finish_later(job); /* nothing to send: every address was refused already */
        return 0;
    }
    if ((c = cache_get(t, job->d)) != NULL) {
        log_debug("%s: reusing the cached connection to %s", job->msg.id, smtp_client_relay(c));
        job->d->nbusy++;
        send_on(job, c);
        return 0;
    }
    job_resolve(job);
    return 0;
}

/* smtp_transport_active - jobs accepted whose done() has not run yet */
size_t smtp_transport_active(const struct smtp_transport *t)
{
    return t->njobs;
}

/* smtp_transport_connections - connections open now; *opened: since the start */
size_t smtp_transport_connections(const struct smtp_transport *t, size_t *opened)
{
    if (opened)
        *opened = t->opened;
    return t->nconn;
}

/* smtp_transport_free - close every connection, drop unfinished jobs, release all */
void smtp_transport_free(struct smtp_transport *t)
{
    if (t == NULL)
        return;
    while (!LIST_EMPTY(&t->jobs)) {
        struct job *job = LIST_FIRST(&t->jobs);

        LIST_REMOVE(job, link);
        if (job->c)
            smtp_client_free(job->c);
        if (job->lookup)
            job->lookup->job = NULL; /* lookup_back or lookup_drop frees it */
        job_free(job);
    }
    while (!LIST_EMPTY(&t->dests)) {
        struct dest *d = LIST_FIRST(&t->dests);

        while (!TAILQ_EMPTY(&d->idle))
            smtp_client_free(idle_take(TAILQ_FIRST(&d->idle)));
        LIST_REMOVE(d, link);
        free(d->key);
        free(d);
    }
    while (!LIST_EMPTY(&t->quitting)) {
        struct quitting *q = LIST_FIRST(&t->quitting);

        LIST_REMOVE(q, link);
        smtp_client_free(q->c);
        free(q);
    }
    /* lookups handed over but not taken: their jobs are gone (job = NULL above) */
    handoff_close(t->back, lookup_drop);
    if (t->cconf.ssl_ctx)
        SSL_CTX_free(t->cconf.ssl_ctx);
    policies_free(t);
    free(t->helo);
    free(t->resolver);
    free(t);
}
