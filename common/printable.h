/*
 * printable - mask the bytes of peer text that must not reach a log, a
 * header or a terminal as they came.
 *
 * As Postfix's printable(): every byte outside printable ASCII 0x20..0x7e
 * (control characters such as ESC, BEL, TAB and DEL, and every byte >= 0x80)
 * becomes `replacement` (Postfix uses '?'). HELO names, remote SMTP replies
 * and every log line pass through it, so a peer can neither forge log lines
 * nor send escape sequences to an operator's terminal.
 *
 * printable() masks a NUL-terminated string in place and returns it;
 * printable_mem() masks len bytes in place; printable_dup() returns a masked
 * copy that the caller frees (allocation failure is fatal, see alloc.h).
 * No state, no errors.
 */
#ifndef ETRNKIT_PRINTABLE_H
#define ETRNKIT_PRINTABLE_H

#include <stddef.h>

char *printable(char *s, int replacement);
void printable_mem(char *p, size_t len, int replacement);
char *printable_dup(const char *s, int replacement);

#endif
