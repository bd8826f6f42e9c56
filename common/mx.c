/*
 * mx - MX lookup for "hosts = mx:DOMAIN" over libresolv (res_nquery, ns_parserr).
 *
 * glibc's res_nquery reports a SERVFAIL or REFUSED answer exactly like a
 * timeout (h_errno TRY_AGAIN, no packet), so those are one MX_TEMPFAIL with
 * one honest reason. A configured server replaces the res_state's list:
 * IPv4 in nsaddr_list, IPv6 in _u._ext.nsaddrs (malloc'ed, freed by
 * res_nclose), the way res_ninit itself stores an IPv6 nameserver.
 * RFC 5321's "drop MX hosts no better than our own" is deliberately not
 * applied: the provider's hosts are usually backup MXes with a higher
 * preference than the site's own, and ETRN must reach every one of them.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "alloc.h"
#include "domain.h"
#include "log.h"
#include "mx.h"

#define MX_ANSWER_MAX 65536
#define MX_RETRANS 2
#define MX_RETRY 2
#define MX_PTR_MAX 4            /* PTR names of one address tried for forward confirmation */

struct mx_resolver {
    struct __res_state state;
    int state_ok;               /* res_ninit succeeded: res_nclose at the end */
    char label[80];             /* "resolver 127.0.0.1:5353" for messages */
    mx_query_fn query;
    void *query_ctx;
    unsigned char *answer;      /* MX_ANSWER_MAX bytes */
};

/* parse_port - a decimal port 1..65535, the whole string */
static int parse_port(const char *text, int *port)
{
    long v = 0;

    if (*text == 0)
        return -1;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > 65535)
            return -1;
    }
    if (v == 0)
        return -1;
    *port = (int) v;
    return 0;
}

/* parse_server - "IP", "IP:PORT", "[IPv6]", "[IPv6]:PORT" or a bare IPv6 into ss */
static int parse_server(const char *text, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port_text = NULL, *colon = strchr(text, ':');
    size_t hostlen;
    int port = NAMESERVER_PORT, v6;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');

        if (close == NULL || (close[1] != 0 && close[1] != ':')) {
            snprintf(err, errlen, "resolver \"%s\": want IP, IP:PORT or [IPv6]:PORT", text);
            return -1;
        }
        hostlen = (size_t) (close - text - 1);
        text++;
        port_text = close[1] == ':' ? close + 2 : NULL;
        v6 = 1;
    } else if (colon != NULL && strchr(colon + 1, ':') == NULL) {
        hostlen = (size_t) (colon - text);
        port_text = colon + 1;
        v6 = 0;
    } else {
        hostlen = strlen(text);
        v6 = colon != NULL;
    }
    if (hostlen == 0 || hostlen >= sizeof(host)) {
        snprintf(err, errlen, "resolver \"%s\": want IP, IP:PORT or [IPv6]:PORT", text);
        return -1;
    }
    memcpy(host, text, hostlen);
    host[hostlen] = 0;
    if (port_text != NULL && parse_port(port_text, &port) < 0) {
        snprintf(err, errlen, "resolver port \"%s\": want a number 1..65535", port_text);
        return -1;
    }
    memset(ss, 0, sizeof(*ss));
    if (v6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((unsigned short) port);
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
            snprintf(err, errlen, "resolver \"%s\": not a numeric IPv6 address", host);
            return -1;
        }
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *) ss;

        sin->sin_family = AF_INET;
        sin->sin_port = htons((unsigned short) port);
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
            snprintf(err, errlen, "resolver \"%s\": not a numeric IPv4 address "
                     "(IPv6 goes in brackets: [::1]:53)", host);
            return -1;
        }
    }
    return 0;
}

/* set_server - make ss the res_state's only nameserver */
static void set_server(struct mx_resolver *r, const struct sockaddr_storage *ss)
{
    struct __res_state *st = &r->state;

    for (int i = 0; i < MAXNS; i++) {
        free(st->_u._ext.nsaddrs[i]);
        st->_u._ext.nsaddrs[i] = NULL;
        st->_u._ext.nssocks[i] = -1;
    }
    memset(st->nsaddr_list, 0, sizeof(st->nsaddr_list));
    if (ss->ss_family == AF_INET) {
        memcpy(&st->nsaddr_list[0], ss, sizeof(struct sockaddr_in));
    } else {
        struct sockaddr_in6 *sin6 = xmalloc(sizeof(*sin6));

        memcpy(sin6, ss, sizeof(*sin6));
        st->nsaddr_list[0].sin_family = 0; /* "see _u._ext.nsaddrs[0]" */
        st->_u._ext.nsaddrs[0] = sin6;
    }
    st->nscount = 1;
}

