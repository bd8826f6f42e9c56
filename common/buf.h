/*
 * buf - a growable byte buffer that is always NUL-terminated.
 *
 * A struct buf starts zeroed (BUF_INIT) and grows on demand through
 * xrealloc, so appends cannot fail; lengths are checked for overflow.
 * buf_cstr() is valid until the next append; the buffer owns its memory
 * until buf_free() or buf_steal() (which hands the string to the caller).
 */
#ifndef ETRNKIT_BUF_H
#define ETRNKIT_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "log.h"

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

#define BUF_INIT { NULL, 0, 0 }

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, int c);
void buf_printf(struct buf *b, const char *fmt, ...) LOG_PRINTF(2, 3);
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
void buf_json_string(struct buf *b, const char *s);
void buf_reset(struct buf *b);
const char *buf_cstr(struct buf *b);
char *buf_steal(struct buf *b);
void buf_free(struct buf *b);

#endif
