/*
 * backoff - when etrn-agent sends ETRN to a provider host again.
 *
 * backoff_delay(): retry_min doubled per attempt up to retry_max, times a
 * jitter factor in [0.9, 1.1] from the random source passed in; milliseconds.
 * struct backoff_table keeps one entry per (provider, host, port).
 * backoff_table_result() applies a host's round outcome at `now` and returns
 * the delay to its next ETRN, or -1: a temporary failure backs off; a 253
 * "pending" asks again on the same schedule (own counter) until 251; 250,
 * 251 and permanent refusals wait for the next interval or link-up round.
 * _is_due, _next_due, _drop_due (cancel what a retry round did not reach)
 * and _clear read and reset it. Pure: no clock (the caller passes `now`, ms
 * on a monotonic clock), no I/O. The table owns its strings (_free).
 */
#ifndef ETRNKIT_BACKOFF_H
#define ETRNKIT_BACKOFF_H

#include <stddef.h>

#include "etrn_reply.h"

/* a uniform random number in [0, 1) */
typedef double (*backoff_rand_fn)(void *ctx);

struct backoff_entry {
    char *provider;
    char *host;
    int port;
    unsigned failures;          /* temporary failures in a row */
    unsigned pendings;          /* 253 answers in a row */
    long long due;              /* next ETRN (ms); -1: none scheduled */
};

struct backoff_table {
    struct backoff_entry *entries;
    size_t count;
    long long retry_min_ms, retry_max_ms;
    backoff_rand_fn rnd;
    void *rnd_ctx;
};

/* what one host's round came to, as backoff_table_result() needs it */
struct backoff_outcome {
    enum etrn_verdict verdict;
    int drained;                /* every domain answered 251 */
    int any_pending;            /* some domain answered 253 */
};

enum backoff_reason { BACKOFF_NONE, BACKOFF_FAILED, BACKOFF_PENDING };

long long backoff_delay(long long retry_min_ms, long long retry_max_ms, unsigned attempt,
                        backoff_rand_fn rnd, void *ctx);
double backoff_random(void *ctx);

void backoff_table_init(struct backoff_table *t, long long retry_min_ms, long long retry_max_ms,
                        backoff_rand_fn rnd, void *ctx);
void backoff_table_limits(struct backoff_table *t, long long retry_min_ms, long long retry_max_ms);
long long backoff_table_result(struct backoff_table *t, const char *provider, const char *host,
                               int port, const struct backoff_outcome *out, long long now,
                               enum backoff_reason *reason, unsigned *attempt);
int backoff_table_is_due(const struct backoff_table *t, const char *provider, const char *host,
                         int port, long long now);
long long backoff_table_next_due(const struct backoff_table *t);
size_t backoff_table_drop_due(struct backoff_table *t, long long now);
void backoff_table_clear(struct backoff_table *t);
void backoff_table_free(struct backoff_table *t);

#endif