/* resolver_query - the default query function: res_nquery on the resolver's state */
static int resolver_query(void *ctx, const char *name, int type, unsigned char *answer,
                          int anslen, int *rcode)
{
    struct mx_resolver *r = ctx;
    int n;

    memset(answer, 0, HFIXEDSZ);
    n = res_nquery(&r->state, name, ns_c_in, type, answer, anslen);
    if (n >= 0)
        return n < anslen ? n : anslen;
    switch (r->state.res_h_errno) {
    case HOST_NOT_FOUND:
        *rcode = ns_r_nxdomain;
        break;
    case NO_DATA:
        *rcode = ns_r_noerror;
        break;
    case NO_RECOVERY:
        /* an answer with an RCODE res_nquery gave up on (FORMERR ...), if one came */
        *rcode = (answer[2] & 0x80) ? (answer[3] & 0x0f) : MX_RCODE_NONE;
        break;
    default:
        *rcode = MX_RCODE_NONE;
        break;
    }
    return -1;
}

/* mx_resolver_new - a resolver aimed at server (NULL or "": the system's) */
struct mx_resolver *mx_resolver_new(const char *server, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    struct mx_resolver *r;
    int have_server = server != NULL && *server != 0;

    if (have_server && parse_server(server, &ss, err, errlen) < 0)
        return NULL;
    r = xcalloc(1, sizeof(*r));
    if (res_ninit(&r->state) != 0) {
        snprintf(err, errlen, "cannot initialise the resolver (res_ninit failed)");
        free(r);
        return NULL;
    }
    r->state_ok = 1;
    r->state.retrans = MX_RETRANS;
    r->state.retry = MX_RETRY;
    r->state.options &= ~(unsigned long) (RES_DNSRCH | RES_DEFNAMES);
    if (have_server) {
        set_server(r, &ss);
        snprintf(r->label, sizeof(r->label), "resolver %s", server);
    } else {
        snprintf(r->label, sizeof(r->label), "the system resolver");
    }
    r->query = resolver_query;
    r->query_ctx = r;
    r->answer = xmalloc(MX_ANSWER_MAX);
    return r;
}

/* mx_resolver_set_query - replace res_nquery (tests) */
void mx_resolver_set_query(struct mx_resolver *r, mx_query_fn query, void *ctx)
{
    r->query = query;
    r->query_ctx = ctx;
}

/* mx_resolver_free - close the resolver and release it */
void mx_resolver_free(struct mx_resolver *r)
{
    if (r == NULL)
        return;
    if (r->state_ok)
        res_nclose(&r->state);
    free(r->answer);
    free(r);
}

/* A DNS number and its name in messages. */
struct code_name {
    int code;
    const char *name;
};

static const struct code_name type_names[] = {
    { ns_t_mx, "MX" }, { ns_t_a, "A" }, { ns_t_aaaa, "AAAA" }, { ns_t_ptr, "PTR" }, { 0, "?" },
};

static const struct code_name rcode_names[] = {
    { ns_r_formerr, "FORMERR" }, { ns_r_servfail, "SERVFAIL" }, { ns_r_notimpl, "NOTIMP" },
    { ns_r_refused, "REFUSED" }, { 0, "an unexpected RCODE" },
};

/* code_name - the name of code in a table that ends with { 0, name when not listed } */
static const char *code_name(const struct code_name *table, int code)
{
    while (table->code != 0 && table->code != code)
        table++;
    return table->name;
}

/* type_name - "MX", "A", "AAAA" or "PTR" for messages */
static const char *type_name(int type)
{
    return code_name(type_names, type);
}

/* rcode_name - the mnemonic of a DNS RCODE */
static const char *rcode_name(int rcode)
{
    return code_name(rcode_names, rcode);
}

