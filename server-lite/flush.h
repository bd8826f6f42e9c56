/*
 * flush - the fast ETRN service: per-destination logs of deferred queue IDs.
 *
 * flush_open() loads queue_directory/flush/ (one log per destination in
 * fast_flush_domains; file names collision-free, built only from validated
 * hostnames). flush_note() is the qmgr's hook (qmgr_flush_hook_fn): added = 1
 * appends id to domain's log (only for eligible domains), 0 drops it, domain
 * NULL drops id (or "ALL") from every log (flush_forget). The logs
 * are hints: a stale ID is skipped at flush time, a refresh every
 * fast_flush_refresh_time rebuilds a log from the queue, empty logs are purged
 * after fast_flush_purge_time.
 * flush_request() answers at once with the number of waiting messages and does
 * the moving afterwards from the event loop, through the deliver callback (the
 * qmgr's qmgr_flush_message), one domain at a time; a second request for a
 * domain being flushed is coalesced. with_subdomains = 1 is "ETRN @domain".
 * FLUSH_NOT_ELIGIBLE: domain not in fast_flush_domains (459), or not a hostname
 * (address literals have no log). FLUSH_ERROR: no deliver callback set (458).
 * Log file format and file names: see the top of flush.c. Extra entry points
 * (tests, main): flush_file_name() maps a domain to its log's file name (-1 if
 * it is not a hostname), flush_waiting() counts a domain's IDs, flush_running()
 * says whether its flush is queued or in progress, flush_refresh()
 * starts a rebuild from deferred/ now, flush_maintain() rewrites grown logs and
 * purges empty ones as of now (the maintenance timer calls it). flush_forget()
 * drops an ID from every log ("ALL": every ID); the qmgr's hook uses it for
 * operator deletes and holds.
 */
#ifndef ETRNKIT_FLUSH_H
#define ETRNKIT_FLUSH_H

#include <stddef.h>
#include <time.h>

struct buf;
struct event_base;
struct queue;
struct server_config;
struct flush;

enum flush_result {
    FLUSH_STARTED,       /* *pending messages started (> 0) */
    FLUSH_NOTHING,       /* eligible, nothing waiting */
    FLUSH_NOT_ELIGIBLE,  /* not in fast_flush_domains */
    FLUSH_ERROR,         /* could not read the log: 458 */
};

/* deliver message id now, only its recipients in domain; same contract as qmgr_flush_message */
typedef int (*flush_deliver_fn)(void *ctx, const char *id, const char *domain);

struct flush *flush_open(struct event_base *base, const struct server_config *conf,
                         struct queue *q, char *err, size_t errlen);
void flush_set_config(struct flush *f, const struct server_config *conf);
void flush_set_deliver(struct flush *f, flush_deliver_fn fn, void *ctx);

void flush_note(void *flush, const char *domain, const char *id, int added);

int flush_eligible(const struct flush *f, const char *domain);
enum flush_result flush_request(struct flush *f, const char *domain, int with_subdomains,
                                const char *client, const char *user, size_t *pending);

/* JSON member for etrn-queue status: "etrn":[{"domain":...,"waiting":N,
   "flushing":true|false,"last_etrn":T,"client":"...","user":"..."},...], sorted by domain */
void flush_status_json(const struct flush *f, struct buf *out);
/* the same as text: a table with a header line, as etrn-queue status prints it */
void flush_status_text(const struct flush *f, struct buf *out);

int flush_file_name(const char *domain, char *out, size_t outlen);
size_t flush_waiting(const struct flush *f, const char *domain);
int flush_running(const struct flush *f, const char *domain);
void flush_refresh(struct flush *f);
void flush_maintain(struct flush *f, time_t now);
void flush_forget(struct flush *f, const char *id);

void flush_free(struct flush *f);

#endif
