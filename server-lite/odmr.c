/*
 * odmr.c - ATRN (RFC 2645) and the turn: after "250 OK now reversing the
 * connection" the provider is the SMTP client on the site's connection.
 *
 * The turn holds a grant for its domains (struct odmr_ops, the qmgr in
 * etrn-server): the queue side routes their recipients here one job at a
 * time, records each result as for any delivery (delivered, deferred with
 * the site's reply, bounced on 5xx) and updates the flush logs. Jobs that
 * come before the site's 220 and EHLO wait here; every queued message of
 * each domain is scheduled once the client is ready (from the queue, not
 * the flush index: a message the index does not list is sent too). A
 * connection lost mid-transaction leaves that message's recipients
 * deferred (queued). After IDLE_QUIT_MS with no job, none waiting and none
 * scheduled, the turn sends QUIT and ends the grant; at
 * odmr_session_time_limit it is cut, whatever the site is doing.
 */
#define LOG_SERVICE "odmr" /* its log lines: syslog_name/odmr[pid] */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "delivery.h"
#include "domain.h"
#include "log.h"
#include "loop.h"
#include "odmr.h"
#include "smtp_client.h"
#include "timefmt.h"

#define IDLE_QUIT_MS 1000  /* nothing to send this long: QUIT */

struct atrn_note {
    char domain[DOMAIN_MAX + 1];
    time_t when;
    char client[300];
    char user[256];
    char result[64];
};

struct odmr {
    struct event_base *base;
    const struct server_config *conf;
    const struct odmr_ops *ops;
    void *ctx;
    struct smtp_client_conf cconf;
    LIST_HEAD(, odmr_turn) turns; /* zeroed: empty */
    size_t nturns;
    struct atrn_note *notes;
    size_t nnotes;
};

enum turn_state { TURN_WAIT, TURN_SETUP, TURN_READY, TURN_SENDING, TURN_QUIT };

struct odmr_turn {
    struct odmr *o;
    LIST_ENTRY(odmr_turn) link;   /* o->turns */
    enum turn_state state;
    struct odmr_domains domains;
    char user[256];
    char addr[64];
    char client[300];
    char name[300];               /* "odmr:user" */
    struct odmr_grant *grant;
    struct smtp_client *c;
    struct event *idle;
    struct event *limit;          /* odmr_session_time_limit */
    const char *end_why;          /* why a job still here is deferred */
    /* the job the qmgr handed over (at most one) */
    int have_job;
    struct delivery_job job;
    delivery_done_fn done;
    void *done_ctx;
    struct delivery_report rep;
    long long t_start;
    size_t delivered;
};

/* odmr_atrn_parse - "" or "domain[,domain...]" into out */
int odmr_atrn_parse(const char *arg, struct odmr_domains *out, char *why, size_t whylen)
{
    const char *p = arg, *why2;

    out->n = 0;
    if (*arg == 0)
        return 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        char d[DOMAIN_MAX + 2];
        size_t k;

        if (len == 0 || len > DOMAIN_MAX) {
            snprintf(why, whylen, "%s", len ? "domain name too long" : "empty domain in the list");
            return -1;
        }
        memcpy(d, p, len);
        d[len] = 0;
        if (!domain_is_hostname(d, &why2)) {
            snprintf(why, whylen, "\"%.64s\": %s", d, why2);
            return -1;
        }
        domain_lowercase(d);
        for (k = 0; k < out->n && strcmp(out->name[k], d) != 0; k++)
            ;
        if (k == out->n) {
            if (out->n == ODMR_DOMAINS_MAX) {
                snprintf(why, whylen, "too many domains (at most %d)", ODMR_DOMAINS_MAX);
                return -1;
            }
            snprintf(out->name[out->n++], sizeof(out->name[0]), "%s", d);
        }
        p += len;
        if (*p == 0)
            return 0;
        p++; /* ',' */
    }
}

/* listed - domain is an entry of u as written (not only covered by an "@parent" entry) */
static int listed(const struct server_etrn_user *u, const char *domain)
{
    for (size_t i = 0; u && i < u->domains.count; i++) {
        const char *d = u->domains.items[i];

        if (strcmp(d[0] == '@' ? d + 1 : d, domain) == 0)
            return 1;
    }
    return 0;
}

