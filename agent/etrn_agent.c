/* etrn-agent - send ETRN to every provider host when the link comes up. */
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "agent_config.h"
#include "daemon.h"
#include "exitcode.h"
#include "log.h"
#include "round.h"
#include "status.h"
#include "version.h"

#define AGENT_DEFAULT_CONFIG "/etc/etrnkit/agent.ini"

static void usage(FILE *fp)
{
    fprintf(fp, "usage: etrn-agent [-c FILE] [--once] [--dry-run] [--check-config] [--status] [-v]\n"
                "  -c, --config FILE  configuration (default " AGENT_DEFAULT_CONFIG ")\n"
                "  --once             one round now, then exit (0 ok, 75 temporary, 69 refused, 78 config)\n"
                "  --dry-run          print what would be sent where, send nothing\n"
                "  --status           the status file in words: last reply per host and domain,\n"
                "                     its age, pending count, next attempt\n"
                "  --check-config     validate the configuration (and, as root, that user\n"
                "                     $ETRN_AGENT_USER or etrnkit can use its files) and exit\n"
                "  -v, --verbose      log the SMTP dialogue\n"
                "  --version          print the version and exit\n"
                "  -h, --help         print this text and exit\n"
                "Without --once: a daemon in the foreground that watches the link; SIGHUP\n"
                "re-reads the configuration.\n");
}

/* print_summary - --once at a terminal: one line per host, whatever "log" says */
static void print_summary(const struct round_report *rep)
{
    for (size_t i = 0; i < rep->count; i++) {
        const struct round_host *h = &rep->hosts[i];
        char hp[300];

        if (h->port)
            status_hostport(hp, sizeof(hp), h->host, h->port);
        else
            snprintf(hp, sizeof(hp), "%s", h->host);
        fprintf(stderr, "etrn-agent: provider %s host %s: %s%s%s\n", h->provider, hp,
                etrn_verdict_name(h->verdict), h->summary && *h->summary ? ": " : "",
                h->summary ? h->summary : "");
    }
}

/* check_user - who the units and hooks run the agent as, when root checks for them; or NULL */
static const char *check_user(void)
{
    const char *user = getenv("ETRN_AGENT_USER"); /* the hooks' tunable */
    struct passwd *pw;

    if (geteuid() != 0)
        return NULL;
    if (user == NULL)
        user = "etrnkit";
    else if (*user == 0)
        return NULL;
    pw = getpwnam(user);
    return pw && pw->pw_uid != 0 ? user : NULL;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        { "config", required_argument, NULL, 'c' },
        { "once", no_argument, NULL, 'o' },
        { "dry-run", no_argument, NULL, 'n' },
        { "check-config", no_argument, NULL, 'C' },
        { "status", no_argument, NULL, 's' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = AGENT_DEFAULT_CONFIG;
    int once = 0, dry_run = 0, check_only = 0, verbose = 0, status_only = 0;
    struct agent_config conf;
    struct cfg_error err;
    char why[512];
    int c;

    while ((c = getopt_long(argc, argv, "c:vh", options, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'o':
            once = 1;
            break;
        case 'n':
            dry_run = 1;
            break;
        case 'C':
            check_only = 1;
            break;
        case 's':
            status_only = 1;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            return version_print("etrn-agent") == 0 ? EXIT_OK : EXIT_IOERR;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "etrn-agent: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    log_set_verbose(verbose);
    if (agent_config_load(path, &conf, &err) != 0) {
        fprintf(stderr, "etrn-agent: fatal: %s\n", err.msg);
        return EXIT_CONFIG;
    }
    if (status_only) {
        c = status_print(conf.status_file, time(NULL), stdout, why, sizeof(why));
        if (c != 0)
            fprintf(stderr, "etrn-agent: %s\n", why);
        agent_config_free(&conf);
        return c == 0 ? EXIT_OK : EXIT_NOINPUT;
    }
    if (check_only) {
        const char *user = check_user();

        if (agent_config_check_paths(&conf, user, &err) != 0) {
            fprintf(stderr, "etrn-agent: fatal: %s\n", err.msg);
            agent_config_free(&conf);
            return EXIT_CONFIG;
        }
        if (verbose)
            printf("%s: %zu provider(s), configuration OK\n", path, conf.nproviders);
        agent_config_free(&conf);
        return EXIT_OK;
    }
    if (!dry_run && log_open("etrn-agent", conf.log, why, sizeof(why)) != 0) {
        fprintf(stderr, "etrn-agent: fatal: %s: [agent] log: %s\n", path, why);
        agent_config_free(&conf);
        return EXIT_CONFIG;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("libcurl initialisation failed");
        agent_config_free(&conf);
        return EXIT_SOFTWARE;
    }
    if (once || dry_run) {
        struct round_options opt = { 0 };
        struct round_report report;
        struct status_table *st = status_new();
        int status;

        opt.dry_run = dry_run;
        round_run(&conf, &opt, st, &report);
        status = round_exit_status(&report);
        if (once && !dry_run && isatty(STDERR_FILENO))
            print_summary(&report);
        round_report_free(&report);
        status_free(st);
        agent_config_free(&conf);
        curl_global_cleanup();
        log_close();
        return status;
    }
    c = daemon_run(path, &conf);
    curl_global_cleanup();
    log_close();
    return c;
}
