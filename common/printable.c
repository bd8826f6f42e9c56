#include "alloc.h"
#include "printable.h"

/* printable_mem - replace every byte outside 0x20..0x7e in p[0..len) */
void printable_mem(char *p, size_t len, int replacement)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) p[i];

        if (c < 0x20 || c > 0x7e)
            p[i] = (char) replacement;
    }
}

/* printable - mask a string in place; returns s */
char *printable(char *s, int replacement)
{
    for (char *p = s; *p; p++) {
        unsigned char c = (unsigned char) *p;

        if (c < 0x20 || c > 0x7e)
            *p = (char) replacement;
    }
    return s;
}

/* printable_dup - a masked copy of s */
char *printable_dup(const char *s, int replacement)
{
    return printable(xstrdup(s), replacement);
}
