#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backoff.h"
#include "clock.h"
#include "daemon.h"
#include "exitcode.h"
#include "linkwatch.h"
#include "log.h"
#include "round.h"
#include "status.h"

#define SETTLE_CAP_FACTOR 10    /* judge at the latest 10 x settle after a burst began */
#define SETTLE_CAP_MIN_MS 5000
#define PROBE_RETRY_MS 1000     /* after a failed probe */
#define RETRY_BATCH_MS 100      /* retries due this close together go in one round */

enum round_kind { ROUND_LINK_UP, ROUND_INTERVAL, ROUND_RETRY };

struct daemon {
    const char *config_path;
    struct agent_config *conf;
    struct linkwatch *lw;
    struct backoff_table backoff;
    struct status_table *status; /* every host's last result, for the status file */
    int up;
    char ifname[IF_NAMESIZE];
    char why[192];              /* the last verdict's reason */
    long long settle_due;       /* judge the link then; -1: no event pending */
    long long burst_start;      /* first event of the current burst */
    long long next_full;        /* next interval round; -1: none */
    int stop;
};

/* what the retry filter needs */
struct retry_filter {
    const struct daemon *d;
    long long horizon;          /* hosts due by then are contacted */
};

static int signal_pipe[2] = { -1, -1 };

/* on_signal - hand the signal number to the event loop through the pipe */
static void on_signal(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char) sig;

    if (write(signal_pipe[1], &c, 1) < 0) {
        /* the pipe is full: a signal is already waiting to be read */
    }
    errno = saved;
}

