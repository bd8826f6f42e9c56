/*
 * domain - hostname and ETRN argument validation.
 *
 * domain_is_hostname() accepts an LDH hostname: ASCII letters, digits and
 * inner hyphens, labels of 1..63 octets, 253 octets in all, no empty label
 * and no trailing dot. It is the only gate through which a name may become a
 * file name or reach the wire in a custom SMTP command.
 *
 * domain_etrn_arg() classifies an ETRN argument (RFC 1985): "host",
 * "@host" (host and its subdomains), "#name" (a named queue: letters,
 * digits, '.', '_', '-', at most 64) or "[address]" (an IPv4 or
 * "IPv6:" literal). Everything else -- spaces, CR, LF, NUL, '/', "..",
 * UTF-8, '%' -- is ETRN_ARG_INVALID with a static reason in *why.
 * domain_ip_parse() reads a bare IPv4 or IPv6 address into 4 or 16 bytes
 * and says which (AF_INET, AF_INET6; 0: neither).
 * Pure functions: no allocation, no state.
 */
#ifndef ETRNKIT_DOMAIN_H
#define ETRNKIT_DOMAIN_H

#include <stddef.h>

#define DOMAIN_MAX 253
#define ETRN_QUEUE_NAME_MAX 64

enum etrn_arg_kind {
    ETRN_ARG_INVALID,
    ETRN_ARG_HOST,       /* example.org */
    ETRN_ARG_SUBDOMAINS, /* @example.org */
    ETRN_ARG_QUEUE,      /* #name */
    ETRN_ARG_LITERAL,    /* [192.0.2.1] or [IPv6:2001:db8::1] */
};

int domain_is_hostname(const char *name, const char **why);
int domain_is_address_literal(const char *text);
enum etrn_arg_kind domain_etrn_arg(const char *arg, const char **why);
void domain_lowercase(char *name);
int domain_ip_parse(const char *text, unsigned char addr[16]);

#endif