/* negative - map a negative answer (rcode) to a status and a reason */
static enum mx_status negative(const struct mx_resolver *r, const char *name, int type,
                               int rcode, char *why, size_t whylen)
{
    switch (rcode) {
    case ns_r_nxdomain:
        snprintf(why, whylen, "%s: no such domain (NXDOMAIN from %s)", name, r->label);
        return MX_NXDOMAIN;
    case ns_r_noerror:
        snprintf(why, whylen, "no %s records for %s", type_name(type), name);
        return MX_NODATA;
    case MX_RCODE_NONE:
        snprintf(why, whylen, "no usable answer from %s for %s %s (SERVFAIL, REFUSED or no reply)",
                 r->label, name, type_name(type));
        return MX_TEMPFAIL;
    default:
        snprintf(why, whylen, "%s answered %s (%d) for %s %s", r->label, rcode_name(rcode), rcode,
                 name, type_name(type));
        return MX_TEMPFAIL;
    }
}

/* ask - query name/type; MX_OK with the parsed answer in msg, else a status and reason */
static enum mx_status ask(struct mx_resolver *r, const char *name, int type, ns_msg *msg,
                          char *why, size_t whylen)
{
    int rcode = MX_RCODE_NONE;
    int n = r->query(r->query_ctx, name, type, r->answer, MX_ANSWER_MAX, &rcode);

    if (n >= 0) {
        if (n > MX_ANSWER_MAX || ns_initparse(r->answer, n, msg) < 0) {
            snprintf(why, whylen, "malformed answer from %s for %s %s", r->label, name,
                     type_name(type));
            return MX_TEMPFAIL;
        }
        rcode = ns_msg_getflag(*msg, ns_f_rcode);
        if (rcode == ns_r_noerror)
            return MX_OK;
    }
    return negative(r, name, type, rcode, why, whylen);
}

/* malformed - the reason for an answer ns_parserr could not read */
static enum mx_status malformed(const struct mx_resolver *r, const char *name, int type,
                                char *why, size_t whylen)
{
    snprintf(why, whylen, "malformed answer from %s for %s %s", r->label, name, type_name(type));
    return MX_TEMPFAIL;
}

/* host_free - release one host's strings */
static void host_free(struct mx_host *h)
{
    free(h->name);
    for (size_t i = 0; i < h->naddrs; i++)
        free(h->addrs[i]);
    free(h->addrs);
    free(h->addr_why);
    memset(h, 0, sizeof(*h));
}

/* mx_list_free - release a list (safe on an empty one) */
void mx_list_free(struct mx_list *list)
{
    for (size_t i = 0; i < list->count; i++)
        host_free(&list->hosts[i]);
    free(list->hosts);
    list->hosts = NULL;
    list->count = 0;
}

/* parse_mx - the MX records of an answer into out; null MX and no MX are MX_NODATA */
static enum mx_status parse_mx(struct mx_resolver *r, ns_msg *msg, const char *domain,
                               struct mx_list *out, char *why, size_t whylen)
{
    int count = ns_msg_count(*msg, ns_s_an), null_mx = 0;
    size_t invalid = 0;

    for (int i = 0; i < count; i++) {
        char name[NS_MAXDNAME];
        const char *bad = NULL;
        ns_rr rr;

        if (ns_parserr(msg, ns_s_an, i, &rr) < 0)
            return malformed(r, domain, ns_t_mx, why, whylen);
        if (ns_rr_type(rr) != ns_t_mx || ns_rr_class(rr) != ns_c_in)
            continue; /* e.g. the CNAME that led to the MX */
        if (ns_rr_rdlen(rr) < 3 ||
            ns_name_uncompress(ns_msg_base(*msg), ns_msg_end(*msg), ns_rr_rdata(rr) + 2,
                               name, sizeof(name)) < 0)
            return malformed(r, domain, ns_t_mx, why, whylen);
        if (name[0] == 0 || strcmp(name, ".") == 0) {
            null_mx = 1;
            continue;
        }
        if (!domain_is_hostname(name, &bad)) {
            log_warn("%s: ignoring MX record \"%s\": %s", domain, name, bad);
            invalid++;
            continue;
        }
        out->hosts = xreallocarray(out->hosts, out->count + 1, sizeof(*out->hosts));
        struct mx_host *h = &out->hosts[out->count++];

        memset(h, 0, sizeof(*h));
        h->name = xstrdup(name);
        domain_lowercase(h->name);
        h->preference = ns_get16(ns_rr_rdata(rr));
    }
    if (null_mx) {
        mx_list_free(out);
        snprintf(why, whylen, "%s accepts no mail (null MX, RFC 7505)", domain);
        return MX_NODATA;
    }
    if (out->count == 0) {
        if (invalid)
            snprintf(why, whylen, "no usable MX records for %s (%zu not a host name)", domain,
                     invalid);
        else
            snprintf(why, whylen, "no MX records for %s", domain);
        return MX_NODATA;
    }
    return MX_OK;
}

