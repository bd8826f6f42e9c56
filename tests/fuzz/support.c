/* support.c - temporary directory, quiet log and file helpers for the harnesses */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "server_config.h"
#include "support.h"

static char dir[256];
static char path_buf[512];
static pid_t owner;

/* remove_one - nftw callback: unlink files, rmdir directories */
static int remove_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) ftw;
    if (flag == FTW_DP)
        rmdir(p);
    else
        unlink(p);
    return 0;
}

/* cleanup - atexit: remove the temporary directory (only in the process that made it) */
static void cleanup(void)
{
    if (dir[0] && getpid() == owner)
        nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* support_init - quiet log and a private temporary directory */
void support_init(const char *name)
{
    char err[256];
    const char *base = getenv("TMPDIR");
    struct stat st;

    if (dir[0])
        return;
    if (log_open(name, "/dev/null", err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: log: %s\n", name, err);
        abort();
    }
    if (base == NULL || *base == 0)
        base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof(dir), "%s/etrnkit-fuzz-%s-XXXXXX", base, name);
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "%s: mkdtemp %s: %s\n", name, dir, strerror(errno));
        abort();
    }
    owner = getpid();
    atexit(cleanup);
}

/* support_dir - the private temporary directory */
const char *support_dir(void)
{
    return dir;
}

/* support_path - dir/rel in a static buffer */
const char *support_path(const char *rel)
{
    int n = snprintf(path_buf, sizeof(path_buf), "%s/%s", dir, rel);

    if (n < 0 || (size_t) n >= sizeof(path_buf))
        abort();
    return path_buf;
}

/* support_write - write a whole file */
void support_write(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    const char *p = data;

    if (fd < 0) {
        fprintf(stderr, "open %s: %s\n", path, strerror(errno));
        abort();
    }
    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "write %s: %s\n", path, strerror(errno));
            abort();
        }
        p += n;
        len -= (size_t) n;
    }
    if (fchmod(fd, mode) != 0 || close(fd) != 0) {
        fprintf(stderr, "close %s: %s\n", path, strerror(errno));
        abort();
    }
}

/* support_mkdir - a directory under the temporary directory */
void support_mkdir(const char *rel)
{
    const char *p = support_path(rel);

    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "mkdir %s: %s\n", p, strerror(errno));
        abort();
    }
}

/* support_server_config - a server configuration for a private queue */
void support_server_config(const char *extra_main, const char *sections,
                           struct server_config *conf)
{
    struct buf ini = BUF_INIT;
    struct cfg_error err;
    char path[512];

    support_mkdir("queue");
    buf_printf(&ini, "[main]\nmyhostname = fuzz.test\ninet_interfaces = 127.0.0.1:25\n"
               "queue_directory = %s\nmynetworks = 127.0.0.0/8\n"
               "relay_domains = example.org example.net\n"
               "fast_flush_domains = $relay_domains\nsmtpd_peername_lookup = no\n%s%s", support_path("queue"),
               extra_main ? extra_main : "", sections ? sections : "");
    snprintf(path, sizeof(path), "%s", support_path("server-lite.ini"));
    support_write(path, ini.data, ini.len, 0600);
    buf_free(&ini);
    memset(conf, 0, sizeof(*conf));
    if (server_config_load(path, conf, &err) != 0) {
        fprintf(stderr, "fuzz config: %s\n", err.msg);
        abort();
    }
}
