/*
 * qmgr - the queue manager (contract in qmgr.h).
 *
 * In memory: one entry per queued message (ID, directory, due time), kept in
 * a hash table by ID; deferred entries sit in a binary min-heap by due time
 * under one libevent timer for the earliest, so 100,000 deferred messages cost
 * one timer, not 100,000. Due and new messages wait on the run queue, which
 * is worked off in batches of RUN_BATCH from a zero timeout, at most
 * ACTIVE_LIMIT messages active at once; nothing walks the queue except
 * startup and the queue_run_delay scan. A message entry is small; the
 * envelope is loaded only while the message is active.
 *
 * Times: due times are wall-clock seconds (the retry time must survive a
 * restart in the file's mtime, rounded to the nearest second); the arrival
 * time has microseconds, taken from the queue ID (queue.c makes IDs from the
 * arrival's microseconds and the inode, as Postfix does), so delay= is exact.
 *
 * Destinations (transport + next hop + port + mx) carry a queue of jobs, a
 * count of running jobs and a concurrency window: 1 until a delivery there
 * succeeded, then default_destination_concurrency_limit, back to 1 when the
 * destination fails (so a dead host draws one connection, not 20). A
 * connection failure (every recipient temporary, with relay "none" or dsn
 * 4.4.1) makes the destination dead for minimal_backoff_time (less
 * DEAD_SLACK, so a message retried exactly minimal_backoff_time later is
 * tried); its mail is deferred without an attempt meanwhile.
 *
 * Results are written to the queue file per recipient (state, dsn, reason)
 * as they come; failed recipients of one result (one job, or the no-attempt
 * outcomes of one activation) get one DSN, committed before they are marked
 * bounced, so a crash can repeat a DSN but never lose one.
 * Durability through the queue interface only: the recipient states of a
 * job are settled (queue_settle) when it ends while other jobs of the
 * message still run, and before a message goes back to deferred/ or hold/;
 * a message whose last recipient is done is deleted with QUEUE_LATER and no
 * settle (the delete is the record of the final states; the backend makes
 * it durable within milliseconds, once for many). So a crash can repeat a
 * delivery of the last few milliseconds, never lose one.
 * Log lines: delay= has two decimals below 100 s and none above; delays=
 * parts print as Postfix does: "0" below 10 ms, two decimals below 1 s, one
 * below 10 s, whole seconds above.
 * The per-destination "waiting" count in qmgr_status_json covers the deferred
 * messages this process has seen fail; messages found at startup count once
 * they were tried again.
 */
#define LOG_SERVICE "qmgr" /* its log lines: syslog_name/qmgr[pid] */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "bounce.h"
#include "buf.h"
#include "clock.h"
#include "domain.h"
#include "htable.h"
#include "log.h"
#include "qmgr.h"
#include "timefmt.h"
#include "queue.h"
#include "server_config.h"

#define RUN_BATCH 50          /* messages activated per loop pass */
#define ACTIVE_LIMIT 2000     /* messages active at once */
#define DEAD_SLACK 0.25       /* seconds a dead window ends early */
#define HEAP_NONE SIZE_MAX

enum qmgr_op { OP_NONE, OP_DELETE, OP_HOLD };

struct dest {
    char *key;
    char *name;                    /* "smtp:[127.0.0.1]:2525", "smtp:example.org" */
    struct server_route route;
    size_t running;                /* jobs started, not finished */
    size_t window;                 /* jobs allowed at once right now */
    STAILQ_HEAD(, job) queue;      /* jobs waiting for a slot */
    double dead_until;
    char dead_dsn[QUEUE_DSN_MAX + 1];
    char dead_reason[QUEUE_REASON_MAX + 1];
    size_t waiting;                /* deferred messages with a recipient here */
    time_t oldest;                 /* arrival of the oldest since waiting was 0 */
    time_t last_attempt;
    char last_result[QUEUE_REASON_MAX + 16];
    int dispatching;
    int odmr;                      /* an ODMR session's destination: one job at a time */
    struct qmgr_grant *grant;      /* its session, NULL once it ended */
};

/* an ODMR session holding domains: their recipients go over its connection */
struct qmgr_grant {
    struct qmgr *m;
    struct dest *d;
    char **domains;
    size_t ndomains;
    qmgr_deliver_fn fn;
    void *ctx;
    struct qmgr_grant *next;
};

struct qent {
    char id[QUEUE_ID_MAX + 1];
    enum queue_dir dir;            /* where the file is */
    double due;                    /* deferred: next try */
    size_t heap_idx;               /* HEAP_NONE when not in the heap */
    int on_runq;
    TAILQ_ENTRY(qent) runq;        /* while on_runq */
    struct amsg *am;               /* while its delivery runs */
    enum qmgr_op op;               /* done when the delivery ends */
    int flush_req;                 /* next activation is a flush */
    char **flush_domains;          /* NULL with flush_req: every recipient */
    size_t nflush_domains;
    struct dest **waits;           /* destinations counting this message as waiting */
    size_t nwaits;
};

struct amsg {
    struct qmgr *m;
    struct qent *e;
    struct queue_msg qm;
    double arrival;                /* with microseconds */
    double activated;
    time_t old_retry;              /* mtime when it was taken */
    int flush;                     /* ignore dead destinations and defer_transports */
    size_t jobs;                   /* outstanding jobs (+1 while being set up) */
    int any_temp;                  /* a recipient was deferred in this run */
    int skipped;                   /* a recipient was left out (flush of another domain) */
    int expiry_logged;
    unsigned char *touched;        /* per recipient: has a result from this run */
    unsigned char *owed;           /* per recipient: delivered, not yet written to the file */
    int last_job;                  /* the result being applied is of the message's last job */
    struct dest **rdest;           /* per recipient: destination, NULL if none */
};

struct job {
    struct qmgr *m;
    struct amsg *am;
    struct dest *d;
    size_t *idx;                   /* recipient indexes in am->qm */
    const char **addrs;
    size_t n;
    int flush;
    double started;
    int fd;
    STAILQ_ENTRY(job) wait;        /* destination's waiting list */
    LIST_ENTRY(job) run;           /* qmgr's list of running jobs */
};

struct transport_slot {
    qmgr_deliver_fn fn;
    void *ctx;
};

struct qmgr {
    struct event_base *base;
    const struct server_config *conf;
    struct queue *q;
    struct htable *msgs;           /* id -> struct qent */
    struct htable *dests;          /* key -> struct dest */
    struct qent **heap;
    size_t nheap, heapcap;
    TAILQ_HEAD(, qent) runq;
    size_t count[QUEUE_NDIRS];
    size_t nactive;                /* messages with an amsg */
    LIST_HEAD(, job) running;      /* jobs a transport holds */
    struct event *timer;           /* earliest deferred message */
    struct event *run_ev;          /* work off the run queue */
    struct event *scan_ev;         /* queue_run_delay scan */
    struct transport_slot transports[SERVER_TRANSPORT_COUNT];
    qmgr_flush_hook_fn hook;
    void *hook_ctx;
    struct qmgr_grant *grants;     /* ODMR sessions */
};

static void finish(struct amsg *am);
static void dest_dispatch(struct qmgr *m, struct dest *d);
static int flush_match(const struct qent *e, const char *domain);

/* ---- time and formatting ---- */

/* precise_arrival - arrival seconds plus the microseconds encoded in the queue ID */
static double precise_arrival(const struct queue_msg *qm)
{
    unsigned long usec = 0;

    if (strlen(qm->id) > 5) {
        for (int i = 0; i < 5; i++) {
            char c = qm->id[i];

            usec = usec * 16 + (unsigned long) (c <= '9' ? c - '0' : c - 'A' + 10);
        }
        if (usec >= 1000000)
            usec = 0;
    }
    return (double) qm->arrival + (double) usec / 1e6;
}

/* trim_zeros - "0.10" -> "0.1", "1.0" -> "1" */
static void trim_zeros(char *s)
{
    size_t n = strlen(s);

    if (strchr(s, '.') == NULL)
        return;
    while (n > 0 && s[n - 1] == '0')
        s[--n] = 0;
    if (n > 0 && s[n - 1] == '.')
        s[--n] = 0;
}

/* fmt_delay - the delay= value: two decimals below 100 s, whole seconds above */
static void fmt_delay(char *out, size_t outlen, double v)
{
    if (v < 0)
        v = 0;
    snprintf(out, outlen, v < 100 ? "%.2f" : "%.0f", v);
}

/* fmt_part - one delays= part, Postfix style */
static void fmt_part(char *out, size_t outlen, double v)
{
    if (v < 0.01) {
        snprintf(out, outlen, "0");
        return;
    }
    snprintf(out, outlen, v < 1 ? "%.2f" : v < 10 ? "%.1f" : "%.0f", v);
    trim_zeros(out);
}

