/*
 * smtp_client - one outbound SMTP session on a libevent bufferevent, on the caller's loop.
 *
 * smtp_client_connect() opens a TCP connection to addr:port (numeric) and runs
 * the setup: greeting, EHLO (HELO when EHLO gets 5xx), STARTTLS per the session's
 * TLS level (OpenSSL bufferevent filter; SNI and, for verify/secure, the
 * certificate checked against conf->ssl_ctx's CAs and match_name), EHLO again.
 * smtp_client_attach() takes over a connected bufferevent (possibly already TLS,
 * e.g. after ODMR's ATRN) and runs the same setup from the greeting (or from
 * EHLO). Either way ready(ctx, c, setup) follows once, never inside the call:
 * setup->ok, or why not (status, dsn, Postfix-format text, whether anything
 * answered, whether a TLS handshake failed so that "may" can retry in
 * plaintext). After a failure the caller frees c.
 * smtp_client_send() runs one transaction on a ready or idle session: MAIL (SIZE=,
 * BODY=8BITMIME when offered), RCPT..., DATA, the dot-stuffed content, "."; with
 * PIPELINING the commands up to DATA go in one write and replies are matched in
 * order. Each recipient i of msg with skip[i] == 0 gets its result in rep->rcpt[i]
 * ("host H[A] said: 550 5.1.1 ... (in reply to RCPT TO command)", "lost connection
 * with H[A] while ...", "conversation with H[A] timed out while ..."). A message
 * over the peer's SIZE is refused before MAIL (5.3.4). After a refused
 * transaction the session sends RSET. Then sent(ctx, c, how) follows once:
 * SMTP_CLIENT_REUSABLE (c is idle and may carry the next message),
 * SMTP_CLIENT_CLOSED (c is unusable: free it) or SMTP_CLIENT_RETRY (a reused
 * connection was found dead before MAIL got a reply: nothing was filled in; free
 * c and try a new connection).
 * Each stage has its own deadline (conf, Postfix's smtp_*_timeout); data_xfer
 * restarts whenever content is written.
 * Between transactions: smtp_client_idle() watches an idle session (the peer
 * closing or talking, or idle_ms passing, calls lost(ctx, c): take it out of the
 * cache and quit or free it); smtp_client_alive() is the dead-connection check
 * before reuse; smtp_client_quit() sends QUIT and frees c itself when the reply,
 * the close or quit_timeout comes, calling gone(ctx, c) just before (not when
 * smtp_client_free() frees it first); smtp_client_free() closes at once and
 * never calls back. Replies are parsed by common/smtp_reply: a reply's text is
 * kept to 4096 bytes (a warning says when it was cut); a reply over 64 KB, or a
 * line without an end in 64 KB, is a protocol error that drops the connection.
 */
#ifndef ETRNKIT_SMTP_CLIENT_H
#define ETRNKIT_SMTP_CLIENT_H

#include <stddef.h>
#include <sys/types.h>

#include "delivery.h"
#include "server_config.h"

struct bufferevent;
struct event_base;
struct smtp_client;
typedef struct ssl_ctx_st SSL_CTX;

struct smtp_client_conf {
    char helo[DOMAIN_MAX + 1];       /* EHLO name */
    long long connect_ms, helo_ms, starttls_ms, mail_ms, rcpt_ms;
    long long data_init_ms, data_xfer_ms, data_done_ms, rset_ms, quit_ms;
    SSL_CTX *ssl_ctx;                /* client context (CAs loaded); NULL: no TLS */
};

/* the outcome of the setup */
struct smtp_client_setup {
    int ok;
    enum delivery_status status;     /* !ok: TEMP or PERM */
    char dsn[QUEUE_DSN_MAX + 1];
    char text[QUEUE_REASON_MAX + 1];
    int answered;                    /* a server talked: the relay is known */
    int tls_failed;                  /* STARTTLS accepted, handshake failed (level may) */
};

/* one message */
struct smtp_client_msg {
    const char *id;                  /* queue ID for log lines */
    const char *sender;              /* "" = null sender */
    const char *const *rcpts;
    size_t nrcpt;
    const unsigned char *skip;       /* skip[i]: recipient i is not sent (may be NULL) */
    int fd;                          /* content: pread from fd at offset, size bytes, */
    off_t offset, size;              /* CRLF lines, not dot-stuffed */
};

enum smtp_client_after { SMTP_CLIENT_REUSABLE, SMTP_CLIENT_CLOSED, SMTP_CLIENT_RETRY };

typedef void (*smtp_client_ready_fn)(void *ctx, struct smtp_client *c,
                                     const struct smtp_client_setup *setup);
typedef void (*smtp_client_sent_fn)(void *ctx, struct smtp_client *c,
                                    enum smtp_client_after after);
typedef void (*smtp_client_note_fn)(void *ctx, struct smtp_client *c);

/* smtp_client_conf_set - fill c from the smtp_* parameters of conf; ssl_ctx as given */
void smtp_client_conf_set(struct smtp_client_conf *c, const struct server_config *conf,
                          SSL_CTX *ssl_ctx);

/* tls_level: enum server_tls_level; name: the peer's host name (texts, SNI, "verify"
   match); match_name: the name "secure" checks (the next hop), NULL: name */
struct smtp_client *smtp_client_connect(struct event_base *base,
                                        const struct smtp_client_conf *conf, const char *name,
                                        const char *addr, int port, int tls_level,
                                        const char *match_name, smtp_client_ready_fn ready,
                                        void *ctx);
/* bev: connected; c owns it from now on. tls_active: bev is already an OpenSSL
   filter or socket. greeting: 1 to wait for the 220 first, 0 to start with EHLO */
struct smtp_client *smtp_client_attach(struct event_base *base,
                                       const struct smtp_client_conf *conf,
                                       struct bufferevent *bev, int tls_active, int greeting,
                                       const char *name, const char *addr, int port,
                                       smtp_client_ready_fn ready, void *ctx);
/* 0: started, sent() follows; -1: c is not idle (nothing happens) */
int smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *msg,
                     struct delivery_report *rep, smtp_client_sent_fn sent, void *ctx);
void smtp_client_idle(struct smtp_client *c, long long idle_ms, smtp_client_note_fn lost,
                      void *ctx);
int smtp_client_alive(struct smtp_client *c);
void smtp_client_quit(struct smtp_client *c, smtp_client_note_fn gone, void *ctx);
void smtp_client_free(struct smtp_client *c);

const char *smtp_client_relay(const struct smtp_client *c); /* "name[addr]:port" */
int smtp_client_tls(const struct smtp_client *c);           /* 1: TLS is active */
long long smtp_client_age_ms(const struct smtp_client *c);  /* since connect */
size_t smtp_client_messages(const struct smtp_client *c);   /* transactions so far */

#endif
