/*
 * anvil.c - a chained hash table of client addresses, keyed with a random
 * seed (so nobody can choose addresses that fall into one bucket), and a
 * list of the addresses without an open session, least recently seen last:
 * every call first drops the expired ones from its tail, so the table costs
 * O(1) per call and shrinks on its own. Windows are fixed, as Postfix's:
 * a window starts at the first event after the previous one ended.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "anvil.h"

#define SWEEP_MAX 8 /* expired addresses dropped per call */

struct window {
    long long start;
    unsigned count;
};

struct client {
    struct client *hnext;        /* bucket chain */
    TAILQ_ENTRY(client) idle;    /* on a->idle while sessions == 0 */
    struct anvil_addr key;
    unsigned sessions;
    struct window conn, ev[ANVIL_NEVENTS];
    unsigned fails;
    long long fail_last;
    long long touch;             /* last call about this address */
};

TAILQ_HEAD(client_list, client);

struct anvil {
    struct client **b;
    size_t nb, n, nidle;
    struct client_list idle;     /* most recently seen first */
    long long unit;
    uint64_t seed[2];
};

/* fmix - a 64-bit finalizer (every input bit moves every output bit) */
static uint64_t fmix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* key_hash - the bucket hash of an address, keyed with the table's seed */
static size_t key_hash(const struct anvil *a, const struct anvil_addr *k)
{
    uint64_t w[2];

    memcpy(w, k->addr, sizeof(w));
    return (size_t) fmix(fmix(fmix(a->seed[0] ^ w[0]) ^ w[1] ^ a->seed[1]) ^ (uint64_t) k->family);
}

/* key_norm - the key as stored: unknown families are one client */
static struct anvil_addr key_norm(const struct anvil_addr *k)
{
    struct anvil_addr n;

    memset(&n, 0, sizeof(n));
    n.family = k->family;
    if (k->family == AF_INET)
        memcpy(n.addr, k->addr, 4);
    else if (k->family == AF_INET6)
        memcpy(n.addr, k->addr, 16);
    else
        n.family = 0;
    return n;
}

/* anvil_new - an empty table counting in windows of unit_ms */
struct anvil *anvil_new(long long unit_ms)
{
    struct anvil *a = xcalloc(1, sizeof(*a));

    a->unit = unit_ms > 0 ? unit_ms : 1;
    a->nb = 64;
    a->b = xcalloc(a->nb, sizeof(*a->b));
    TAILQ_INIT(&a->idle);
    if (getrandom(a->seed, sizeof(a->seed), GRND_NONBLOCK) != (ssize_t) sizeof(a->seed)) {
        /* no entropy yet (early boot): still unpredictable enough from outside */
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        a->seed[0] = fmix((uint64_t) ts.tv_nsec ^ ((uint64_t) ts.tv_sec << 32));
        a->seed[1] = fmix(a->seed[0] ^ (uint64_t) getpid() ^ (uint64_t) (uintptr_t) a);
    }
    return a;
}

/* anvil_set_unit - a reloaded anvil_rate_time_unit */
void anvil_set_unit(struct anvil *a, long long unit_ms)
{
    a->unit = unit_ms > 0 ? unit_ms : 1;
}

/* drop - take c (no session) out of its bucket and the idle list, and free it */
static void drop(struct anvil *a, struct client *c)
{
    struct client **pp = &a->b[key_hash(a, &c->key) & (a->nb - 1)];

    while (*pp != c)
        pp = &(*pp)->hnext;
    *pp = c->hnext;
    TAILQ_REMOVE(&a->idle, c, idle);
    a->nidle--;
    a->n--;
    free(c);
}

/* sweep - drop a few addresses whose counters all expired */
static void sweep(struct anvil *a, long long now)
{
    struct client *c;

    for (int i = 0; i < SWEEP_MAX && (c = TAILQ_LAST(&a->idle, client_list)) != NULL; i++) {
        if (now - c->touch < a->unit)
            break;
        drop(a, c);
    }
}

/* grow - double the buckets when the chains get long */
static void grow(struct anvil *a)
{
    size_t nb = a->nb * 2;
    struct client **b = xcalloc(nb, sizeof(*b));

    for (size_t i = 0; i < a->nb; i++) {
        struct client *c = a->b[i], *next;

        for (; c; c = next) {
            size_t h = key_hash(a, &c->key) & (nb - 1);

            next = c->hnext;
            c->hnext = b[h];
            b[h] = c;
        }
    }
    free(a->b);
    a->b = b;
    a->nb = nb;
}

