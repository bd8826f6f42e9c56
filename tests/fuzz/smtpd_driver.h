/*
 * smtpd_driver - the real smtpd session code, driven without a network.
 * driver_init() loads a server configuration for a private queue (see
 * support.h, plus the caller's extra [main] lines and sections), opens the
 * queue and makes an smtpd without listeners (smtpd_new_unbound). With tls
 * set it also writes a fresh self-signed certificate and a users file
 * (alice, password "secret") so STARTTLS and AUTH are offered.
 * driver_run() connects one client through a bufferevent_pair
 * (smtpd_attach), from one of 16 addresses in 127.0.0.0/8 (mynetworks) or
 * one of 16 in 198.18.0.0/16, in turn (rates are per 1 s and the ETRN and
 * AUTH limits high, so a client is sometimes under, sometimes over); with tls it
 * first says EHLO and STARTTLS in the clear and does the handshake. Then it
 * sends prefix and data (in chunks of chunk bytes, 0: at once), runs the
 * event loop until nothing moves and no commit is pending, closes the
 * client's side and runs the loop until the session is gone.
 * Checks, abort() when broken: every reply line is "DDD text" or "DDD-text"
 * with a code 2xx..5xx, ends in CRLF, holds no other CR or LF and fits in
 * 512 octets; the session ends after the client's EOF; nothing stays
 * pending. Accepted messages are removed from the queue by the commit hook.
 * driver_expect() arms a stronger check for the next run only: its first
 * accepted message must be queued with exactly that content (after the
 * Received: header, and without the Message-Id: header smtpd adds when
 * the client sent none), and it must be accepted.
 * With FUZZ_TRACE set in the environment the replies go to stderr.
 * driver_etrn_calls() counts the ETRN hook's calls, which check that the
 * domain they get is a lower-case hostname or an address literal.
 */
#ifndef ETRNKIT_FUZZ_SMTPD_DRIVER_H
#define ETRNKIT_FUZZ_SMTPD_DRIVER_H

#include <stddef.h>
#include <stdint.h>

void driver_init(const char *name, const char *extra_main, const char *sections, int tls);
void driver_run(int in_mynetworks, const void *prefix, size_t plen, const uint8_t *data,
                size_t size, size_t chunk);
void driver_expect(const char *content, size_t len);
unsigned long driver_etrn_calls(void);

#endif
