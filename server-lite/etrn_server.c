/*
 * etrn-server - the provider side: SMTP server over the durable queue.
 *
 *   etrn-server -c FILE [--check-config] [-v]
 *
 * Loads the configuration (a bad one: message on stderr, exit 78), opens the
 * log, opens or creates queue_directory and recovers it, binds, switches to
 * mail_owner when started as root, then runs one event loop. SIGTERM and
 * SIGINT end the loop (no queue write is ever left half done: writes happen
 * inside one callback) and exit 0; SIGHUP reloads the configuration and
 * keeps the old one when the new one is bad. Prints nothing on success.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "config.h"
#include "exitcode.h"
#include "log.h"
#include "queue.h"
#include "server_config.h"
#include "smtpd.h"

#define DEFAULT_CONFIG "/etc/etrnkit/server-lite.ini"
#define IDENT "etrn-server"

struct server {
    const char *config_path;
    struct server_config *conf;
    struct event_base *base;
    struct smtpd *smtpd;
};

/* usage - the command line */
static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: etrn-server -c FILE [--check-config] [-v]\n");
    exit(EXIT_USAGE);
}

/* load_config - read and check a configuration; NULL with the message in err */
static struct server_config *load_config(const char *path, struct cfg_error *err)
{
    struct server_config *conf = xcalloc(1, sizeof(*conf));
    char host[256];

    if (server_config_load(path, conf, err) != 0) {
        free(conf);
        return NULL;
    }
    if (conf->myhostname == NULL || *conf->myhostname == 0) {
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = 0;
        free(conf->myhostname);
        conf->myhostname = xstrdup(host);
    }
    return conf;
}

/* same_str - two optional strings are equal */
static int same_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* reload - SIGHUP: take a new configuration, keep the old one on error */
static void reload(struct server *sv)
{
    struct cfg_error err;
    struct server_config *conf = load_config(sv->config_path, &err);
    struct server_config *old = sv->conf;
    char logerr[512];

    if (conf == NULL) {
        log_error("reload: %s; keeping the old configuration", err.msg);
        return;
    }
    if (!same_str(conf->maillog_file, old->maillog_file)
        && log_open(IDENT, conf->maillog_file, logerr, sizeof(logerr)) != 0)
        log_warn("reload: %s; logging stays where it was", logerr);
    if (!same_str(conf->queue_directory, old->queue_directory))
        log_warn("reload: queue_directory changed: takes effect after a restart");
    if (conf->inet_interfaces.count != old->inet_interfaces.count)
        log_warn("reload: inet_interfaces changed: takes effect after a restart");
    else
        for (size_t i = 0; i < conf->inet_interfaces.count; i++)
            if (strcmp(conf->inet_interfaces.items[i], old->inet_interfaces.items[i]) != 0) {
                log_warn("reload: inet_interfaces changed: takes effect after a restart");
                break;
            }
    smtpd_set_config(sv->smtpd, conf);
    sv->conf = conf;
    server_config_free(old);
    free(old);
    log_info("reload: configuration %s loaded", sv->config_path);
}

/* signal_cb - SIGTERM/SIGINT end the loop, SIGHUP reloads */
static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct server *sv = arg;

    (void) what;
    if (sig == SIGHUP) {
        reload(sv);
        return;
    }
    log_info("terminating on signal %d", (int) sig);
    event_base_loopexit(sv->base, NULL);
}

/* chown_queue - give the queue tree to mail_owner (started as root) */
static void chown_queue(const char *path, const struct passwd *pw)
{
    static const char *const extra[] = { "tmp", "flush", "public" };
    char sub[4096];

    if (chown(path, pw->pw_uid, pw->pw_gid) != 0)
        log_fatal_code(EXIT_IOERR, "chown %s: %s", path, strerror(errno));
    for (int i = 0; i < QUEUE_NDIRS + 3; i++) {
        const char *name = i < QUEUE_NDIRS ? queue_dir_name((enum queue_dir) i)
                                           : extra[i - QUEUE_NDIRS];

        snprintf(sub, sizeof(sub), "%s/%s", path, name);
        if (chown(sub, pw->pw_uid, pw->pw_gid) != 0)
            log_fatal_code(EXIT_IOERR, "chown %s: %s", sub, strerror(errno));
    }
}

