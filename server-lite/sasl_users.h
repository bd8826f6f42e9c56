/*
 * sasl_users - the smtpd_sasl_users_file: "user:crypt-hash" lines for AUTH
 * PLAIN/LOGIN, "user:{CRAM-MD5}<64 hex digits>" lines (Dovecot's verifier,
 * doveadm pw -s CRAM-MD5) for CRAM-MD5; a user may have one of each.
 *
 * sasl_users_load() reads the whole file (blank lines and lines starting
 * with '#' skipped; lines of any length). A file readable by others is
 * refused (verifiers are password equivalents). Every problem is an error
 * "FILE:LINE: what is wrong" in err: no ':', an empty or unprintable user
 * name, a user given twice (twice the same kind), a verifier that is not 64
 * hex digits, a hash that is not a full hash of a modern
 * method (yescrypt, bcrypt, SHA-512/256 crypt; DES and MD5 are refused;
 * make hashes with "openssl passwd -6" or mkpasswd). On error nothing
 * stays allocated and NULL is returned. The result is owned by the caller:
 * sasl_users_free().
 * sasl_users_verify() returns 1 when password matches user's hash, else 0.
 * It runs crypt_r once on every call, also for an unknown user (against a
 * hash of the same kind), so the answer time does not tell which users
 * exist. It blocks for as long as one crypt(3) round takes.
 * The same check in two steps, for a worker thread: sasl_check_new() (the
 * loop's thread) copies the user's hash and the password into a new check
 * that no longer depends on u (a reload may free u meanwhile);
 * sasl_check_run() (any thread, blocking) returns 1 or 0 and wipes the
 * password; sasl_check_free() wipes and frees the check.
 */
#ifndef ETRNKIT_SASL_USERS_H
#define ETRNKIT_SASL_USERS_H

#include <stddef.h>

struct sasl_users;
struct sasl_check;

#define SASL_CRAM_VERIFIER_LEN 32

struct sasl_users *sasl_users_load(const char *path, char *err, size_t errlen);
int sasl_users_verify(struct sasl_users *u, const char *user, const char *password);
struct sasl_check *sasl_check_new(const struct sasl_users *u, const char *user,
                                  const char *password);
struct sasl_check *sasl_check_new_cram(const struct sasl_users *u, const char *user,
                                       const char *challenge, const char *digest_hex);
int sasl_check_run(struct sasl_check *c);
void sasl_check_free(struct sasl_check *c);
size_t sasl_users_count(const struct sasl_users *u);
size_t sasl_users_cram(const struct sasl_users *u);
void sasl_cram_verifier(const char *password, unsigned char out[SASL_CRAM_VERIFIER_LEN]);
void sasl_cram_digest(const unsigned char verifier[SASL_CRAM_VERIFIER_LEN], const char *challenge,
                      size_t len, unsigned char digest[16]);
void sasl_users_free(struct sasl_users *u);

#endif