/* ---- hash table values ---- */

struct collect {
    void **v;
    size_t n;
};

/* collect_one - htable_walk callback: append a value */
static void collect_one(void *ctx, const char *key, void *value)
{
    struct collect *c = ctx;

    (void) key;
    c->v[c->n++] = value;
}

/* table_values - every value of t, in an array the caller frees */
static void **table_values(const struct htable *t, size_t *n)
{
    struct collect c = { xcalloc(htable_count(t) + 1, sizeof(void *)), 0 };

    htable_walk(t, collect_one, &c);
    *n = c.n;
    return c.v;
}

/* ---- deferred heap and timers ---- */

/* heap_swap - exchange two heap slots */
static void heap_swap(struct qmgr *m, size_t a, size_t b)
{
    struct qent *t = m->heap[a];

    m->heap[a] = m->heap[b];
    m->heap[b] = t;
    m->heap[a]->heap_idx = a;
    m->heap[b]->heap_idx = b;
}

/* heap_fix - restore heap order around slot i */
static void heap_fix(struct qmgr *m, size_t i)
{
    while (i > 0 && m->heap[(i - 1) / 2]->due > m->heap[i]->due) {
        heap_swap(m, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, min = i;

        if (l < m->nheap && m->heap[l]->due < m->heap[min]->due)
            min = l;
        if (r < m->nheap && m->heap[r]->due < m->heap[min]->due)
            min = r;
        if (min == i)
            break;
        heap_swap(m, i, min);
        i = min;
    }
}

/* arm_timer - one timer for the earliest deferred message */
static void arm_timer(struct qmgr *m)
{
    struct timeval tv;
    double wait;

    if (m->nheap == 0) {
        evtimer_del(m->timer);
        return;
    }
    wait = m->heap[0]->due - clock_wall();
    if (wait < 0)
        wait = 0;
    if (wait > 86400.0 * 365)
        wait = 86400.0 * 365;
    tv.tv_sec = (time_t) wait;
    tv.tv_usec = (suseconds_t) ((wait - (double) tv.tv_sec) * 1e6);
    if (evtimer_add(m->timer, &tv) != 0)
        log_error("qmgr: cannot arm the retry timer");
}

/* heap_push - schedule e at e->due */
static void heap_push(struct qmgr *m, struct qent *e)
{
    int was_top;

    if (e->heap_idx != HEAP_NONE) {
        heap_fix(m, e->heap_idx);
        arm_timer(m);
        return;
    }
    if (m->nheap == m->heapcap) {
        m->heapcap = m->heapcap ? m->heapcap * 2 : 256;
        m->heap = xreallocarray(m->heap, m->heapcap, sizeof(*m->heap));
    }
    e->heap_idx = m->nheap;
    m->heap[m->nheap++] = e;
    heap_fix(m, e->heap_idx);
    was_top = e->heap_idx == 0;
    if (was_top)
        arm_timer(m);
}

/* heap_remove - unschedule e */
static void heap_remove(struct qmgr *m, struct qent *e)
{
    size_t i = e->heap_idx;

    if (i == HEAP_NONE)
        return;
    e->heap_idx = HEAP_NONE;
    m->nheap--;
    if (i != m->nheap) {
        m->heap[i] = m->heap[m->nheap];
        m->heap[i]->heap_idx = i;
        heap_fix(m, i);
    }
    if (i == 0)
        arm_timer(m);
}

/* schedule_run - work off the run queue from the event loop */
static void schedule_run(struct qmgr *m)
{
    struct timeval zero = { 0, 0 };

    if (!TAILQ_EMPTY(&m->runq) && m->nactive < ACTIVE_LIMIT && !evtimer_pending(m->run_ev, NULL)
        && evtimer_add(m->run_ev, &zero) != 0)
        log_error("qmgr: cannot schedule the run queue");
}

/* runq_push - deliver e as soon as possible */
static void runq_push(struct qmgr *m, struct qent *e)
{
    heap_remove(m, e);
    if (e->on_runq || e->am)
        return;
    e->on_runq = 1;
    TAILQ_INSERT_TAIL(&m->runq, e, runq);
    schedule_run(m);
}

/* runq_remove - take e off the run queue */
static void runq_remove(struct qmgr *m, struct qent *e)
{
    if (!e->on_runq)
        return;
    TAILQ_REMOVE(&m->runq, e, runq);
    e->on_runq = 0;
}

/* ---- message entries ---- */

/* release_waits - the message no longer waits at its destinations */
static void release_waits(struct qent *e)
{
    for (size_t i = 0; i < e->nwaits; i++) {
        struct dest *d = e->waits[i];

        if (d->waiting > 0 && --d->waiting == 0)
            d->oldest = 0;
    }
    free(e->waits);
    e->waits = NULL;
    e->nwaits = 0;
}

/* set_dir - record where e's file is now */
static void set_dir(struct qmgr *m, struct qent *e, enum queue_dir dir)
{
    if (e->dir == QUEUE_DEFERRED && dir != QUEUE_DEFERRED)
        release_waits(e);
    m->count[e->dir]--;
    m->count[dir]++;
    e->dir = dir;
}

/* clear_flush - forget a flush request */
static void clear_flush(struct qent *e)
{
    for (size_t i = 0; i < e->nflush_domains; i++)
        free(e->flush_domains[i]);
    free(e->flush_domains);
    e->flush_domains = NULL;
    e->nflush_domains = 0;
    e->flush_req = 0;
}

/* add_flush - ask for a flush of domain (NULL: every recipient) */
static void add_flush(struct qent *e, const char *domain)
{
    if (e->flush_req && e->nflush_domains == 0)
        return; /* already every recipient */
    if (domain == NULL) {
        clear_flush(e);
        e->flush_req = 1;
        return;
    }
    for (size_t i = 0; i < e->nflush_domains; i++)
        if (strcasecmp(e->flush_domains[i], domain) == 0)
            return;
    e->flush_req = 1;
    e->flush_domains = xreallocarray(e->flush_domains, e->nflush_domains + 1, sizeof(char *));
    e->flush_domains[e->nflush_domains++] = xstrdup(domain);
}

/* ent_new - a new entry for id in dir */
static struct qent *ent_new(struct qmgr *m, const char *id, enum queue_dir dir)
{
    struct qent *e = xcalloc(1, sizeof(*e));

    snprintf(e->id, sizeof(e->id), "%s", id);
    e->dir = dir;
    e->heap_idx = HEAP_NONE;
    m->count[dir]++;
    htable_insert(m->msgs, id, e);
    return e;
}

/* ent_drop - forget a message (its file is gone or moved out of reach) */
static void ent_drop(struct qmgr *m, struct qent *e)
{
    heap_remove(m, e);
    runq_remove(m, e);
    release_waits(e);
    clear_flush(e);
    m->count[e->dir]--;
    htable_remove(m->msgs, e->id);
    free(e);
}

/* rcpt_domain - the domain part of an address ("" when none) */
static const char *rcpt_domain(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at ? at + 1 : "";
}

/* ---- destinations ---- */

/* dest_get - the destination for a route (made on first use) */
static struct dest *dest_get(struct qmgr *m, const struct server_route *route)
{
    char key[DOMAIN_MAX + 64];
    struct dest *d;

    snprintf(key, sizeof(key), "%s:%s:%d:%d", server_transport_name((int) route->transport),
             route->host, route->port, route->mx);
    if ((d = htable_find(m->dests, key)) != NULL)
        return d;
    d = xcalloc(1, sizeof(*d));
    STAILQ_INIT(&d->queue);
    d->key = xstrdup(key);
    d->route = *route;
    d->window = 1;
    if (route->transport == SERVER_TRANSPORT_LOCAL)
        snprintf(key, sizeof(key), "local:%s", route->host);
    else if (route->mx)
        snprintf(key, sizeof(key), "%s:%s%s%.0d", server_transport_name((int) route->transport),
                 route->host, route->port && route->port != 25 ? ":" : "",
                 route->port != 25 ? route->port : 0);
    else
        snprintf(key, sizeof(key), "%s:[%s]:%d", server_transport_name((int) route->transport),
                 route->host, route->port ? route->port : 25);
    d->name = xstrdup(key);
    htable_insert(m->dests, d->key, d);
    return d;
}

/* dest_dead - the destination is in its dead window */
static int dest_dead(const struct dest *d, double now)
{
    return now + DEAD_SLACK < d->dead_until;
}

/* dest_limit - the configured concurrency limit */
static size_t dest_limit(const struct qmgr *m)
{
    long long n = m->conf->default_destination_concurrency_limit;

    return n < 1 ? 1 : (size_t) n;
}

/* grant_find - the ODMR session holding domain, or NULL */
static struct qmgr_grant *grant_find(const struct qmgr *m, const char *domain)
{
    for (struct qmgr_grant *g = m->grants; g; g = g->next)
        for (size_t i = 0; i < g->ndomains; i++)
            if (strcasecmp(g->domains[i], domain) == 0)
                return g;
    return NULL;
}

/*
 * grant_dest - the destination for an ODMR session named name: the one a
 * former session of that name left idle, else a new one ("name", then
 * "name#2", ... while sessions of the same name overlap). Ended sessions'
 * destinations are reused, not freed (deferred messages may still point to
 * them), so their number stays that of the most sessions of a name at once.
 */
static struct dest *grant_dest(struct qmgr *m, const char *name)
{
    char key[300];

    for (unsigned n = 1;; n++) {
        struct dest *d;

        if (n == 1)
            snprintf(key, sizeof(key), "%s", name);
        else
            snprintf(key, sizeof(key), "%s#%u", name, n);
        if ((d = htable_find(m->dests, key)) == NULL) {
            d = xcalloc(1, sizeof(*d));
            d->key = xstrdup(key);
            d->name = xstrdup(name);
            d->route.transport = SERVER_TRANSPORT_SMTP;
            d->odmr = 1;
            STAILQ_INIT(&d->queue);
            (void) htable_insert(m->dests, d->key, d);
            return d;
        }
        if (d->odmr && d->grant == NULL && d->running == 0 && STAILQ_EMPTY(&d->queue))
            return d;
    }
}

/* qmgr_grant_new - an ODMR session's destination, named name ("odmr:user") */
struct qmgr_grant *qmgr_grant_new(struct qmgr *m, const char *name, qmgr_deliver_fn fn,
                                  void *ctx)
{
    struct qmgr_grant *g = xcalloc(1, sizeof(*g));
    struct dest *d = grant_dest(m, name);

    d->window = 1;
    d->grant = g;
    g->m = m;
    g->d = d;
    g->fn = fn;
    g->ctx = ctx;
    g->next = m->grants;
    m->grants = g;
    return g;
}

/* qmgr_grant_domain - domain's recipients go to g from now on */
void qmgr_grant_domain(struct qmgr_grant *g, const char *domain)
{
    g->domains = xreallocarray(g->domains, g->ndomains + 1, sizeof(*g->domains));
    g->domains[g->ndomains++] = xstrdup(domain);
}

/* qmgr_grant_held - the domain is held by some ODMR session */
int qmgr_grant_held(const struct qmgr *m, const char *domain)
{
    return grant_find(m, domain) != NULL;
}

/*
 * flush_for_grant - e is scheduled (run queue, or again after its delivery)
 * for a domain of g. A flush of every recipient (etrn-queue -f) counts only
 * while e waits on the run queue: once active, its recipients for g are jobs
 * of g's destination already, and a delivery hanging elsewhere must not hold
 * the site's turn open.
 */
static int flush_for_grant(const struct qent *e, const struct qmgr_grant *g)
{
    if (!e->flush_req || (!e->on_runq && e->am == NULL))
        return 0;
    if (e->nflush_domains == 0)
        return e->on_runq;
    for (size_t i = 0; i < g->ndomains; i++)
        if (flush_match(e, g->domains[i]))
            return 1;
    return 0;
}

/* qmgr_grant_busy - jobs of g waiting or running, and messages scheduled for its domains */
size_t qmgr_grant_busy(const struct qmgr_grant *g)
{
    size_t n = g->d->running, nent;
    const struct job *j;
    void **ents;

    STAILQ_FOREACH(j, &g->d->queue, wait)
        n++;
    if (n > 0)
        return n;
    ents = table_values(g->m->msgs, &nent);
    for (size_t i = 0; i < nent; i++)
        n += flush_for_grant(ents[i], g);
    free(ents);
    return n;
}

/* qmgr_grant_end - the session is over: jobs still waiting are deferred */
void qmgr_grant_end(struct qmgr_grant *g)
{
    struct qmgr *m;
    struct qmgr_grant **pp;

    if (g == NULL)
        return;
    m = g->m;
    for (pp = &m->grants; *pp && *pp != g; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = g->next;
    g->d->grant = NULL;
    dest_dispatch(m, g->d); /* each waiting job: "ODMR session ended" */
    for (size_t i = 0; i < g->ndomains; i++)
        free(g->domains[i]);
    free(g->domains);
    free(g);
}

/* ---- results ---- */

/* settle - make the recipient states marked so far durable (not needed before a delete) */
static void settle(struct amsg *am)
{
    if (queue_settle(am->m->q, &am->qm) != QUEUE_OK)
        log_error("%s: %s", am->qm.id, queue_error(am->m->q));
}

/* mark - write one recipient's state to the queue file (settle() makes it durable) */
static void mark(struct amsg *am, size_t i, enum queue_rcpt_state state, const char *dsn,
                 const char *reason)
{
    struct qmgr *m = am->m;
    struct queue_rcpt *r = &am->qm.rcpts[i];

    if (queue_update(m->q, &am->qm, i, state, dsn, reason) == QUEUE_OK)
        return;
    log_error("%s: cannot record the state of <%s>: %s", am->qm.id, r->address,
              queue_error(m->q));
    r->state = (int) state; /* the delivery happened; go on as if recorded */
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn ? dsn : "");
    snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
}

/*
 * owe - recipient i was delivered by the message's last job: the state is set in
 * memory only. When that leaves nothing pending, finish() removes the file and
 * the mark would be written to a file on its way out (an open, a pwrite and a
 * dirty page per delivered message); otherwise pay() writes it before anything
 * else happens to the file. A crash meanwhile finds the recipient pending, as it
 * could with a mark not yet fsynced: it is delivered again, never lost.
 */
static void owe(struct amsg *am, size_t i, const char *dsn, const char *reason)
{
    struct queue_rcpt *r = &am->qm.rcpts[i];

    r->state = QUEUE_RCPT_DELIVERED;
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn ? dsn : "");
    snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
    am->owed[i] = 1;
}