/* note - remember the last ATRN for a domain (status); only granted (owned) domains come here */
static void note(struct odmr *o, const char *domain, const char *client, const char *user,
                 const char *result)
{
    struct atrn_note *n = NULL;

    for (size_t i = 0; i < o->nnotes; i++)
        if (strcmp(o->notes[i].domain, domain) == 0)
            n = &o->notes[i];
    if (n == NULL) {
        if (o->nnotes >= ODMR_NOTES_MAX)
            return;
        o->notes = xreallocarray(o->notes, o->nnotes + 1, sizeof(*o->notes));
        n = &o->notes[o->nnotes++];
        snprintf(n->domain, sizeof(n->domain), "%s", domain);
    }
    n->when = clock_wall();
    snprintf(n->client, sizeof(n->client), "%s", client);
    snprintf(n->user, sizeof(n->user), "%s", user);
    snprintf(n->result, sizeof(n->result), "%s", result);
}

static int turn_deliver(void *ctx, const struct delivery_job *job, delivery_done_fn done,
                        void *done_ctx);
static void turn_end(struct odmr_turn *t);

/* odmr_atrn - the ATRN command of an authenticated user */
void odmr_atrn(struct odmr *o, const char *user, const char *addr, const char *client,
               const char *arg, struct buf *reply, struct odmr_turn **turn)
{
    const struct server_etrn_user *u = server_etrn_user_find(o->conf, user);
    struct odmr_domains ds;
    struct odmr_turn *t;
    size_t waiting = 0;
    char why[128];

    *turn = NULL;
    if (odmr_atrn_parse(arg, &ds, why, sizeof(why)) != 0) {
        buf_printf(reply, "501 5.5.4 Syntax: ATRN [domain[,domain...]]: %s", why);
        return;
    }
    if (ds.n == 0) {
        /* every domain the user owns ("@parent": the parent itself) */
        for (size_t i = 0; u && i < u->domains.count && ds.n < ODMR_DOMAINS_MAX; i++) {
            const char *d = u->domains.items[i];

            snprintf(ds.name[ds.n++], sizeof(ds.name[0]), "%s", d[0] == '@' ? d + 1 : d);
        }
        if (ds.n == 0) {
            log_warn("reject: ATRN from %s, sasl_username=%s: no [etrn_users] domains", client,
                     user);
            buf_printf(reply, "450 4.7.1 No domains are assigned to %s", user);
            return;
        }
    }
    for (size_t i = 0; i < ds.n; i++)
        if (u == NULL || !server_etrn_user_covers(u, ds.name[i], 0)) {
            /* no note(): a name anyone may make up must not take a row */
            log_warn("reject: ATRN %s from %s, sasl_username=%s: not in its [etrn_users] entry",
                     ds.name[i], client, user);
            buf_printf(reply, "450 4.7.1 %s: access denied", ds.name[i]);
            return;
        }
    for (size_t i = 0; i < ds.n; i++)
        if (o->ops->busy(o->ctx, ds.name[i])) {
            log_info("ATRN %s from %s: another ATRN or a flush is running", ds.name[i], client);
            note(o, ds.name[i], client, user, "451 busy");
            buf_printf(reply, "451 4.3.0 %s: another ATRN or a flush for it is running, try "
                       "again later", ds.name[i]);
            return;
        }
    for (size_t i = 0; i < ds.n; i++)
        waiting += o->ops->waiting(o->ctx, ds.name[i]);
    if (waiting == 0) {
        /* a made-up name under an "@parent" entry takes no row either */
        for (size_t i = 0; i < ds.n; i++)
            if (listed(u, ds.name[i]))
                note(o, ds.name[i], client, user, "453 no mail");
        log_info("ATRN from %s, sasl_username=%s: no mail waiting", client, user);
        buf_puts(reply, "453 You have no mail");
        return;
    }
    t = xcalloc(1, sizeof(*t));
    t->o = o;
    t->domains = ds;
    snprintf(t->user, sizeof(t->user), "%s", user);
    snprintf(t->addr, sizeof(t->addr), "%s", addr);
    snprintf(t->client, sizeof(t->client), "%s", client);
    snprintf(t->name, sizeof(t->name), "odmr:%s", user);
    t->end_why = "ODMR session ended";
    for (size_t i = 0; i < ds.n; i++) {
        t->grant = o->ops->grant(o->ctx, t->grant, t->name, ds.name[i], turn_deliver, t);
        note(o, ds.name[i], client, user, "250 started");
    }
    LIST_INSERT_HEAD(&o->turns, t, link);
    o->nturns++;
    log_info("ATRN from %s, sasl_username=%s: %zu or more message(s) waiting for %zu domain(s); "
             "reversing the connection", client, user, waiting, ds.n);
    buf_puts(reply, "250 OK now reversing the connection");
    *turn = t;
}

/* idle_cb - nothing sent for a while: QUIT when nothing more will come */
static void idle_cb(evutil_socket_t fd, short what, void *arg);

/* arm_idle - (re)start the idle countdown */
static void arm_idle(struct odmr_turn *t)
{
    struct timeval tv = clock_timeval(IDLE_QUIT_MS);

    evtimer_add(t->idle, &tv);
}