/* add_addrs - append the A or AAAA records of h->name; MX_NODATA when there are none */
static enum mx_status add_addrs(struct mx_resolver *r, struct mx_host *h, int type, char *why,
                                size_t whylen)
{
    int family = type == ns_t_a ? AF_INET : AF_INET6;
    unsigned rdlen = type == ns_t_a ? NS_INADDRSZ : NS_IN6ADDRSZ;
    size_t before = h->naddrs;
    enum mx_status st;
    ns_msg msg;

    st = ask(r, h->name, type, &msg, why, whylen);
    if (st != MX_OK)
        return st;
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
        char text[INET6_ADDRSTRLEN];
        ns_rr rr;

        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
            return malformed(r, h->name, type, why, whylen);
        if ((int) ns_rr_type(rr) != type || ns_rr_class(rr) != ns_c_in)
            continue;
        if (ns_rr_rdlen(rr) != rdlen ||
            inet_ntop(family, ns_rr_rdata(rr), text, sizeof(text)) == NULL)
            return malformed(r, h->name, type, why, whylen);
        h->addrs = xreallocarray(h->addrs, h->naddrs + 1, sizeof(*h->addrs));
        h->addrs[h->naddrs++] = xstrdup(text);
    }
    if (h->naddrs == before)
        return negative(r, h->name, type, ns_r_noerror, why, whylen);
    return MX_OK;
}

/* resolve_host - fill h's addresses; on none, addr_status and addr_why say why */
static void resolve_host(struct mx_resolver *r, struct mx_host *h)
{
    char why4[512], why6[512];
    enum mx_status st4 = add_addrs(r, h, ns_t_a, why4, sizeof(why4));
    enum mx_status st6 = add_addrs(r, h, ns_t_aaaa, why6, sizeof(why6));
    char msg[600];

    if (h->naddrs > 0) {
        h->addr_status = MX_OK;
        return;
    }
    if (st4 == MX_TEMPFAIL || st6 == MX_TEMPFAIL) {
        h->addr_status = MX_TEMPFAIL;
        snprintf(msg, sizeof(msg), "%s", st4 == MX_TEMPFAIL ? why4 : why6);
    } else if (st4 == MX_NXDOMAIN && st6 == MX_NXDOMAIN) {
        h->addr_status = MX_NXDOMAIN;
        snprintf(msg, sizeof(msg), "%s", why4);
    } else {
        h->addr_status = MX_NODATA;
        snprintf(msg, sizeof(msg), "no A or AAAA records for %s", h->name);
    }
    h->addr_why = xstrdup(msg);
}

/* same_addr - whether two numeric addresses are equal (any spelling) */
static int same_addr(const char *a, const char *b)
{
    unsigned char ba[16], bb[16];

    if (inet_pton(AF_INET, a, ba) == 1)
        return inet_pton(AF_INET, b, bb) == 1 && memcmp(ba, bb, 4) == 0;
    if (inet_pton(AF_INET6, a, ba) == 1)
        return inet_pton(AF_INET6, b, bb) == 1 && memcmp(ba, bb, 16) == 0;
    return 0;
}

/* same_name - host names equal ignoring case and a trailing dot */
static int same_name(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la > 0 && a[la - 1] == '.')
        la--;
    if (lb > 0 && b[lb - 1] == '.')
        lb--;
    return la == lb && strncasecmp(a, b, la) == 0;
}

/* is_self - whether h is this site: its name is self_name or it has one of self_addrs */
static int is_self(const struct mx_host *h, const char *self_name, char *const *self_addrs,
                   size_t nself)
{
    if (self_name != NULL && *self_name != 0 && same_name(h->name, self_name))
        return 1;
    for (size_t i = 0; i < h->naddrs; i++)
        for (size_t j = 0; j < nself; j++)
            if (same_addr(h->addrs[i], self_addrs[j]))
                return 1;
    return 0;
}

