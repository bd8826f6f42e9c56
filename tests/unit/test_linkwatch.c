/* Unit tests for agent/linkwatch: parsing rtnetlink dump messages and judging the link. */
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <stdalign.h>
#include <stdlib.h>

#include "linkwatch.h"
#include "test.h"

/* one message under construction */
struct msg {
    alignas(struct nlmsghdr) char buf[1024];
};

/* add_attr - append an attribute to the message */
static void add_attr(struct msg *m, int type, const void *data, size_t len)
{
    struct nlmsghdr *h = (struct nlmsghdr *) m->buf;
    struct rtattr *a = (struct rtattr *) (m->buf + NLMSG_ALIGN(h->nlmsg_len));

    a->rta_type = (unsigned short) type;
    a->rta_len = (unsigned short) RTA_LENGTH(len);
    memcpy(RTA_DATA(a), data, len);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_SPACE(len);
}

/* add_link - feed an RTM_NEWLINK for one interface to the state */
static void add_link(struct linkwatch_state *st, int index, const char *name, unsigned flags,
                     int oper)
{
    struct msg m;
    struct nlmsghdr *h = (struct nlmsghdr *) m.buf;
    struct ifinfomsg *ifi = NLMSG_DATA(h);

    memset(&m, 0, sizeof(m));
    h->nlmsg_len = NLMSG_LENGTH(sizeof(*ifi));
    h->nlmsg_type = RTM_NEWLINK;
    ifi->ifi_index = index;
    ifi->ifi_flags = flags;
    add_attr(&m, IFLA_IFNAME, name, strlen(name) + 1);
    if (oper >= 0) {
        unsigned char o = (unsigned char) oper;

        add_attr(&m, IFLA_OPERSTATE, &o, 1);
    }
    linkwatch_state_add(st, h);
}

/* add_route - feed an RTM_NEWROUTE to the state; oif2 > 0 makes it multipath */
static void add_route(struct linkwatch_state *st, int family, int dst_len, int type,
                      unsigned table, int oif, int oif2)
{
    struct msg m;
    struct nlmsghdr *h = (struct nlmsghdr *) m.buf;
    struct rtmsg *rt = NLMSG_DATA(h);

    memset(&m, 0, sizeof(m));
    h->nlmsg_len = NLMSG_LENGTH(sizeof(*rt));
    h->nlmsg_type = RTM_NEWROUTE;
    rt->rtm_family = (unsigned char) family;
    rt->rtm_dst_len = (unsigned char) dst_len;
    rt->rtm_type = (unsigned char) type;
    rt->rtm_table = (unsigned char) (table < 256 ? table : RT_TABLE_UNSPEC);
    add_attr(&m, RTA_TABLE, &table, sizeof(table));
    if (dst_len > 0) {
        unsigned char dst[16] = { 10 };

        add_attr(&m, RTA_DST, dst, family == AF_INET ? 4 : 16);
    }
    if (oif2 > 0) {
        alignas(struct rtnexthop) char nhbuf[2 * RTNH_ALIGN(sizeof(struct rtnexthop))];
        struct rtnexthop *nh = (struct rtnexthop *) nhbuf;

        memset(nhbuf, 0, sizeof(nhbuf));
        nh->rtnh_len = sizeof(*nh);
        nh->rtnh_ifindex = oif;
        nh = RTNH_NEXT(nh);
        nh->rtnh_len = sizeof(*nh);
        nh->rtnh_ifindex = oif2;
        add_attr(&m, RTA_MULTIPATH, nhbuf, sizeof(nhbuf));
    } else {
        add_attr(&m, RTA_OIF, &oif, sizeof(oif));
    }
    linkwatch_state_add(st, h);
}

#define RUNNING (IFF_UP | IFF_RUNNING | IFF_LOWER_UP)

/* base - lo, eth0 running, wlan0 up without carrier, ppp0 running with oper unknown */
static void base(struct linkwatch_state *st)
{
    memset(st, 0, sizeof(*st));
    add_link(st, 1, "lo", RUNNING | IFF_LOOPBACK, IF_OPER_UNKNOWN);
    add_link(st, 2, "eth0", RUNNING, IF_OPER_UP);
    add_link(st, 3, "wlan0", IFF_UP, IF_OPER_DOWN);
    add_link(st, 4, "ppp0", RUNNING | IFF_POINTOPOINT, IF_OPER_UNKNOWN);
    add_link(st, 5, "veth0", RUNNING, IF_OPER_LOWERLAYERDOWN);
}