static void sent_cb(void *ctx, struct smtp_client *c, enum smtp_client_after after);

/* send_job - the waiting job goes out now */
static void send_job(struct odmr_turn *t)
{
    struct smtp_client_msg msg;

    memset(&msg, 0, sizeof(msg));
    msg.id = t->job.id;
    msg.sender = t->job.sender;
    msg.rcpts = t->job.rcpts;
    msg.nrcpt = t->job.nrcpt;
    msg.fd = t->job.content_fd;
    msg.offset = t->job.content_offset;
    msg.size = t->job.content_size;
    delivery_report_init(&t->rep, t->job.nrcpt);
    t->t_start = clock_now_ms();
    t->state = TURN_SENDING;
    evtimer_del(t->idle);
    if (smtp_client_send(t->c, &msg, &t->rep, sent_cb, t) != 0) {
        delivery_set_all(&t->rep, DELIVERY_TEMP, "4.3.0", "ODMR session not ready");
        sent_cb(t, t->c, SMTP_CLIENT_CLOSED);
    }
}

/* report - hand the job's report to the qmgr */
static void report(struct odmr_turn *t)
{
    delivery_done_fn done = t->done;
    void *done_ctx = t->done_ctx;

    t->have_job = 0;
    snprintf(t->rep.relay, sizeof(t->rep.relay), "%s[%s]", t->name, t->addr);
    t->rep.xmit_time = (double) (clock_now_ms() - t->t_start) / 1000.0;
    for (size_t i = 0; i < t->rep.nrcpt; i++)
        t->delivered += t->rep.rcpt[i].status == DELIVERY_OK;
    done(done_ctx, &t->rep);
    delivery_report_free(&t->rep);
}

/* sent_cb - one transaction is over */
static void sent_cb(void *ctx, struct smtp_client *c, enum smtp_client_after after)
{
    struct odmr_turn *t = ctx;

    (void) c;
    report(t); /* may hand us the next job (the qmgr dispatches at once) */
    if (after != SMTP_CLIENT_REUSABLE) {
        log_info("%s: connection to %s lost; the turn ends", t->name, t->client);
        smtp_client_free(t->c);
        t->c = NULL;
        turn_end(t);
        return;
    }
    t->state = TURN_READY;
    if (t->have_job)
        send_job(t);
    else
        arm_idle(t);
}

/* turn_deliver - the qmgr's transport function for the granted domains */
static int turn_deliver(void *ctx, const struct delivery_job *job, delivery_done_fn done,
                        void *done_ctx)
{
    struct odmr_turn *t = ctx;

    if (t->have_job || t->state == TURN_QUIT)
        return -1;
    t->job = *job;
    t->done = done;
    t->done_ctx = done_ctx;
    t->have_job = 1;
    if (t->state == TURN_READY)
        send_job(t);
    return 0;
}

/* idle_cb - QUIT once no job runs or waits and no flush of ours still moves mail */
static void idle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct odmr_turn *t = arg;

    (void) fd;
    (void) what;
    if (t->state != TURN_READY || t->have_job)
        return;
    if (t->o->ops->pending(t->o->ctx, t->grant) > 0) {
        arm_idle(t);
        return;
    }
    log_info("%s: %s: %zu recipient(s) delivered; QUIT", t->name, t->client, t->delivered);
    t->state = TURN_QUIT;
    t->o->ops->end(t->o->ctx, t->grant);
    t->grant = NULL;
    smtp_client_quit(t->c, NULL, NULL);
    t->c = NULL;
    turn_end(t);
}

/* ready_cb - the site's greeting and EHLO are done: flush the granted domains */
static void ready_cb(void *ctx, struct smtp_client *c, const struct smtp_client_setup *setup)
{
    struct odmr_turn *t = ctx;

    (void) c;
    if (!setup->ok) {
        log_warn("%s: %s: the turn failed: %s", t->name, t->client, setup->text);
        smtp_client_free(t->c);
        t->c = NULL;
        turn_end(t);
        return;
    }
    t->state = TURN_READY;
    for (size_t i = 0; i < t->domains.n; i++)
        (void) t->o->ops->flush(t->o->ctx, t->domains.name[i]);
    if (t->have_job)
        send_job(t);
    else
        arm_idle(t);
}

/* limit_cb - odmr_session_time_limit: the turn ends, whatever the site is doing */
static void limit_cb(evutil_socket_t fd, short what, void *arg)
{
    struct odmr_turn *t = arg;

    (void) fd;
    (void) what;
    log_warn("%s: %s: odmr_session_time_limit (%llds) exceeded after %zu recipient(s) "
             "delivered; closing, what is not acknowledged stays queued", t->name, t->client,
             t->o->conf->odmr_session_time_limit, t->delivered);
    t->end_why = "ODMR session time limit exceeded";
    turn_end(t);
}

