/*
 * etrn_session - one SMTP session with one provider host, through libcurl.
 *
 * etrn_session_run() connects (optionally to a pinned address, while TLS
 * still verifies the host name), says EHLO with the site's name, does
 * STARTTLS or implicit TLS as configured (certificate verified unless
 * tls_verify is off), authenticates when credentials are set, and then sends
 * one ETRN per domain. Each domain is judged on its own reply code (RFC
 * 1985, etrn_reply); a refused domain does not stop the others. libcurl
 * closes the connection after a 4xx/5xx reply; the session then reconnects
 * for the next domain.
 *
 * libcurl skips AUTH silently when the server offers none, so every
 * connection is opened with a NOOP first: if credentials are set and no AUTH
 * command went out, the session fails (ETRN_PERM) before any ETRN is sent.
 * libcurl does not check custom commands, so every argument is validated
 * again here (domain_etrn_arg) and an invalid one never reaches the wire.
 * `timeout` bounds the whole session, connect to QUIT. With -v the dialogue
 * is logged, but from an AUTH command to its final (non-334) reply every
 * client line is shown as "(credentials not shown)". A reply's text is kept
 * to 4096 bytes however many lines it has (a warning says so).
 *
 * The result owns its strings; etrn_session_free() releases them.
 * curl_global_init() must have been called.
 */
#ifndef ETRNKIT_ETRN_SESSION_H
#define ETRNKIT_ETRN_SESSION_H

#include <stddef.h>

#include "agent_config.h"
#include "etrn_reply.h"

struct etrn_target {
    const char *host;        /* name for the URL and TLS verification */
    int port;
    const char *pin_addr;    /* addresses to connect to ("192.0.2.1,[2001:db8::1]"), or NULL */
    enum agent_tls tls;
    int tls_verify;
    const char *ca_file;
    const char *helo;
    const char *username;    /* NULL: no AUTH */
    const char *password;
    long long timeout;       /* seconds for the whole session */
};

struct etrn_domain_result {
    char *domain;
    int code;                 /* 0: no reply */
    char *text;               /* reply text without the code */
    enum etrn_verdict verdict;
    const char *meaning;      /* static */
    long pending;             /* 253: N pending; else -1 */
};

struct etrn_session {
    enum etrn_verdict verdict;  /* worst over the session and every domain */
    char error[512];            /* a failure before or around ETRN; "" if none */
    struct etrn_domain_result *results;
    size_t count;
    long relayed;               /* ATRN: messages the site's MTA accepted; ETRN: -1 */
};

void etrn_session_run(const struct etrn_target *target, char *const *domains, size_t ndomains,
                      struct etrn_session *out);
void etrn_session_free(struct etrn_session *session);

#endif