/* mx_select - stable sort by preference, drop duplicates and self; return how many were self */
size_t mx_select(struct mx_list *list, const char *self_name, char *const *self_addrs,
                 size_t nself)
{
    size_t kept = 0, self = 0;

    for (size_t i = 1; i < list->count; i++) {
        struct mx_host h = list->hosts[i];
        size_t j = i;

        while (j > 0 && list->hosts[j - 1].preference > h.preference) {
            list->hosts[j] = list->hosts[j - 1];
            j--;
        }
        list->hosts[j] = h;
    }
    for (size_t i = 0; i < list->count; i++) {
        struct mx_host *h = &list->hosts[i];
        int dup = 0;

        for (size_t k = 0; k < kept && !dup; k++)
            dup = same_name(list->hosts[k].name, h->name);
        if (dup || is_self(h, self_name, self_addrs, nself)) {
            if (!dup) {
                log_debug("mx: skipping %s: it is this host", h->name);
                self++;
            }
            host_free(h);
            continue;
        }
        list->hosts[kept++] = *h;
    }
    list->count = kept;
    return self;
}

/* is_loopback - whether a socket address is 127/8, ::1 or ::ffff:127/104 */
static int is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) (const void *) sa;

        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) (const void *) sa;

    return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
           (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && sin6->sin6_addr.s6_addr[12] == 127);
}

/* local_addrs - this machine's non-loopback addresses as numeric strings */
static char **local_addrs(size_t *count)
{
    struct ifaddrs *ifs, *ifa;
    char **addrs = NULL;

    *count = 0;
    if (getifaddrs(&ifs) < 0) {
        log_warn("mx: getifaddrs: %m; MX hosts are skipped as this host by name only");
        return NULL;
    }
    for (ifa = ifs; ifa != NULL; ifa = ifa->ifa_next) {
        char text[INET6_ADDRSTRLEN];
        const struct sockaddr *sa = ifa->ifa_addr;
        const void *bin;

        if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
            is_loopback(sa))
            continue;
        if (sa->sa_family == AF_INET)
            bin = &((const struct sockaddr_in *) (const void *) sa)->sin_addr;
        else
            bin = &((const struct sockaddr_in6 *) (const void *) sa)->sin6_addr;
        if (inet_ntop(sa->sa_family, bin, text, sizeof(text)) == NULL)
            continue;
        addrs = xreallocarray(addrs, *count + 1, sizeof(*addrs));
        addrs[(*count)++] = xstrdup(text);
    }
    freeifaddrs(ifs);
    return addrs;
}

/* ptr_name - the in-addr.arpa or ip6.arpa name of a numeric address; -1 if not one */
static int ptr_name(const char *addr, char *out, size_t outlen)
{
    unsigned char b[16];
    static const char hex[] = "0123456789abcdef";

    if (inet_pton(AF_INET, addr, b) == 1) {
        snprintf(out, outlen, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
        return 0;
    }
    size_t k = 0;

    if (inet_pton(AF_INET6, addr, b) != 1 || outlen < 16 * 4 + 9)
        return -1;
    for (int i = 15; i >= 0; i--) {
        out[k++] = hex[b[i] & 15];
        out[k++] = '.';
        out[k++] = hex[b[i] >> 4];
        out[k++] = '.';
    }
    snprintf(out + k, outlen - k, "ip6.arpa");
    return 0;
}

/* mx_lookup_name - the forward-confirmed name of a numeric address (contract in mx.h) */
enum mx_status mx_lookup_name(struct mx_resolver *r, const char *addr, char *name,
                              size_t namelen, char *why, size_t whylen)
{
    char qname[80], ptrs[MX_PTR_MAX][NS_MAXDNAME];
    const char *reason;
    enum mx_status st, worst = MX_NODATA;
    size_t nptr = 0;
    ns_msg msg;

    if (ptr_name(addr, qname, sizeof(qname)) != 0) {
        snprintf(why, whylen, "%s: not a numeric address", addr);
        return MX_NODATA;
    }
    if ((st = ask(r, qname, ns_t_ptr, &msg, why, whylen)) != MX_OK)
        return st;
    for (int i = 0; i < ns_msg_count(msg, ns_s_an) && nptr < MX_PTR_MAX; i++) {
        ns_rr rr;

        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
            return malformed(r, qname, ns_t_ptr, why, whylen);
        if (ns_rr_type(rr) != ns_t_ptr || ns_rr_class(rr) != ns_c_in)
            continue;
        if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), ns_rr_rdata(rr), ptrs[nptr],
                               sizeof(ptrs[nptr])) < 0)
            return malformed(r, qname, ns_t_ptr, why, whylen);
        if (domain_is_hostname(ptrs[nptr], &reason))
            nptr++;
    }
    if (nptr == 0) {
        snprintf(why, whylen, "no usable PTR record for %s", addr);
        return MX_NODATA;
    }
    for (size_t i = 0; i < nptr; i++) {
        struct mx_list list = { NULL, 0 };
        char fwhy[512];

        st = mx_lookup_host(r, ptrs[i], &list, fwhy, sizeof(fwhy));
        for (size_t k = 0; st == MX_OK && k < list.hosts[0].naddrs; k++)
            if (same_addr(list.hosts[0].addrs[k], addr)) {
                snprintf(name, namelen, "%s", ptrs[i]);
                domain_lowercase(name);
                mx_list_free(&list);
                return MX_OK;
            }
        mx_list_free(&list);
        if (st == MX_TEMPFAIL)
            worst = MX_TEMPFAIL;
        snprintf(why, whylen, st == MX_OK ? "%s: address not listed for hostname %s" : "%s: %s",
                 addr, st == MX_OK ? ptrs[i] : fwhy);
    }
    return worst;
}