/* pay - write the delivered states owe() kept in memory */
static void pay(struct amsg *am)
{
    for (size_t i = 0; i < am->qm.nrcpt; i++)
        if (am->owed[i]) {
            struct queue_rcpt *r = &am->qm.rcpts[i];

            am->owed[i] = 0;
            mark(am, i, QUEUE_RCPT_DELIVERED, r->dsn, r->reason);
        }
}

/* log_rcpt - one Postfix delivery line, logged as the service that tried (or qmgr) */
static void log_rcpt(const char *service, struct amsg *am, const char *addr, const char *relay,
                     double started, double now, const struct delivery_report *rep,
                     const struct delivery_rcpt *res, const char *status)
{
    char delay[32], a[32], b[32], c[32], d[32];

    fmt_delay(delay, sizeof(delay), now - am->arrival);
    fmt_part(a, sizeof(a), am->activated - am->arrival);
    fmt_part(b, sizeof(b), started - am->activated);
    fmt_part(c, sizeof(c), rep ? rep->conn_time : 0);
    fmt_part(d, sizeof(d), rep ? rep->xmit_time : 0);
    log_info_as(service, "%s: to=<%s>, relay=%s, delay=%s, delays=%s/%s/%s/%s, dsn=%s, status=%s (%s)",
                am->qm.id, addr, relay && *relay ? relay : "none", delay, a, b, c, d,
                res->dsn[0] ? res->dsn : "4.0.0", status, res->text);
}

/* send_bounce - one DSN for the recipients in list; 0 when it is queued */
static int send_bounce(struct amsg *am, const size_t *list, const struct delivery_rcpt *const *res,
                       size_t n, double now)
{
    struct qmgr *m = am->m;
    struct bounce_rcpt *br = xcalloc(n, sizeof(*br));
    struct buf headers = BUF_INIT;
    struct bounce_info info;
    char newid[QUEUE_ID_MAX + 1];
    size_t size = 0;
    int fd, rc;

    for (size_t k = 0; k < n; k++) {
        br[k].address = am->qm.rcpts[list[k]].address;
        br[k].dsn = res[k]->dsn;
        br[k].text = res[k]->text;
    }
    if ((fd = queue_open_content(m->q, &am->qm)) >= 0) {
        bounce_headers(fd, am->qm.data_offset, am->qm.size, &headers);
        close(fd);
    }
    memset(&info, 0, sizeof(info));
    info.myhostname = m->conf->myhostname ? m->conf->myhostname : "localhost";
    info.queue_id = am->qm.id;
    info.sender = am->qm.sender;
    info.arrival = am->qm.arrival;
    info.now = (time_t) now;
    info.rcpts = br;
    info.nrcpt = n;
    info.headers = headers.data ? headers.data : "";
    info.headers_len = headers.len;
    rc = bounce_send(m->q, &info, newid, sizeof(newid), &size);
    buf_free(&headers);
    free(br);
    if (rc != QUEUE_OK) {
        log_error("%s: cannot queue a non-delivery notification: %s", am->qm.id,
                  queue_error(m->q));
        return -1;
    }
    log_info_as("bounce", "%s: sender non-delivery notification: %s", am->qm.id, newid);
    log_info("%s: from=<>, size=%zu, nrcpt=1 (queue active)", newid, size);
    qmgr_incoming(m, newid);
    return 0;
}

