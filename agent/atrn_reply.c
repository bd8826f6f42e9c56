#include <string.h>
#include <strings.h>

#include "atrn_reply.h"
#include "domain.h"

/* atrn_command - "ATRN d1,d2" from validated domains; contract in atrn_reply.h */
int atrn_command(char *const *domains, size_t ndomains, struct buf *out, size_t *bad,
                 const char **why)
{
    buf_reset(out);
    *bad = ndomains;
    if (ndomains == 0) {
        *why = "no domain to ask for";
        return -1;
    }
    buf_puts(out, "ATRN ");
    for (size_t i = 0; i < ndomains; i++) {
        const char *d = domains[i];
        size_t start;

        *bad = i;
        if (d[0] == '@' || d[0] == '#') {
            *why = "\"@domain\" and \"#queue\" are ETRN forms; ATRN takes plain domains";
            return -1;
        }
        if (!domain_is_hostname(d, why))
            return -1;
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(domains[j], d) == 0) {
                *why = "given twice (domains are compared without case)";
                return -1;
            }
        }
        if (i > 0)
            buf_putc(out, ',');
        start = out->len;
        buf_puts(out, d);
        domain_lowercase(out->data + start);
    }
    if (out->len + 2 > ATRN_LINE_MAX) {
        *bad = ndomains;
        *why = "too many domains for one ATRN command (512 bytes with CRLF, RFC 5321); "
               "use another [provider] section for the rest";
        return -1;
    }
    return 0;
}

/* atrn_reply_classify - verdict and meaning of an ATRN reply code */
enum etrn_verdict atrn_reply_classify(int code, const char **meaning)
{
    switch (code) {
    case 250:
        *meaning = "reversing the connection";
        return ETRN_OK;
    case 453:
        *meaning = "no mail waiting";
        return ETRN_OK;
    case 451:
        *meaning = "already running for a domain";
        return ETRN_TEMP;
    case 450:
        *meaning = "domain not granted to this user";
        return ETRN_PERM;
    case 530:
        *meaning = "authentication required";
        return ETRN_PERM;
    case 502:
    case 500:
        *meaning = "ATRN not supported";
        return ETRN_PERM;
    }
    if (code >= 400 && code < 500) {
        *meaning = "temporary failure";
        return ETRN_TEMP;
    }
    if (code >= 500 && code < 600) {
        *meaning = "refused";
        return ETRN_PERM;
    }
    *meaning = code == 0 ? "no reply" : "unexpected reply";
    return ETRN_TEMP;
}
