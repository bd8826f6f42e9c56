/*
 * smtpd_auth - the server side of SMTP AUTH (RFC 4954) for any listener:
 * mechanisms, the SASL exchange, the password check on a worker thread and
 * the delay before a failure reply. It knows nothing of the session that
 * uses it but the ops that session hands it.
 *
 * smtpd_auth_new(base, anvil, service): one per listener kind; starts the
 *   worker thread. NULL with a message in err when it cannot.
 * smtpd_auth_set_users(): the smtpd_sasl_users_file, loaded (reload = 1:
 *   a file that cannot be read keeps the users loaded before, with a
 *   warning); an empty path switches AUTH off. -1 with err at startup.
 * smtpd_auth_set_limits(): myhostname (for the 421), smtpd_error_sleep_time
 *   and smtpd_client_auth_rate_limit; call again after a reload.
 * smtpd_auth_offered(a, tls): the mechanisms this session may use, for EHLO
 *   ("PLAIN LOGIN": only inside TLS), or NULL: then AUTH is "not enabled".
 * smtpd_auth_session_new(a, ops, ctx, addr, client): one per client
 *   session. addr and client are the session's own strings, read whenever
 *   needed (the client's name may be filled in later). Owned by the caller:
 *   smtpd_auth_session_free() (a check still running finishes without it).
 * smtpd_auth_command(as, tls, arg): the AUTH command, after the caller's
 *   state checks. Returns SMTPD_AUTH_DONE (a reply was queued or a check
 *   runs: see the ops), SMTPD_AUTH_CLOSE (421 queued: end the session).
 * smtpd_auth_running(as): 1 while input lines belong to the exchange; give
 *   them to smtpd_auth_response(), or smtpd_auth_too_long() for a line over
 *   the limit.
 * smtpd_auth_user()/smtpd_auth_method(): after 235, the user and mechanism.
 * smtpd_auth_pending(a): checks handed to the worker whose verdict has not
 *   come back yet (tests and fuzzing wait for them).
 * smtpd_auth_drain(a): shutdown: every check running ends now, with its
 *   reply and without delay. smtpd_auth_free(a) after every session's free.
 */
#ifndef ETRNKIT_SMTPD_AUTH_H
#define ETRNKIT_SMTPD_AUTH_H

#include <stddef.h>

struct anvil;
struct event_base;
struct smtpd_auth;
struct smtpd_auth_session;

/* what the session does for the exchange; ctx is the session */
struct smtpd_auth_ops {
    /* queue one reply line (without CRLF) */
    void (*reply)(void *ctx, const char *line);
    /* a check runs: read nothing until resume; the AUTH command counts as answered */
    void (*hold)(void *ctx);
    /* the check is over (its reply queued, if any): read again; may free the session */
    void (*resume)(void *ctx);
    /* 1 when the session has sent its last reply (a 421): nothing more is queued */
    int (*closing)(void *ctx);
    /* the AUTH command, answered 334 or held, failed after all (for the counters) */
    void (*retract)(void *ctx);
};

enum smtpd_auth_status {
    SMTPD_AUTH_DONE,  /* replied, or the exchange or check goes on */
    SMTPD_AUTH_CLOSE, /* too many failures: 421 queued */
};

struct smtpd_auth *smtpd_auth_new(struct event_base *base, struct anvil *anvil,
                                  const char *service, char *err, size_t errlen);
int smtpd_auth_set_users(struct smtpd_auth *a, const char *path, int reload, char *err,
                         size_t errlen);
void smtpd_auth_set_limits(struct smtpd_auth *a, const char *myhostname,
                           long long error_sleep_time, long long auth_rate_limit);
const char *smtpd_auth_offered(const struct smtpd_auth *a, int tls);
int smtpd_auth_enabled(const struct smtpd_auth *a);
size_t smtpd_auth_pending(const struct smtpd_auth *a);
void smtpd_auth_drain(struct smtpd_auth *a);
void smtpd_auth_free(struct smtpd_auth *a);

struct smtpd_auth_session *smtpd_auth_session_new(struct smtpd_auth *a,
                                                  const struct smtpd_auth_ops *ops, void *ctx,
                                                  const char *addr, const char *client);
void smtpd_auth_session_exempt(struct smtpd_auth_session *as, int exempt);
enum smtpd_auth_status smtpd_auth_command(struct smtpd_auth_session *as, int tls, char *arg);
int smtpd_auth_running(const struct smtpd_auth_session *as);
void smtpd_auth_response(struct smtpd_auth_session *as, char *line, size_t len);
void smtpd_auth_too_long(struct smtpd_auth_session *as);
const char *smtpd_auth_user(const struct smtpd_auth_session *as);
const char *smtpd_auth_method(const struct smtpd_auth_session *as);
void smtpd_auth_session_free(struct smtpd_auth_session *as);

#endif
