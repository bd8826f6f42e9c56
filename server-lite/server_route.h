/*
 * server_route - where mail for a domain goes, and the matching of domains
 * and client addresses against configured lists. Pure functions over a
 * loaded server_config; nothing is allocated.
 *
 * server_transport_lookup(conf, domain, route): the first match of the
 *   transport tables ([transport], transport_maps; "name", then ".parent"
 *   entries, then "*"), else etrn_only_domains (the domain's MX), else
 *   mydestination (local), else relayhost, else default_transport; route
 *   says which (source), the transport, next hop, port, MX or not, and
 *   whether the mail waits for a flush (etrn-only or defer_transports).
 *   -1 for a domain that is neither a hostname nor an address literal.
 * server_domain_match(list, domain): domain (any case) is an entry of the
 *   sorted lower-case list, or below a ".parent" entry.
 * server_cidr_parse(): "a.b.c.d[/n]", "v6[/n]" or "[v6][/n]" with host
 *   bits zero; -1 with a static reason in *why. server_cidr_match(),
 *   server_netlist_match(): addr (4 or 16 bytes of family; v4-mapped v6
 *   matches v4 networks) is inside the network, or any of the list.
 */
#ifndef ETRNKIT_SERVER_ROUTE_H
#define ETRNKIT_SERVER_ROUTE_H

#include <stddef.h>

#include "domain.h"

struct cfg_list;
struct server_config;

enum server_transport {
    SERVER_TRANSPORT_NONE = -1, /* unknown name; in a table entry: the default transport */
    SERVER_TRANSPORT_SMTP,
    SERVER_TRANSPORT_ETRN_ONLY, /* smtp, but deferred until a flush */
    SERVER_TRANSPORT_LOCAL,     /* Maildir delivery (mydestination) */
    SERVER_TRANSPORT_COUNT
};

/* one network: family AF_INET or AF_INET6, address with host bits zero */
struct server_cidr {
    int family;
    unsigned char addr[16];
    unsigned prefix;
};

struct server_netlist {
    struct server_cidr *nets;
    size_t count;
};

/* where server_transport_lookup found its answer */
enum server_route_source {
    SERVER_ROUTE_TABLE,     /* [transport] or transport_maps */
    SERVER_ROUTE_ETRN_ONLY, /* etrn_only_domains, next hop the domain's MX */
    SERVER_ROUTE_LOCAL,     /* mydestination */
    SERVER_ROUTE_RELAYHOST, /* default_transport via relayhost */
    SERVER_ROUTE_DEFAULT,   /* default_transport, next hop the domain */
};

struct server_route {
    enum server_transport transport;
    char host[DOMAIN_MAX + 1]; /* next hop, without brackets */
    int port;                  /* 25 unless given */
    int mx;                    /* 1: look up MX records of host */
    int defer;                 /* 1: etrn-only or in defer_transports: wait for a flush */
    enum server_route_source source;
};

int server_cidr_parse(const char *text, struct server_cidr *net, const char **why);
int server_cidr_match(const struct server_cidr *net, int family, const void *addr);
int server_netlist_match(const struct server_netlist *list, int family, const void *addr);
int server_domain_match(const struct cfg_list *list, const char *domain);
int server_transport_lookup(const struct server_config *conf, const char *domain,
                            struct server_route *route);

#endif
