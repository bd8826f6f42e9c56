/*
 * mx_query - run agent/mx's lookup from the command line (for e2e tests).
 *
 *   mx_query [-v] RESOLVER DOMAIN SELFNAME     ("-" = system resolver / no self name)
 *
 * Prints one line per host, "PREF NAME ADDR,ADDR" (or "PREF NAME - STATUS: REASON" when its
 * addresses were not found), and the reason on standard error; exit 0. On failure prints
 * "STATUS: REASON" and exits 1 (nxdomain, nodata: permanent) or 2 (tempfail); 64 for usage.
 */
#include <stdio.h>
#include <string.h>

#include "exitcode.h"
#include "log.h"
#include "mx.h"

/* main - look up, print, exit by status */
int main(int argc, char **argv)
{
    char err[512], why[1024];
    struct mx_resolver *r;
    struct mx_list list;
    enum mx_status st;
    int argi = 1;

    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        log_set_verbose(1);
        argi++;
    }
    if (argc - argi != 3) {
        fprintf(stderr, "usage: mx_query [-v] RESOLVER DOMAIN SELFNAME\n");
        return EXIT_USAGE;
    }
    const char *server = strcmp(argv[argi], "-") == 0 ? NULL : argv[argi];
    const char *self = strcmp(argv[argi + 2], "-") == 0 ? NULL : argv[argi + 2];

    r = mx_resolver_new(server, err, sizeof(err));
    if (r == NULL) {
        fprintf(stderr, "mx_query: %s\n", err);
        return EXIT_USAGE;
    }
    st = mx_lookup(r, argv[argi + 1], self, &list, why, sizeof(why));
    if (st != MX_OK) {
        printf("%s: %s\n", mx_status_name(st), why);
        mx_list_free(&list);
        mx_resolver_free(r);
        return st == MX_TEMPFAIL ? 2 : 1;
    }
    fprintf(stderr, "%s\n", why);
    for (size_t i = 0; i < list.count; i++) {
        const struct mx_host *h = &list.hosts[i];

        printf("%d %s ", h->preference, h->name);
        if (h->naddrs == 0)
            printf("- %s: %s", mx_status_name(h->addr_status), h->addr_why);
        for (size_t j = 0; j < h->naddrs; j++)
            printf("%s%s", j ? "," : "", h->addrs[j]);
        printf("\n");
    }
    mx_list_free(&list);
    mx_resolver_free(r);
    return fflush(stdout) == 0 ? 0 : EXIT_IOERR;
}