/* apply - record and log the results for recipients idx[] of am, as service reported them */
static void apply(const char *service, struct amsg *am, const size_t *idx, size_t n,
                  const struct delivery_report *rep, double started)
{
    struct qmgr *m = am->m;
    double now = clock_wall();
    int null_sender = am->qm.sender[0] == 0;
    long long lifetime = null_sender ? m->conf->bounce_queue_lifetime
                                     : m->conf->maximal_queue_lifetime;
    int expired = now - am->arrival >= (double) lifetime;
    size_t *fail = xcalloc(n + 1, sizeof(*fail));
    const struct delivery_rcpt **fres = xcalloc(n + 1, sizeof(*fres));
    size_t nfail = 0, nexpired = 0;

    for (size_t k = 0; k < n; k++) {
        size_t i = idx[k];
        const struct delivery_rcpt *res = &rep->rcpt[k];
        const char *addr = am->qm.rcpts[i].address;

        am->touched[i] = 1;
        switch (res->status) {
        case DELIVERY_OK:
            if (am->last_job)
                owe(am, i, res->dsn, res->text);
            else
                mark(am, i, QUEUE_RCPT_DELIVERED, res->dsn, res->text);
            log_rcpt(service, am, addr, rep->relay, started, now, rep, res, "sent");
            break;
        case DELIVERY_PERM:
            log_rcpt(service, am, addr, rep->relay, started, now, rep, res, "bounced");
            if (null_sender) {
                mark(am, i, QUEUE_RCPT_BOUNCED, res->dsn, res->text);
            } else {
                fail[nfail] = i;
                fres[nfail++] = res;
            }
            break;
        case DELIVERY_TEMP:
        default:
            log_rcpt(service, am, addr, rep->relay, started, now, rep, res, "deferred");
            if (!expired) {
                mark(am, i, QUEUE_RCPT_PENDING, res->dsn, res->text);
                am->any_temp = 1;
            } else if (null_sender) {
                mark(am, i, QUEUE_RCPT_BOUNCED, res->dsn, res->text);
                nexpired++;
            } else {
                fail[nfail] = i;
                fres[nfail++] = res;
                nexpired++;
            }
            break;
        }
    }
    if (nexpired && !am->expiry_logged) {
        am->expiry_logged = 1;
        if (null_sender)
            log_info("%s: from=<>, status=expired, discarded (null sender: no notification)",
                     am->qm.id);
        else
            log_info("%s: from=<%s>, status=expired, returned to sender", am->qm.id,
                     am->qm.sender);
    }
    if (nfail > 0) {
        int sent = send_bounce(am, fail, fres, nfail, now) == 0;

        for (size_t k = 0; k < nfail; k++) {
            if (sent) {
                mark(am, fail[k], QUEUE_RCPT_BOUNCED, fres[k]->dsn, fres[k]->text);
            } else {
                /* no DSN queued: keep the recipient and try the whole thing again later */
                mark(am, fail[k], QUEUE_RCPT_PENDING, fres[k]->dsn, fres[k]->text);
                am->any_temp = 1;
            }
        }
    }
    free(fail);
    free(fres);
}

/* apply_now - a result without an attempt: status for every recipient idx[] */
static void apply_now(struct amsg *am, const size_t *idx, size_t n,
                      const struct delivery_rcpt *each)
{
    struct delivery_report rep;

    if (n == 0)
        return;
    delivery_report_init(&rep, n);
    snprintf(rep.relay, sizeof(rep.relay), "none");
    for (size_t k = 0; k < n; k++)
        rep.rcpt[k] = each[k];
    apply("qmgr", am, idx, n, &rep, clock_wall());
    delivery_report_free(&rep);
}

/* rcpt_result - fill one no-attempt result */
static void rcpt_result(struct delivery_rcpt *r, enum delivery_status status, const char *dsn,
                        const char *text)
{
    r->status = status;
    snprintf(r->dsn, sizeof(r->dsn), "%s", dsn);
    snprintf(r->text, sizeof(r->text), "%s", text);
}

/* ---- jobs ---- */

/* job_free - release a job */
static void job_free(struct job *j)
{
    if (j->fd >= 0)
        close(j->fd);
    free(j->idx);
    free(j->addrs);
    free(j);
}

/* job_end - a job is over: maybe the message is too */
static void job_end(struct job *j)
{
    struct amsg *am = j->am;

    job_free(j);
    if (--am->jobs == 0)
        finish(am);
    else
        settle(am); /* other jobs may take long: do not leave this one's marks in the cache */
}

/* job_now - end a job without an attempt */
static void job_now(struct job *j, enum delivery_status status, const char *dsn, const char *text)
{
    struct delivery_rcpt *each = xcalloc(j->n, sizeof(*each));

    for (size_t k = 0; k < j->n; k++)
        rcpt_result(&each[k], status, dsn, text);
    apply_now(j->am, j->idx, j->n, each);
    free(each);
    job_end(j);
}

/* conn_failure - nothing answered: every recipient temporary, relay none or 4.4.1 */
static int conn_failure(const struct delivery_report *rep)
{
    int all_441 = 1;

    if (rep->nrcpt == 0)
        return 0;
    for (size_t k = 0; k < rep->nrcpt; k++) {
        if (rep->rcpt[k].status != DELIVERY_TEMP)
            return 0;
        if (strcmp(rep->rcpt[k].dsn, "4.4.1") != 0)
            all_441 = 0;
    }
    return all_441 || strcmp(rep->relay, "none") == 0 || rep->relay[0] == 0;
}

/* running_link - j is held by a transport */
static void running_link(struct qmgr *m, struct job *j)
{
    LIST_INSERT_HEAD(&m->running, j, run);
}

/* running_unlink - j is back from its transport */
static void running_unlink(struct qmgr *m, struct job *j)
{
    (void) m;
    LIST_REMOVE(j, run);
}

/* job_done - the transport's answer for one job */
static void job_done(void *ctx, const struct delivery_report *rep)
{
    struct job *j = ctx;
    struct qmgr *m = j->m;
    struct dest *d = j->d;
    double now = clock_wall();

    running_unlink(m, j);
    d->running--;
    if (rep->nrcpt > 0)
        snprintf(d->last_result, sizeof(d->last_result), "%s (%s)",
                 delivery_status_name(rep->rcpt[0].status), rep->rcpt[0].text);
    if (d->route.transport != SERVER_TRANSPORT_LOCAL && !d->odmr && conn_failure(rep)) {
        d->dead_until = now + (double) m->conf->minimal_backoff_time;
        snprintf(d->dead_dsn, sizeof(d->dead_dsn), "%s", rep->rcpt[0].dsn);
        snprintf(d->dead_reason, sizeof(d->dead_reason), "%s", rep->rcpt[0].text);
        d->window = 1;
    } else {
        for (size_t k = 0; k < rep->nrcpt; k++)
            if (rep->rcpt[k].status == DELIVERY_OK) {
                d->window = dest_limit(m);
                d->dead_until = 0;
                break;
            }
    }
    if (rep->nrcpt == j->n) {
        j->am->last_job = j->am->jobs == 1; /* job_end -> finish() follows at once */
        apply(d->odmr ? "odmr" : d->route.transport == SERVER_TRANSPORT_LOCAL ? "local" : "smtp",
              j->am, j->idx, j->n, rep, j->started);
        j->am->last_job = 0;
    } else {
        log_error("%s: transport answered for %zu of %zu recipients", j->am->qm.id, rep->nrcpt,
                  j->n);
        struct delivery_rcpt *each = xcalloc(j->n, sizeof(*each));

        for (size_t k = 0; k < j->n; k++)
            rcpt_result(&each[k], DELIVERY_TEMP, "4.3.0", "internal error: incomplete report");
        apply_now(j->am, j->idx, j->n, each);
        free(each);
    }
    job_end(j);
    dest_dispatch(m, d);
}