/* odmr_turn_start - the 250 was written: become the client on bev */
void odmr_turn_start(struct odmr_turn *t, struct bufferevent *bev, int tls)
{
    struct timeval tv = clock_timeval(t->o->conf->odmr_session_time_limit * 1000);

    t->idle = evtimer_new(t->o->base, idle_cb, t);
    t->limit = evtimer_new(t->o->base, limit_cb, t);
    if (t->idle == NULL || t->limit == NULL || evtimer_add(t->limit, &tv) != 0)
        log_fatal("odmr: cannot create a timer");
    t->state = TURN_SETUP;
    t->c = smtp_client_attach(t->o->base, &t->o->cconf, bev, tls, 1, t->name, t->addr, 366,
                              ready_cb, t);
}

/* odmr_turn_abort - the session ended before the turn */
void odmr_turn_abort(struct odmr_turn *t)
{
    if (t)
        turn_end(t);
}

/* turn_end - release the grant (a job still here is deferred) and free */
static void turn_end(struct odmr_turn *t)
{
    struct odmr *o = t->o;

    /* the grant first: the jobs the report below lets through are deferred by the qmgr */
    t->state = TURN_QUIT;
    if (t->grant)
        o->ops->end(o->ctx, t->grant);
    t->grant = NULL;
    if (t->have_job) {
        delivery_report_free(&t->rep);
        delivery_report_init(&t->rep, t->job.nrcpt);
        delivery_set_all(&t->rep, DELIVERY_TEMP, "4.4.2", "%s", t->end_why);
        report(t);
    }
    if (t->c)
        smtp_client_free(t->c);
    loop_event_free(&t->idle);
    loop_event_free(&t->limit);
    LIST_REMOVE(t, link);
    o->nturns--;
    free(t);
}

/* odmr_new - ATRN for a server */
struct odmr *odmr_new(struct event_base *base, const struct server_config *conf,
                      const struct odmr_ops *ops, void *ctx)
{
    struct odmr *o = xcalloc(1, sizeof(*o));

    o->base = base;
    o->ops = ops;
    o->ctx = ctx;
    odmr_set_config(o, conf);
    return o;
}

/* odmr_set_config - a reloaded configuration */
void odmr_set_config(struct odmr *o, const struct server_config *conf)
{
    o->conf = conf;
    smtp_client_conf_set(&o->cconf, conf, NULL);
}

/* odmr_turns - turns running */
size_t odmr_turns(const struct odmr *o)
{
    return o->nturns;
}

/* odmr_status_json - the last ATRN per domain */
void odmr_status_json(const struct odmr *o, struct buf *out)
{
    buf_puts(out, "\"atrn\":[");
    for (size_t i = 0; i < o->nnotes; i++) {
        const struct atrn_note *n = &o->notes[i];

        buf_puts(out, i ? ",{\"domain\":" : "{\"domain\":");
        buf_json_string(out, n->domain);
        buf_printf(out, ",\"last_atrn\":%lld,\"client\":", (long long) n->when);
        buf_json_string(out, n->client);
        buf_puts(out, ",\"user\":");
        buf_json_string(out, n->user);
        buf_puts(out, ",\"result\":");
        buf_json_string(out, n->result);
        buf_putc(out, '}');
    }
    buf_putc(out, ']');
}

/* odmr_status_text - the last ATRN per domain, a table for etrn-queue status */
void odmr_status_text(const struct odmr *o, struct buf *out)
{
    int width = 11;

    if (o->nnotes == 0)
        return;
    for (size_t i = 0; i < o->nnotes; i++) {
        int len = (int) strlen(o->notes[i].domain);

        width = len > width ? len : width;
    }
    buf_printf(out, "%-*s %-19s  %-12s  %s\n", width, "ATRN DOMAIN", "LAST ATRN", "RESULT", "FROM");
    for (size_t i = 0; i < o->nnotes; i++) {
        const struct atrn_note *n = &o->notes[i];
        char at[TIMEFMT_LOCAL_MAX];

        timefmt_local((long long) n->when, at, sizeof(at));
        buf_printf(out, "%-*s %-19s  %-12s  %s (%s)\n", width, n->domain, at, n->result,
                   n->client, n->user);
    }
}

/* odmr_free - every turn ends (its mail stays queued) */
void odmr_free(struct odmr *o)
{
    if (o == NULL)
        return;
    while (!LIST_EMPTY(&o->turns))
        turn_end(LIST_FIRST(&o->turns));
    free(o->notes);
    free(o);
}
