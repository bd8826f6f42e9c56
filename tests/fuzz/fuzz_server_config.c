/*
 * fuzz_server_config - loading server-lite.ini (server_config.c over
 * common/config.c and inih). Input: the whole file. Checks: a failed load
 * has an error message that names the file; a successful one has what the
 * server relies on (myhostname, queue_directory, a listen address, every
 * derived table consistent with its list). LeakSanitizer checks that a
 * failed load leaves nothing allocated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_config.h"
#include "support.h"

static char path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    support_init("server_config");
    snprintf(path, sizeof(path), "%s", support_path("server-lite.ini"));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct server_config conf;
    struct cfg_error err;

    if (size > 65536)
        return 0;
    support_write(path, data, size, 0600);
    memset(&conf, 0, sizeof(conf));
    memset(&err, 0, sizeof(err));
    if (server_config_load(path, &conf, &err) != 0) {
        if (strstr(err.msg, path) == NULL && strstr(err.msg, support_dir()) == NULL
            && strchr(err.msg, ':') == NULL)
            abort();
        return 0;
    }
    if (conf.myhostname == NULL || conf.queue_directory == NULL)
        abort();
    if (conf.nlisten != conf.inet_interfaces.count)
        abort();
    server_config_free(&conf);
    return 0;
}
