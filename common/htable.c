/*
 * htable - string-keyed hash table (contract in htable.h).
 *
 * Separate chaining: buckets is a power-of-two array of singly linked
 * entries, each holding its full hash so a resize never rehashes a key and a
 * lookup compares strings only on a full hash match. The table doubles when
 * the load passes one entry per bucket.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "htable.h"

#define HTABLE_MIN_BUCKETS 16

struct entry {
    struct entry *next;
    uint64_t hash;
    void *value;
    char key[];
};

struct htable {
    struct entry **buckets;
    size_t nbuckets;  /* a power of two */
    size_t count;
    unsigned char seed[16];
};

#define ROTL(x, b) (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))

/* sip_round - one SipRound on the four state words */
static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL(v[1], 13);
    v[1] ^= v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17);
    v[1] ^= v[2];
    v[2] = ROTL(v[2], 32);
}

/* load_le64 - eight bytes, little-endian */
static uint64_t load_le64(const unsigned char *p)
{
    uint64_t x = 0;

    for (int i = 7; i >= 0; i--)
        x = (x << 8) | p[i];
    return x;
}

/* htable_siphash - SipHash-2-4 of data under a 128-bit key */
uint64_t htable_siphash(const unsigned char key[16], const void *data, size_t len)
{
    const unsigned char *in = data;
    uint64_t k0 = load_le64(key), k1 = load_le64(key + 8), m;
    uint64_t v[4] = { k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
                      k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL };
    size_t whole = len - len % 8;
    unsigned char last[8] = { 0 };

    for (size_t off = 0; off < whole; off += 8) {
        m = load_le64(in + off);
        v[3] ^= m;
        sip_round(v);
        sip_round(v);
        v[0] ^= m;
    }
    memcpy(last, in + whole, len % 8);
    m = load_le64(last) | ((uint64_t) (len & 0xff) << 56);
    v[3] ^= m;
    sip_round(v);
    sip_round(v);
    v[0] ^= m;
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* bucket_of - the chain a hash belongs to */
static size_t bucket_of(const struct htable *t, uint64_t hash)
{
    return (size_t) (hash & (t->nbuckets - 1));
}

/* htable_new - an empty table for about hint entries */
struct htable *htable_new(size_t hint)
{
    struct htable *t = xcalloc(1, sizeof(*t));
    size_t n = HTABLE_MIN_BUCKETS;

    while (n < hint && n < ((size_t) -1 >> 2))
        n <<= 1;
    t->nbuckets = n;
    t->buckets = xcalloc(n, sizeof(*t->buckets));
    if (getrandom(t->seed, sizeof(t->seed), 0) != (ssize_t) sizeof(t->seed)) {
        /* no kernel randomness (very old kernel): a weaker but still per-table seed */
        struct timespec ts;
        uint64_t mix[2];

        clock_gettime(CLOCK_MONOTONIC, &ts);
        mix[0] = (uint64_t) ts.tv_nsec ^ ((uint64_t) ts.tv_sec << 32) ^ (uint64_t) (uintptr_t) t;
        mix[1] = (uint64_t) getpid() ^ (uint64_t) (uintptr_t) t->buckets;
        memcpy(t->seed, mix, sizeof(t->seed));
    }
    return t;
}

/* grow - double the bucket array, relinking entries by their stored hash */
static void grow(struct htable *t)
{
    size_t n = t->nbuckets * 2;
    struct entry **nb = xcalloc(n, sizeof(*nb));

    for (size_t i = 0; i < t->nbuckets; i++) {
        struct entry *e = t->buckets[i];

        while (e) {
            struct entry *next = e->next;
            size_t b = (size_t) (e->hash & (n - 1));

            e->next = nb[b];
            nb[b] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = nb;
    t->nbuckets = n;
}

/* lookup - the link that points at key's entry (or at the chain's NULL end) */
static struct entry **lookup(const struct htable *t, const char *key, uint64_t *hashp)
{
    uint64_t h = htable_siphash(t->seed, key, strlen(key));
    struct entry **pp = &t->buckets[bucket_of(t, h)];

    *hashp = h;
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

/* htable_insert - add key (copied) with value; -1 if key is already present */
int htable_insert(struct htable *t, const char *key, void *value)
{
    uint64_t h;
    struct entry **pp = lookup(t, key, &h), *e;
    size_t len = strlen(key);

    if (*pp)
        return -1;
    e = xmalloc(sizeof(*e) + len + 1);
    e->hash = h;
    e->value = value;
    memcpy(e->key, key, len + 1);
    e->next = t->buckets[bucket_of(t, h)];
    t->buckets[bucket_of(t, h)] = e;
    if (++t->count > t->nbuckets && t->nbuckets < ((size_t) -1 >> 2) / sizeof(*t->buckets))
        grow(t);
    return 0;
}

/* htable_find - the value stored for key, or NULL */
void *htable_find(const struct htable *t, const char *key)
{
    uint64_t h;
    struct entry **pp = lookup(t, key, &h);

    return *pp ? (*pp)->value : NULL;
}

/* htable_remove - take key out; its value, or NULL when absent */
void *htable_remove(struct htable *t, const char *key)
{
    uint64_t h;
    struct entry **pp = lookup(t, key, &h), *e = *pp;
    void *value;

    if (e == NULL)
        return NULL;
    *pp = e->next;
    value = e->value;
    free(e);
    t->count--;
    return value;
}

/* htable_count - entries in the table */
size_t htable_count(const struct htable *t)
{
    return t->count;
}

/* htable_walk - call fn for every entry */
void htable_walk(const struct htable *t, htable_walk_fn fn, void *ctx)
{
    for (size_t i = 0; i < t->nbuckets; i++)
        for (const struct entry *e = t->buckets[i]; e; e = e->next)
            fn(ctx, e->key, e->value);
}

/* htable_free - release the table, and each value through fn when given */
void htable_free(struct htable *t, htable_free_fn fn)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        struct entry *e = t->buckets[i];

        while (e) {
            struct entry *next = e->next;

            if (fn)
                fn(e->value);
            free(e);
            e = next;
        }
    }
    free(t->buckets);
    free(t);
}
