/*
 * htable - a hash table from NUL-terminated string keys to caller pointers.
 *
 * htable_new(hint) makes an empty table sized for about hint entries; it
 * grows (doubling) so a lookup stays O(1) on average at any size. Keys are
 * hashed with SipHash-2-4 under a per-table random key, so peers who choose
 * the keys (client addresses, recipients) cannot force collisions. Keys are
 * compared byte for byte: callers that want case-insensitive keys fold them
 * before they insert and look up.
 *
 * htable_insert() copies the key; it returns 0, or -1 when the key is
 * already there (nothing changes: htable_find() it to replace the value).
 * htable_find() returns the value or NULL (so store non-NULL values);
 * htable_remove() returns the removed value (NULL if absent); the caller owns
 * every value. htable_walk()
 * calls fn for every entry in no particular order and must not be used to
 * insert or remove. htable_free(t, fn) calls fn (when non-NULL) on every value,
 * then frees the table. Allocation never fails (alloc.h). Not thread-safe:
 * one table belongs to one thread at a time.
 */
#ifndef ETRNKIT_HTABLE_H
#define ETRNKIT_HTABLE_H

#include <stddef.h>
#include <stdint.h>

struct htable;

typedef void (*htable_free_fn)(void *value);
typedef void (*htable_walk_fn)(void *ctx, const char *key, void *value);

struct htable *htable_new(size_t hint);
int htable_insert(struct htable *t, const char *key, void *value);
void *htable_find(const struct htable *t, const char *key);
void *htable_remove(struct htable *t, const char *key);
size_t htable_count(const struct htable *t);
void htable_walk(const struct htable *t, htable_walk_fn fn, void *ctx);
void htable_free(struct htable *t, htable_free_fn fn);

/* the hash itself, for tests and for callers that want a keyed hash */
uint64_t htable_siphash(const unsigned char key[16], const void *data, size_t len);

#endif