static void test_parse(void)
{
    struct linkwatch_state st;

    base(&st);
    TEST_INTEQ(st.nifaces, 5);
    TEST_STREQ(st.ifaces[1].name, "eth0");
    TEST_INTEQ(st.ifaces[1].index, 2);
    TEST_INTEQ(st.ifaces[1].oper, IF_OPER_UP);
    TEST_CHECK(st.ifaces[0].flags & IFF_LOOPBACK, "lo has IFF_LOOPBACK");

    /* only default unicast routes outside the local table count */
    add_route(&st, AF_INET, 0, RTN_UNICAST, RT_TABLE_MAIN, 2, 0);
    add_route(&st, AF_INET, 24, RTN_UNICAST, RT_TABLE_MAIN, 3, 0);     /* not default */
    add_route(&st, AF_INET6, 0, RTN_UNREACHABLE, RT_TABLE_MAIN, 1, 0); /* not unicast */
    add_route(&st, AF_INET, 0, RTN_UNICAST, RT_TABLE_LOCAL, 4, 0);     /* local table */
    add_route(&st, AF_INET6, 0, RTN_UNICAST, 1000, 4, 0);              /* table > 255 */
    add_route(&st, AF_INET, 0, RTN_UNICAST, RT_TABLE_MAIN, 3, 5);      /* multipath */
    TEST_INTEQ(st.ndefaults, 4);
    if (st.ndefaults == 4) {
        TEST_INTEQ(st.default_oifs[0], 2);
        TEST_INTEQ(st.default_oifs[1], 4);
        TEST_INTEQ(st.default_oifs[2], 3);
        TEST_INTEQ(st.default_oifs[3], 5);
    }

    /* truncated or foreign messages are ignored */
    struct nlmsghdr h = { sizeof(h), RTM_NEWLINK, 0, 0, 0 };
    linkwatch_state_add(&st, &h);
    h.nlmsg_type = RTM_NEWROUTE;
    linkwatch_state_add(&st, &h);
    h.nlmsg_type = RTM_NEWADDR;
    linkwatch_state_add(&st, &h);
    TEST_INTEQ(st.nifaces, 5);
    TEST_INTEQ(st.ndefaults, 4);
    linkwatch_state_free(&st);
    TEST_INTEQ(st.nifaces, 0);
}

