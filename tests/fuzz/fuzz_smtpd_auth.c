/*
 * fuzz_smtpd_auth - AUTH PLAIN and LOGIN (RFC 4954) and their base64
 * decoding, in a real session inside a real TLS session (smtpd_driver.h
 * with tls: a self-signed certificate, user alice with password "secret").
 * Input: what the client sends after the handshake and "EHLO
 * client.example": AUTH commands, initial responses, SASL response lines,
 * "*" cancels, and what follows (MAIL, ETRN as an authenticated user).
 * Checks: smtpd_driver.h.
 */
#include <string.h>

#include "smtpd_driver.h"
#include "support.h"

static const char prefix[] = "EHLO client.example\r\n";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    driver_init("smtpd_auth", NULL, "[etrn_users]\nalice = example.org @example.net\n", 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 14)
        return 0;
    driver_run(0, prefix, strlen(prefix), data, size, 0);
    return 0;
}
