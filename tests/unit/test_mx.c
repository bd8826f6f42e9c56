/*
 * Unit tests for agent/mx: the pure sort/dedup/skip step (table-driven),
 * resolver address parsing, and mx_lookup fed canned DNS answers through
 * the query seam (no network): RCODE mapping, null MX, CNAME, addresses.
 */
#include <arpa/nameser.h>
#include <arpa/inet.h>
#include <resolv.h>
#include <stdlib.h>
#include <strings.h>

#include "alloc.h"
#include "mx.h"
#include "test.h"

/* ---- mx_select ---- */

struct sel_in {
    const char *name;
    int pref;
    const char *addrs[3];
};

/* list_from - an mx_list from a table row */
static void list_from(struct mx_list *list, const struct sel_in *in)
{
    list->hosts = NULL;
    list->count = 0;
    for (size_t i = 0; in[i].name != NULL; i++) {
        list->hosts = xreallocarray(list->hosts, list->count + 1, sizeof(*list->hosts));
        struct mx_host *h = &list->hosts[list->count++];

        memset(h, 0, sizeof(*h));
        h->name = xstrdup(in[i].name);
        h->preference = in[i].pref;
        for (size_t j = 0; j < 3 && in[i].addrs[j] != NULL; j++) {
            h->addrs = xreallocarray(h->addrs, h->naddrs + 1, sizeof(*h->addrs));
            h->addrs[h->naddrs++] = xstrdup(in[i].addrs[j]);
        }
    }
}

/* list_names - "PREF:NAME PREF:NAME" of a list */
static void list_names(const struct mx_list *list, char *out, size_t outlen)
{
    size_t off = 0;

    out[0] = 0;
    for (size_t i = 0; i < list->count && off < outlen; i++) {
        int n = snprintf(out + off, outlen - off, "%s%d:%s", i ? " " : "",
                         list->hosts[i].preference, list->hosts[i].name);
        if (n < 0)
            break;
        off += (size_t) n;
    }
}

