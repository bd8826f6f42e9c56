/*
 * server_route.c - where mail goes (transport tables, etrn_only_domains,
 * mydestination, relayhost, default_transport) and the matching of domains
 * and client addresses against the configuration's lists.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "domain.h"
#include "server_config.h"
#include "server_route.h"

/* server_cidr_parse - "a.b.c.d[/n]", "[v6][/n]" or "v6[/n]"; host bits must be zero */
int server_cidr_parse(const char *text, struct server_cidr *net, const char **why)
{
    char addr[INET6_ADDRSTRLEN + 8];
    const char *slash;
    size_t len;
    long prefix = -1;

    memset(net, 0, sizeof(*net));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');

        if (close == NULL) {
            *why = "missing ']'";
            return -1;
        }
        len = (size_t) (close - text - 1);
        if (len >= sizeof(addr)) {
            *why = "not an IP address";
            return -1;
        }
        memcpy(addr, text + 1, len);
        addr[len] = 0;
        slash = close + 1;
        if (*slash && *slash != '/') {
            *why = "expected \"/prefix\" after ']'";
            return -1;
        }
    } else {
        slash = strchr(text, '/');
        len = slash ? (size_t) (slash - text) : strlen(text);
        if (slash == NULL)
            slash = text + len;
        if (len >= sizeof(addr)) {
            *why = "not an IP address";
            return -1;
        }
        memcpy(addr, text, len);
        addr[len] = 0;
    }
    if ((net->family = domain_ip_parse(addr, net->addr)) == 0) {
        *why = "not an IP address or network (a.b.c.d/n, [v6addr]/n)";
        return -1;
    }
    unsigned max = net->family == AF_INET ? 32 : 128;
    if (*slash == '/') {
        const char *p = slash + 1;

        prefix = 0;
        if (*p == 0 || strlen(p) > 3) {
            *why = "bad prefix length";
            return -1;
        }
        for (; *p; p++) {
            if (!isdigit((unsigned char) *p)) {
                *why = "bad prefix length";
                return -1;
            }
            prefix = prefix * 10 + (*p - '0');
        }
        if (prefix > (long) max) {
            *why = net->family == AF_INET ? "prefix length over 32" : "prefix length over 128";
            return -1;
        }
    }
    net->prefix = prefix < 0 ? max : (unsigned) prefix;
    for (unsigned bit = net->prefix; bit < max; bit++) {
        if (net->addr[bit / 8] & (0x80u >> (bit % 8))) {
            *why = "host bits are set (write the network address, e.g. 192.0.2.0/24)";
            return -1;
        }
    }
    return 0;
}

/* server_cidr_match - addr (family AF_INET/AF_INET6, v4-mapped v6 too) is inside net */
int server_cidr_match(const struct server_cidr *net, int family, const void *addr)
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    const unsigned char *a = addr;
    unsigned full, rest;

    if (family == AF_INET6 && net->family == AF_INET && memcmp(a, mapped, 12) == 0) {
        a += 12;
        family = AF_INET;
    }
    if (family != net->family)
        return 0;
    full = net->prefix / 8;
    rest = net->prefix % 8;
    if (memcmp(a, net->addr, full) != 0)
        return 0;
    if (rest) {
        unsigned char mask = (unsigned char) (0xffu << (8 - rest));

        if ((a[full] & mask) != net->addr[full])
            return 0;
    }
    return 1;
}

/* server_netlist_match - addr is inside any network of the list */
int server_netlist_match(const struct server_netlist *list, int family, const void *addr)
{
    for (size_t i = 0; i < list->count; i++)
        if (server_cidr_match(&list->nets[i], family, addr))
            return 1;
    return 0;
}

/* cmp_key - bsearch order: the key against a list item */
static int cmp_key(const void *key, const void *item)
{
    return strcmp(*(char *const *) key, *(char *const *) item);
}

/* list_has - binary search in a sorted list */
static int list_has(const struct cfg_list *list, const char *key)
{
    return list->count && bsearch(&key, list->items, list->count, sizeof(char *), cmp_key) != NULL;
}

/* lower_copy - lower-cased copy of a domain into out, -1 if too long */
static int lower_copy(const char *domain, char *out, size_t outlen)
{
    size_t n = strlen(domain);

    if (n == 0 || n >= outlen)
        return -1;
    memcpy(out, domain, n + 1);
    domain_lowercase(out);
    return 0;
}

