#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "alloc.h"
#include "domain.h"
#include "linkwatch.h"
#include "log.h"

#define NL_BUF_SIZE 65536
#define NL_EVENT_RCVBUF (1024 * 1024)
#define NL_QUERY_TIMEOUT_SEC 2
#define DUMP_TRIES 3

#define EVENT_GROUPS (RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR \
                      | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE)

typedef void (*nl_reply_fn)(void *ctx, const struct nlmsghdr *msg);

/* nl_socket - a NETLINK_ROUTE socket bound to the given multicast groups */
static int nl_socket(unsigned groups, int flags, char *err, size_t errlen)
{
    struct sockaddr_nl sa;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | flags, NETLINK_ROUTE);

    if (fd < 0) {
        snprintf(err, errlen, "netlink socket: %s", strerror(errno));
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = groups;
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0) {
        snprintf(err, errlen, "netlink bind: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* linkwatch_open - open the event and query sockets */
struct linkwatch *linkwatch_open(char *err, size_t errlen)
{
    struct linkwatch *lw;
    struct timeval tv = { NL_QUERY_TIMEOUT_SEC, 0 };
    int size = NL_EVENT_RCVBUF;
    int ev, q;

    ev = nl_socket(EVENT_GROUPS, SOCK_NONBLOCK, err, errlen);
    if (ev < 0)
        return NULL;
    q = nl_socket(0, 0, err, errlen);
    if (q < 0) {
        close(ev);
        return NULL;
    }
    /* a bigger buffer makes ENOBUFS rare; without the privilege the default is fine */
    if (setsockopt(ev, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) != 0
        && setsockopt(ev, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) != 0)
        log_debug("netlink: cannot enlarge the event buffer: %s", strerror(errno));
    if (setsockopt(q, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
        snprintf(err, errlen, "netlink query timeout: %s", strerror(errno));
        close(ev);
        close(q);
        return NULL;
    }
    lw = xcalloc(1, sizeof(*lw));
    lw->event_fd = ev;
    lw->query_fd = q;
    lw->seq = 1;
    return lw;
}

/* linkwatch_fd - the descriptor to poll for events */
int linkwatch_fd(const struct linkwatch *lw)
{
    return lw->event_fd;
}

/* nl_recv - one datagram from the kernel on fd (EINTR retried, other senders skipped); -1: errno */
static ssize_t nl_recv(int fd, char *buf, size_t size)
{
    for (;;) {
        struct sockaddr_nl from;
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(fd, buf, size, 0, (struct sockaddr *) &from, &fromlen);

        if (n >= 0 && from.nl_pid != 0)
            continue;       /* only the kernel speaks on these sockets */
        if (n >= 0 || errno != EINTR)
            return n;
    }
}

/* linkwatch_read - drain pending events; how many arrived, or -1 */
int linkwatch_read(struct linkwatch *lw, char *err, size_t errlen)
{
    static alignas(struct nlmsghdr) char buf[NL_BUF_SIZE];
    int count = 0;

    for (int round = 0; round < 1000; round++) {
        ssize_t n = nl_recv(lw->event_fd, buf, sizeof(buf));

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return count;
            if (errno == ENOBUFS) {
                lw->overrun = 1;
                count++;
                continue;
            }
            snprintf(err, errlen, "netlink read: %s", strerror(errno));
            return -1;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *) buf; NLMSG_OK(h, (size_t) n);
             h = NLMSG_NEXT(h, n))
            count++;
    }
    return count;
}

/* nl_request - send one request on the query socket and pass each reply to fn */
static int nl_request(struct linkwatch *lw, struct nlmsghdr *req, nl_reply_fn fn, void *ctx,
                      int *interrupted)
{
    static alignas(struct nlmsghdr) char buf[NL_BUF_SIZE];
    struct sockaddr_nl kernel;
    int dump = (req->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;

    memset(&kernel, 0, sizeof(kernel));
    kernel.nl_family = AF_NETLINK;
    req->nlmsg_seq = ++lw->seq;
    *interrupted = 0;
    if (sendto(lw->query_fd, req, req->nlmsg_len, 0, (struct sockaddr *) &kernel,
               sizeof(kernel)) < 0)
        return -1;
    for (;;) {
        ssize_t n = nl_recv(lw->query_fd, buf, sizeof(buf));

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                errno = ETIMEDOUT;
            return -1;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *) buf; NLMSG_OK(h, (size_t) n);
             h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != req->nlmsg_seq)
                continue;   /* a late answer to an earlier request */
            if (h->nlmsg_flags & NLM_F_DUMP_INTR)
                *interrupted = 1;
            if (h->nlmsg_type == NLMSG_DONE)
                return 0;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);

                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e))) {
                    errno = EPROTO;
                    return -1;
                }
                if (e->error == 0)
                    return 0;
                errno = -e->error;
                return -1;
            }
            fn(ctx, h);
            if (!dump)
                return 0;
        }
    }
}

