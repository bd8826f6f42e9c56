#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "alloc.h"
#include "sasl_client.h"

/* encode - base64 of len bytes, allocated */
static char *encode(const unsigned char *data, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *) out, data, (int) len);
    return out;
}

/* decode - base64 text to bytes (allocated, *len set); NULL when not base64 */
static unsigned char *decode(const char *text, size_t *len)
{
    size_t n = strlen(text), pad = 0;
    unsigned char *out;
    int got;

    if (n == 0 || n % 4 != 0 || n > 65536)
        return NULL;
    if (text[n - 1] == '=')
        pad++;
    if (text[n - 2] == '=')
        pad++;
    out = xmalloc(n / 4 * 3 + 1);
    got = EVP_DecodeBlock(out, (const unsigned char *) text, (int) n);
    if (got < 0 || (size_t) got < pad) {
        free(out);
        return NULL;
    }
    *len = (size_t) got - pad;
    return out;
}

/* sasl_cram_md5 - "user hexdigest" in base64, for one challenge */
char *sasl_cram_md5(const char *user, const char *password, const char *challenge64)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    size_t clen, ulen = strlen(user), rlen;
    unsigned char *challenge = decode(challenge64, &clen);
    char *resp, *out;

    if (challenge == NULL)
        return NULL;
    if (clen == 0
        || HMAC(EVP_md5(), password, (int) strlen(password), challenge, clen, digest, &dlen) == NULL) {
        free(challenge);
        return NULL;
    }
    free(challenge);
    rlen = ulen + 1 + 2 * dlen;
    resp = xmalloc(rlen + 1);
    memcpy(resp, user, ulen);
    resp[ulen] = ' ';
    for (unsigned int i = 0; i < dlen; i++) {
        static const char hex[] = "0123456789abcdef";

        resp[ulen + 1 + 2 * i] = hex[digest[i] >> 4];
        resp[ulen + 2 + 2 * i] = hex[digest[i] & 15];
    }
    resp[rlen] = 0;
    out = encode((unsigned char *) resp, rlen);
    explicit_bzero(resp, rlen);
    explicit_bzero(digest, sizeof(digest));
    free(resp);
    return out;
}

/* sasl_plain - PLAIN's initial response: base64("\0user\0password") */
char *sasl_plain(const char *user, const char *password)
{
    size_t ulen = strlen(user), plen = strlen(password), n = ulen + plen + 2;
    unsigned char *raw = xmalloc(n);
    char *out;

    raw[0] = 0;
    memcpy(raw + 1, user, ulen);
    raw[1 + ulen] = 0;
    memcpy(raw + 2 + ulen, password, plen);
    out = encode(raw, n);
    explicit_bzero(raw, n);
    free(raw);
    return out;
}

/* sasl_base64 - base64 of a string */
char *sasl_base64(const char *text)
{
    return encode((const unsigned char *) text, strlen(text));
}
