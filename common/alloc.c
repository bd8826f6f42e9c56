#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "exitcode.h"
#include "log.h"

static void alloc_fail(size_t size)
{
    log_fatal_code(EXIT_OSERR, "out of memory (%zu bytes)", size);
}

/* xmalloc - malloc or die */
void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);

    if (p == NULL)
        alloc_fail(size);
    return p;
}

/* xcalloc - zeroed array allocation or die, overflow checked */
void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);

    if (p == NULL)
        alloc_fail(n * size);
    return p;
}

/* xrealloc - realloc or die */
void *xrealloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);

    if (p == NULL)
        alloc_fail(size);
    return p;
}

/* xreallocarray - realloc of n elements, overflow checked */
void *xreallocarray(void *ptr, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        alloc_fail(SIZE_MAX);
    return xrealloc(ptr, n * size);
}

/* xstrdup - strdup or die */
char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* xstrndup - copy at most n bytes of s, always terminated */
char *xstrndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = xmalloc(len + 1);

    memcpy(p, s, len);
    p[len] = 0;
    return p;
}