/* job_start - hand a job to its transport */
static void job_start(struct qmgr *m, struct job *j)
{
    struct dest *d = j->d;
    struct amsg *am = j->am;
    int kind = (int) d->route.transport;
    struct transport_slot *slot = &m->transports[kind], odmr_slot;
    struct delivery_job dj;
    char why[QUEUE_REASON_MAX + 1];

    if (slot->fn == NULL && kind == SERVER_TRANSPORT_ETRN_ONLY)
        slot = &m->transports[SERVER_TRANSPORT_SMTP];
    if (d->odmr && d->grant == NULL) {
        job_now(j, DELIVERY_TEMP, "4.4.2", "ODMR session ended");
        return;
    }
    if (d->odmr) {
        odmr_slot.fn = d->grant->fn;
        odmr_slot.ctx = d->grant->ctx;
        slot = &odmr_slot;
    }
    if (slot->fn == NULL) {
        job_now(j, DELIVERY_TEMP, "4.3.0", "mail transport unavailable");
        return;
    }
    if ((j->fd = queue_open_content(m->q, &am->qm)) < 0) {
        snprintf(why, sizeof(why), "cannot read the queued message: %s", queue_error(m->q));
        job_now(j, DELIVERY_TEMP, "4.3.0", why);
        return;
    }
    memset(&dj, 0, sizeof(dj));
    dj.id = am->qm.id;
    dj.sender = am->qm.sender;
    dj.rcpts = j->addrs;
    dj.nrcpt = j->n;
    dj.content_fd = j->fd;
    dj.content_offset = am->qm.data_offset;
    dj.content_size = am->qm.size;
    dj.route = d->route;
    j->started = clock_wall();
    d->last_attempt = (time_t) j->started;
    d->running++;
    running_link(m, j);
    if (slot->fn(slot->ctx, &dj, job_done, j) != 0) {
        running_unlink(m, j);
        d->running--;
        job_now(j, DELIVERY_TEMP, "4.3.0", "mail transport unavailable");
    }
}

/* dest_dispatch - start waiting jobs while the window allows */
static void dest_dispatch(struct qmgr *m, struct dest *d)
{
    char why[QUEUE_REASON_MAX + 1];

    if (d->dispatching)
        return;
    d->dispatching = 1;
    while (!STAILQ_EMPTY(&d->queue)
           && d->running < (d->odmr ? 1 : d->window < dest_limit(m) ? d->window : dest_limit(m))) {
        struct job *j = STAILQ_FIRST(&d->queue);

        STAILQ_REMOVE_HEAD(&d->queue, wait);
        if (!j->flush && dest_dead(d, clock_wall())) {
            snprintf(why, sizeof(why), "delivery temporarily suspended: %s", d->dead_reason);
            job_now(j, DELIVERY_TEMP, d->dead_dsn[0] ? d->dead_dsn : "4.4.1", why);
            continue;
        }
        job_start(m, j);
    }
    /* jobs still waiting behind a dead destination go now, without an attempt */
    if (!STAILQ_EMPTY(&d->queue) && dest_dead(d, clock_wall())) {
        STAILQ_HEAD(, job) all = STAILQ_HEAD_INITIALIZER(all);
        struct job *j;

        STAILQ_CONCAT(&all, &d->queue);
        while ((j = STAILQ_FIRST(&all)) != NULL) {
            STAILQ_REMOVE_HEAD(&all, wait);
            if (j->flush) {
                STAILQ_INSERT_TAIL(&d->queue, j, wait);
                continue;
            }
            snprintf(why, sizeof(why), "delivery temporarily suspended: %s", d->dead_reason);
            job_now(j, DELIVERY_TEMP, d->dead_dsn[0] ? d->dead_dsn : "4.4.1", why);
        }
    }
    d->dispatching = 0;
}

/* ---- activation and completion ---- */

/* flush_match - recipient domain is one a flush asked for */
static int flush_match(const struct qent *e, const char *domain)
{
    for (size_t i = 0; i < e->nflush_domains; i++)
        if (strcasecmp(e->flush_domains[i], domain) == 0)
            return 1;
    return 0;
}

/* activate - take a message into active/ and start its deliveries */
static void activate(struct qmgr *m, struct qent *e)
{
    struct amsg *am;
    struct job **jobs = NULL;
    size_t njobs = 0, nnow = 0, *nowidx;
    struct delivery_rcpt *nowres;
    double now = clock_wall();
    int rc;

    if (e->dir != QUEUE_ACTIVE) {
        rc = queue_move(m->q, e->id, e->dir, QUEUE_ACTIVE);
        if (rc == QUEUE_NOTFOUND) {
            ent_drop(m, e);
            return;
        }
        if (rc != QUEUE_OK) {
            log_error("%s: %s; trying again in %llds", e->id, queue_error(m->q),
                      m->conf->minimal_backoff_time);
            e->due = now + (double) m->conf->minimal_backoff_time;
            heap_push(m, e);
            return;
        }
        set_dir(m, e, QUEUE_ACTIVE);
    }
    am = xcalloc(1, sizeof(*am));
    rc = queue_load(m->q, QUEUE_ACTIVE, e->id, &am->qm);
    if (rc != QUEUE_OK) {
        log_warn("%s: %s", e->id, queue_error(m->q));
        free(am);
        if (rc == QUEUE_CORRUPT && queue_move(m->q, e->id, QUEUE_ACTIVE, QUEUE_CORRUPT_DIR) == 0)
            log_warn("%s: moved to corrupt/", e->id);
        if (rc == QUEUE_CORRUPT || rc == QUEUE_NOTFOUND) {
            ent_drop(m, e);
        } else {
            e->due = now + (double) m->conf->minimal_backoff_time;
            heap_push(m, e);
        }
        return;
    }
    am->m = m;
    am->e = e;
    e->am = am;
    m->nactive++;
    am->arrival = precise_arrival(&am->qm);
    am->activated = now;
    am->old_retry = am->qm.retry_time;
    am->flush = e->flush_req;
    am->touched = xcalloc(am->qm.nrcpt + 1, 1);
    am->owed = xcalloc(am->qm.nrcpt + 1, 1);
    am->rdest = xcalloc(am->qm.nrcpt + 1, sizeof(*am->rdest));
    am->jobs = 1; /* held while jobs are being set up */
    nowidx = xcalloc(am->qm.nrcpt + 1, sizeof(*nowidx));
    nowres = xcalloc(am->qm.nrcpt + 1, sizeof(*nowres));

    for (size_t i = 0; i < am->qm.nrcpt; i++) {
        struct queue_rcpt *r = &am->qm.rcpts[i];
        const char *domain = rcpt_domain(r->address);
        struct server_route route;
        struct dest *d;
        struct qmgr_grant *g;
        char why[QUEUE_REASON_MAX + 1];
        size_t k;

        if (r->state != QUEUE_RCPT_PENDING)
            continue;
        if ((g = grant_find(m, domain)) != NULL) {
            /* an ODMR session holds the domain: over its connection, as a flush goes */
            d = am->rdest[i] = g->d;
            if (e->flush_req && e->nflush_domains && !flush_match(e, domain)) {
                am->skipped = 1;
                continue;
            }
            goto add_job;
        }
        if (*domain == 0 || server_transport_lookup(m->conf, domain, &route) != 0) {
            if (e->flush_req && e->nflush_domains && !flush_match(e, domain)) {
                am->skipped = 1;
                continue;
            }
            nowidx[nnow] = i;
            rcpt_result(&nowres[nnow++], DELIVERY_PERM, "5.1.2",
                        "bad recipient address: the domain is not a valid host name");
            continue;
        }
        d = am->rdest[i] = dest_get(m, &route);
        if (e->flush_req && e->nflush_domains && !flush_match(e, domain)) {
            am->skipped = 1;
            continue;
        }
        if (!am->flush && route.defer) {
            nowidx[nnow] = i;
            rcpt_result(&nowres[nnow++], DELIVERY_TEMP, "4.7.1", "deferred transport");
            continue;
        }
        if (!am->flush && dest_dead(d, now)) {
            snprintf(why, sizeof(why), "delivery temporarily suspended: %s", d->dead_reason);
            nowidx[nnow] = i;
            rcpt_result(&nowres[nnow++], DELIVERY_TEMP, d->dead_dsn[0] ? d->dead_dsn : "4.4.1",
                        why);
            continue;
        }
    add_job:
        for (k = 0; k < njobs && jobs[k]->d != d; k++)
            ;
        if (k == njobs) {
            struct job *j = xcalloc(1, sizeof(*j));

            j->m = m;
            j->am = am;
            j->d = d;
            j->fd = -1;
            j->flush = am->flush || d->odmr;
            j->idx = xcalloc(am->qm.nrcpt, sizeof(*j->idx));
            j->addrs = xcalloc(am->qm.nrcpt, sizeof(*j->addrs));
            jobs = xreallocarray(jobs, njobs + 1, sizeof(*jobs));
            jobs[njobs++] = j;
        }
        jobs[k]->idx[jobs[k]->n] = i;
        jobs[k]->addrs[jobs[k]->n++] = r->address;
    }
    clear_flush(e);
    apply_now(am, nowidx, nnow, nowres);
    if (njobs > 0)
        settle(am);
    free(nowidx);
    free(nowres);
    am->jobs += njobs;
    for (size_t k = 0; k < njobs; k++) {
        struct dest *d = jobs[k]->d;

        STAILQ_INSERT_TAIL(&d->queue, jobs[k], wait);
        dest_dispatch(m, d);
    }
    free(jobs);
    if (--am->jobs == 0)
        finish(am);
}

