/*
 * odmr - the provider's side of On-Demand Mail Relay (RFC 2645) after AUTH:
 * ATRN's argument and policy, then the turn on the same connection.
 *
 * odmr_atrn_parse(arg, out, why): "" or "domain[,domain...]" (at most
 *   ODMR_DOMAINS_MAX, each an LDH host name; lower-cased, duplicates
 *   dropped) into out; -1 with a reason in why. Pure.
 * odmr_new(base, conf, ops, ctx): one per server; ops (below, wired by
 *   main onto the qmgr and the flush service) is all odmr knows of the
 *   queue. odmr_set_config() after a reload. odmr_free() ends every turn
 *   (their mail stays queued).
 * odmr_atrn(o, user, client, arg, reply, &turn): the whole ATRN command of
 *   an authenticated user; one reply line goes to reply: 501 syntax, 450
 *   a domain the user's [etrn_users] entry does not list (logged, nowhere
 *   remembered), 451 a flush or another ATRN of one of the domains is
 *   running, 453 no message in the queue has a pending recipient in them
 *   (ops->waiting: the flush index, else the queue files), or "250 OK now
 *   reversing the connection" with a turn in *turn. From the 250 on,
 *   recipients of the granted domains are routed to the turn
 *   (ops->grant), also those of mail that arrives meanwhile.
 * odmr_turn_start(turn, bev, tls): the 250 was written; the turn owns bev
 *   (the site's connection, TLS kept) and becomes the SMTP client on it:
 *   it waits for the site's 220, flushes the granted domains and delivers
 *   one message at a time through the qmgr's normal recording; after 1 s
 *   with nothing to send it sends QUIT. odmr_session_time_limit after the
 *   250 the turn is cut whatever the site does (the message in flight and
 *   everything not yet acknowledged stay queued, deferred "4.4.2 ODMR
 *   session time limit exceeded"). odmr_turn_abort(turn): the session
 *   ended before the 250 was written.
 * odmr_status_json(): "atrn":[{"domain":...,"last_atrn":T,"client":...,
 *   "user":...,"result":...},...] for etrn-queue status, one row per domain
 *   some [etrn_users] entry granted (at most ODMR_NOTES_MAX); refused names
 *   get no row. odmr_status_text() the same as a table (nothing before the
 *   first ATRN).
 */
#ifndef ETRNKIT_ODMR_H
#define ETRNKIT_ODMR_H

#include <stddef.h>

#include "delivery.h"
#include "server_config.h"

#define ODMR_DOMAINS_MAX 32
#define ODMR_NOTES_MAX 4096 /* status rows (domains some user owns) */

struct buf;
struct bufferevent;
struct event_base;
struct odmr;
struct odmr_turn;
struct odmr_grant; /* what ops->grant returns: the queue side's handle */

/* start one job over the turn: 0 taken (done(done_ctx, report) follows exactly
   once, later), non-zero not taken (the queue side keeps the job waiting) */
typedef int (*odmr_deliver_fn)(void *ctx, const struct delivery_job *job, delivery_done_fn done,
                               void *done_ctx);

/* The queue as odmr sees it; every function gets the ctx given to odmr_new(). */
struct odmr_ops {
    /* 1: another ATRN holds domain or a flush of it runs (451) */
    int (*busy)(void *ctx, const char *domain);
    /* messages with a pending recipient in domain: the flush index's count,
       else the queue files (stopping at the first); 0: nothing (453) */
    size_t (*waiting)(void *ctx, const char *domain);
    /* route domain's recipients (g NULL: a new grant named name, delivering
       through fn/fctx) to the turn from the next activation on; returns g */
    struct odmr_grant *(*grant)(void *ctx, struct odmr_grant *g, const char *name,
                                const char *domain, odmr_deliver_fn fn, void *fctx);
    /* every queued message with a pending recipient in domain: deliver now
       (through the grant); how many */
    size_t (*flush)(void *ctx, const char *domain);
    /* jobs of g waiting, running, or scheduled and not yet handed over */
    size_t (*pending)(void *ctx, struct odmr_grant *g);
    /* the routing ends (waiting jobs are deferred "4.4.2 ODMR session ended") */
    void (*end)(void *ctx, struct odmr_grant *g);
};

struct odmr_domains {
    char name[ODMR_DOMAINS_MAX][DOMAIN_MAX + 1];
    size_t n;
};

int odmr_atrn_parse(const char *arg, struct odmr_domains *out, char *why, size_t whylen);

struct odmr *odmr_new(struct event_base *base, const struct server_config *conf,
                      const struct odmr_ops *ops, void *ctx);
void odmr_set_config(struct odmr *o, const struct server_config *conf);
void odmr_atrn(struct odmr *o, const char *user, const char *addr, const char *client,
               const char *arg, struct buf *reply, struct odmr_turn **turn);
void odmr_turn_start(struct odmr_turn *t, struct bufferevent *bev, int tls);
void odmr_turn_abort(struct odmr_turn *t);
size_t odmr_turns(const struct odmr *o);
void odmr_status_json(const struct odmr *o, struct buf *out);
void odmr_status_text(const struct odmr *o, struct buf *out);
void odmr_free(struct odmr *o);

#endif
