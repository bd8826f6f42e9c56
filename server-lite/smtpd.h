/*
 * smtpd - the SMTP receiving side of etrn-server (RFC 5321) on libevent.
 *
 * smtpd_new() loads the TLS certificate and key (smtpd_tls_cert_file/
 * key_file) and the AUTH users (smtpd_sasl_users_file), binds every
 * conf->listen address (call it before dropping privileges) and registers
 * the listeners and sessions on base; it returns NULL with a message in err
 * naming the file (or the address) when a file cannot be used or a bind
 * fails. Nothing is accepted (no listen()) until smtpd_listen(), which the
 * caller calls once the queue is recovered: 0, or -1 with err naming the
 * address. STARTTLS is offered when a certificate is set, AUTH PLAIN/LOGIN
 * only inside TLS and with a users file; an authenticated client may relay.
 * Each session is a state machine driven by a command table; accepted mail goes through
 * queue_create/queue_write/queue_commit and is answered 250 only after
 * queue_commit succeeded. Limits: 512-octet command lines, 1000-octet text
 * lines, message_size_limit, smtpd_recipient_limit, smtpd_timeout (per
 * whole command line, and for DATA plus smtpd_min_data_rate, with
 * smtpd_per_request_deadline), default_process_limit, and per client
 * address (anvil.h; not for smtpd_client_event_limit_exceptions)
 * smtpd_client_connection_count_limit, smtpd_client_connection_rate_limit,
 * smtpd_client_auth_rate_limit, etrn_rate_limit and a delay before each
 * AUTH failure reply (smtpd_error_sleep_time times the address's failures).
 * Password checks run on a worker thread. Bare CR or LF in DATA rejects the
 * message (550 5.5.2); <LF>.<LF> never ends DATA. When accept() fails
 * (EMFILE, ENFILE: out of descriptors) every listener pauses 100 ms and
 * tries again, with one warning per episode; open sessions go on.
 * The caller owns conf and q and keeps them alive while smtpd runs;
 * smtpd_set_config() swaps in a reloaded conf (listeners and the queue
 * directory stay as bound) and rereads the TLS and users files, keeping the
 * loaded ones when they cannot be read any more. smtpd_free() closes every
 * session (aborting unfinished queue files) and every listener.
 * Hooks: the commit hook hears of every message right after its 250 (the
 * qmgr schedules it); the ETRN hook (smtpd_etrn_fn, smtpd_etrn.h) is asked
 * to flush a domain once the session state and smtpd_etrn's checks passed.
 * Without a hook a permitted ETRN answers 458.
 * ODMR (RFC 2645): sessions accepted on conf->odmr (odmr_listen) take only
 * EHLO (STARTTLS, AUTH, ATRN offered), STARTTLS, AUTH, ATRN, NOOP, RSET and
 * QUIT (anything else: 502 5.5.1); ATRN needs AUTH (530 5.7.0) and goes to
 * odmr_atrn() (smtpd_set_odmr); after its 250 the session ends and hands
 * its connection, TLS kept, to odmr_turn_start(). ATRN on an inet_interfaces
 * session: 502 5.5.1.
 * Entry points for tests and fuzzing: smtpd_new_unbound() is smtpd_new()
 * without any listener; smtpd_attach() starts a session (220 first) on a
 * bufferevent that is already connected (e.g. one end of a
 * bufferevent_pair), as if a client at sa had connected (counted per client
 * like any session, but no connection limit refuses it); smtpd owns bev from
 * then on. smtpd_pending() counts the work handed to other threads whose
 * answer has not come back (commits of accepted mail, AUTH checks).
 * smtpd_parse_path() is the MAIL/RCPT path parser: arg is "FROM:<local@domain>
 * params" (keyword "FROM:" or "TO:"), addr (at least
 * SMTPD_ADDR_MAX bytes) gets the address without brackets, domain (at least
 * DOMAIN_MAX + 1) the part after the last '@', *params the rest of arg;
 * returns SMTPD_PATH_OK, _SYNTAX (also a null path when allow_null is 0)
 * or _ROUTING ('%' or '!' in the local part).
 */
#ifndef ETRNKIT_SMTPD_H
#define ETRNKIT_SMTPD_H

#include <stddef.h>

#include "smtpd_etrn.h"

struct bufferevent;
struct event_base;
struct queue;
struct sockaddr;
struct server_config;
struct smtpd;

#define SMTPD_LINE_MAX 512   /* command line, CRLF included (RFC 5321 4.5.3.1.4) */
#define SMTPD_TEXT_MAX 1000  /* text line in DATA, CRLF included (4.5.3.1.6) */
#define SMTPD_ADDR_MAX 256   /* a path without brackets, NUL included */

enum smtpd_path_result { SMTPD_PATH_OK, SMTPD_PATH_SYNTAX, SMTPD_PATH_ROUTING };

typedef void (*smtpd_commit_fn)(void *ctx, const char *id);

struct smtpd *smtpd_new(struct event_base *base, const struct server_config *conf,
                        struct queue *q, char *err, size_t errlen);
int smtpd_listen(struct smtpd *srv, char *err, size_t errlen);
void smtpd_set_config(struct smtpd *srv, const struct server_config *conf);
void smtpd_set_commit_hook(struct smtpd *srv, smtpd_commit_fn fn, void *ctx);
void smtpd_set_etrn_hook(struct smtpd *srv, smtpd_etrn_fn fn, void *ctx);
struct odmr;
void smtpd_set_odmr(struct smtpd *srv, struct odmr *o);
size_t smtpd_sessions(const struct smtpd *srv);
void smtpd_free(struct smtpd *srv);

struct smtpd *smtpd_new_unbound(struct event_base *base, const struct server_config *conf,
                                struct queue *q, char *err, size_t errlen);
void smtpd_attach(struct smtpd *srv, struct bufferevent *bev, const struct sockaddr *sa);
size_t smtpd_pending(const struct smtpd *srv);
int smtpd_parse_path(char *arg, const char *keyword, int allow_null, char *addr, char *domain,
                     char **params);

#endif
