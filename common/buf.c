#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"

/* buf_reserve - make room for extra bytes plus the terminator */
void buf_reserve(struct buf *b, size_t extra)
{
    size_t need;

    if (extra > SIZE_MAX - b->len - 1)
        log_panic("buf_reserve: length overflow");
    need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

/* buf_append - append len bytes */
void buf_append(struct buf *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = 0;
}

void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_putc(struct buf *b, int c)
{
    char ch = (char) c;

    buf_append(b, &ch, 1);
}

/* buf_vprintf - append formatted text */
void buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
    va_list aq;
    int n;

    va_copy(aq, ap);
    n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    if (n < 0)
        log_panic("buf_vprintf: bad format \"%s\"", fmt);
    buf_reserve(b, (size_t) n);
    if (vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap) != n)
        log_panic("buf_vprintf: length changed");
    b->len += (size_t) n;
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(b, fmt, ap);
    va_end(ap);
}

/* buf_json_string - append s as a quoted JSON string */
void buf_json_string(struct buf *b, const char *s)
{
    /* the characters with a two-character escape, and the letter after the backslash */
    static const char special[] = "\"\\\n\r\t", letter[] = "\"\\nrt";

    buf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *) (s ? s : ""); *p; p++) {
        const char *e = strchr(special, *p);

        if (e != NULL) {
            buf_putc(b, '\\');
            buf_putc(b, letter[e - special]);
        } else if (*p < 0x20 || *p == 0x7f || *p >= 0x80) {
            buf_printf(b, "\\u%04x", *p < 0x80 ? *p : 0xfffd);
        } else {
            buf_putc(b, (char) *p);
        }
    }
    buf_putc(b, '"');
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

/* buf_cstr - the contents as a C string ("" when empty) */
const char *buf_cstr(struct buf *b)
{
    if (b->data == NULL)
        buf_reserve(b, 0), b->data[0] = 0;
    return b->data;
}

/* buf_steal - hand the string to the caller and reset the buffer */
char *buf_steal(struct buf *b)
{
    char *s;

    buf_cstr(b);
    s = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return s;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