/* drop_privileges - become mail_owner */
static void drop_privileges(const struct passwd *pw)
{
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0
        || setuid(pw->pw_uid) != 0)
        log_fatal_code(EXIT_OSERR, "cannot switch to user %s: %s", pw->pw_name, strerror(errno));
    if (setuid(0) == 0 || geteuid() == 0)
        log_fatal_code(EXIT_SOFTWARE, "still root after switching to %s", pw->pw_name);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "check-config", no_argument, NULL, 'C' },
        { NULL, 0, NULL, 0 },
    };
    struct server sv = { DEFAULT_CONFIG, NULL, NULL, NULL };
    struct passwd pw_copy, *pw = NULL;
    struct event *sigs[4];
    static const int signums[4] = { SIGTERM, SIGINT, SIGHUP, 0 };
    struct cfg_error err;
    struct queue q;
    char errbuf[512];
    int opt, check_only = 0, verbose = 0, rc;

    while ((opt = getopt_long(argc, argv, "c:v", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            sv.config_path = optarg;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'C':
            check_only = 1;
            break;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();
    if ((sv.conf = load_config(sv.config_path, &err)) == NULL) {
        fprintf(stderr, "%s: %s\n", IDENT, err.msg);
        return EXIT_CONFIG;
    }
    if (check_only) {
        server_config_free(sv.conf);
        free(sv.conf);
        return EXIT_OK;
    }
    if (geteuid() == 0) {
        struct passwd *p = sv.conf->mail_owner ? getpwnam(sv.conf->mail_owner) : NULL;

        if (p == NULL) {
            fprintf(stderr, "%s: mail_owner %s: no such user; refusing to run as root\n", IDENT,
                    sv.conf->mail_owner ? sv.conf->mail_owner : "(unset)");
            server_config_free(sv.conf);
            free(sv.conf);
            return EXIT_CONFIG;
        }
        if (p->pw_uid == 0) {
            fprintf(stderr, "%s: mail_owner %s is root; refusing to run as root\n", IDENT,
                    sv.conf->mail_owner);
            server_config_free(sv.conf);
            free(sv.conf);
            return EXIT_CONFIG;
        }
        pw_copy = *p;
        pw_copy.pw_name = xstrdup(p->pw_name);
        pw = &pw_copy;
    }
    log_set_verbose(verbose);
    if (log_open(IDENT, sv.conf->maillog_file, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s: %s\n", IDENT, errbuf);
        if (pw)
            free(pw_copy.pw_name);
        server_config_free(sv.conf);
        free(sv.conf);
        return EXIT_IOERR;
    }
    if (queue_open(&q, sv.conf->queue_directory, 1) != QUEUE_OK)
        log_fatal_code(EXIT_IOERR, "%s", queue_error(&q));
    if (pw)
        chown_queue(sv.conf->queue_directory, pw);
    if (queue_recover(&q) != QUEUE_OK)
        log_error("queue recovery: %s", queue_error(&q));
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        log_fatal_code(EXIT_OSERR, "signal: %s", strerror(errno));
    if ((sv.base = event_base_new()) == NULL)
        log_fatal_code(EXIT_OSERR, "cannot create the event loop");
    if ((sv.smtpd = smtpd_new(sv.base, sv.conf, &q, errbuf, sizeof(errbuf))) == NULL)
        log_fatal_code(EXIT_OSERR, "%s", errbuf);
    if (pw) {
        drop_privileges(pw);
        free(pw_copy.pw_name);
    }
    for (int i = 0; signums[i]; i++) {
        sigs[i] = evsignal_new(sv.base, signums[i], signal_cb, &sv);
        if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) != 0)
            log_fatal_code(EXIT_OSERR, "cannot watch signal %d", signums[i]);
    }
    log_info("daemon started -- listening on %zu address(es), queue %s", sv.conf->nlisten,
             sv.conf->queue_directory);
    rc = event_base_dispatch(sv.base);
    smtpd_free(sv.smtpd);
    for (int i = 0; signums[i]; i++)
        event_free(sigs[i]);
    event_base_free(sv.base);
    queue_close(&q);
    server_config_free(sv.conf);
    free(sv.conf);
    if (rc < 0) {
        log_error("event loop failed");
        return EXIT_SOFTWARE;
    }
    log_info("stopped");
    log_close();
    return EXIT_OK;
}