/* test_select - mx_select: order, stability, duplicates, self by name and address */
static void test_select(void)
{
    static char *const self_v4[] = { "192.0.2.7" };
    static char *const self_v6[] = { "192.0.2.99", "2001:0db8:0:0::1" };
    static const struct {
        const char *what;
        struct sel_in in[8];
        const char *self_name;
        char *const *self_addrs;
        size_t nself;
        const char *want;
        size_t want_self;
    } cases[] = {
        { "sorted by preference",
          { { "b.test", 20, { 0 } }, { "a.test", 10, { 0 } }, { "c.test", 30, { 0 } }, { 0 } },
          NULL, NULL, 0, "10:a.test 20:b.test 30:c.test", 0 },
        { "equal preferences keep answer order",
          { { "x.test", 10, { 0 } }, { "y.test", 10, { 0 } }, { "z.test", 5, { 0 } },
            { "w.test", 10, { 0 } }, { 0 } },
          NULL, NULL, 0, "5:z.test 10:x.test 10:y.test 10:w.test", 0 },
        { "duplicate keeps the best preference",
          { { "mx1.test", 30, { 0 } }, { "MX1.test", 10, { 0 } }, { "mx2.test", 20, { 0 } }, { 0 } },
          NULL, NULL, 0, "10:MX1.test 20:mx2.test", 0 },
        { "self by name, any case, trailing dot",
          { { "mx1.isp.test", 10, { 0 } }, { "mail.site.test", 5, { 0 } },
            { "mx2.isp.test", 20, { 0 } }, { 0 } },
          "MAIL.Site.Test.", NULL, 0, "10:mx1.isp.test 20:mx2.isp.test", 1 },
        { "a name that only ends like self is not self",
          { { "xmail.site.test", 5, { 0 } }, { "mail.site.test.isp.test", 6, { 0 } }, { 0 } },
          "mail.site.test", NULL, 0, "5:xmail.site.test 6:mail.site.test.isp.test", 0 },
        { "self by IPv4 address",
          { { "mx1.isp.test", 10, { "192.0.2.1", 0 } }, { "gw.site.test", 5, { "192.0.2.7", 0 } },
            { 0 } },
          "mail.site.test", self_v4, 1, "10:mx1.isp.test", 1 },
        { "self by IPv6 address, other spelling",
          { { "mx1.isp.test", 10, { "192.0.2.1", "2001:db8::2", 0 } },
            { "v6.site.test", 5, { "192.0.2.50", "2001:db8::1", 0 } }, { 0 } },
          NULL, self_v6, 2, "10:mx1.isp.test", 1 },
        { "every host is self",
          { { "mail.site.test", 5, { 0 } }, { "b.test", 10, { "192.0.2.7", 0 } }, { 0 } },
          "mail.site.test", self_v4, 1, "", 2 },
        { "empty list", { { 0 } }, "mail.site.test", self_v4, 1, "", 0 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mx_list list;
        char got[256];
        size_t self;

        list_from(&list, cases[i].in);
        self = mx_select(&list, cases[i].self_name, cases[i].self_addrs, cases[i].nself);
        list_names(&list, got, sizeof(got));
        TEST_CHECK(strcmp(got, cases[i].want) == 0, "select %s: got \"%s\", want \"%s\"",
                   cases[i].what, got, cases[i].want);
        TEST_CHECK(self == cases[i].want_self, "select %s: got %zu self, want %zu",
                   cases[i].what, self, cases[i].want_self);
        mx_list_free(&list);
    }
}

/* ---- resolver addresses ---- */

/* test_resolver_new - which resolver addresses are accepted */
static void test_resolver_new(void)
{
    static const struct {
        const char *server;
        int ok;
    } cases[] = {
        { NULL, 1 }, { "", 1 }, { "127.0.0.1", 1 }, { "127.0.0.1:5353", 1 }, { "[::1]", 1 },
        { "[::1]:5353", 1 }, { "::1", 1 }, { "2001:db8::53", 1 },
        { "localhost", 0 }, { "127.0.0.1:", 0 }, { "127.0.0.1:0", 0 }, { "127.0.0.1:65536", 0 },
        { "127.0.0.1:53x", 0 }, { "[::1", 0 }, { "[::1]x", 0 }, { "[::1]:", 0 },
        { "[127.0.0.1]:53", 0 }, { "1.2.3.4:53:1", 0 }, { "fe80::1%eth0", 0 }, { "[]:53", 0 },
        { "256.1.1.1", 0 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        struct mx_resolver *r = mx_resolver_new(cases[i].server, err, sizeof(err));

        TEST_CHECK((r != NULL) == cases[i].ok, "mx_resolver_new(\"%s\"): got %s, want %s (%s)",
                   cases[i].server ? cases[i].server : "(null)", r ? "ok" : "error",
                   cases[i].ok ? "ok" : "error", err);
        if (!cases[i].ok)
            TEST_CHECK(err[0] != 0, "mx_resolver_new(\"%s\") gives a reason", cases[i].server);
        mx_resolver_free(r);
    }
}

/* ---- canned DNS answers through the seam ---- */

#define NEG 1   /* answer -1 with *rcode, no packet */
#define SHORT 2 /* a truncated packet */

struct canned {
    const char *name;
    int type;
    int rcode;
    int mode;            /* 0: a packet with rcode and rrs; NEG; SHORT */
    const char *rrs[20]; /* "MX 10 host", "A 192.0.2.1", "AAAA ::1", "CNAME host" */
};

struct fake {
    const struct canned *answers;
    size_t count;
    char asked[64][80]; /* "name/type" of every query, in order */
    size_t nasked;
};

struct pkt {
    unsigned char *buf;
    int len, cap;
    unsigned char *dnptrs[32];
};

/* pkt_name - append a (compressed) domain name */
static int pkt_name(struct pkt *p, const char *name)
{
    int n = dn_comp(name, p->buf + p->len, p->cap - p->len, p->dnptrs, p->dnptrs + 32);

    if (n < 0)
        return -1;
    p->len += n;
    return 0;
}

/* pkt_u16 - append a 16-bit value */
static int pkt_u16(struct pkt *p, unsigned v)
{
    if (p->cap - p->len < 2)
        return -1;
    ns_put16(v, p->buf + p->len);
    p->len += 2;
    return 0;
}

/* pkt_rr - append one answer record described as text */
static int pkt_rr(struct pkt *p, const char *owner, const char *text)
{
    char kind[8], arg[128];
    int pref = 0, start;

    if (sscanf(text, "MX %d %127s", &pref, arg) == 2)
        snprintf(kind, sizeof(kind), "MX");
    else if (sscanf(text, "%7s %127s", kind, arg) != 2)
        return -1;
    int type = strcmp(kind, "MX") == 0 ? ns_t_mx : strcmp(kind, "A") == 0 ? ns_t_a
             : strcmp(kind, "AAAA") == 0 ? ns_t_aaaa : strcmp(kind, "PTR") == 0 ? ns_t_ptr
             : ns_t_cname;

    if (pkt_name(p, owner) < 0 || pkt_u16(p, (unsigned) type) < 0 || pkt_u16(p, ns_c_in) < 0 ||
        pkt_u16(p, 0) < 0 || pkt_u16(p, 300) < 0 || pkt_u16(p, 0) < 0)
        return -1;
    start = p->len;
    if (type == ns_t_mx) {
        if (pkt_u16(p, (unsigned) pref) < 0 || pkt_name(p, arg) < 0)
            return -1;
    } else if (type == ns_t_cname || type == ns_t_ptr) {
        if (pkt_name(p, arg) < 0)
            return -1;
    } else {
        int size = type == ns_t_a ? 4 : 16;

        if (p->cap - p->len < size ||
            inet_pton(type == ns_t_a ? AF_INET : AF_INET6, arg, p->buf + p->len) != 1)
            return -1;
        p->len += size;
    }
    ns_put16((unsigned) (p->len - start), p->buf + start - 2);
    return 0;
}

/* fake_query - answer from the canned table; unknown names are NXDOMAIN */
static int fake_query(void *ctx, const char *name, int type, unsigned char *answer, int anslen,
                      int *rcode)
{
    struct fake *f = ctx;
    const struct canned *c = NULL;

    if (f->nasked < 64)
        snprintf(f->asked[f->nasked++], sizeof(f->asked[0]), "%s/%d", name, type);
    for (size_t i = 0; i < f->count && c == NULL; i++)
        if (strcasecmp(f->answers[i].name, name) == 0 && f->answers[i].type == type)
            c = &f->answers[i];
    if (c == NULL) {
        *rcode = ns_r_nxdomain;
        return -1;
    }
    if (c->mode == NEG) {
        *rcode = c->rcode;
        return -1;
    }
    struct pkt p = { answer, 0, anslen, { answer, NULL } };
    int nrr = 0;

    memset(answer, 0, HFIXEDSZ);
    answer[0] = 0x12;
    answer[1] = 0x34;
    answer[2] = 0x81; /* QR, RD */
    answer[3] = (unsigned char) (0x80 | c->rcode); /* RA, RCODE */
    answer[5] = 1;    /* QDCOUNT */
    p.len = HFIXEDSZ;
    if (pkt_name(&p, name) < 0 || pkt_u16(&p, (unsigned) type) < 0 || pkt_u16(&p, ns_c_in) < 0)
        return -1;
    const char *owner = name;

    for (; nrr < 20 && c->rrs[nrr] != NULL; nrr++) {
        if (pkt_rr(&p, owner, c->rrs[nrr]) < 0)
            return -1;
        if (strncmp(c->rrs[nrr], "CNAME ", 6) == 0)
            owner = c->rrs[nrr] + 6;
    }
    ns_put16((unsigned) nrr, answer + 6); /* ANCOUNT */
    return c->mode == SHORT ? p.len - 3 : p.len;
}

/* asked - whether the fake resolver was asked for name/type */
static int asked(const struct fake *f, const char *name, int type)
{
    char want[80];

    snprintf(want, sizeof(want), "%s/%d", name, type);
    for (size_t i = 0; i < f->nasked; i++)
        if (strcasecmp(f->asked[i], want) == 0)
            return 1;
    return 0;
}

/* run - mx_lookup against canned answers */
static enum mx_status run(const struct canned *answers, size_t count, const char *domain,
                          const char *self, struct mx_list *list, char *why, size_t whylen,
                          struct fake *f)
{
    char err[256];
    struct mx_resolver *r = mx_resolver_new("127.0.0.1:1", err, sizeof(err));
    enum mx_status st;

    memset(f, 0, sizeof(*f));
    f->answers = answers;
    f->count = count;
    TEST_CHECK(r != NULL, "resolver: %s", err);
    if (r == NULL)
        return MX_TEMPFAIL;
    mx_resolver_set_query(r, fake_query, f);
    st = mx_lookup(r, domain, self, list, why, whylen);
    mx_resolver_free(r);
    return st;
}

/* test_lookup_ok - a full answer: order, self skipped, CNAME, A and AAAA, host failures */
static void test_lookup_ok(void)
{
    static const struct canned answers[] = {
        { "site.test", ns_t_mx, ns_r_noerror, 0,
          { "CNAME real.site.test", "MX 20 mx2.isp.test", "MX 5 mail.site.test",
            "MX 10 MX1.ISP.test", "MX 20 mx3.isp.test", "MX 20 bad_name.isp.test" } },
        { "mx1.isp.test", ns_t_a, ns_r_noerror, 0, { "A 127.0.0.2", "A 127.0.0.12" } },
        { "mx1.isp.test", ns_t_aaaa, ns_r_noerror, 0, { "AAAA ::1" } },
        { "mx2.isp.test", ns_t_a, ns_r_noerror, 0, { "CNAME alias.isp.test", "A 127.0.0.3" } },
        { "mx2.isp.test", ns_t_aaaa, ns_r_noerror, 0, { NULL } },
        { "mx3.isp.test", ns_t_a, ns_r_servfail, 0, { NULL } },
        { "mx3.isp.test", ns_t_aaaa, ns_r_noerror, NEG, { NULL } },
    };
    struct mx_list list;
    struct fake f;
    char why[512];
    enum mx_status st = run(answers, sizeof(answers) / sizeof(answers[0]), "site.test",
                            "mail.site.test", &list, why, sizeof(why), &f);

    TEST_CHECK(st == MX_OK, "site.test: got %s, want ok (%s)", mx_status_name(st), why);
    TEST_INTEQ(list.count, 3);
    if (list.count == 3) {
        TEST_STREQ(list.hosts[0].name, "mx1.isp.test");
        TEST_INTEQ(list.hosts[0].preference, 10);
        TEST_INTEQ(list.hosts[0].naddrs, 3);
        if (list.hosts[0].naddrs == 3) {
            TEST_STREQ(list.hosts[0].addrs[0], "127.0.0.2");
            TEST_STREQ(list.hosts[0].addrs[1], "127.0.0.12");
            TEST_STREQ(list.hosts[0].addrs[2], "::1");
        }
        TEST_INTEQ(list.hosts[0].addr_status, MX_OK);
        TEST_CHECK(list.hosts[0].addr_why == NULL, "mx1 has no addr_why");
        TEST_STREQ(list.hosts[1].name, "mx2.isp.test");
        TEST_INTEQ(list.hosts[1].naddrs, 1);
        if (list.hosts[1].naddrs == 1)
            TEST_STREQ(list.hosts[1].addrs[0], "127.0.0.3");
        TEST_STREQ(list.hosts[2].name, "mx3.isp.test");
        TEST_INTEQ(list.hosts[2].preference, 20);
        TEST_INTEQ(list.hosts[2].naddrs, 0);
        TEST_INTEQ(list.hosts[2].addr_status, MX_TEMPFAIL);
        TEST_CHECK(list.hosts[2].addr_why && strstr(list.hosts[2].addr_why, "SERVFAIL"),
                   "mx3 addr_why names SERVFAIL: %s", list.hosts[2].addr_why);
    }
    TEST_CHECK(strstr(why, "3 MX hosts") && strstr(why, "1 skipped"), "ok reason: %s", why);
    TEST_CHECK(!asked(&f, "mail.site.test", ns_t_a), "self by name: its address not looked up");
    TEST_CHECK(!asked(&f, "bad_name.isp.test", ns_t_a), "invalid MX target not looked up");
    TEST_CHECK(asked(&f, "mx1.isp.test", ns_t_aaaa), "AAAA looked up");
    mx_list_free(&list);
}

/* test_lookup_failures - RCODEs, null MX, bad packets and names to statuses and reasons */
static void test_lookup_failures(void)
{
    static const struct {
        const char *what;
        struct canned answer;
        const char *domain;
        enum mx_status want;
        const char *why_has;
    } cases[] = {
        { "NXDOMAIN packet", { "gone.test", ns_t_mx, ns_r_nxdomain, 0, { NULL } }, "gone.test",
          MX_NXDOMAIN, "gone.test: no such domain (NXDOMAIN" },
        { "NXDOMAIN from res_nquery", { "gone.test", ns_t_mx, ns_r_nxdomain, NEG, { NULL } },
          "gone.test", MX_NXDOMAIN, "no such domain" },
        { "NODATA packet", { "nomx.test", ns_t_mx, ns_r_noerror, 0, { "A 192.0.2.1" } },
          "nomx.test", MX_NODATA, "no MX records for nomx.test" },
        { "NODATA from res_nquery", { "nomx.test", ns_t_mx, ns_r_noerror, NEG, { NULL } },
          "nomx.test", MX_NODATA, "no MX records for nomx.test" },
        { "SERVFAIL packet", { "sf.test", ns_t_mx, ns_r_servfail, 0, { NULL } }, "sf.test",
          MX_TEMPFAIL, "SERVFAIL" },
        { "REFUSED packet", { "rf.test", ns_t_mx, ns_r_refused, 0, { NULL } }, "rf.test",
          MX_TEMPFAIL, "REFUSED" },
        { "no answer at all", { "to.test", ns_t_mx, MX_RCODE_NONE, NEG, { NULL } }, "to.test",
          MX_TEMPFAIL, "no usable answer from resolver 127.0.0.1:1 for to.test MX" },
        { "null MX", { "null.test", ns_t_mx, ns_r_noerror, 0, { "MX 0 ." } }, "null.test",
          MX_NODATA, "null.test accepts no mail (null MX, RFC 7505)" },
        { "truncated packet", { "tr.test", ns_t_mx, ns_r_noerror, SHORT, { "MX 10 mx.isp.test" } },
          "tr.test", MX_TEMPFAIL, "malformed answer" },
        { "only invalid MX targets", { "bad.test", ns_t_mx, ns_r_noerror, 0, { "MX 10 a\\032b.test" } },
          "bad.test", MX_NODATA, "no usable MX records for bad.test" },
        { "only self", { "site.test", ns_t_mx, ns_r_noerror, 0, { "MX 10 mail.site.test" } },
          "site.test", MX_NODATA, "every MX of site.test is this host" },
        { "not a domain", { "x", ns_t_mx, 0, 0, { NULL } }, "bad domain", MX_NXDOMAIN,
          "not a domain name" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mx_list list;
        struct fake f;
        char why[512] = "";
        enum mx_status st = run(&cases[i].answer, 1, cases[i].domain, "mail.site.test", &list,
                                why, sizeof(why), &f);

        TEST_CHECK(st == cases[i].want, "%s: got %s, want %s (%s)", cases[i].what,
                   mx_status_name(st), mx_status_name(cases[i].want), why);
        TEST_CHECK(strstr(why, cases[i].why_has) != NULL, "%s: reason \"%s\" lacks \"%s\"",
                   cases[i].what, why, cases[i].why_has);
        TEST_CHECK(list.count == 0 && list.hosts == NULL, "%s: empty list", cases[i].what);
        mx_list_free(&list);
    }
}

/* test_lookup_hosts - the host limit and hosts without addresses */
static void test_lookup_hosts(void)
{
    static const struct canned answers[] = {
        { "many.test", ns_t_mx, ns_r_noerror, 0,
          { "MX 90 h90.test", "MX 10 h10.test", "MX 80 h80.test", "MX 20 h20.test",
            "MX 70 h70.test", "MX 30 h30.test", "MX 60 h60.test", "MX 40 h40.test",
            "MX 50 h50.test", "MX 15 h15.test", "MX 25 h25.test", "MX 35 h35.test",
            "MX 45 h45.test", "MX 55 h55.test", "MX 65 h65.test", "MX 75 h75.test",
            "MX 85 h85.test", "MX 95 h95.test" } },
        { "one.test", ns_t_mx, ns_r_noerror, 0, { "MX 10 gone.isp.test", "MX 20 noaddr.isp.test" } },
        { "noaddr.isp.test", ns_t_a, ns_r_noerror, 0, { NULL } },
        { "noaddr.isp.test", ns_t_aaaa, ns_r_noerror, NEG, { NULL } },
    };
    size_t n = sizeof(answers) / sizeof(answers[0]);
    struct mx_list list;
    struct fake f;
    char why[512];
    enum mx_status st;

    st = run(answers, n, "many.test", NULL, &list, why, sizeof(why), &f);
    TEST_CHECK(st == MX_OK, "many.test: got %s (%s)", mx_status_name(st), why);
    TEST_INTEQ(list.count, MX_HOSTS_MAX);
    if (list.count == MX_HOSTS_MAX) {
        TEST_STREQ(list.hosts[0].name, "h10.test");
        TEST_STREQ(list.hosts[MX_HOSTS_MAX - 1].name, "h85.test");
    }
    TEST_CHECK(!asked(&f, "h95.test", ns_t_a), "hosts past the limit are not looked up");
    mx_list_free(&list);

    st = run(answers, n, "one.test", NULL, &list, why, sizeof(why), &f);
    TEST_CHECK(st == MX_OK, "one.test: got %s (%s)", mx_status_name(st), why);
    TEST_INTEQ(list.count, 2);
    if (list.count == 2) {
        TEST_INTEQ(list.hosts[0].addr_status, MX_NXDOMAIN);
        TEST_CHECK(list.hosts[0].addr_why && strstr(list.hosts[0].addr_why, "gone.isp.test"),
                   "gone host reason: %s", list.hosts[0].addr_why);
        TEST_INTEQ(list.hosts[1].addr_status, MX_NODATA);
        TEST_STREQ(list.hosts[1].addr_why, "no A or AAAA records for noaddr.isp.test");
    }
    mx_list_free(&list);
}

/* main - run every group, print the summary */
/* test_lookup_name - PTR, then forward confirmation, as Postfix's smtpd names a client */
static void test_lookup_name(void)
{
    static const char v6ptr[] =
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
    static const struct canned answers[] = {
        { "1.2.0.192.in-addr.arpa", ns_t_ptr, ns_r_noerror, 0, { "PTR Client.Test" } },
        { "client.test", ns_t_a, ns_r_noerror, 0, { "A 192.0.2.7", "A 192.0.2.1" } },
        { "client.test", ns_t_aaaa, ns_r_noerror, 0, { NULL } },
        { "2.2.0.192.in-addr.arpa", ns_t_ptr, ns_r_noerror, 0, { "PTR liar.test" } },
        { "liar.test", ns_t_a, ns_r_noerror, 0, { "A 192.0.2.99" } },
        { "liar.test", ns_t_aaaa, ns_r_noerror, 0, { NULL } },
        { "3.2.0.192.in-addr.arpa", ns_t_ptr, ns_r_servfail, NEG, { NULL } },
        { "4.2.0.192.in-addr.arpa", ns_t_ptr, ns_r_noerror, 0,
          { "PTR bad_name.test", "PTR gone.test", "PTR second.test" } },
        { "second.test", ns_t_a, ns_r_noerror, 0, { "A 192.0.2.4" } },
        { "second.test", ns_t_aaaa, ns_r_noerror, 0, { NULL } },
        { v6ptr, ns_t_ptr, ns_r_noerror, 0, { "PTR six.test" } },
        { "six.test", ns_t_aaaa, ns_r_noerror, 0, { "AAAA 2001:db8::1" } },
    };
    static const struct {
        const char *addr;
        enum mx_status want;
        const char *name; /* or a piece of why */
    } cases[] = {
        { "192.0.2.1", MX_OK, "client.test" },
        { "192.0.2.2", MX_NODATA, "192.0.2.2: address not listed for hostname liar.test" },
        { "192.0.2.3", MX_TEMPFAIL, "SERVFAIL" },
        { "192.0.2.4", MX_OK, "second.test" },
        { "192.0.2.5", MX_NXDOMAIN, "NXDOMAIN" },
        { "2001:db8::1", MX_OK, "six.test" },
        { "not-an-address", MX_NODATA, "not a numeric address" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256], why[512] = "", name[256] = "";
        struct mx_resolver *r = mx_resolver_new("127.0.0.1:1", err, sizeof(err));
        struct fake f;
        enum mx_status st;

        memset(&f, 0, sizeof(f));
        f.answers = answers;
        f.count = sizeof(answers) / sizeof(answers[0]);
        mx_resolver_set_query(r, fake_query, &f);
        st = mx_lookup_name(r, cases[i].addr, name, sizeof(name), why, sizeof(why));
        TEST_CHECK(st == cases[i].want, "%s: got %s, want %s (%s)", cases[i].addr,
                   mx_status_name(st), mx_status_name(cases[i].want), why);
        if (cases[i].want == MX_OK)
            TEST_STREQ(name, cases[i].name);
        else
            TEST_CHECK(strstr(why, cases[i].name) != NULL, "%s: why \"%s\" lacks \"%s\"",
                       cases[i].addr, why, cases[i].name);
        mx_resolver_free(r);
    }
}

int main(void)
{
    test_select();
    test_resolver_new();
    test_lookup_ok();
    test_lookup_failures();
    test_lookup_hosts();
    test_lookup_name();
    TEST_STREQ(mx_status_name(MX_OK), "ok");
    TEST_STREQ(mx_status_name(MX_NXDOMAIN), "nxdomain");
    TEST_STREQ(mx_status_name(MX_NODATA), "nodata");
    TEST_STREQ(mx_status_name(MX_TEMPFAIL), "tempfail");
    return test_summary();
}
