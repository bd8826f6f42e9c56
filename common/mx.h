/*
 * mx - the provider hosts of "hosts = mx:DOMAIN", through libresolv.
 *
 * mx_resolver_new(server): a res_state (retrans 2 s, retry 2, no search list) aimed at
 * "IP", "IP:PORT", "[IPv6]" or "[IPv6]:PORT"; NULL or "" keeps the system's. Bad: NULL + err.
 * mx_lookup(): DOMAIN's MX hosts, duplicates dropped, sorted by preference (stable), at most
 * MX_HOSTS_MAX, this site's own skipped (name == self_name ignoring case, or an address of this
 * machine from getifaddrs -- loopback excepted, as tests run providers on 127.0.0.x), each with
 * its A/AAAA addresses from the same resolver for CURLOPT_RESOLVE; a host without addresses stays
 * with naddrs 0 and addr_status/addr_why. MX_NXDOMAIN and MX_NODATA (no MX, null MX of RFC 7505,
 * nothing left but this host) are permanent, MX_TEMPFAIL (SERVFAIL, REFUSED, timeout, bad answer)
 * is not; every result has a reason in why. mx_select() is the pure sort/dedup/skip step.
 * mx_lookup_host(): just the A/AAAA addresses of one name (a next hop given as a host), as
 * a one-host list with addr_status returned (MX_OK: naddrs > 0).
 * mx_lookup_name(): the name of a numeric address as Postfix's smtpd finds it: a PTR name
 * (at most 4 tried) whose A/AAAA records include the address; MX_OK with name (lower case),
 * else MX_NODATA/MX_NXDOMAIN (no PTR, or no name confirms: "unknown") or MX_TEMPFAIL.
 * The caller owns out and frees it with mx_list_free(), also after a failure (it is empty then).
 * Test seam, mx_resolver_set_query(): the function replaces res_nquery and returns the length of
 * a whole DNS answer (its RCODE is honoured), or -1 with *rcode = ns_r_nxdomain, ns_r_noerror
 * ("no records of that type") or MX_RCODE_NONE (no usable answer at all).
 */
#ifndef ETRNKIT_MX_H
#define ETRNKIT_MX_H

#include <stddef.h>

#define MX_RCODE_NONE (-1)
#define MX_HOSTS_MAX 16

enum mx_status { MX_OK, MX_NXDOMAIN, MX_NODATA, MX_TEMPFAIL };

struct mx_host {
    char *name;                 /* MX target, lower case, no trailing dot */
    int preference;
    char **addrs;               /* numeric: IPv4 first, then IPv6 */
    size_t naddrs;
    enum mx_status addr_status; /* MX_OK when naddrs > 0 */
    char *addr_why;             /* why naddrs is 0; NULL otherwise */
};

struct mx_list {
    struct mx_host *hosts;
    size_t count;
};

typedef int (*mx_query_fn)(void *ctx, const char *name, int type, unsigned char *answer,
                           int anslen, int *rcode);

struct mx_resolver;

struct mx_resolver *mx_resolver_new(const char *server, char *err, size_t errlen);
void mx_resolver_set_query(struct mx_resolver *r, mx_query_fn query, void *ctx);
enum mx_status mx_lookup(struct mx_resolver *r, const char *domain, const char *self_name,
                         struct mx_list *out, char *why, size_t whylen);
enum mx_status mx_lookup_host(struct mx_resolver *r, const char *name, struct mx_list *out,
                              char *why, size_t whylen);
enum mx_status mx_lookup_name(struct mx_resolver *r, const char *addr, char *name,
                              size_t namelen, char *why, size_t whylen);
size_t mx_select(struct mx_list *list, const char *self_name, char *const *self_addrs,
                 size_t nself);
void mx_list_free(struct mx_list *list);
void mx_resolver_free(struct mx_resolver *r);
const char *mx_status_name(enum mx_status status);

#endif