/* notify - tell the flush hook which domains of am still wait (1) or are done (0) */
static void notify(struct qmgr *m, const struct amsg *am, int gone)
{
    const struct queue_msg *qm = &am->qm;
    char **seen = NULL;
    size_t nseen = 0;

    if (m->hook == NULL)
        return;
    for (size_t i = 0; i < qm->nrcpt; i++) {
        const char *domain = rcpt_domain(qm->rcpts[i].address);
        int added = 0, dup = 0;

        if (!am->touched[i] || *domain == 0)
            continue;
        for (size_t k = 0; k < nseen && !dup; k++)
            dup = strcasecmp(seen[k], domain) == 0;
        if (dup)
            continue;
        seen = xreallocarray(seen, nseen + 1, sizeof(*seen));
        seen[nseen++] = (char *) domain;
        for (size_t k = 0; k < qm->nrcpt && !gone && !added; k++)
            added = qm->rcpts[k].state == QUEUE_RCPT_PENDING
                    && strcasecmp(rcpt_domain(qm->rcpts[k].address), domain) == 0;
        char lower[DOMAIN_MAX + 2];

        snprintf(lower, sizeof(lower), "%s", domain);
        domain_lowercase(lower);
        m->hook(m->hook_ctx, lower, qm->id, added);
    }
    free(seen);
}

/* forget - tell the flush hook that id ("ALL": every message) was deleted or held */
static void forget(struct qmgr *m, const char *id)
{
    if (m->hook)
        m->hook(m->hook_ctx, NULL, id, 0);
}

/* amsg_free - release an active message's memory */
static void amsg_free(struct qmgr *m, struct amsg *am)
{
    if (am->e)
        am->e->am = NULL;
    queue_msg_free(&am->qm);
    free(am->touched);
    free(am->owed);
    free(am->rdest);
    free(am);
    m->nactive--;
}

/* add_waits - count e as waiting at the destinations of its pending recipients */
static void add_waits(struct amsg *am)
{
    struct qent *e = am->e;

    for (size_t i = 0; i < am->qm.nrcpt; i++) {
        struct dest *d = am->rdest[i];
        int dup = 0;

        if (d == NULL || am->qm.rcpts[i].state != QUEUE_RCPT_PENDING)
            continue;
        for (size_t k = 0; k < e->nwaits && !dup; k++)
            dup = e->waits[k] == d;
        if (dup)
            continue;
        e->waits = xreallocarray(e->waits, e->nwaits + 1, sizeof(*e->waits));
        e->waits[e->nwaits++] = d;
        if (d->waiting++ == 0 || am->qm.arrival < d->oldest)
            d->oldest = am->qm.arrival;
    }
}

/* finish - every job of am is over: remove, hold or defer the message */
static void finish(struct amsg *am)
{
    struct qmgr *m = am->m;
    struct qent *e = am->e;
    size_t pending = 0;
    double now = clock_wall();

    for (size_t i = 0; i < am->qm.nrcpt; i++)
        pending += am->qm.rcpts[i].state == QUEUE_RCPT_PENDING;
    if (e->op == OP_DELETE || pending == 0) {
        /* the delete is the record of the final states: no settle() before it */
        if (queue_delete(m->q, QUEUE_ACTIVE, e->id, QUEUE_LATER) != QUEUE_OK) {
            log_error("%s: %s", e->id, queue_error(m->q));
            pay(am); /* the file stays: it should say what happened */
        }
        log_info("%s: removed", e->id);
        notify(m, am, 1);
        if (e->op == OP_DELETE)
            forget(m, e->id); /* also the domains this delivery did not touch */
        amsg_free(m, am);
        ent_drop(m, e);
        schedule_run(m);
        return;
    }
    pay(am);
    settle(am);
    if (e->op == OP_HOLD) {
        e->op = OP_NONE;
        if (queue_move(m->q, e->id, QUEUE_ACTIVE, QUEUE_HOLD) != QUEUE_OK) {
            log_error("%s: %s", e->id, queue_error(m->q));
        } else {
            set_dir(m, e, QUEUE_HOLD);
            log_info("%s: placed on hold", e->id);
        }
        notify(m, am, 0);
        if (e->dir == QUEUE_HOLD)
            forget(m, e->id); /* after notify: a held message waits for no flush */
        amsg_free(m, am);
        clear_flush(e);
        if (e->dir != QUEUE_HOLD) {
            e->due = now + (double) m->conf->minimal_backoff_time;
            heap_push(m, e);
        }
        schedule_run(m);
        return;
    }
    double due = (double) am->old_retry;

    if (am->any_temp) {
        /* time in queue to the nearest second: a retry that fired a little early
           (a restart rounds the mtime) does not shorten the next gap by a second */
        long long tiq = (long long) (now - am->arrival + 0.5);
        double next = now + (double) qmgr_backoff(0, (time_t) (tiq < 0 ? 0 : tiq),
                                                  m->conf->minimal_backoff_time,
                                                  m->conf->maximal_backoff_time);

        due = am->skipped && due > now && due < next ? due : next;
    }
    if (queue_set_retry_time(m->q, QUEUE_ACTIVE, e->id, (time_t) (due + 0.5)) != QUEUE_OK)
        log_error("%s: %s", e->id, queue_error(m->q));
    if (queue_move(m->q, e->id, QUEUE_ACTIVE, QUEUE_DEFERRED) != QUEUE_OK)
        log_error("%s: %s; it stays in active/", e->id, queue_error(m->q));
    else
        set_dir(m, e, QUEUE_DEFERRED);
    e->due = due;
    if (e->dir == QUEUE_DEFERRED)
        add_waits(am);
    notify(m, am, 0);
    amsg_free(m, am);
    if (e->flush_req)
        runq_push(m, e);
    else
        heap_push(m, e);
    schedule_run(m);
}

/* ---- events ---- */

/* run_cb - activate a batch from the run queue */
static void run_cb(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *m = arg;

    (void) fd;
    (void) what;
    for (int n = 0; n < RUN_BATCH && !TAILQ_EMPTY(&m->runq) && m->nactive < ACTIVE_LIMIT; n++) {
        struct qent *e = TAILQ_FIRST(&m->runq);

        runq_remove(m, e);
        activate(m, e);
    }
    schedule_run(m);
}

/* timer_cb - deferred messages whose time has come go to the run queue */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *m = arg;
    double now = clock_wall();

    (void) fd;
    (void) what;
    while (m->nheap > 0 && m->heap[0]->due <= now + 0.005)
        runq_push(m, m->heap[0]);
    arm_timer(m);
}

/* load_walk - queue_walk callback: know every message of a directory */
static int load_walk(void *ctx, enum queue_dir dir, const char *id)
{
    struct qmgr *m = ctx;
    struct qent *e = htable_find(m->msgs, id);
    time_t when;

    if (e != NULL)
        return 0;
    e = ent_new(m, id, dir);
    if (dir == QUEUE_DEFERRED) {
        e->due = queue_stat(m->q, dir, id, &when) == QUEUE_OK ? (double) when : clock_wall();
        heap_push(m, e);
    } else if (dir == QUEUE_INCOMING || dir == QUEUE_ACTIVE) {
        runq_push(m, e);
    }
    return 0;
}

/* arm_scan - the next full deferred scan */
static void arm_scan(struct qmgr *m)
{
    struct timeval tv = { (time_t) (m->conf->queue_run_delay > 0 ? m->conf->queue_run_delay : 300),
                          0 };

    if (evtimer_add(m->scan_ev, &tv) != 0)
        log_error("qmgr: cannot arm the queue scan timer");
}

/* scan_cb - every queue_run_delay: pick up anything a timer or hook missed */
static void scan_cb(evutil_socket_t fd, short what, void *arg)
{
    struct qmgr *m = arg;

    (void) fd;
    (void) what;
    if (queue_walk(m->q, QUEUE_INCOMING, load_walk, m) != QUEUE_OK
        || queue_walk(m->q, QUEUE_DEFERRED, load_walk, m) != QUEUE_OK)
        log_error("qmgr: queue scan: %s", queue_error(m->q));
    timer_cb(-1, 0, m);
    arm_scan(m);
}

