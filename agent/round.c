#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "atrn_session.h"
#include "buf.h"
#include "clock.h"
#include "etrn_session.h"
#include "exitcode.h"
#include "log.h"
#include "mx.h"
#include "round.h"
#include "status.h"

#define ON_LINK_UP_LIMIT 60 /* seconds an on_link_up command may run */

/* try_connect - one TCP connect to host:port within ms; 0 on success */
static int try_connect(const char *host, int port, int ms)
{
    struct addrinfo hints, *res = NULL;
    char service[16];
    int ok = -1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%d", port);
    if (getaddrinfo(host, service, &hints, &res) != 0)
        return -1;
    for (struct addrinfo *ai = res; ai && ok != 0; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            ok = 0;
        } else if (errno == EINPROGRESS) {
            struct pollfd pfd = { fd, POLLOUT, 0 };
            int err = 0;
            socklen_t len = sizeof(err);

            if (poll(&pfd, 1, ms) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0
                && err == 0)
                ok = 0;
        }
        close(fd);
    }
    freeaddrinfo(res);
    return ok;
}

/* wait_local_smtp - wait until the site's own listener accepts */
static int wait_local_smtp(const struct agent_config *conf)
{
    long long deadline_ms = clock_now_ms() + conf->local_smtp_wait * 1000;
    char *host;
    int port;
    const char *why;

    if (agent_parse_hostport(conf->local_smtp, &host, &port, &why) != 0)
        log_panic("local_smtp \"%s\" passed validation but does not parse", conf->local_smtp);
    for (;;) {
        long long start_ms = clock_now_ms();

        if (try_connect(host, port, 1000) == 0) {
            free(host);
            return 0;
        }
        if (start_ms >= deadline_ms)
            break;
        long long spent_ms = clock_now_ms() - start_ms;
        if (spent_ms < 500)
            usleep((useconds_t) (500 - spent_ms) * 1000);
    }
    free(host);
    return -1;
}

