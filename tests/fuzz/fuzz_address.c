/*
 * fuzz_address - smtpd's MAIL FROM / RCPT TO path parser and the domain
 * checks behind it (smtpd_parse_path, domain.c).
 * Input: the argument of MAIL or RCPT ("FROM:<a@b> SIZE=1"); the first byte
 * picks the keyword and whether the null path is allowed. Checks: an
 * accepted address fits its buffer, is what stood between the brackets,
 * has a domain that domain_is_hostname() or domain_is_address_literal()
 * accepts and no byte that could split a queue file or a log line; a
 * hostname that domain_is_hostname() accepts is lower-cased in place
 * without changing length and is accepted again.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "smtpd.h"
#include "support.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    support_init("address");
    return 0;
}

/* check_host - domain.c's own promises */
static void check_host(char *name)
{
    const char *why = NULL;
    size_t len = strlen(name);

    if (!domain_is_hostname(name, &why)) {
        if (why == NULL)
            abort();
        return;
    }
    if (len == 0 || len > DOMAIN_MAX || name[0] == '.' || name[0] == '-' || name[len - 1] == '.')
        abort();
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char) *p) && *p != '-' && *p != '.')
            abort();
    domain_lowercase(name);
    if (strlen(name) != len || !domain_is_hostname(name, NULL))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *arg, *copy, *params = NULL;
    char addr[SMTPD_ADDR_MAX], domain[DOMAIN_MAX + 1];
    const char *keyword;
    int allow_null, rc;

    if (size < 1 || size > 4096)
        return 0;
    keyword = data[0] & 1 ? "TO:" : "FROM:";
    allow_null = (data[0] & 2) != 0;
    arg = malloc(size);
    memcpy(arg, data + 1, size - 1);
    arg[size - 1] = 0;
    copy = strdup(arg);
    rc = smtpd_parse_path(arg, keyword, allow_null, addr, domain, &params);
    if (rc != SMTPD_PATH_SYNTAX) {
        const char *lt = strchr(copy, '<');
        size_t alen = strlen(addr);

        if (lt == NULL || strncmp(lt + 1, addr, alen) != 0 || lt[1 + alen] != '>')
            abort();
        if (strpbrk(addr, "\r\n<> \t") != NULL)
            abort();
        if (params == NULL || params < arg || params > arg + strlen(copy))
            abort();
        if (alen == 0) {
            if (!allow_null || domain[0] != 0)
                abort();
        } else {
            const char *at = strrchr(addr, '@');

            if (at == NULL || strcmp(at + 1, domain) != 0)
                abort();
            if (!domain_is_hostname(domain, NULL) && !domain_is_address_literal(domain))
                abort();
        }
    }
    check_host(copy);
    (void) domain_is_address_literal(copy);
    free(copy);
    free(arg);
    return 0;
}
