/*
 * qmgr - the queue manager: incoming -> active -> delivered / deferred / bounced.
 *
 * qmgr_new() loads what is in incoming/ and deferred/ (queue_recover() has run),
 * arms one timer per deferred message at its retry time (the file's mtime) and a
 * full deferred scan every queue_run_delay. Recipients of a message are grouped by
 * transport and next hop (server_transport_lookup); at most
 * default_destination_concurrency_limit deliveries per destination run at once.
 * Results are written to the queue file per recipient before anything else
 * happens; a message with no pending recipient is removed. Retry time:
 * qmgr_backoff(); a destination whose connection failed is dead for
 * minimal_backoff_time. Expired recipients and permanent failures bounce
 * (bounce.h); null-sender mail never does. Delivery log lines in Postfix's format.
 * Flush entry points (used by the flush service and the control socket):
 * qmgr_flush_message() delivers one waiting message now, only the recipients in
 * domain (NULL: all), ignoring the dead list and defer_transports for it.
 * Operator actions: qmgr_delete/qmgr_hold/qmgr_release (QUEUE_NOTFOUND when absent).
 * Hooks (flush index upkeep) are optional; they must not call back into qmgr.
 * Transports are plugged in with qmgr_set_transport() (etrn-server: smtp for
 * SMTP and ETRN_ONLY, local for LOCAL; unit tests: a fake); a transport kind
 * with no function set defers its mail ("4.3.0 transport unavailable").
 * ETRN_ONLY falls back to the SMTP function when it has none of its own.
 * ODMR (RFC 2645): qmgr_grant_new() gives one ODMR session a destination
 * (name: "odmr:user", its relay in status; an ended session's is reused); qmgr_grant_domain() routes
 * a domain's recipients to it (fn/ctx, the qmgr_deliver_fn contract, one job
 * at a time) from the next activation on, ignoring transports,
 * defer_transports and the dead list, as a flush does; delivery log lines
 * say "odmr". qmgr_grant_busy() counts its jobs waiting or running;
 * qmgr_grant_end() ends the routing (a job still running reports as usual;
 * waiting ones are deferred "4.4.2 ODMR session ended") and frees g.
 * qmgr_grant_held(): a session holds domain now. qmgr_grant_busy() also counts
 * messages scheduled for its domains but not yet handed over.
 * qmgr_domain_waiting(): queued messages (not held) with a pending recipient in
 * domain, read from the queue files, counting stops at max; the flush index is
 * not asked. qmgr_flush_domain(): qmgr_flush_message() for each of them; how
 * many were scheduled. Both read every queued message's file.
 */
#ifndef ETRNKIT_QMGR_H
#define ETRNKIT_QMGR_H

#include <stddef.h>
#include <time.h>

#include "delivery.h"

struct buf;
struct event_base;
struct queue;
struct server_config;
struct qmgr;

/* a recipient for domain in message id was deferred (added = 1) or finished (0);
   domain NULL: message id ("ALL": every message) was deleted or put on hold */
typedef void (*qmgr_flush_hook_fn)(void *ctx, const char *domain, const char *id, int added);

struct qmgr *qmgr_new(struct event_base *base, const struct server_config *conf,
                      struct queue *q, char *err, size_t errlen);
void qmgr_set_config(struct qmgr *m, const struct server_config *conf);
void qmgr_set_flush_hook(struct qmgr *m, qmgr_flush_hook_fn fn, void *ctx);

/* start one job for transport kind (enum server_transport); same contract as
   smtp_transport_deliver: 0 accepted and done(done_ctx, report) follows later from
   the event loop exactly once; non-zero not accepted (done never called) */
typedef int (*qmgr_deliver_fn)(void *ctx, const struct delivery_job *job, delivery_done_fn done,
                               void *done_ctx);
void qmgr_set_transport(struct qmgr *m, int transport, qmgr_deliver_fn fn, void *ctx);

/* smtpd committed message id to incoming/: schedule it now */
void qmgr_incoming(struct qmgr *m, const char *id);

/* 1: id scheduled for delivery now, 0: id is not waiting (gone, held, or no pending
   recipient in domain), negative queue status on error */
int qmgr_flush_message(struct qmgr *m, const char *id, const char *domain);
/* every deferred message now, dead destinations forgotten; returns how many */
size_t qmgr_flush_all(struct qmgr *m);
size_t qmgr_domain_waiting(struct qmgr *m, const char *domain, size_t max);
size_t qmgr_flush_domain(struct qmgr *m, const char *domain);

struct qmgr_grant;
struct qmgr_grant *qmgr_grant_new(struct qmgr *m, const char *name, qmgr_deliver_fn fn,
                                  void *ctx);
void qmgr_grant_domain(struct qmgr_grant *g, const char *domain);
int qmgr_grant_held(const struct qmgr *m, const char *domain);
size_t qmgr_grant_busy(const struct qmgr_grant *g);
void qmgr_grant_end(struct qmgr_grant *g);

int qmgr_delete(struct qmgr *m, const char *id); /* "ALL": every message */
int qmgr_hold(struct qmgr *m, const char *id);
int qmgr_release(struct qmgr *m, const char *id);

/* JSON members for etrn-queue status: "total":N,"active":N,"deferred":N,"hold":N,
   "destinations":[{"destination":...,"waiting":N,"oldest":T,"last_attempt":T,
   "last_result":"...","dead":true|false},...] (times: seconds since the epoch, 0: never) */
void qmgr_status_json(const struct qmgr *m, struct buf *out);
/* the same as etrn-queue status prints it: a totals line, a blank line, then a table
   with a header line, one line per destination, times in local time */
void qmgr_status_text(const struct qmgr *m, struct buf *out);

/* pure: the retry delay after a failed attempt, Postfix's rule:
   clamp(now - arrival, minimal_backoff_time, maximal_backoff_time) */
long long qmgr_backoff(time_t arrival, time_t now, long long min_backoff, long long max_backoff);

void qmgr_free(struct qmgr *m);

#endif