/* run_on_link_up - run the configured command, no shell, bounded in time */
static void run_on_link_up(const struct agent_config *conf)
{
    const struct cfg_list *argv = &conf->on_link_up;
    char **args = xcalloc(argv->count + 1, sizeof(*args));
    long long deadline_ms = clock_now_ms() + ON_LINK_UP_LIMIT * 1000LL;
    int status = 0;
    pid_t pid;

    for (size_t i = 0; i < argv->count; i++)
        args[i] = argv->items[i];
    pid = fork();
    if (pid < 0) {
        log_warn("on_link_up: cannot fork: %s", strerror(errno));
        free(args);
        return;
    }
    if (pid == 0) {
        execvp(args[0], args);
        fprintf(stderr, "on_link_up: cannot run %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    for (;;) {
        pid_t done = waitpid(pid, &status, WNOHANG);

        if (done == pid)
            break;
        if (done < 0 && errno != EINTR) {
            log_warn("on_link_up: waitpid: %s", strerror(errno));
            free(args);
            return;
        }
        if (clock_now_ms() > deadline_ms) {
            log_warn("on_link_up: %s still running after %ds; killed", args[0], ON_LINK_UP_LIMIT);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            free(args);
            return;
        }
        usleep(20000);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        log_info("on_link_up: %s done", args[0]);
    else if (WIFEXITED(status))
        log_warn("on_link_up: %s exited with status %d", args[0], WEXITSTATUS(status));
    else
        log_warn("on_link_up: %s killed by signal %d", args[0], WTERMSIG(status));
    free(args);
}

/* report_add - one host's outcome */
static struct round_host *report_add(struct round_report *rep, const char *provider, const char *host,
                                     int port, enum etrn_verdict verdict)
{
    struct round_host *h;

    rep->hosts = xreallocarray(rep->hosts, rep->count + 1, sizeof(*rep->hosts));
    h = &rep->hosts[rep->count++];
    memset(h, 0, sizeof(*h));
    h->provider = xstrdup(provider);
    h->host = xstrdup(host);
    h->port = port;
    h->verdict = verdict;
    if (verdict > rep->worst)
        rep->worst = verdict;
    return h;
}

/* log_session - one line per domain: provider, host, domain, code, meaning */
static void log_session(const char *provider, const char *host, int port, const struct etrn_session *s)
{
    char hp[300];

    status_hostport(hp, sizeof(hp), host, port);
    if (s->error[0]) {
        void (*logf)(const char *, const char *, ...) = s->verdict == ETRN_PERM ? log_error_as
                                                                                  : log_warn_as;

        logf(LOG_SERVICE, "provider %s host %s: %s failure: %s", provider, hp,
             etrn_verdict_name(s->verdict), s->error);
    }
    for (size_t i = 0; i < s->count; i++) {
        const struct etrn_domain_result *r = &s->results[i];
        void (*logf)(const char *, const char *, ...) = r->verdict == ETRN_OK ? log_info_as
                                                      : r->verdict == ETRN_TEMP ? log_warn_as
                                                                                : log_error_as;

        if (r->code == 0 && s->error[0] && strcmp(r->meaning, "not sent") == 0)
            continue;
        if (r->pending >= 0)
            logf(LOG_SERVICE, "provider %s host %s domain %s: %d %s (%s; %ld pending)", provider, hp,
                 r->domain, r->code, r->text ? r->text : "", r->meaning, r->pending);
        else
            logf(LOG_SERVICE, "provider %s host %s domain %s: %d %s (%s)", provider, hp, r->domain,
                 r->code, r->text ? r->text : "", r->meaning);
    }
}

/* session_summary - "error; domain code meaning (N pending), ..." for one line on a terminal */
static char *session_summary(const struct etrn_session *s)
{
    struct buf b = BUF_INIT;
    size_t shown = 0;

    if (s->error[0])
        buf_printf(&b, "%s", s->error);
    for (size_t i = 0; i < s->count; i++) {
        const struct etrn_domain_result *r = &s->results[i];

        if (r->code == 0)
            continue;
        buf_printf(&b, "%s%s %d %s", b.len == 0 ? "" : shown ? ", " : "; ", r->domain, r->code,
                   r->meaning);
        shown++;
        if (r->pending >= 0)
            buf_printf(&b, " (%ld pending)", r->pending);
    }
    if (s->relayed >= 0)
        buf_printf(&b, "%s%ld message%s relayed", b.len ? "; " : "", s->relayed,
                   s->relayed == 1 ? "" : "s");
    return buf_steal(&b);
}

static void etrn_session_run_for(const struct agent_config *conf, const struct agent_provider *p,
                                 const char *host, int port, const char *pin, struct etrn_session *s);
static void run_atrn(const struct agent_config *conf, const struct agent_provider *p,
                     const char *host, int port, const char *pin, struct etrn_session *s);

/* contact_host - one session with one host, logged and recorded */
static void contact_host(const struct agent_config *conf, const struct agent_provider *p,
                         const char *host, int port, const char *pin, const struct round_options *opt,
                         struct status_table *table, struct round_report *rep)
{
    struct etrn_session s;
    struct round_host *h;

    if (opt->filter && !opt->filter(opt->filter_ctx, p->name, host, port))
        return;
    if (opt->dry_run) {
        printf("provider %s: would connect to %s:%d%s%s (tls %s%s%s), EHLO %s, %s", p->name, host,
               port, pin ? " at " : "", pin ? pin : "",
               p->tls == AGENT_TLS_STARTTLS ? "starttls" : p->tls == AGENT_TLS_IMPLICIT ? "tls" : "none",
               p->username ? ", AUTH as " : "", p->username ? p->username : "", conf->helo_name,
               p->protocol == AGENT_PROTO_ATRN ? "ATRN" : "ETRN");
        for (size_t i = 0; i < p->domains.count; i++)
            printf("%s%s", p->protocol == AGENT_PROTO_ATRN && i ? "," : " ", p->domains.items[i]);
        if (p->protocol == AGENT_PROTO_ATRN)
            printf(", then relay to local_smtp %s", conf->local_smtp);
        printf("\n");
        report_add(rep, p->name, host, port, ETRN_OK);
        return;
    }
    if (p->protocol == AGENT_PROTO_ATRN) {
        run_atrn(conf, p, host, port, pin, &s);
    } else {
        etrn_session_run_for(conf, p, host, port, pin, &s);
    }
    log_session(p->name, host, port, &s);
    status_record(table, p->name, host, port, &s, time(NULL));
    h = report_add(rep, p->name, host, port, s.verdict);
    h->summary = session_summary(&s);
    if (s.relayed >= 0) {
        /* ATRN: repeat while sessions relay mail, as ETRN repeats after 253 */
        h->drained = s.verdict == ETRN_OK && s.relayed == 0;
        h->any_pending = s.relayed > 0;
        etrn_session_free(&s);
        return;
    }
    h->drained = s.verdict == ETRN_OK;
    for (size_t i = 0; i < s.count; i++) {
        if (s.results[i].code != 251)
            h->drained = 0;
        if (s.results[i].code == 253)
            h->any_pending = 1;
    }
    etrn_session_free(&s);
}

/* provider_target - the connection settings of a provider host, for ETRN and ATRN */
static struct etrn_target provider_target(const struct agent_config *conf,
                                          const struct agent_provider *p, const char *host,
                                          int port, const char *pin)
{
    return (struct etrn_target) {
        .host = host, .port = port, .pin_addr = pin, .tls = p->tls, .tls_verify = p->tls_verify,
        .ca_file = p->ca_file, .helo = conf->helo_name, .username = p->username,
        .password = p->password, .timeout = p->timeout,
    };
}

/* etrn_session_run_for - one ETRN session with a provider host */
static void etrn_session_run_for(const struct agent_config *conf, const struct agent_provider *p,
                                 const char *host, int port, const char *pin, struct etrn_session *s)
{
    struct etrn_target t = provider_target(conf, p, host, port, pin);

    etrn_session_run(&t, p->domains.items, p->domains.count, s);
}

/* run_atrn - one ODMR session with a provider host, relaying to local_smtp */
static void run_atrn(const struct agent_config *conf, const struct agent_provider *p,
                     const char *host, int port, const char *pin, struct etrn_session *s)
{
    struct atrn_target t;
    long long start_ms = clock_now_ms();
    char hp[300];

    memset(&t, 0, sizeof(t));
    t.conn = provider_target(conf, p, host, port, pin);
    t.local_smtp = conf->local_smtp;
    t.idle_timeout = p->idle_timeout;
    t.session_limit = p->session_limit;
    atrn_session_run(&t, p->domains.items, p->domains.count, s);
    if (s->relayed >= 0) {
        status_hostport(hp, sizeof(hp), host, port);
        log_info("provider %s host %s: ATRN relayed %ld message%s to %s in %.1fs", p->name, hp,
                 s->relayed, s->relayed == 1 ? "" : "s", conf->local_smtp,
                 (double) (clock_now_ms() - start_ms) / 1000.0);
    }
}

/* contact_mx - every MX host of the provider's mx: domain */
static void contact_mx(const struct agent_config *conf, const struct agent_provider *p,
                       const struct round_options *opt, struct status_table *table,
                       struct round_report *rep)
{
    struct mx_list list = { NULL, 0 };
    struct mx_resolver *res;
    char why[512];
    enum mx_status st;
    int port = (int) p->port;

    if ((res = mx_resolver_new(conf->resolver, why, sizeof(why))) == NULL) {
        log_error("provider %s: resolver %s: %s", p->name, conf->resolver ? conf->resolver : "(system)",
                  why);
        report_add(rep, p->name, p->mx_domain, port, ETRN_TEMP);
        return;
    }
    st = mx_lookup(res, p->mx_domain, conf->helo_name, &list, why, sizeof(why));
    if (st != MX_OK) {
        enum etrn_verdict v = st == MX_TEMPFAIL ? ETRN_TEMP : ETRN_PERM;

        (v == ETRN_PERM ? log_error_as : log_warn_as)(LOG_SERVICE, "provider %s: MX lookup for %s: %s: %s", p->name,
                                                 p->mx_domain, mx_status_name(st), why);
        report_add(rep, p->name, p->mx_domain, port, v);
    }
    for (size_t i = 0; i < list.count; i++) {
        const struct mx_host *mx = &list.hosts[i];
        struct buf pin = BUF_INIT;

        if (mx->naddrs == 0) {
            if (opt->filter && !opt->filter(opt->filter_ctx, p->name, mx->name, port))
                continue;
            log_warn("provider %s: MX host %s (preference %d) has no address: %s", p->name, mx->name,
                     mx->preference, mx->addr_why ? mx->addr_why : "no A or AAAA record");
            report_add(rep, p->name, mx->name, port,
                       mx->addr_status == MX_TEMPFAIL ? ETRN_TEMP : ETRN_PERM);
            continue;
        }
        for (size_t j = 0; j < mx->naddrs; j++) {
            int v6 = strchr(mx->addrs[j], ':') != NULL;

            buf_printf(&pin, "%s%s%s%s", j ? "," : "", v6 ? "[" : "", mx->addrs[j], v6 ? "]" : "");
        }
        log_debug("provider %s: MX %s preference %d at %s", p->name, mx->name, mx->preference,
                  buf_cstr(&pin));
        contact_host(conf, p, mx->name, port, buf_cstr(&pin), opt, table, rep);
        buf_free(&pin);
    }
    mx_list_free(&list);
    mx_resolver_free(res);
}

/* round_run - one round over every provider */
void round_run(const struct agent_config *conf, const struct round_options *opt,
               struct status_table *table, struct round_report *rep)
{
    char why[512];

    memset(rep, 0, sizeof(*rep));
    rep->worst = ETRN_OK;
    if (!opt->dry_run && !opt->skip_link_up_steps) {
        if (conf->local_smtp && wait_local_smtp(conf) != 0) {
            log_warn("local SMTP listener %s is not accepting after %llds; no ETRN sent, "
                     "since the provider could not deliver", conf->local_smtp, conf->local_smtp_wait);
            for (size_t i = 0; i < conf->nproviders; i++)
                report_add(rep, conf->providers[i].name, conf->local_smtp, 0, ETRN_TEMP);
            return;
        }
        if (conf->on_link_up.count)
            run_on_link_up(conf);
    }
    for (size_t i = 0; i < conf->nproviders; i++) {
        const struct agent_provider *p = &conf->providers[i];

        if (p->mx_domain) {
            contact_mx(conf, p, opt, table, rep);
            continue;
        }
        for (size_t j = 0; j < p->nhosts; j++)
            contact_host(conf, p, p->hosts[j].name, p->hosts[j].port ? p->hosts[j].port : (int) p->port,
                         NULL, opt, table, rep);
    }
    if (!opt->dry_run && !opt->keep_status && conf->status_file && *conf->status_file
        && status_write(table, conf->status_file, why, sizeof(why)) != 0)
        log_warn("status file: %s", why);
}

/* round_exit_status - EXIT_OK, EXIT_UNAVAILABLE or EXIT_TEMPFAIL */
int round_exit_status(const struct round_report *rep)
{
    switch (rep->worst) {
    case ETRN_OK:
        return EXIT_OK;
    case ETRN_PERM:
        return EXIT_UNAVAILABLE;
    case ETRN_TEMP:
        return EXIT_TEMPFAIL;
    }
    return EXIT_TEMPFAIL;
}

/* round_report_free - release a report */
void round_report_free(struct round_report *rep)
{
    for (size_t i = 0; i < rep->count; i++) {
        free(rep->hosts[i].provider);
        free(rep->hosts[i].host);
        free(rep->hosts[i].summary);
    }
    free(rep->hosts);
    memset(rep, 0, sizeof(*rep));
}