/* signals_setup - the self-pipe and the handlers for TERM, INT and HUP */
static int signals_setup(void)
{
    static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
    struct sigaction sa;

    if (pipe2(signal_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        log_error("signal pipe: %s", strerror(errno));
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        if (sigaction(sigs[i], &sa, NULL) != 0) {
            log_error("sigaction: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* signals_restore - default handlers, pipe closed */
static void signals_restore(void)
{
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    for (int i = 0; i < 2; i++) {
        if (signal_pipe[i] >= 0 && close(signal_pipe[i]) != 0)
            log_warn("signal pipe close: %s", strerror(errno));
        signal_pipe[i] = -1;
    }
}

/* provider_wide_due - whether an entry standing for a whole provider is due */
static int provider_wide_due(const struct daemon *d, const struct agent_provider *p, int port,
                             long long horizon, int *link_up_steps)
{
    const struct agent_config *conf = d->conf;

    /* round.c reports a failed MX lookup under the mx: domain, and a local
       listener that never answered under local_smtp with port 0 */
    if (p->mx_domain && backoff_table_is_due(&d->backoff, p->name, p->mx_domain, port, horizon))
        return 1;
    if (conf->local_smtp && backoff_table_is_due(&d->backoff, p->name, conf->local_smtp, 0, horizon)) {
        if (link_up_steps)
            *link_up_steps = 1;
        return 1;
    }
    return 0;
}

/* retry_accepts - round filter: contact only hosts whose retry is due */
static int retry_accepts(void *ctx, const char *provider, const char *host, int port)
{
    const struct retry_filter *f = ctx;
    const struct daemon *d = f->d;

    if (backoff_table_is_due(&d->backoff, provider, host, port, f->horizon))
        return 1;
    for (size_t i = 0; i < d->conf->nproviders; i++) {
        const struct agent_provider *p = &d->conf->providers[i];

        if (strcmp(p->name, provider) == 0)
            return provider_wide_due(d, p, (int) p->port, f->horizon, NULL);
    }
    return 0;
}

/* retry_needs_link_up_steps - a due retry for a local listener that was not ready */
static int retry_needs_link_up_steps(const struct daemon *d, long long horizon)
{
    int steps = 0;

    for (size_t i = 0; i < d->conf->nproviders; i++)
        provider_wide_due(d, &d->conf->providers[i], (int) d->conf->providers[i].port, horizon,
                          &steps);
    return steps;
}

/* schedule - apply a round's report to the backoff table and log each retry */
static void schedule(struct daemon *d, const struct round_report *rep, long long now)
{
    for (size_t i = 0; i < rep->count; i++) {
        const struct round_host *h = &rep->hosts[i];
        struct backoff_outcome out = { h->verdict, h->drained, h->any_pending };
        enum backoff_reason reason;
        unsigned attempt;
        long long delay = backoff_table_result(&d->backoff, h->provider, h->host, h->port, &out,
                                               now, &reason, &attempt);
        char hp[300];

        status_hostport(hp, sizeof(hp), h->host, h->port);

        if (reason == BACKOFF_FAILED || reason == BACKOFF_PENDING)
            status_set_next(d->status, h->provider, h->host, h->port, time(NULL) + (delay + 999) / 1000,
                            reason == BACKOFF_FAILED ? "retry after a temporary failure"
                                                     : "mail pending, ETRN again until 251");
        else if (d->conf->interval > 0)
            status_set_next(d->status, h->provider, h->host, h->port, time(NULL) + d->conf->interval,
                            "interval round");
        else
            status_set_next(d->status, h->provider, h->host, h->port, 0, NULL);
        if (reason == BACKOFF_FAILED)
            log_info("retry: provider %s host %s in %lld.%llds (temporary failure, attempt %u)",
                     h->provider, hp, delay / 1000, delay % 1000 / 100, attempt);
        else if (reason == BACKOFF_PENDING)
            log_info("retry: provider %s host %s in %lld.%llds (mail pending, ETRN again "
                     "until 251)", h->provider, hp, delay / 1000,
                     delay % 1000 / 100);
        else if (h->verdict == ETRN_PERM)
            log_info("provider %s host %s refused; no retry before the next %s",
                     h->provider, hp,
                     d->conf->interval > 0 ? "interval or link-up round" : "link-up round");
    }
}

/* run_round - one round of the given kind, then its retries scheduled */
static void run_round(struct daemon *d, enum round_kind kind)
{
    static const char *const kind_name[] = { "link up", "interval", "retry" };
    struct round_report rep;
    struct round_options opt;
    struct retry_filter filter;
    long long start = clock_now_ms();
    char why[512];

    memset(&opt, 0, sizeof(opt));
    opt.skip_link_up_steps = kind != ROUND_LINK_UP;
    if (kind == ROUND_RETRY) {
        filter.d = d;
        filter.horizon = start + RETRY_BATCH_MS;
        opt.filter = retry_accepts;
        opt.filter_ctx = &filter;
        if (retry_needs_link_up_steps(d, filter.horizon))
            opt.skip_link_up_steps = 0;
    }
    opt.keep_status = 1;
    log_info("round: %s", kind_name[kind]);
    round_run(d->conf, &opt, d->status, &rep);
    schedule(d, &rep, clock_now_ms());
    if (d->conf->status_file && *d->conf->status_file
        && status_write(d->status, d->conf->status_file, why, sizeof(why)) != 0)
        log_warn("status file: %s", why);
    if (kind == ROUND_RETRY) {
        size_t dropped = backoff_table_drop_due(&d->backoff, start + RETRY_BATCH_MS);

        if (dropped)
            log_debug("retry: %zu scheduled host(s) not contacted (no longer configured, or "
                      "stood for a whole provider); dropped", dropped);
    } else if (d->conf->interval > 0) {
        d->next_full = start + d->conf->interval * 1000;
        if (d->next_full < clock_now_ms())
            d->next_full = clock_now_ms();
    } else {
        d->next_full = -1;
    }
    round_report_free(&rep);
}

/* link_changed - act on a confirmed link state */
static void link_changed(struct daemon *d, const struct linkwatch_verdict *v)
{
    snprintf(d->why, sizeof(d->why), "%s", v->why);
    if (v->up && !d->up) {
        log_info("link up: %s (%s)", v->ifname, v->why);
        d->up = 1;
        snprintf(d->ifname, sizeof(d->ifname), "%s", v->ifname);
        backoff_table_clear(&d->backoff);
        run_round(d, ROUND_LINK_UP);
    } else if (!v->up && d->up) {
        char why[512];

        log_info("link down: %s (%s)", d->ifname, v->why);
        d->up = 0;
        d->next_full = -1;
        backoff_table_clear(&d->backoff);
        status_clear_next(d->status); /* nothing is planned until the link is back */
        if (d->conf->status_file && *d->conf->status_file
            && status_write(d->status, d->conf->status_file, why, sizeof(why)) != 0)
            log_warn("status file: %s", why);
    } else if (v->up && strcmp(d->ifname, v->ifname) != 0) {
        log_info("link up: %s (%s), was %s", v->ifname, v->why, d->ifname);
        snprintf(d->ifname, sizeof(d->ifname), "%s", v->ifname);
    } else {
        log_debug("link still %s: %s", v->up ? "up" : "down", v->why);
    }
}

/* judge - read the whole link state and act on it */
static void judge(struct daemon *d)
{
    struct linkwatch_verdict v;
    char err[256];

    if (linkwatch_probe(d->lw, d->conf, &v, err, sizeof(err)) != 0) {
        log_error("link state: %s; trying again", err);
        d->settle_due = clock_now_ms() + PROBE_RETRY_MS;
        d->burst_start = d->settle_due;
        return;
    }
    link_changed(d, &v);
}

/* event - a netlink hint: (re)start the settle timer */
static void event(struct daemon *d, long long now)
{
    long long settle = d->conf->settle * 1000;
    long long cap = settle * SETTLE_CAP_FACTOR;

    if (cap < SETTLE_CAP_MIN_MS)
        cap = SETTLE_CAP_MIN_MS;
    if (d->settle_due < 0)
        d->burst_start = now;
    d->settle_due = now + settle;
    if (d->settle_due > d->burst_start + cap)
        d->settle_due = d->burst_start + cap;
}

/* reload - SIGHUP: read the configuration again; keep the old one on error */
static void reload(struct daemon *d)
{
    const char *path = d->config_path ? d->config_path : d->conf->path;
    struct agent_config fresh;
    struct cfg_error err;
    char why[256];

    memset(&fresh, 0, sizeof(fresh));
    memset(&err, 0, sizeof(err));
    /* a log file renamed by logrotate: continue in a new file of the same name */
    if (log_reopen(why, sizeof(why)) < 0)
        log_error("reload: %s; logging stays in the old file", why);
    if (agent_config_load(path, &fresh, &err) != 0) {
        log_error("reload: %s; keeping the previous configuration", err.msg);
        return;
    }
    if ((fresh.log == NULL) != (d->conf->log == NULL)
        || (fresh.log && strcmp(fresh.log, d->conf->log) != 0)) {
        if (log_open("etrn-agent", fresh.log, why, sizeof(why)) != 0)
            log_error("reload: %s; logging stays where it was", why);
    }
    agent_config_free(d->conf);
    *d->conf = fresh;
    backoff_table_limits(&d->backoff, d->conf->retry_min * 1000, d->conf->retry_max * 1000);
    if (d->up && d->conf->interval > 0)
        d->next_full = clock_now_ms() + d->conf->interval * 1000;
    else
        d->next_full = -1;
    log_info("reload: configuration read from %s", path);
    /* providers or watched interfaces may have changed: judge the link again now */
    d->settle_due = clock_now_ms();
    d->burst_start = d->settle_due;
}

/* read_signals - drain the signal pipe; act on TERM, INT and HUP */
static void read_signals(struct daemon *d)
{
    unsigned char sigs[32];
    ssize_t n;
    int hup = 0;

    while ((n = read(signal_pipe[0], sigs, sizeof(sigs))) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (sigs[i] == SIGHUP) {
                hup = 1;
            } else if (!d->stop) {
                log_info("signal %d: stopping", sigs[i]);
                d->stop = 1;
            }
        }
    }
    if (hup && !d->stop)
        reload(d);
}

/* earliest - the smaller of two deadlines, -1 meaning none */
static long long earliest(long long a, long long b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

/* poll_timeout - milliseconds until the next deadline, -1 for none */
static int poll_timeout(const struct daemon *d, long long now)
{
    long long next = d->settle_due;

    /* while an event burst waits for its verdict, rounds wait too */
    if (d->up && d->settle_due < 0) {
        next = earliest(next, d->next_full);
        next = earliest(next, backoff_table_next_due(&d->backoff));
    }
    if (next < 0)
        return -1;
    if (next <= now)
        return 0;
    return next - now > INT_MAX ? INT_MAX : (int) (next - now);
}

/* loop - the event loop: signals, link events, timers; an exit status */
static int loop(struct daemon *d)
{
    char err[256];

    while (!d->stop) {
        struct pollfd fds[2] = {
            { signal_pipe[0], POLLIN, 0 },
            { linkwatch_fd(d->lw), POLLIN, 0 },
        };
        long long now = clock_now_ms();
        int n = poll(fds, 2, poll_timeout(d, now));
        long long due;

        if (n < 0 && errno != EINTR) {
            log_error("poll: %s", strerror(errno));
            return EXIT_OSERR;
        }
        if (n > 0 && (fds[0].revents & POLLIN))
            read_signals(d);
        if (d->stop)
            break;
        now = clock_now_ms();
        if (n > 0 && fds[1].revents) {
            int events = linkwatch_read(d->lw, err, sizeof(err));

            if (events < 0)
                log_error("%s", err);
            if (d->lw->overrun && d->settle_due < 0)
                log_warn("netlink: link events were lost; reading the whole state again");
            if (events != 0)
                event(d, now);
        }
        if (d->settle_due >= 0 && now >= d->settle_due) {
            d->settle_due = -1;
            judge(d);
            continue;
        }
        if (!d->up || d->settle_due >= 0)
            continue;
        if (d->next_full >= 0 && now >= d->next_full) {
            run_round(d, ROUND_INTERVAL);
            continue;
        }
        due = backoff_table_next_due(&d->backoff);
        if (due >= 0 && now >= due)
            run_round(d, ROUND_RETRY);
    }
    return EXIT_OK;
}

/* daemon_run - run until SIGTERM; owns and frees *conf */
int daemon_run(const char *config_path, struct agent_config *conf)
{
    struct daemon d;
    char err[256];
    int status = EXIT_OK;

    memset(&d, 0, sizeof(d));
    d.config_path = config_path;
    d.conf = conf;
    d.settle_due = -1;
    d.next_full = -1;
    d.status = status_new();
    backoff_table_init(&d.backoff, conf->retry_min * 1000, conf->retry_max * 1000, backoff_random,
                       NULL);
    if (signals_setup() != 0) {
        status = EXIT_OSERR;
        goto out;
    }
    if ((d.lw = linkwatch_open(err, sizeof(err))) == NULL) {
        log_error("cannot watch the link: %s", err);
        status = EXIT_OSERR;
        goto out;
    }
    log_info("watching the link (settle %llds, interval %llds, retry %lld..%llds)",
             conf->settle, conf->interval, conf->retry_min, conf->retry_max);
    judge(&d);
    if (!d.up && d.settle_due < 0)
        log_info("link down at start (%s); waiting for it to come up", d.why);
    status = loop(&d);
out:
    linkwatch_close(d.lw);
    signals_restore();
    backoff_table_free(&d.backoff);
    status_free(d.status);
    agent_config_free(d.conf);
    return status;
}