/* state_add_iface - remember one interface from an RTM_NEWLINK message */
static void state_add_iface(struct linkwatch_state *st, const struct nlmsghdr *msg)
{
    const struct ifinfomsg *ifi = NLMSG_DATA(msg);
    int len = (int) msg->nlmsg_len - (int) NLMSG_LENGTH(sizeof(*ifi));
    struct linkwatch_iface iface;

    if (len < 0)
        return;
    memset(&iface, 0, sizeof(iface));
    iface.index = ifi->ifi_index;
    iface.flags = ifi->ifi_flags;
    iface.oper = -1;
    for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        size_t plen = RTA_PAYLOAD(a);

        if (a->rta_type == IFLA_IFNAME && plen > 0) {
            size_t n = strnlen(RTA_DATA(a), plen);

            if (n >= sizeof(iface.name))
                n = sizeof(iface.name) - 1;
            memcpy(iface.name, RTA_DATA(a), n);
            iface.name[n] = 0;
        } else if (a->rta_type == IFLA_OPERSTATE && plen >= 1) {
            iface.oper = *(const unsigned char *) RTA_DATA(a);
        }
    }
    st->ifaces = xreallocarray(st->ifaces, st->nifaces + 1, sizeof(*st->ifaces));
    st->ifaces[st->nifaces++] = iface;
}

/* state_add_default - remember one output interface of a default route */
static void state_add_default(struct linkwatch_state *st, int oif)
{
    if (oif <= 0)
        return;
    st->default_oifs = xreallocarray(st->default_oifs, st->ndefaults + 1,
                                     sizeof(*st->default_oifs));
    st->default_oifs[st->ndefaults++] = oif;
}

/* state_add_route - remember a default unicast route from an RTM_NEWROUTE message */
static void state_add_route(struct linkwatch_state *st, const struct nlmsghdr *msg)
{
    const struct rtmsg *rt = NLMSG_DATA(msg);
    int len = (int) msg->nlmsg_len - (int) NLMSG_LENGTH(sizeof(*rt));
    unsigned table;

    if (len < 0 || rt->rtm_dst_len != 0 || rt->rtm_type != RTN_UNICAST)
        return;
    if (rt->rtm_family != AF_INET && rt->rtm_family != AF_INET6)
        return;
    table = rt->rtm_table;
    for (const struct rtattr *a = RTM_RTA(rt); RTA_OK(a, len); a = RTA_NEXT(a, len))
        if (a->rta_type == RTA_TABLE && RTA_PAYLOAD(a) >= sizeof(unsigned))
            memcpy(&table, RTA_DATA(a), sizeof(table));
    if (table == RT_TABLE_LOCAL)
        return;
    len = (int) msg->nlmsg_len - (int) NLMSG_LENGTH(sizeof(*rt));
    for (const struct rtattr *a = RTM_RTA(rt); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= sizeof(int)) {
            int oif;

            memcpy(&oif, RTA_DATA(a), sizeof(oif));
            state_add_default(st, oif);
        } else if (a->rta_type == RTA_MULTIPATH) {
            const struct rtnexthop *nh = RTA_DATA(a);
            int nlen = (int) RTA_PAYLOAD(a);

            while (RTNH_OK(nh, nlen)) {
                state_add_default(st, nh->rtnh_ifindex);
                nlen -= NLMSG_ALIGN(nh->rtnh_len);
                nh = RTNH_NEXT(nh);
            }
        }
    }
}

