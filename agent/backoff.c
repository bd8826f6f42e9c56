#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "backoff.h"

#define JITTER_SPAN 0.2         /* factor 0.9 .. 1.1: +-10% */

/* backoff_delay - retry_min doubled (attempt - 1) times, capped at retry_max, with jitter */
long long backoff_delay(long long retry_min_ms, long long retry_max_ms, unsigned attempt,
                        backoff_rand_fn rnd, void *ctx)
{
    long long base = retry_min_ms > 0 ? retry_min_ms : 1;
    double r, delay;

    if (retry_max_ms < base)
        retry_max_ms = base;
    for (unsigned i = 1; i < attempt && base < retry_max_ms; i++)
        base = base > retry_max_ms / 2 ? retry_max_ms : base * 2;
    if (base > retry_max_ms)
        base = retry_max_ms;
    r = rnd ? rnd(ctx) : 0.5;
    if (!(r >= 0.0 && r < 1.0))
        r = 0.5;
    delay = (double) base * (1.0 - JITTER_SPAN / 2 + JITTER_SPAN * r);
    return delay < 1.0 ? 1 : (long long) (delay + 0.5);
}

/* backoff_random - a uniform random number in [0, 1) from the kernel, or the clock */
double backoff_random(void *ctx)
{
    uint32_t v;

    (void) ctx;
    if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t) sizeof(v)) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        v = (uint32_t) ts.tv_nsec ^ (uint32_t) getpid() * 2654435761u;
    }
    return (double) v / 4294967296.0;
}

/* backoff_table_init - an empty table with the given schedule limits */
void backoff_table_init(struct backoff_table *t, long long retry_min_ms, long long retry_max_ms,
                        backoff_rand_fn rnd, void *ctx)
{
    memset(t, 0, sizeof(*t));
    t->rnd = rnd;
    t->rnd_ctx = ctx;
    backoff_table_limits(t, retry_min_ms, retry_max_ms);
}

/* backoff_table_limits - change retry_min/retry_max (a reloaded config) */
void backoff_table_limits(struct backoff_table *t, long long retry_min_ms, long long retry_max_ms)
{
    t->retry_min_ms = retry_min_ms;
    t->retry_max_ms = retry_max_ms;
}

/* find - the entry for (provider, host, port), or NULL */
static struct backoff_entry *find(const struct backoff_table *t, const char *provider,
                                  const char *host, int port)
{
    for (size_t i = 0; i < t->count; i++) {
        struct backoff_entry *e = &t->entries[i];

        if (e->port == port && strcmp(e->provider, provider) == 0 && strcmp(e->host, host) == 0)
            return e;
    }
    return NULL;
}

/* backoff_table_result - apply one host's outcome; the delay to its next ETRN or -1 */
long long backoff_table_result(struct backoff_table *t, const char *provider, const char *host,
                               int port, const struct backoff_outcome *out, long long now,
                               enum backoff_reason *reason, unsigned *attempt)
{
    struct backoff_entry *e = find(t, provider, host, port);
    long long delay = -1;

    if (e == NULL) {
        t->entries = xreallocarray(t->entries, t->count + 1, sizeof(*t->entries));
        e = &t->entries[t->count++];
        e->provider = xstrdup(provider);
        e->host = xstrdup(host);
        e->port = port;
        e->failures = 0;
        e->pendings = 0;
        e->due = -1;
    }
    *reason = BACKOFF_NONE;
    *attempt = 0;
    switch (out->verdict) {
    case ETRN_TEMP:
        e->pendings = 0;
        if (e->failures < 64)
            e->failures++;
        delay = backoff_delay(t->retry_min_ms, t->retry_max_ms, e->failures, t->rnd, t->rnd_ctx);
        *reason = BACKOFF_FAILED;
        *attempt = e->failures;
        break;
    case ETRN_OK:
        e->failures = 0;
        if (out->any_pending && !out->drained) {
            if (e->pendings < 64)
                e->pendings++;
            delay = backoff_delay(t->retry_min_ms, t->retry_max_ms, e->pendings, t->rnd,
                                  t->rnd_ctx);
            *reason = BACKOFF_PENDING;
            *attempt = e->pendings;
        } else {
            e->pendings = 0;
        }
        break;
    case ETRN_PERM:
    default:
        e->failures = 0;
        e->pendings = 0;
        break;
    }
    e->due = delay < 0 ? -1 : now + delay;
    return delay;
}

/* backoff_table_is_due - whether (provider, host, port) has an ETRN due at `now` */
int backoff_table_is_due(const struct backoff_table *t, const char *provider, const char *host,
                         int port, long long now)
{
    const struct backoff_entry *e = find(t, provider, host, port);

    return e != NULL && e->due >= 0 && e->due <= now;
}

/* backoff_table_next_due - the earliest scheduled ETRN, or -1 */
long long backoff_table_next_due(const struct backoff_table *t)
{
    long long next = -1;

    for (size_t i = 0; i < t->count; i++)
        if (t->entries[i].due >= 0 && (next < 0 || t->entries[i].due < next))
            next = t->entries[i].due;
    return next;
}

/* backoff_table_drop_due - cancel entries still due at `now`; how many */
size_t backoff_table_drop_due(struct backoff_table *t, long long now)
{
    size_t n = 0;

    for (size_t i = 0; i < t->count; i++) {
        if (t->entries[i].due >= 0 && t->entries[i].due <= now) {
            t->entries[i].due = -1;
            t->entries[i].failures = 0;
            t->entries[i].pendings = 0;
            n++;
        }
    }
    return n;
}

/* backoff_table_clear - forget every entry (link down, link up) */
void backoff_table_clear(struct backoff_table *t)
{
    for (size_t i = 0; i < t->count; i++) {
        free(t->entries[i].provider);
        free(t->entries[i].host);
    }
    free(t->entries);
    t->entries = NULL;
    t->count = 0;
}

/* backoff_table_free - release the table's memory */
void backoff_table_free(struct backoff_table *t)
{
    backoff_table_clear(t);
}
