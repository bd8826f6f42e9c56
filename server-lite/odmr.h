/*
 * odmr - the provider's side of On-Demand Mail Relay (RFC 2645) after AUTH:
 * ATRN's argument and policy, then the turn on the same connection.
 *
 * odmr_atrn_parse(arg, out, why): "" or "domain[,domain...]" (at most
 *   ODMR_DOMAINS_MAX, each an LDH host name; lower-cased, duplicates
 *   dropped) into out; -1 with a reason in why. Pure.
 * odmr_new(base, conf, qmgr, flush): one per server; odmr_set_config()
 *   after a reload. odmr_free() ends every turn (their mail stays queued).
 * odmr_atrn(o, user, client, arg, reply, &turn): the whole ATRN command of
 *   an authenticated user; one reply line goes to reply: 501 syntax, 450
 *   a domain the user's [etrn_users] entry does not list (logged), 451 a
 *   flush or another ATRN of one of the domains is running, 453 nothing is
 *   waiting, or "250 OK now reversing the connection" with a turn in *turn.
 *   From the 250 on, recipients of the granted domains are routed to the
 *   turn (qmgr_grant), also those of mail that arrives meanwhile.
 * odmr_turn_start(turn, bev, tls): the 250 was written; the turn owns bev
 *   (the site's connection, TLS kept) and becomes the SMTP client on it:
 *   it waits for the site's 220, flushes the granted domains and delivers
 *   one message at a time through the qmgr's normal recording; after 1 s
 *   with nothing to send it sends QUIT. odmr_turn_abort(turn): the session
 *   ended before the 250 was written.
 * odmr_status_json(): "atrn":[{"domain":...,"last_atrn":T,"client":...,
 *   "user":...,"result":...},...] for etrn-queue status; odmr_status_text()
 *   the same as a table (nothing before the first ATRN).
 */
#ifndef ETRNKIT_ODMR_H
#define ETRNKIT_ODMR_H

#include <stddef.h>

#include "server_config.h"

#define ODMR_DOMAINS_MAX 32

struct buf;
struct bufferevent;
struct event_base;
struct flush;
struct qmgr;
struct odmr;
struct odmr_turn;

struct odmr_domains {
    char name[ODMR_DOMAINS_MAX][DOMAIN_MAX + 1];
    size_t n;
};

int odmr_atrn_parse(const char *arg, struct odmr_domains *out, char *why, size_t whylen);

struct odmr *odmr_new(struct event_base *base, const struct server_config *conf,
                      struct qmgr *qmgr, struct flush *flush);
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
