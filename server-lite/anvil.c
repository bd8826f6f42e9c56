/*
 * anvil.c - a common/htable keyed by the client address text (SipHash under
 * a random key: nobody can choose addresses that collide), and a list of
 * the addresses without an open session, least recently seen last: every
 * call first drops the expired ones from its tail, so the table costs O(1)
 * per call and shrinks on its own. Windows are fixed, as Postfix's: a
 * window starts at the first event after the previous one ended.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "alloc.h"
#include "anvil.h"
#include "htable.h"

#define SWEEP_MAX 8 /* expired addresses dropped per call */

struct window {
    long long start;
    unsigned count;
};

struct client {
    TAILQ_ENTRY(client) idle;    /* on a->idle while sessions == 0 */
    char key[ANVIL_ADDR_MAX];
    unsigned sessions;
    struct window conn, ev[ANVIL_NEVENTS];
    unsigned fails;
    long long fail_last;
    long long touch;             /* last call about this address */
};

TAILQ_HEAD(client_list, client);

struct anvil {
    struct htable *t;
    size_t nidle;
    struct client_list idle;     /* most recently seen first */
    long long unit;
};

/* anvil_new - an empty table counting in windows of unit_ms */
struct anvil *anvil_new(long long unit_ms)
{
    struct anvil *a = xcalloc(1, sizeof(*a));

    a->unit = unit_ms > 0 ? unit_ms : 1;
    a->t = htable_new(64);
    TAILQ_INIT(&a->idle);
    return a;
}

/* anvil_set_unit - a reloaded anvil_rate_time_unit */
void anvil_set_unit(struct anvil *a, long long unit_ms)
{
    a->unit = unit_ms > 0 ? unit_ms : 1;
}

/* drop - forget c (it has no session) */
static void drop(struct anvil *a, struct client *c)
{
    htable_remove(a->t, c->key);
    TAILQ_REMOVE(&a->idle, c, idle);
    a->nidle--;
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

/* lookup - the entry of an address; created (with an early eviction when full) if asked */
static struct client *lookup(struct anvil *a, const char *addr, long long now, int create)
{
    char key[ANVIL_ADDR_MAX];
    struct client *c;

    snprintf(key, sizeof(key), "%s", addr);
    sweep(a, now);
    if ((c = htable_find(a->t, key)) != NULL || !create)
        return c;
    if (a->nidle >= ANVIL_MAX_CLIENTS)
        drop(a, TAILQ_LAST(&a->idle, client_list));
    c = xcalloc(1, sizeof(*c));
    memcpy(c->key, key, sizeof(key));
    c->touch = now;
    htable_insert(a->t, c->key, c);
    TAILQ_INSERT_HEAD(&a->idle, c, idle);
    a->nidle++;
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
unsigned anvil_connect(struct anvil *a, const char *addr, long long now_ms,
                       unsigned *rate)
{
    struct client *c = lookup(a, addr, now_ms, 1);

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
void anvil_disconnect(struct anvil *a, const char *addr, long long now_ms)
{
    struct client *c = lookup(a, addr, now_ms, 0);

    if (c == NULL || c->sessions == 0)
        return;
    c->touch = now_ms;
    if (--c->sessions == 0) {
        TAILQ_INSERT_HEAD(&a->idle, c, idle);
        a->nidle++;
    }
}

/* anvil_event - one AUTH or ETRN command from k; the count in the current window */
unsigned anvil_event(struct anvil *a, enum anvil_event ev, const char *addr,
                     long long now_ms)
{
    struct client *c = lookup(a, addr, now_ms, 1);

    touch(a, c, now_ms);
    return count(a, &c->ev[ev], now_ms);
}

/* anvil_fail - one AUTH failure from k; the failures without a unit-long pause */
unsigned anvil_fail(struct anvil *a, const char *addr, long long now_ms)
{
    struct client *c = lookup(a, addr, now_ms, 1);

    touch(a, c, now_ms);
    if (c->fails > 0 && now_ms - c->fail_last >= a->unit)
        c->fails = 0;
    if (c->fails < ~0u)
        c->fails++;
    c->fail_last = now_ms;
    return c->fails;
}

/* anvil_failures - the AUTH failures counted for k (0 once forgotten) */
unsigned anvil_failures(struct anvil *a, const char *addr, long long now_ms)
{
    struct client *c = lookup(a, addr, now_ms, 0);

    if (c == NULL || c->fails == 0 || now_ms - c->fail_last >= a->unit)
        return 0;
    return c->fails;
}

/* anvil_clients - addresses in the table */
size_t anvil_clients(const struct anvil *a)
{
    return htable_count(a->t);
}

/* anvil_free - forget everything */
void anvil_free(struct anvil *a)
{
    if (a == NULL)
        return;
    htable_free(a->t, free);
    free(a);
}