/* mx_lookup_host - the A/AAAA addresses of one host name (no MX), as one-host list */
enum mx_status mx_lookup_host(struct mx_resolver *r, const char *name, struct mx_list *out,
                              char *why, size_t whylen)
{
    struct mx_host *h;

    out->hosts = xcalloc(1, sizeof(*out->hosts));
    out->count = 1;
    h = &out->hosts[0];
    h->name = xstrdup(name);
    resolve_host(r, h);
    snprintf(why, whylen, "%s", h->addr_why ? h->addr_why : "");
    return h->addr_status;
}

/* mx_lookup - DOMAIN's MX hosts, sorted, this host skipped, addresses resolved */
enum mx_status mx_lookup(struct mx_resolver *r, const char *domain, const char *self_name,
                         struct mx_list *out, char *why, size_t whylen)
{
    const char *bad = NULL;
    enum mx_status st;
    size_t self, nlocal = 0;
    char **local;
    ns_msg msg;

    out->hosts = NULL;
    out->count = 0;
    if (!domain_is_hostname(domain, &bad)) {
        snprintf(why, whylen, "\"%s\" is not a domain name: %s", domain, bad);
        return MX_NXDOMAIN;
    }
    st = ask(r, domain, ns_t_mx, &msg, why, whylen);
    if (st == MX_OK)
        st = parse_mx(r, &msg, domain, out, why, whylen);
    if (st != MX_OK) {
        mx_list_free(out);
        return st;
    }
    self = mx_select(out, self_name, NULL, 0);
    if (out->count > MX_HOSTS_MAX) {
        log_warn("%s: %zu MX hosts; using the first %d by preference", domain, out->count,
                 MX_HOSTS_MAX);
        for (size_t i = MX_HOSTS_MAX; i < out->count; i++)
            host_free(&out->hosts[i]);
        out->count = MX_HOSTS_MAX;
    }
    for (size_t i = 0; i < out->count; i++)
        resolve_host(r, &out->hosts[i]);
    local = local_addrs(&nlocal);
    self += mx_select(out, self_name, local, nlocal);
    for (size_t i = 0; i < nlocal; i++)
        free(local[i]);
    free(local);
    if (out->count == 0) {
        mx_list_free(out);
        snprintf(why, whylen, "every MX of %s is this host (%zu skipped)", domain, self);
        return MX_NODATA;
    }
    snprintf(why, whylen, "%s: %zu MX host%s (%zu skipped as this host)", domain, out->count,
             out->count == 1 ? "" : "s", self);
    return MX_OK;
}

/* mx_status_name - "ok", "nxdomain", "nodata" or "tempfail" */
const char *mx_status_name(enum mx_status status)
{
    static const char *const names[] = {
        [MX_OK] = "ok", [MX_NXDOMAIN] = "nxdomain", [MX_NODATA] = "nodata",
        [MX_TEMPFAIL] = "tempfail",
    };

    return (size_t) status < sizeof(names) / sizeof(names[0]) ? names[status] : "unknown";
}
