/*
 * smtp_reply - parse an SMTP reply (RFC 5321 4.2), one line at a time.
 *
 * smtp_reply_init() empties a reply; smtp_reply_feed() adds one line
 * (without its CRLF) and says whether the reply is complete (DONE), needs
 * more lines (MORE), is not an SMTP reply (BAD: no 3-digit code, a
 * continuation with another code, a character other than ' ' or '-' after
 * the code) or grew past SMTP_REPLY_LIMIT bytes in all (TOO_LONG: a peer that
 * sends an endless multi-line reply; the caller drops the connection). The
 * text keeps the first SMTP_REPLY_MAX bytes of a longer reply (as Postfix,
 * about 4 KB) and says so in truncated, so the caller can warn. After DONE,
 * code holds the 3-digit code, dsn the enhanced status code of the first line
 * ("5.1.1", "" when it has none or it does not match the code's class), and
 * text the whole reply as received, lines joined by '\n' (so a caller can walk
 * an EHLO reply's keywords). Bytes are kept as received (a NUL becomes '?'):
 * whoever shows the text masks it (common/printable). Nothing is allocated; after BAD or TOO_LONG the reply stays
 * in that state until smtp_reply_init().
 */
#ifndef ETRNKIT_SMTP_REPLY_H
#define ETRNKIT_SMTP_REPLY_H

#include <stddef.h>

#define SMTP_REPLY_MAX 4096    /* bytes of reply text kept, all lines */
#define SMTP_REPLY_LIMIT 65536 /* bytes of one reply, all lines, before it is refused */

enum smtp_reply_state {
    SMTP_REPLY_MORE,
    SMTP_REPLY_DONE,
    SMTP_REPLY_BAD,
    SMTP_REPLY_TOO_LONG,
};

struct smtp_reply {
    enum smtp_reply_state state;
    int code;                       /* 0 until the first line */
    char dsn[12];                   /* "X.YYY.ZZZ" at most */
    char text[SMTP_REPLY_MAX + 1];  /* "250-first\n250 last" */
    size_t len;
    size_t lines;
    size_t total;                   /* bytes received, CRLFs included */
    int truncated;                  /* text holds only the first SMTP_REPLY_MAX bytes */
};

void smtp_reply_init(struct smtp_reply *r);
enum smtp_reply_state smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len);
/* smtp_reply_line - the i-th line's text after "NNN-"/"NNN " (into out); 0 if none
   (also for lines cut off by the truncation) */
int smtp_reply_line(const struct smtp_reply *r, size_t i, char *out, size_t outlen);
/* smtp_reply_oneline - every line's text after its code, empty ones left out,
   joined by one blank (into out, cut to fit): the form for a log line or a
   status file; returns out */
const char *smtp_reply_oneline(const struct smtp_reply *r, char *out, size_t outlen);

#endif
