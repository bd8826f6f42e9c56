/*
 * smtpd_tls.c - OpenSSL server context for STARTTLS. The files are opened
 * with fopen first so an unreadable file is reported with errno's words and
 * its name, before OpenSSL's less readable error queue is consulted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "alloc.h"
#include "smtpd_tls.h"

struct smtpd_tls {
    SSL_CTX *ctx;
};

/* ssl_error - the oldest OpenSSL error of this thread as text, queue cleared */
static void ssl_error(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();

    if (e == 0)
        snprintf(buf, len, "unknown OpenSSL error");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
}

/* file_readable - open and close a file to learn whether it can be read */
static int file_readable(const char *key, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "re");

    if (fp == NULL) {
        snprintf(err, errlen, "%s %s: cannot read: %s", key, path, strerror(errno));
        return -1;
    }
    if (fclose(fp) != 0) {
        snprintf(err, errlen, "%s %s: %s", key, path, strerror(errno));
        return -1;
    }
    return 0;
}

/* smtpd_tls_new - server context from a certificate chain file and a key file */
struct smtpd_tls *smtpd_tls_new(const char *cert_file, const char *key_file, char *err,
                                size_t errlen)
{
    struct smtpd_tls *tls;
    SSL_CTX *ctx;
    char why[256];

    if (file_readable("smtpd_tls_cert_file", cert_file, err, errlen) != 0
        || file_readable("smtpd_tls_key_file", key_file, err, errlen) != 0)
        return NULL;
    ERR_clear_error();
    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
        ssl_error(why, sizeof(why));
        snprintf(err, errlen, "cannot make a TLS context: %s", why);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
                             | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        ssl_error(why, sizeof(why));
        snprintf(err, errlen, "cannot set the TLS version: %s", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        ssl_error(why, sizeof(why));
        snprintf(err, errlen, "smtpd_tls_cert_file %s: no usable certificate: %s", cert_file, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        int mismatch = ERR_GET_REASON(ERR_peek_error()) == X509_R_KEY_VALUES_MISMATCH;

        ssl_error(why, sizeof(why));
        if (mismatch)
            snprintf(err, errlen, "smtpd_tls_key_file %s: does not match the certificate in %s: %s",
                     key_file, cert_file, why);
        else
            snprintf(err, errlen, "smtpd_tls_key_file %s: no usable private key: %s", key_file,
                     why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(why, sizeof(why));
        snprintf(err, errlen, "smtpd_tls_key_file %s: does not match the certificate in %s: %s",
                 key_file, cert_file, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    tls = xcalloc(1, sizeof(*tls));
    tls->ctx = ctx;
    return tls;
}

/* smtpd_tls_ssl - a new server-side SSL for one session */
SSL *smtpd_tls_ssl(struct smtpd_tls *tls)
{
    return SSL_new(tls->ctx);
}

/* smtpd_tls_free - drop the context (sessions keep their own reference) */
void smtpd_tls_free(struct smtpd_tls *tls)
{
    if (tls == NULL)
        return;
    SSL_CTX_free(tls->ctx);
    free(tls);
}
