/*
 * alloc - allocation that never returns NULL.
 *
 * xmalloc, xcalloc, xrealloc, xstrdup and xstrndup behave like their libc
 * namesakes, but on exhaustion they log a fatal error and exit with EX_OSERR:
 * a mail program that cannot allocate a few bytes cannot make progress, and
 * every caller checking for NULL would only repeat that decision.
 * xcalloc and xreallocarray check n * size for overflow.
 * The caller owns what is returned and releases it with free().
 */
#ifndef ETRNKIT_ALLOC_H
#define ETRNKIT_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
void *xreallocarray(void *ptr, size_t n, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