/* ---- public ---- */

/* qmgr_backoff - Postfix's retry delay: clamp(time in queue, min, max) */
long long qmgr_backoff(time_t arrival, time_t now, long long min_backoff, long long max_backoff)
{
    long long t = (long long) now - (long long) arrival;

    if (t > max_backoff)
        t = max_backoff;
    if (t < min_backoff)
        t = min_backoff;
    return t;
}

/* qmgr_new - load the queue and start scheduling */
struct qmgr *qmgr_new(struct event_base *base, const struct server_config *conf,
                      struct queue *q, char *err, size_t errlen)
{
    struct qmgr *m = xcalloc(1, sizeof(*m));

    m->msgs = htable_new(1024);
    TAILQ_INIT(&m->runq);
    LIST_INIT(&m->running);
    m->dests = htable_new(64);
    m->base = base;
    m->conf = conf;
    m->q = q;
    m->timer = evtimer_new(base, timer_cb, m);
    m->run_ev = evtimer_new(base, run_cb, m);
    m->scan_ev = evtimer_new(base, scan_cb, m);
    if (m->timer == NULL || m->run_ev == NULL || m->scan_ev == NULL) {
        snprintf(err, errlen, "qmgr: cannot create timers");
        qmgr_free(m);
        return NULL;
    }
    static const enum queue_dir dirs[] = { QUEUE_ACTIVE, QUEUE_INCOMING, QUEUE_DEFERRED,
                                           QUEUE_HOLD };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (queue_walk(q, dirs[i], load_walk, m) != QUEUE_OK) {
            snprintf(err, errlen, "qmgr: %s", queue_error(q));
            qmgr_free(m);
            return NULL;
        }
    arm_scan(m);
    arm_timer(m);
    schedule_run(m);
    return m;
}

/* qmgr_set_config - use a reloaded configuration */
void qmgr_set_config(struct qmgr *m, const struct server_config *conf)
{
    m->conf = conf;
    evtimer_del(m->scan_ev);
    arm_scan(m);
}

/* qmgr_set_flush_hook - who hears of deferred and finished recipients */
void qmgr_set_flush_hook(struct qmgr *m, qmgr_flush_hook_fn fn, void *ctx)
{
    m->hook = fn;
    m->hook_ctx = ctx;
}

/* qmgr_set_transport - the delivery function for one transport kind */
void qmgr_set_transport(struct qmgr *m, int transport, qmgr_deliver_fn fn, void *ctx)
{
    if (transport < 0 || transport >= SERVER_TRANSPORT_COUNT)
        log_panic("qmgr_set_transport: bad transport %d", transport);
    m->transports[transport].fn = fn;
    m->transports[transport].ctx = ctx;
}

/* qmgr_incoming - a new message in incoming/: deliver it soon */
void qmgr_incoming(struct qmgr *m, const char *id)
{
    struct qent *e;

    if (!queue_id_valid(id))
        return;
    if ((e = htable_find(m->msgs, id)) == NULL)
        e = ent_new(m, id, QUEUE_INCOMING);
    runq_push(m, e);
}

/* msg_has_pending - qm has a pending recipient in domain (NULL: any) */
static int msg_has_pending(const struct queue_msg *qm, const char *domain)
{
    for (size_t i = 0; i < qm->nrcpt; i++)
        if (qm->rcpts[i].state == QUEUE_RCPT_PENDING
            && (domain == NULL || strcasecmp(rcpt_domain(qm->rcpts[i].address), domain) == 0))
            return 1;
    return 0;
}

/* has_pending - 1: a pending recipient in domain (NULL: any), 0: none, <0: queue status */
static int has_pending(struct qmgr *m, const struct qent *e, const char *domain)
{
    struct queue_msg qm;
    int found, rc;

    if (e->am)
        return msg_has_pending(&e->am->qm, domain);
    if ((rc = queue_load(m->q, e->dir, e->id, &qm)) != QUEUE_OK)
        return rc;
    found = msg_has_pending(&qm, domain);
    queue_msg_free(&qm);
    return found;
}

/* qmgr_flush_message - deliver id now, only its recipients in domain (NULL: all) */
int qmgr_flush_message(struct qmgr *m, const char *id, const char *domain)
{
    struct qent *e;
    time_t when;
    int rc;

    if (!queue_id_valid(id))
        return QUEUE_BADID;
    if ((e = htable_find(m->msgs, id)) == NULL) {
        if (queue_stat(m->q, QUEUE_DEFERRED, id, &when) != QUEUE_OK)
            return 0;
        e = ent_new(m, id, QUEUE_DEFERRED);
        e->due = (double) when;
    }
    if (e->dir == QUEUE_HOLD || e->op != OP_NONE)
        return 0;
    if (e->am) {
        /* again after this delivery, if it has recipients there */
        if (!msg_has_pending(&e->am->qm, domain))
            return 0;
        add_flush(e, domain);
        return 1;
    }
    if ((rc = has_pending(m, e, domain)) <= 0) {
        if (rc == QUEUE_NOTFOUND)
            ent_drop(m, e);
        return rc == QUEUE_NOTFOUND ? 0 : rc;
    }
    add_flush(e, domain);
    runq_push(m, e);
    return 1;
}

/* qmgr_domain_waiting - queued messages with a pending recipient in domain, at most max */
size_t qmgr_domain_waiting(struct qmgr *m, const char *domain, size_t max)
{
    size_t n = 0, nent;
    void **ents = table_values(m->msgs, &nent);

    for (size_t i = 0; i < nent && n < max; i++) {
        const struct qent *e = ents[i];

        if (e->dir != QUEUE_HOLD && e->op == OP_NONE && has_pending(m, e, domain) > 0)
            n++;
    }
    free(ents);
    return n;
}

/* qmgr_flush_domain - every queued message with a pending recipient in domain, now */
size_t qmgr_flush_domain(struct qmgr *m, const char *domain)
{
    size_t n = 0, nent;
    void **ents = table_values(m->msgs, &nent);
    char (*ids)[QUEUE_ID_MAX + 1] = xcalloc(nent + 1, sizeof(*ids));

    /* by ID: qmgr_flush_message may drop an entry whose file is gone */
    for (size_t i = 0; i < nent; i++)
        snprintf(ids[i], sizeof(ids[i]), "%s", ((const struct qent *) ents[i])->id);
    free(ents);
    for (size_t i = 0; i < nent; i++)
        n += qmgr_flush_message(m, ids[i], domain) > 0;
    free(ids);
    return n;
}

/* qmgr_flush_all - every deferred message now; dead destinations forgotten */
size_t qmgr_flush_all(struct qmgr *m)
{
    size_t n = 0, ndest;
    void **dests = table_values(m->dests, &ndest);
    struct qent *e;

    for (size_t i = 0; i < ndest; i++)
        ((struct dest *) dests[i])->dead_until = 0;
    free(dests);
    while (m->nheap > 0) {
        e = m->heap[0];

        add_flush(e, NULL);
        runq_push(m, e);
        n++;
    }
    /* what already waits on the run queue is delivered with flush rules too */
    TAILQ_FOREACH(e, &m->runq, runq)
        add_flush(e, NULL);
    arm_timer(m);
    return n;
}

/* delete_one - remove one message now, or when its delivery ends; flags: queue_delete's */
static int delete_one(struct qmgr *m, struct qent *e, int flags)
{
    if (e->am) {
        e->op = OP_DELETE;
        return QUEUE_OK;
    }
    int rc = queue_delete(m->q, e->dir, e->id, flags);

    if (rc != QUEUE_OK && rc != QUEUE_NOTFOUND)
        return rc;
    if (rc == QUEUE_OK)
        log_info("%s: removed", e->id);
    if (rc == QUEUE_OK && !(flags & QUEUE_LATER))
        forget(m, e->id); /* qmgr_delete("ALL") forgets everything at once */
    ent_drop(m, e);
    return rc;
}

