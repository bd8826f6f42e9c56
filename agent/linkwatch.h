/*
 * linkwatch - is the site's link to its provider usable? (rtnetlink)
 *
 * linkwatch_open() opens an event socket (link, IPv4/IPv6 address and route
 * groups; non-blocking, poll linkwatch_fd()) and a query socket.
 * linkwatch_read() drains events, which are only hints; ENOBUFS sets
 * lw->overrun. linkwatch_probe() always reads the whole state (link and route
 * dumps, plus `ip route get` for every IP-literal provider host) and calls
 * linkwatch_judge(): up when a literal host's route leaves through a running
 * (IFF_UP, IFF_RUNNING, oper up/unknown), watched interface or is a
 * loopback/local route via lo; for names and mx:, when a default route uses a
 * running, non-loopback, watched interface ([link] interfaces; empty: any).
 * _judge, _state_add and _target_parse are pure. Errors: -1 and a reason in
 * err. The caller owns struct linkwatch and struct linkwatch_state.
 */
#ifndef ETRNKIT_LINKWATCH_H
#define ETRNKIT_LINKWATCH_H

#include <linux/netlink.h>
#include <net/if.h>
#include <stddef.h>

#include "agent_config.h"
#include "config.h"

struct linkwatch_iface {
    int index;
    char name[IF_NAMESIZE];
    unsigned flags;             /* IFF_* */
    int oper;                   /* IF_OPER_*; -1 not reported */
};

struct linkwatch_state {
    struct linkwatch_iface *ifaces;
    size_t nifaces;
    int *default_oifs;          /* output interface of each default route (per nexthop) */
    size_t ndefaults;
};

/* an IP-literal provider host and the kernel's route to it */
struct linkwatch_target {
    char host[64];              /* as configured, without brackets */
    int family;                 /* AF_INET, AF_INET6 */
    unsigned char addr[16];
    int routed;                 /* the kernel returned a usable route */
    int oif;                    /* its output interface */
    int local;                  /* RTN_LOCAL: an address of this host */
};

struct linkwatch_verdict {
    int up;
    char ifname[IF_NAMESIZE];   /* the interface judged (empty: none) */
    char why[192];              /* "default route", "route to 192.0.2.9", "no route to ..." */
};

struct linkwatch {
    int event_fd;
    int query_fd;
    unsigned seq;
    int overrun;                /* events were lost (ENOBUFS) since the last probe */
};

struct linkwatch *linkwatch_open(char *err, size_t errlen);
int linkwatch_fd(const struct linkwatch *lw);
int linkwatch_read(struct linkwatch *lw, char *err, size_t errlen);
int linkwatch_probe(struct linkwatch *lw, const struct agent_config *conf,
                    struct linkwatch_verdict *verdict, char *err, size_t errlen);
void linkwatch_close(struct linkwatch *lw);

int linkwatch_target_parse(const char *host, struct linkwatch_target *target);
void linkwatch_state_add(struct linkwatch_state *st, const struct nlmsghdr *msg);
void linkwatch_state_free(struct linkwatch_state *st);
void linkwatch_judge(const struct linkwatch_state *st, const struct linkwatch_target *targets,
                     size_t ntargets, int need_default, const struct cfg_list *watch,
                     struct linkwatch_verdict *verdict);

#endif
