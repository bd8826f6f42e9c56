#define LOG_SERVICE "smtpd" /* its log lines: syslog_name/smtpd[pid] */

/*
 * client_name - reverse and forward DNS of SMTP clients on threads (contract in
 * client_name.h).
 *
 * Hand-over: the loop makes a query (refs: the loop and the thread) and starts
 * a detached thread that holds the hand-off (common/handoff); the thread
 * resolves and posts the query back to the loop, which calls fn for each
 * query it still waits for. A timeout or a cancel makes the loop stop waiting
 * (fn runs with NULL, or not at all); the query itself is freed when the
 * thread has posted it. client_name_free() closes the hand-off: a thread that
 * outlives it has its query dropped (freed) and, last, frees the hand-off.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "client_name.h"
#include "handoff.h"
#include "log.h"
#include "loop.h"
#include "mx.h"

struct client_name_query {
    struct handoff_item link;    /* first: the hand-off gives it back as a query */
    struct client_names *cn;
    struct handoff *back;
    char addr[64];
    char resolver[128];
    char name[256];              /* "" when none */
    int waiting;                 /* the loop still wants fn to run (loop only) */
    client_name_fn fn;
    void *ctx;
    struct event *timer;
};

struct client_names {
    struct event_base *base;
    struct handoff *back;
    int closing;                 /* client_name_free: posted answers are dropped */
    char resolver[128];
    size_t running;              /* threads not yet posted back */
};

/* query_drop - a query posted after client_name_free */
static void query_drop(struct handoff_item *item)
{
    free(item);
}

/* lookup_thread - resolve one address, post the query back to the loop */
static void *lookup_thread(void *arg)
{
    struct client_name_query *q = arg;
    struct mx_resolver *r;
    char why[512];

    r = mx_resolver_new(q->resolver[0] ? q->resolver : NULL, why, sizeof(why));
    if (r == NULL || mx_lookup_name(r, q->addr, q->name, sizeof(q->name), why, sizeof(why))
                         != MX_OK)
        q->name[0] = 0;
    mx_resolver_free(r);
    handoff_post_release(q->back, &q->link);
    return NULL;
}

/* finish - the loop's part of a query is over: stop its timer */
static void finish(struct client_name_query *q)
{
    q->waiting = 0;
    loop_event_free(&q->timer);
}

/* query_back - a thread posted an answer: run fn if the loop still waits for it */
static void query_back(void *arg, struct handoff_item *item)
{
    struct client_names *cn = arg;
    struct client_name_query *q = (struct client_name_query *) item;

    cn->running--;
    if (q->waiting) {
        finish(q);
        if (!cn->closing)
            q->fn(q->ctx, q->name[0] ? q->name : NULL);
    }
    free(q);
}

/* timeout_event - no answer in time: the client is unknown */
static void timeout_event(evutil_socket_t fd, short what, void *arg)
{
    struct client_name_query *q = arg;

    (void) fd;
    (void) what;
    finish(q);
    q->fn(q->ctx, NULL);
}

/* client_name_new - a lookup service on base */
struct client_names *client_name_new(struct event_base *base, const char *resolver, char *err,
                                     size_t errlen)
{
    struct client_names *cn = xcalloc(1, sizeof(*cn));

    if ((cn->back = handoff_new(base, query_back, cn, err, errlen)) == NULL) {
        free(cn);
        return NULL;
    }
    cn->base = base;
    client_name_set_resolver(cn, resolver);
    return cn;
}

/* client_name_set_resolver - the DNS server of later lookups */
void client_name_set_resolver(struct client_names *cn, const char *resolver)
{
    snprintf(cn->resolver, sizeof(cn->resolver), "%s", resolver ? resolver : "");
}

/* client_name_lookup - start one lookup; NULL when none could start */
struct client_name_query *client_name_lookup(struct client_names *cn, const char *addr,
                                             client_name_fn fn, void *ctx)
{
    static const struct timeval limit = { CLIENT_NAME_TIMEOUT, 0 };
    struct client_name_query *q;
    pthread_attr_t attr;
    pthread_t tid;
    sigset_t all, old;
    int rc;

    if (cn->running >= CLIENT_NAME_MAX)
        return NULL;
    q = xcalloc(1, sizeof(*q));
    q->cn = cn;
    q->back = cn->back;
    q->fn = fn;
    q->ctx = ctx;
    q->waiting = 1;
    snprintf(q->addr, sizeof(q->addr), "%s", addr);
    snprintf(q->resolver, sizeof(q->resolver), "%s", cn->resolver);
    q->timer = evtimer_new(cn->base, timeout_event, q);
    if (q->timer == NULL || evtimer_add(q->timer, &limit) != 0) {
        loop_event_free(&q->timer);
        free(q);
        return NULL;
    }
    handoff_hold(cn->back);
    /* the thread takes no signal: they stay with the loop */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    rc = pthread_create(&tid, &attr, lookup_thread, q);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        log_warn("client name lookup for %s: cannot start a thread: %s", addr, strerror(rc));
        event_free(q->timer);
        free(q);
        handoff_release(cn->back);
        return NULL;
    }
    cn->running++;
    return q;
}

/* client_name_cancel - the caller no longer wants the answer */
void client_name_cancel(struct client_name_query *q)
{
    if (q && q->waiting)
        finish(q);
}

/* client_name_free - stop: pending fns do not run; running threads clean up after themselves */
void client_name_free(struct client_names *cn)
{
    if (cn == NULL)
        return;
    cn->closing = 1;
    handoff_close(cn->back, query_drop); /* frees the posted queries, runs no fn */
    free(cn);
}