static void test_target_parse(void)
{
    static const struct {
        const char *host;
        int family;
    } cases[] = {
        { "198.18.0.1", AF_INET }, { "127.0.0.1", AF_INET }, { "2001:db8::9", AF_INET6 },
        { "[2001:db8::9]", AF_INET6 }, { "::1", AF_INET6 }, { "relay.isp.example", 0 },
        { "example.org", 0 }, { "", 0 }, { "[]", 0 }, { "198.18.0.1.5", 0 }, { "[relay]", 0 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct linkwatch_target t;
        int rc = linkwatch_target_parse(cases[i].host, &t);

        TEST_CHECK((rc == 0) == (cases[i].family != 0), "linkwatch_target_parse(\"%s\"): rc %d",
                   cases[i].host, rc);
        if (rc == 0)
            TEST_INTEQ(t.family, cases[i].family);
    }
    struct linkwatch_target t;

    TEST_INTEQ(linkwatch_target_parse("[2001:db8::9]", &t), 0);
    TEST_STREQ(t.host, "2001:db8::9");
}

/* target - an IP-literal host routed through oif (0: no route) */
static struct linkwatch_target target(const char *host, int oif, int local)
{
    struct linkwatch_target t;

    linkwatch_target_parse(host, &t);
    t.routed = oif > 0;
    t.oif = oif;
    t.local = local;
    return t;
}

static void test_judge(void)
{
    struct linkwatch_state st;
    struct linkwatch_verdict v;
    char *ppp_items[] = { "ppp0", "wwan0" };
    struct cfg_list any = { NULL, 0 }, ppp = { ppp_items, 2 };
    struct linkwatch_target t[3];

    base(&st);

    /* names only, no default route: down */
    linkwatch_judge(&st, NULL, 0, 1, &any, &v);
    TEST_INTEQ(v.up, 0);
    TEST_STREQ(v.why, "no default route on a watched interface");

    /* default route on a running interface: up */
    add_route(&st, AF_INET, 0, RTN_UNICAST, RT_TABLE_MAIN, 3, 0);      /* wlan0: no carrier */
    linkwatch_judge(&st, NULL, 0, 1, &any, &v);
    TEST_INTEQ(v.up, 0);
    TEST_STREQ(v.ifname, "wlan0");
    TEST_STREQ(v.why, "default route: interface not running");
    add_route(&st, AF_INET6, 0, RTN_UNICAST, RT_TABLE_MAIN, 2, 0);     /* eth0 */
    linkwatch_judge(&st, NULL, 0, 1, &any, &v);
    TEST_INTEQ(v.up, 1);
    TEST_STREQ(v.ifname, "eth0");
    TEST_STREQ(v.why, "default route");

    /* [link] interfaces = ppp0 wwan0: eth0 does not count */
    linkwatch_judge(&st, NULL, 0, 1, &ppp, &v);
    TEST_INTEQ(v.up, 0);
    add_route(&st, AF_INET, 0, RTN_UNICAST, 200, 4, 0);                /* ppp0, oper unknown */
    linkwatch_judge(&st, NULL, 0, 1, &ppp, &v);
    TEST_INTEQ(v.up, 1);
    TEST_STREQ(v.ifname, "ppp0");
    linkwatch_state_free(&st);

    /* a default route via lo never counts; one whose carrier is gone neither */
    base(&st);
    add_route(&st, AF_INET, 0, RTN_UNICAST, RT_TABLE_MAIN, 1, 0);
    add_route(&st, AF_INET, 0, RTN_UNICAST, RT_TABLE_MAIN, 5, 0);      /* veth0: lower layer down */
    add_route(&st, AF_INET, 0, RTN_UNICAST, RT_TABLE_MAIN, 99, 0);     /* unknown index */
    linkwatch_judge(&st, NULL, 0, 1, &any, &v);
    TEST_INTEQ(v.up, 0);
    TEST_STREQ(v.ifname, "veth0");

    /* IP-literal hosts: the kernel's route decides */
    t[0] = target("198.18.0.1", 0, 0);
    linkwatch_judge(&st, t, 1, 0, &any, &v);
    TEST_INTEQ(v.up, 0);
    TEST_STREQ(v.why, "no route to 198.18.0.1");
    t[0] = target("198.18.0.1", 5, 0);
    linkwatch_judge(&st, t, 1, 0, &any, &v);
    TEST_INTEQ(v.up, 0);
    TEST_STREQ(v.why, "route to 198.18.0.1: interface not running");
    t[0] = target("198.18.0.1", 2, 0);
    linkwatch_judge(&st, t, 1, 0, &any, &v);
    TEST_INTEQ(v.up, 1);
    TEST_STREQ(v.ifname, "eth0");
    TEST_STREQ(v.why, "route to 198.18.0.1");
    linkwatch_judge(&st, t, 1, 0, &ppp, &v);
    TEST_INTEQ(v.up, 0);
    TEST_STREQ(v.why, "route to 198.18.0.1: interface not watched");

    /* loopback destinations via lo count, whatever is watched (tests, the demo) */
    t[0] = target("127.0.0.2", 1, 1);
    linkwatch_judge(&st, t, 1, 0, &ppp, &v);
    TEST_INTEQ(v.up, 1);
    TEST_STREQ(v.ifname, "lo");
    t[0] = target("::1", 1, 1);
    linkwatch_judge(&st, t, 1, 0, &ppp, &v);
    TEST_INTEQ(v.up, 1);
    /* an address of this host counts too; a foreign one sent to lo does not */
    t[0] = target("198.18.0.2", 1, 1);
    linkwatch_judge(&st, t, 1, 0, &any, &v);
    TEST_INTEQ(v.up, 1);
    t[0] = target("198.18.0.9", 1, 0);
    linkwatch_judge(&st, t, 1, 0, &any, &v);
    TEST_INTEQ(v.up, 0);

    /* several hosts: one usable route is enough; the first reason is kept otherwise */
    t[0] = target("198.18.0.1", 0, 0);
    t[1] = target("2001:db8::9", 3, 0);
    t[2] = target("198.18.1.1", 2, 0);
    linkwatch_judge(&st, t, 3, 0, &any, &v);
    TEST_INTEQ(v.up, 1);
    TEST_STREQ(v.why, "route to 198.18.1.1");
    linkwatch_judge(&st, t, 2, 0, &any, &v);
    TEST_INTEQ(v.up, 0);
    TEST_STREQ(v.why, "no route to 198.18.0.1");

    /* literal hosts down, a named provider with a default route up: up */
    add_route(&st, AF_INET, 0, RTN_UNICAST, RT_TABLE_MAIN, 4, 0);
    linkwatch_judge(&st, t, 2, 1, &any, &v);
    TEST_INTEQ(v.up, 1);
    TEST_STREQ(v.why, "default route");

    /* nothing configured to judge */
    linkwatch_judge(&st, NULL, 0, 0, &any, &v);
    TEST_INTEQ(v.up, 0);
    linkwatch_state_free(&st);
}

int main(void)
{
    test_parse();
    test_target_parse();
    test_judge();
    return test_summary();
}
