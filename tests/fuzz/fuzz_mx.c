/*
 * fuzz_mx - MX answer parsing (common/mx.c) through its query seam.
 * Input: byte 0 picks mx_lookup("example.org") or mx_lookup_host(); then a
 * sequence of DNS answers, each a 2-byte big-endian length and that many
 * bytes, handed out one per query (MX first, then A/AAAA of each host). A
 * length of 0xffff is "no usable answer" with the RCODE in the next byte;
 * when the input runs out a query gets NXDOMAIN. Checks: MX_OK means at
 * least one host; every host name is a hostname (it goes into a URL and a
 * TLS check), every address parses as numeric, at most MX_HOSTS_MAX hosts,
 * sorted by preference; every other result has a reason.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "mx.h"
#include "support.h"

struct feed {
    const uint8_t *p;
    size_t left;
};

static struct mx_resolver *res;

/* fake_query - the next answer of the input */
static int fake_query(void *ctx, const char *name, int type, unsigned char *answer, int anslen,
                      int *rcode)
{
    struct feed *f = ctx;
    size_t len;

    (void) name;
    (void) type;
    if (f->left < 2) {
        *rcode = ns_r_nxdomain;
        return -1;
    }
    len = (size_t) f->p[0] << 8 | f->p[1];
    f->p += 2;
    f->left -= 2;
    if (len == 0xffff) {
        *rcode = f->left ? (f->p[0] == 0xff ? MX_RCODE_NONE : f->p[0] & 0x0f) : MX_RCODE_NONE;
        if (f->left) {
            f->p++;
            f->left--;
        }
        return -1;
    }
    if (len > f->left)
        len = f->left;
    if (len > (size_t) anslen)
        len = (size_t) anslen;
    memcpy(answer, f->p, len);
    f->p += len;
    f->left -= len;
    return (int) len;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];

    (void) argc;
    (void) argv;
    support_init("mx");
    res = mx_resolver_new("127.0.0.1:53", err, sizeof(err));
    if (res == NULL)
        abort();
    return 0;
}

/* check_list - what every caller relies on */
static void check_list(enum mx_status st, const struct mx_list *l, const char *why)
{
    unsigned char a[16];

    if (st != MX_OK && why[0] == 0)
        abort();
    if (l->count > MX_HOSTS_MAX)
        abort();
    for (size_t i = 0; i < l->count; i++) {
        const struct mx_host *h = &l->hosts[i];

        if (h->name == NULL || !domain_is_hostname(h->name, NULL))
            abort();
        if (i > 0 && h->preference < l->hosts[i - 1].preference)
            abort();
        if (h->naddrs == 0 && (h->addr_why == NULL || h->addr_status == MX_OK))
            abort();
        for (size_t k = 0; k < h->naddrs; k++)
            if (inet_pton(AF_INET, h->addrs[k], a) != 1 && inet_pton(AF_INET6, h->addrs[k], a) != 1)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct feed f = { data + 1, size ? size - 1 : 0 };
    struct mx_list list = { NULL, 0 };
    char why[512] = "";
    enum mx_status st;

    if (size < 1)
        return 0;
    mx_resolver_set_query(res, fake_query, &f);
    if (data[0] & 1)
        st = mx_lookup_host(res, "mail.example.org", &list, why, sizeof(why));
    else
        st = mx_lookup(res, "example.org", "site.example.org", &list, why, sizeof(why));
    if (st == MX_OK && list.count == 0)
        abort();
    check_list(st, &list, why);
    mx_list_free(&list);
    return 0;
}