/* linkwatch_state_add - add one dump message (RTM_NEWLINK, RTM_NEWROUTE) to the state */
void linkwatch_state_add(struct linkwatch_state *st, const struct nlmsghdr *msg)
{
    if (msg->nlmsg_type == RTM_NEWLINK && msg->nlmsg_len >= NLMSG_LENGTH(sizeof(struct ifinfomsg)))
        state_add_iface(st, msg);
    else if (msg->nlmsg_type == RTM_NEWROUTE
             && msg->nlmsg_len >= NLMSG_LENGTH(sizeof(struct rtmsg)))
        state_add_route(st, msg);
}

/* linkwatch_state_free - release a state's arrays */
void linkwatch_state_free(struct linkwatch_state *st)
{
    free(st->ifaces);
    free(st->default_oifs);
    memset(st, 0, sizeof(*st));
}

/* linkwatch_target_parse - fill a target when host is an IPv4 or IPv6 literal; -1 otherwise */
int linkwatch_target_parse(const char *host, struct linkwatch_target *target)
{
    char text[64];
    size_t n = strlen(host);

    memset(target, 0, sizeof(*target));
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(text))
        return -1;
    memcpy(text, host, n);
    text[n] = 0;
    if ((target->family = domain_ip_parse(text, target->addr)) == 0)
        return -1;
    memcpy(target->host, text, n + 1);
    return 0;
}

/* find_iface - the interface with this index, or NULL */
static const struct linkwatch_iface *find_iface(const struct linkwatch_state *st, int index)
{
    for (size_t i = 0; i < st->nifaces; i++)
        if (st->ifaces[i].index == index)
            return &st->ifaces[i];
    return NULL;
}

/* iface_running - administratively up, carrier present, operationally up */
static int iface_running(const struct linkwatch_iface *iface)
{
    if ((iface->flags & (IFF_UP | IFF_RUNNING)) != (IFF_UP | IFF_RUNNING))
        return 0;
    return iface->oper < 0 || iface->oper == IF_OPER_UP || iface->oper == IF_OPER_UNKNOWN;
}

/* iface_watched - whether [link] interfaces names it (an empty list watches all) */
static int iface_watched(const struct linkwatch_iface *iface, const struct cfg_list *watch)
{
    if (watch == NULL || watch->count == 0)
        return 1;
    for (size_t i = 0; i < watch->count; i++)
        if (strcmp(watch->items[i], iface->name) == 0)
            return 1;
    return 0;
}

/* target_loopback - 127.0.0.0/8 or ::1 */
static int target_loopback(const struct linkwatch_target *t)
{
    static const unsigned char v6_loopback[16] = { [15] = 1 };

    if (t->family == AF_INET)
        return t->addr[0] == 127;
    return memcmp(t->addr, v6_loopback, sizeof(v6_loopback)) == 0;
}

/* set_verdict - fill a verdict */
static void LOG_PRINTF(4, 5) set_verdict(struct linkwatch_verdict *v, int up, const char *ifname,
                                         const char *fmt, ...)
{
    va_list ap;

    v->up = up;
    snprintf(v->ifname, sizeof(v->ifname), "%s", ifname ? ifname : "");
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof(v->why), fmt, ap);
    va_end(ap);
}

/* judge_target - the verdict for one IP-literal provider host */
static void judge_target(const struct linkwatch_state *st, const struct linkwatch_target *t,
                         const struct cfg_list *watch, struct linkwatch_verdict *v)
{
    const struct linkwatch_iface *iface;

    if (!t->routed) {
        set_verdict(v, 0, NULL, "no route to %s", t->host);
        return;
    }
    iface = find_iface(st, t->oif);
    if (iface == NULL) {
        set_verdict(v, 0, NULL, "route to %s uses an unknown interface", t->host);
        return;
    }
    if (!iface_running(iface)) {
        set_verdict(v, 0, iface->name, "route to %s: interface not running", t->host);
        return;
    }
    if (iface->flags & IFF_LOOPBACK) {
        if (t->local || target_loopback(t))
            set_verdict(v, 1, iface->name, "route to %s", t->host);
        else
            set_verdict(v, 0, iface->name, "route to %s goes to loopback", t->host);
        return;
    }
    if (!iface_watched(iface, watch)) {
        set_verdict(v, 0, iface->name, "route to %s: interface not watched", t->host);
        return;
    }
    set_verdict(v, 1, iface->name, "route to %s", t->host);
}