/* qmgr_delete - remove a message ("ALL": every message) */
int qmgr_delete(struct qmgr *m, const char *id)
{
    struct qent *e;
    int rc = QUEUE_NOTFOUND;

    if (strcmp(id, "ALL") == 0) {
        size_t n;
        void **all = table_values(m->msgs, &n);
        int r;

        /* durable once for the lot, before the answer */
        rc = QUEUE_OK;
        for (size_t i = 0; i < n; i++) {
            r = delete_one(m, all[i], QUEUE_LATER);

            if (r != QUEUE_OK && r != QUEUE_NOTFOUND)
                rc = r;
        }
        free(all);
        if ((r = queue_sync(m->q)) != QUEUE_OK)
            rc = r;
        forget(m, "ALL");
        return rc;
    }
    if (!queue_id_valid(id))
        return QUEUE_BADID;
    if ((e = htable_find(m->msgs, id)) != NULL)
        return delete_one(m, e, 0);
    /* not known (yet): look in the directories a message can wait in */
    static const enum queue_dir dirs[] = { QUEUE_INCOMING, QUEUE_DEFERRED, QUEUE_HOLD };
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if ((rc = queue_delete(m->q, dirs[i], id, 0)) != QUEUE_NOTFOUND) {
            if (rc == QUEUE_OK) {
                log_info("%s: removed", id);
                forget(m, id);
            }
            return rc;
        }
    return QUEUE_NOTFOUND;
}

/* move_ent - an operator's move of a waiting message; a message gone meanwhile is forgotten */
static int move_ent(struct qmgr *m, struct qent *e, enum queue_dir to)
{
    int rc = queue_move(m->q, e->id, e->dir, to);

    if (rc == QUEUE_NOTFOUND)
        ent_drop(m, e);
    else if (rc == QUEUE_OK)
        set_dir(m, e, to);
    return rc;
}

/* operator_ent - the entry of a known message an operator acts on, or an error */
static int operator_ent(struct qmgr *m, const char *id, struct qent **e)
{
    if (!queue_id_valid(id))
        return QUEUE_BADID;
    if ((*e = htable_find(m->msgs, id)) == NULL)
        return QUEUE_NOTFOUND;
    return QUEUE_OK;
}

/* qmgr_hold - put a message on hold (never scheduled until released) */
int qmgr_hold(struct qmgr *m, const char *id)
{
    struct qent *e;
    int rc;

    if ((rc = operator_ent(m, id, &e)) != QUEUE_OK || e->dir == QUEUE_HOLD)
        return rc;
    if (e->am) {
        e->op = OP_HOLD;
        return QUEUE_OK;
    }
    if ((rc = move_ent(m, e, QUEUE_HOLD)) != QUEUE_OK)
        return rc;
    heap_remove(m, e);
    runq_remove(m, e);
    clear_flush(e);
    log_info("%s: placed on hold", e->id);
    forget(m, e->id);
    return QUEUE_OK;
}

/* qmgr_release - take a message off hold; it is due now */
int qmgr_release(struct qmgr *m, const char *id)
{
    struct qent *e;
    int rc;

    if ((rc = operator_ent(m, id, &e)) != QUEUE_OK)
        return rc;
    if (e->am && e->op == OP_HOLD) {
        e->op = OP_NONE; /* still active: it will not go to hold/ after all */
        return QUEUE_OK;
    }
    if (e->dir != QUEUE_HOLD)
        return QUEUE_NOTFOUND;
    if ((rc = move_ent(m, e, QUEUE_INCOMING)) != QUEUE_OK)
        return rc;
    log_info("%s: released from hold", e->id);
    runq_push(m, e);
    return QUEUE_OK;
}

/* cmp_dest - order destinations by name */
static int cmp_dest(const void *a, const void *b)
{
    const struct dest *x = *(const struct dest *const *) a, *y = *(const struct dest *const *) b;

    return strcmp(x->name, y->name);
}

/* qmgr_status_json - counts kept in memory, and every known destination */
void qmgr_status_json(const struct qmgr *m, struct buf *out)
{
    size_t n, total = m->count[QUEUE_INCOMING] + m->count[QUEUE_ACTIVE]
                      + m->count[QUEUE_DEFERRED] + m->count[QUEUE_HOLD];
    void **dests = table_values(m->dests, &n);
    double now = clock_wall();

    buf_printf(out, "\"total\":%zu,\"incoming\":%zu,\"active\":%zu,\"deferred\":%zu,\"hold\":%zu,"
                    "\"destinations\":[",
               total, m->count[QUEUE_INCOMING], m->count[QUEUE_ACTIVE], m->count[QUEUE_DEFERRED],
               m->count[QUEUE_HOLD]);
    qsort(dests, n, sizeof(*dests), cmp_dest);
    for (size_t i = 0; i < n; i++) {
        const struct dest *d = dests[i];
        size_t queued = 0;

        const struct job *j;

        STAILQ_FOREACH(j, &d->queue, wait)
            queued++;
        buf_puts(out, i ? ",{\"destination\":" : "{\"destination\":");
        buf_json_string(out, d->name);
        buf_printf(out, ",\"waiting\":%zu,\"running\":%zu,\"queued\":%zu,\"oldest\":%lld,"
                        "\"last_attempt\":%lld,\"last_result\":",
                   d->waiting, d->running, queued, (long long) d->oldest,
                   (long long) d->last_attempt);
        buf_json_string(out, d->last_result);
        buf_printf(out, ",\"dead\":%s}", dest_dead(d, now) ? "true" : "false");
    }
    buf_puts(out, "]");
    free(dests);
}

#define STATUS_TEXT_MAX 100 /* a longer last result ends in "..." (the JSON has it whole) */

/*
 * qmgr_status_text - the totals, a blank line and the destinations table:
 * one line per destination, sorted, its last result last (cut at
 * STATUS_TEXT_MAX), times in local time
 */
void qmgr_status_text(const struct qmgr *m, struct buf *out)
{
    size_t n, total = m->count[QUEUE_INCOMING] + m->count[QUEUE_ACTIVE]
                      + m->count[QUEUE_DEFERRED] + m->count[QUEUE_HOLD];
    void **dests = table_values(m->dests, &n);
    double now = clock_wall();
    int width = 11;

    buf_printf(out, "total %zu: incoming %zu, active %zu, deferred %zu, hold %zu\n\n", total,
               m->count[QUEUE_INCOMING], m->count[QUEUE_ACTIVE], m->count[QUEUE_DEFERRED],
               m->count[QUEUE_HOLD]);
    qsort(dests, n, sizeof(*dests), cmp_dest);
    for (size_t i = 0; i < n; i++) {
        int len = (int) strlen(((const struct dest *) dests[i])->name);

        width = len > width ? len : width;
    }
    buf_printf(out, "%-*s %7s %7s  %-19s  %-19s  %-4s  %s\n", width, "DESTINATION", "WAITING",
               "RUNNING", "OLDEST", "LAST ATTEMPT", "DEAD", "LAST RESULT");
    for (size_t i = 0; i < n; i++) {
        const struct dest *d = dests[i];
        char oldest[TIMEFMT_LOCAL_MAX], last[TIMEFMT_LOCAL_MAX];
        const char *res = d->last_result[0] ? d->last_result : "-";
        int cut = strlen(res) > STATUS_TEXT_MAX;

        timefmt_local((long long) d->oldest, oldest, sizeof(oldest));
        timefmt_local((long long) d->last_attempt, last, sizeof(last));
        buf_printf(out, "%-*s %7zu %7zu  %-19s  %-19s  %-4s  %.*s%s\n", width, d->name,
                   d->waiting, d->running, oldest, last, dest_dead(d, now) ? "yes" : "no",
                   cut ? STATUS_TEXT_MAX - 3 : STATUS_TEXT_MAX, res, cut ? "..." : "");
    }
    free(dests);
}

/* qmgr_free - stop; unfinished messages stay in active/ for the next start */
void qmgr_free(struct qmgr *m)
{
    size_t n;
    void **all;

    if (m == NULL)
        return;
    while (m->grants)
        qmgr_grant_end(m->grants);
    while (!LIST_EMPTY(&m->running)) {
        struct job *j = LIST_FIRST(&m->running);

        running_unlink(m, j);
        job_free(j);
    }
    all = table_values(m->dests, &n);
    for (size_t i = 0; i < n; i++) {
        struct dest *d = all[i];

        while (!STAILQ_EMPTY(&d->queue)) {
            struct job *j = STAILQ_FIRST(&d->queue);

            STAILQ_REMOVE_HEAD(&d->queue, wait);
            job_free(j);
        }
        free(d->key);
        free(d->name);
        free(d);
    }
    free(all);
    all = table_values(m->msgs, &n);
    for (size_t i = 0; i < n; i++) {
        struct qent *e = all[i];

        if (e->am) {
            e->am->e = NULL;
            queue_msg_free(&e->am->qm);
            free(e->am->touched);
            free(e->am->rdest);
            free(e->am);
        }
        clear_flush(e);
        free(e->waits);
        free(e);
    }
    free(all);
    htable_free(m->dests, NULL);
    htable_free(m->msgs, NULL);
    free(m->heap);
    struct event *evs[] = { m->timer, m->run_ev, m->scan_ev };
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
        if (evs[i])
            event_free(evs[i]);
    free(m);
}
