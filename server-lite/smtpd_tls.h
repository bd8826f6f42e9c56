/*
 * smtpd_tls - the OpenSSL server context behind smtpd's STARTTLS.
 *
 * smtpd_tls_new() makes a TLS server context (TLS 1.2 and newer, no
 * renegotiation, no compression) from smtpd_tls_cert_file (PEM, the chain
 * may follow the certificate) and smtpd_tls_key_file. Call it while the
 * files are still readable (before dropping privileges). On error it returns
 * NULL and err names the file and the reason ("smtpd_tls_key_file /x: cannot
 * read: Permission denied", "... does not match the certificate", or the
 * OpenSSL error text). The caller owns the context: smtpd_tls_free(); SSL
 * objects made with smtpd_tls_ssl() hold their own reference, so freeing the
 * context does not end sessions that are already in TLS.
 * smtpd_tls_ssl() returns a new SSL for one accepted session, or NULL.
 */
#ifndef ETRNKIT_SMTPD_TLS_H
#define ETRNKIT_SMTPD_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct smtpd_tls;

struct smtpd_tls *smtpd_tls_new(const char *cert_file, const char *key_file, char *err,
                                size_t errlen);
SSL *smtpd_tls_ssl(struct smtpd_tls *tls);
void smtpd_tls_free(struct smtpd_tls *tls);

#endif