/* judge_default - a default route on a running, non-loopback, watched interface? */
static void judge_default(const struct linkwatch_state *st, const struct cfg_list *watch,
                          struct linkwatch_verdict *v)
{
    const struct linkwatch_iface *seen = NULL;

    for (size_t i = 0; i < st->ndefaults; i++) {
        const struct linkwatch_iface *iface = find_iface(st, st->default_oifs[i]);

        if (iface == NULL || (iface->flags & IFF_LOOPBACK) || !iface_watched(iface, watch))
            continue;
        if (iface_running(iface)) {
            set_verdict(v, 1, iface->name, "%s", "default route");
            return;
        }
        seen = iface;
    }
    if (seen)
        set_verdict(v, 0, seen->name, "%s", "default route: interface not running");
    else
        set_verdict(v, 0, NULL, "%s", "no default route on a watched interface");
}

/* linkwatch_judge - decide from a state snapshot whether the link to a provider is up */
void linkwatch_judge(const struct linkwatch_state *st, const struct linkwatch_target *targets,
                     size_t ntargets, int need_default, const struct cfg_list *watch,
                     struct linkwatch_verdict *verdict)
{
    struct linkwatch_verdict first, v;

    memset(&first, 0, sizeof(first));
    for (size_t i = 0; i < ntargets; i++) {
        judge_target(st, &targets[i], watch, &v);
        if (v.up) {
            *verdict = v;
            return;
        }
        if (i == 0)
            first = v;
    }
    if (need_default) {
        judge_default(st, watch, &v);
        if (v.up || ntargets == 0) {
            *verdict = v;
            return;
        }
    }
    if (ntargets == 0)
        set_verdict(&first, 0, NULL, "%s", "no provider host to judge");
    *verdict = first;
}

/* add_to_state - nl_reply_fn adding dump messages to a state */
static void add_to_state(void *ctx, const struct nlmsghdr *msg)
{
    linkwatch_state_add(ctx, msg);
}

/* dump - read a whole table (links or routes) into the state, retrying an interrupted dump */
static int dump(struct linkwatch *lw, int type, struct linkwatch_state *st)
{
    struct {
        struct nlmsghdr h;
        union {
            struct ifinfomsg ifi;
            struct rtmsg rt;
        } u;
    } req;
    int interrupted = 0;

    for (int tries = 0; tries < DUMP_TRIES; tries++) {
        struct linkwatch_state fresh = { NULL, 0, NULL, 0 };
        size_t body = type == RTM_GETLINK ? sizeof(struct ifinfomsg) : sizeof(struct rtmsg);

        memset(&req, 0, sizeof(req));
        req.h.nlmsg_len = NLMSG_LENGTH(body);
        req.h.nlmsg_type = (unsigned short) type;
        req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        if (nl_request(lw, &req.h, add_to_state, &fresh, &interrupted) != 0) {
            linkwatch_state_free(&fresh);
            return -1;
        }
        if (interrupted && tries + 1 < DUMP_TRIES) {
            linkwatch_state_free(&fresh);
            continue;
        }
        if (type == RTM_GETLINK) {
            free(st->ifaces);
            st->ifaces = fresh.ifaces;
            st->nifaces = fresh.nifaces;
            free(fresh.default_oifs);
        } else {
            free(st->default_oifs);
            st->default_oifs = fresh.default_oifs;
            st->ndefaults = fresh.ndefaults;
            free(fresh.ifaces);
        }
        return 0;
    }
    return 0;
}

