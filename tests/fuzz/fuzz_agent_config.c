/*
 * fuzz_agent_config - loading agent.ini (agent_config.c over common/config.c
 * and inih). Input: the whole file (mode 0600, so a password in it is
 * allowed). Checks: a failed load has an error message; a successful one
 * has at least one provider, each with domains that are valid ETRN
 * arguments (they go to the wire through libcurl, which checks nothing) and
 * hosts or an mx: domain. LeakSanitizer checks that a failed load leaves
 * nothing allocated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_config.h"
#include "domain.h"
#include "support.h"

static char path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    support_init("agent_config");
    snprintf(path, sizeof(path), "%s", support_path("agent.ini"));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct agent_config conf;
    struct cfg_error err;

    if (size > 65536)
        return 0;
    support_write(path, data, size, 0600);
    memset(&conf, 0, sizeof(conf));
    memset(&err, 0, sizeof(err));
    if (agent_config_load(path, &conf, &err) != 0) {
        if (err.msg[0] == 0)
            abort();
        return 0;
    }
    if (conf.nproviders == 0)
        abort();
    for (size_t i = 0; i < conf.nproviders; i++) {
        const struct agent_provider *p = &conf.providers[i];

        if (p->domains.count == 0 || (p->mx_domain == NULL && p->nhosts == 0))
            abort();
        for (size_t k = 0; k < p->domains.count; k++)
            if (domain_etrn_arg(p->domains.items[k], NULL) == ETRN_ARG_INVALID)
                abort();
        for (size_t k = 0; k < p->nhosts; k++)
            if (p->hosts[k].name == NULL || strpbrk(p->hosts[k].name, "\r\n /") != NULL)
                abort();
    }
    agent_config_free(&conf);
    return 0;
}