/* server_domain_match - domain equals an entry, or is below a ".parent" entry */
int server_domain_match(const struct cfg_list *list, const char *domain)
{
    char name[DOMAIN_MAX + 2];

    if (lower_copy(domain, name, sizeof(name)) != 0)
        return 0;
    if (list_has(list, name))
        return 1;
    for (const char *p = strchr(name, '.'); p; p = strchr(p + 1, '.'))
        if (list_has(list, p))
            return 1;
    return 0;
}

/* find_transport - exact pattern in the sorted transport table */
static const struct server_transport_entry *find_transport(const struct server_config *conf,
                                                           const char *pattern)
{
    size_t lo = 0, hi = conf->ntransports;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(pattern, conf->transports[mid].pattern);

        if (c == 0)
            return &conf->transports[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

/* set_host - copy a next-hop host into the route */
static void set_host(struct server_route *route, const char *host, int port, int mx)
{
    snprintf(route->host, sizeof(route->host), "%s", host);
    route->port = port ? port : 25;
    route->mx = mx;
}

/* server_transport_lookup - where mail for domain goes, and whether it waits for a flush */
int server_transport_lookup(const struct server_config *conf, const char *domain,
                            struct server_route *route)
{
    char name[DOMAIN_MAX + 2];
    const struct server_transport_entry *e = NULL;
    int literal;

    memset(route, 0, sizeof(*route));
    if (lower_copy(domain, name, sizeof(name)) != 0)
        return -1;
    literal = domain_is_address_literal(name);
    if (!literal && !domain_is_hostname(name, NULL))
        return -1;
    if (!literal) {
        e = find_transport(conf, name);
        for (const char *p = strchr(name, '.'); e == NULL && p; p = strchr(p + 1, '.'))
            e = find_transport(conf, p);
    }
    if (e == NULL)
        e = find_transport(conf, "*");
    int etrn_only = !literal && server_domain_match(&conf->etrn_only_domains, name);

    if (e) {
        route->transport = e->transport == SERVER_TRANSPORT_NONE ? conf->default_transport_kind
                                                         : e->transport;
        if (e->nexthop.host)
            set_host(route, e->nexthop.host, e->nexthop.port, e->nexthop.mx);
        else
            set_host(route, name, e->nexthop.port, 1);
        route->source = SERVER_ROUTE_TABLE;
    } else if (etrn_only) {
        route->transport = SERVER_TRANSPORT_ETRN_ONLY;
        set_host(route, name, 0, 1);
        route->source = SERVER_ROUTE_ETRN_ONLY;
    } else if (!literal && server_domain_match(&conf->mydestination, name)) {
        route->transport = SERVER_TRANSPORT_LOCAL;
        set_host(route, name, 0, 0);
        route->source = SERVER_ROUTE_LOCAL;
    } else if (conf->relayhost_nexthop.host) {
        const struct server_nexthop *h = &conf->relayhost_nexthop;

        route->transport = conf->default_transport_kind;
        set_host(route, h->host, h->port, h->mx);
        route->source = SERVER_ROUTE_RELAYHOST;
    } else {
        const struct server_nexthop *h = &conf->default_nexthop;

        route->transport = conf->default_transport_kind;
        if (h->host) {
            set_host(route, h->host, h->port, h->mx);
        } else if (literal) {
            char addr[DOMAIN_MAX + 2];
            size_t n = strlen(name) - 2;
            const char *start = name + 1;

            if (strncmp(start, "ipv6:", 5) == 0)
                start += 5, n -= 5;
            memcpy(addr, start, n);
            addr[n] = 0;
            set_host(route, addr, 0, 0);
        } else {
            set_host(route, name, 0, 1);
        }
        route->source = SERVER_ROUTE_DEFAULT;
    }
    if (etrn_only && route->transport != SERVER_TRANSPORT_LOCAL)
        route->transport = SERVER_TRANSPORT_ETRN_ONLY;
    route->defer = route->transport == SERVER_TRANSPORT_ETRN_ONLY
                   || (conf->defer_mask & (1u << route->transport)) != 0;
    return 0;
}