/* take_route - nl_reply_fn reading the kernel's answer to a route lookup */
static void take_route(void *ctx, const struct nlmsghdr *msg)
{
    struct linkwatch_target *t = ctx;
    const struct rtmsg *rt = NLMSG_DATA(msg);
    int len = (int) msg->nlmsg_len - (int) NLMSG_LENGTH(sizeof(*rt));

    if (msg->nlmsg_type != RTM_NEWROUTE || len < 0)
        return;
    if (rt->rtm_type != RTN_UNICAST && rt->rtm_type != RTN_LOCAL)
        return;
    for (const struct rtattr *a = RTM_RTA(rt); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) >= sizeof(int)) {
            memcpy(&t->oif, RTA_DATA(a), sizeof(t->oif));
            t->routed = 1;
            t->local = rt->rtm_type == RTN_LOCAL;
        }
    }
}

/* route_get - ask the kernel for its route to one target (ip route get) */
static int route_get(struct linkwatch *lw, struct linkwatch_target *t)
{
    struct {
        struct nlmsghdr h;
        struct rtmsg rt;
        char attrs[RTA_SPACE(16)];
    } req;
    struct rtattr *a;
    size_t alen = t->family == AF_INET ? 4 : 16;
    int interrupted;

    memset(&req, 0, sizeof(req));
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(req.rt));
    req.h.nlmsg_type = RTM_GETROUTE;
    req.h.nlmsg_flags = NLM_F_REQUEST;
    req.rt.rtm_family = (unsigned char) t->family;
    req.rt.rtm_dst_len = (unsigned char) (alen * 8);
    a = (struct rtattr *) ((char *) &req + NLMSG_ALIGN(req.h.nlmsg_len));
    a->rta_type = RTA_DST;
    a->rta_len = (unsigned short) RTA_LENGTH(alen);
    memcpy(RTA_DATA(a), t->addr, alen);
    req.h.nlmsg_len = NLMSG_ALIGN(req.h.nlmsg_len) + RTA_SPACE(alen);
    t->routed = 0;
    t->oif = 0;
    t->local = 0;
    if (nl_request(lw, &req.h, take_route, t, &interrupted) != 0) {
        if (errno == ENETUNREACH || errno == EHOSTUNREACH || errno == ESRCH || errno == EINVAL
            || errno == EACCES || errno == EPERM)
            return 0;   /* no usable route: the link is down for this host */
        return -1;
    }
    return 0;
}

/* linkwatch_probe - read the whole state from the kernel and judge it */
int linkwatch_probe(struct linkwatch *lw, const struct agent_config *conf,
                    struct linkwatch_verdict *verdict, char *err, size_t errlen)
{
    struct linkwatch_state st = { NULL, 0, NULL, 0 };
    struct linkwatch_target *targets = NULL;
    size_t ntargets = 0;
    int need_default = 0;

    lw->overrun = 0;
    if (dump(lw, RTM_GETLINK, &st) != 0 || dump(lw, RTM_GETROUTE, &st) != 0) {
        snprintf(err, errlen, "netlink dump: %s", strerror(errno));
        linkwatch_state_free(&st);
        return -1;
    }
    for (size_t p = 0; p < conf->nproviders; p++) {
        const struct agent_provider *prov = &conf->providers[p];

        if (prov->mx_domain != NULL)
            need_default = 1;
        for (size_t h = 0; h < prov->nhosts; h++) {
            struct linkwatch_target t;

            if (linkwatch_target_parse(prov->hosts[h].name, &t) != 0) {
                need_default = 1;
                continue;
            }
            if (route_get(lw, &t) != 0) {
                snprintf(err, errlen, "netlink route lookup for %s: %s", t.host, strerror(errno));
                free(targets);
                linkwatch_state_free(&st);
                return -1;
            }
            targets = xreallocarray(targets, ntargets + 1, sizeof(*targets));
            targets[ntargets++] = t;
        }
    }
    linkwatch_judge(&st, targets, ntargets, need_default, &conf->interfaces, verdict);
    free(targets);
    linkwatch_state_free(&st);
    return 0;
}

/* linkwatch_close - close both sockets and free the watcher */
void linkwatch_close(struct linkwatch *lw)
{
    if (lw == NULL)
        return;
    if (lw->event_fd >= 0 && close(lw->event_fd) != 0)
        log_warn("netlink close: %s", strerror(errno));
    if (lw->query_fd >= 0 && close(lw->query_fd) != 0)
        log_warn("netlink close: %s", strerror(errno));
    free(lw);
}
