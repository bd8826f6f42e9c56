/*
 * atrn_session - one ODMR session (RFC 2645) with one provider host.
 *
 * atrn_session_run() connects to the provider (to pin_addr when given),
 * reads the greeting, says EHLO, does STARTTLS or implicit TLS as configured
 * (OpenSSL; certificate and host name verified unless tls_verify is off,
 * against ca_file or the system's store), authenticates (CRAM-MD5 when
 * offered, else PLAIN or LOGIN, those two only inside TLS: a password never
 * crosses in clear) and sends "ATRN d1,d2". On 250 it connects to local_smtp
 * and relays bytes both ways, unchanged, until either side closes: the
 * site's own MTA answers every command the provider sends, so the provider
 * hears a message accepted only once the site's MTA accepted it. On 453
 * (nothing waiting) or a refusal it says QUIT.
 *
 * While relaying it follows the dialogue (commands one way, replies the
 * other, pipelining and BDAT included) to count the messages the site's MTA
 * accepted: 2xx replies to end-of-data and to BDAT LAST. The relay ended
 * cleanly only when the provider's QUIT got a 2xx from the site's MTA;
 * anything else (the provider closing without QUIT, even right after the
 * 250, the site's MTA closing first, a message cut, idle_timeout of silence
 * on both connections, session_limit reached) is a temporary failure: mail
 * may still wait, so the caller asks again. `timeout`
 * bounds connect to the ATRN reply, session_limit the whole session.
 *
 * The outcome is an etrn_session (status and logging treat both alike):
 * one result per domain holding the ATRN reply (atrn_reply_classify), the
 * session error, and relayed (messages counted). -v logs the dialogue:
 * AUTH lines show as "(credentials not shown)"; while relaying, commands and
 * replies but no message content. Release with etrn_session_free().
 */
#ifndef ETRNKIT_ATRN_SESSION_H
#define ETRNKIT_ATRN_SESSION_H

#include <stddef.h>

#include "etrn_session.h"

struct atrn_target {
    struct etrn_target conn; /* host, TLS, AUTH as for ETRN; its timeout: connect to the ATRN reply */
    const char *local_smtp;  /* host:port of the site's MTA */
    long long idle_timeout;  /* seconds of silence while relaying */
    long long session_limit; /* seconds, the whole session */
};

void atrn_session_run(const struct atrn_target *target, char *const *domains, size_t ndomains,
                      struct etrn_session *out);

#endif
