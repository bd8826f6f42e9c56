/*
 * sasl_client - what an SMTP AUTH client (RFC 4954) sends, per mechanism.
 *
 * sasl_cram_md5() answers a CRAM-MD5 challenge (RFC 2195): challenge64 is
 * the text of the server's 334 reply (base64); the answer is the base64 of
 * "user " followed by the lowercase hex HMAC-MD5 of the decoded challenge,
 * keyed with the password. NULL when the challenge is empty or not base64.
 * sasl_plain() is PLAIN's initial response (RFC 4616): base64 of
 * "\0user\0password". sasl_base64() encodes a string (LOGIN's two steps).
 * Results are allocated (never NULL except as said) and the caller frees
 * them; they hold credentials, so callers wipe them (explicit_bzero) first.
 */
#ifndef ETRNKIT_SASL_CLIENT_H
#define ETRNKIT_SASL_CLIENT_H

char *sasl_cram_md5(const char *user, const char *password, const char *challenge64);
char *sasl_plain(const char *user, const char *password);
char *sasl_base64(const char *text);

#endif