/* lookup - the entry of an address; created (with an early eviction when full) if asked */
static struct client *lookup(struct anvil *a, const struct anvil_addr *key, long long now,
                             int create)
{
    struct anvil_addr k = key_norm(key);
    struct client *c;

    sweep(a, now);
    for (c = a->b[key_hash(a, &k) & (a->nb - 1)]; c; c = c->hnext)
        if (c->key.family == k.family && memcmp(c->key.addr, k.addr, sizeof(k.addr)) == 0)
            return c;
    if (!create)
        return NULL;
    if (a->nidle >= ANVIL_MAX_CLIENTS)
        drop(a, TAILQ_LAST(&a->idle, client_list));
    if (a->n >= a->nb)
        grow(a);
    c = xcalloc(1, sizeof(*c));
    c->key = k;
    c->touch = now;
    c->hnext = a->b[key_hash(a, &k) & (a->nb - 1)];
    a->b[key_hash(a, &k) & (a->nb - 1)] = c;
    TAILQ_INSERT_HEAD(&a->idle, c, idle);
    a->nidle++;
    a->n++;
    return c;
}

/* touch - c was seen now: first on the idle list (if it has no session) */
static void touch(struct anvil *a, struct client *c, long long now)
{
    c->touch = now;
    if (c->sessions == 0) {
        TAILQ_REMOVE(&a->idle, c, idle);
        TAILQ_INSERT_HEAD(&a->idle, c, idle);
    }
}

/* count - one event in a fixed window; the count in the window */
static unsigned count(const struct anvil *a, struct window *w, long long now)
{
    if (w->count == 0 || now - w->start >= a->unit) {
        w->start = now;
        w->count = 0;
    }
    if (w->count < ~0u)
        w->count++;
    return w->count;
}

/* anvil_connect - a new session from k; the sessions k has open, *rate its connection rate */
unsigned anvil_connect(struct anvil *a, const struct anvil_addr *k, long long now_ms,
                       unsigned *rate)
{
    struct client *c = lookup(a, k, now_ms, 1);

    touch(a, c, now_ms);
    *rate = count(a, &c->conn, now_ms);
    if (c->sessions++ == 0) {
        /* a client with a session never expires */
        TAILQ_REMOVE(&a->idle, c, idle);
        a->nidle--;
    }
    return c->sessions;
}

/* anvil_disconnect - a session of k ended */
void anvil_disconnect(struct anvil *a, const struct anvil_addr *k, long long now_ms)
{
    struct client *c = lookup(a, k, now_ms, 0);

    if (c == NULL || c->sessions == 0)
        return;
    c->touch = now_ms;
    if (--c->sessions == 0) {
        TAILQ_INSERT_HEAD(&a->idle, c, idle);
        a->nidle++;
    }
}

/* anvil_event - one AUTH or ETRN command from k; the count in the current window */
unsigned anvil_event(struct anvil *a, enum anvil_event ev, const struct anvil_addr *k,
                     long long now_ms)
{
    struct client *c = lookup(a, k, now_ms, 1);

    touch(a, c, now_ms);
    return count(a, &c->ev[ev], now_ms);
}

/* anvil_fail - one AUTH failure from k; the failures without a unit-long pause */
unsigned anvil_fail(struct anvil *a, const struct anvil_addr *k, long long now_ms)
{
    struct client *c = lookup(a, k, now_ms, 1);

    touch(a, c, now_ms);
    if (c->fails > 0 && now_ms - c->fail_last >= a->unit)
        c->fails = 0;
    if (c->fails < ~0u)
        c->fails++;
    c->fail_last = now_ms;
    return c->fails;
}

/* anvil_failures - the AUTH failures counted for k (0 once forgotten) */
unsigned anvil_failures(struct anvil *a, const struct anvil_addr *k, long long now_ms)
{
    struct client *c = lookup(a, k, now_ms, 0);

    if (c == NULL || c->fails == 0 || now_ms - c->fail_last >= a->unit)
        return 0;
    return c->fails;
}

/* anvil_clients - addresses in the table */
size_t anvil_clients(const struct anvil *a)
{
    return a->n;
}

/* anvil_free - forget everything */
void anvil_free(struct anvil *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->nb; i++) {
        struct client *c = a->b[i], *next;

        for (; c; c = next) {
            next = c->hnext;
            free(c);
        }
    }
    free(a->b);
    free(a);
}
