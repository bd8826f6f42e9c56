#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

#include "domain.h"

static int is_ldh(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* domain_is_hostname - LDH hostname check */
int domain_is_hostname(const char *name, const char **why)
{
    const char *dummy;
    size_t label = 0;
    size_t total = 0;
    const char *p;

    if (why == NULL)
        why = &dummy;
    if (name == NULL || *name == 0) {
        *why = "empty domain name";
        return 0;
    }
    for (p = name; *p; p++, total++) {
        unsigned char c = (unsigned char) *p;

        if (total >= DOMAIN_MAX) {
            *why = "domain name longer than 253 characters";
            return 0;
        }
        if (c == '.') {
            if (label == 0) {
                *why = p[1] == 0 ? "trailing dot in domain name" : "empty label in domain name";
                return 0;
            }
            if (p[-1] == '-') {
                *why = "label ends with a hyphen";
                return 0;
            }
            label = 0;
            continue;
        }
        if (!is_ldh(c)) {
            *why = c >= 0x80 ? "non-ASCII character in domain name"
                 : c < 0x20 || c == 0x7f ? "control character in domain name"
                 : c == ' ' ? "space in domain name"
                 : "character not allowed in a hostname (letters, digits, '-' and '.' only)";
            return 0;
        }
        if (label == 0 && c == '-') {
            *why = "label starts with a hyphen";
            return 0;
        }
        if (++label > 63) {
            *why = "label longer than 63 characters";
            return 0;
        }
    }
    if (label == 0) {
        *why = "trailing dot in domain name";
        return 0;
    }
    if (p[-1] == '-') {
        *why = "label ends with a hyphen";
        return 0;
    }
    return 1;
}

/* domain_is_address_literal - "[192.0.2.1]" or "[IPv6:2001:db8::1]" */
int domain_is_address_literal(const char *text)
{
    char addr[64];
    unsigned char bin[16];
    size_t len = strlen(text);

    if (len < 3 || text[0] != '[' || text[len - 1] != ']' || len - 2 >= sizeof(addr))
        return 0;
    memcpy(addr, text + 1, len - 2);
    addr[len - 2] = 0;
    if (strncasecmp(addr, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, addr + 5, bin) == 1;
    return inet_pton(AF_INET, addr, bin) == 1;
}

/* domain_ip_parse - an IPv4 or IPv6 address: AF_INET or AF_INET6 and its bytes, or 0 */
int domain_ip_parse(const char *text, unsigned char addr[16])
{
    if (inet_pton(AF_INET, text, addr) == 1)
        return AF_INET;
    if (inet_pton(AF_INET6, text, addr) == 1)
        return AF_INET6;
    return 0;
}

/* domain_etrn_arg - classify and validate one ETRN argument */
enum etrn_arg_kind domain_etrn_arg(const char *arg, const char **why)
{
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    if (arg == NULL || *arg == 0) {
        *why = "empty ETRN argument";
        return ETRN_ARG_INVALID;
    }
    if (arg[0] == '#') {
        const char *p;

        if (arg[1] == 0) {
            *why = "empty queue name after '#'";
            return ETRN_ARG_INVALID;
        }
        for (p = arg + 1; *p; p++) {
            if (!isalnum((unsigned char) *p) && *p != '.' && *p != '_' && *p != '-') {
                *why = "queue name may hold only letters, digits, '.', '_' and '-'";
                return ETRN_ARG_INVALID;
            }
            if (p - arg > ETRN_QUEUE_NAME_MAX) {
                *why = "queue name longer than 64 characters";
                return ETRN_ARG_INVALID;
            }
        }
        if (strstr(arg, "..") != NULL) {
            *why = "queue name contains \"..\"";
            return ETRN_ARG_INVALID;
        }
        return ETRN_ARG_QUEUE;
    }
    if (arg[0] == '[') {
        if (!domain_is_address_literal(arg)) {
            *why = "bad address literal";
            return ETRN_ARG_INVALID;
        }
        return ETRN_ARG_LITERAL;
    }
    if (arg[0] == '@')
        return domain_is_hostname(arg + 1, why) ? ETRN_ARG_SUBDOMAINS : ETRN_ARG_INVALID;
    return domain_is_hostname(arg, why) ? ETRN_ARG_HOST : ETRN_ARG_INVALID;
}

/* domain_lowercase - fold ASCII letters in place */
void domain_lowercase(char *name)
{
    for (; *name; name++)
        *name = (char) tolower((unsigned char) *name);
}
