/*
 * smtp_deliver - deliver a message through the smtp transport, for end-to-end tests.
 *
 *   smtp_deliver -c server-lite.ini -f SENDER -r RCPT [-r RCPT]... [-n COUNT] [-j PARALLEL]
 *                [-t SECONDS] [-w SECONDS] [-v] [--host H [--port P] | --mx DOMAIN [--port P]]
 *                [--dest HOST:PORT:N]... MESSAGEFILE
 *
 * Runs an event loop and hands COUNT jobs of MESSAGEFILE (LF line ends become
 * CRLF; the content sits behind a few bytes of junk in a temporary file, so
 * content_offset is exercised) to smtp_transport_deliver(), at most PARALLEL
 * (default 1) at a time. For every finished job it prints one line per
 * recipient, "RCPT STATUS DSN TEXT" (STATUS: sent, deferred, bounced), then
 * "relay=RELAY conn=SECS xmit=SECS dest=HOST:PORT at=SECS" (at: when
 * done ran, seconds after the first job started). --host is a next hop without
 * MX lookup (an IP literal or a name resolved through dns_resolver), --mx
 * DOMAIN looks up DOMAIN's MX hosts; each --dest adds N more jobs to the next
 * hop HOST:PORT (no MX), all through the one transport: the --host/--mx jobs
 * first, then the --dest ones in order. The last line is "loop_max_gap=SECS":
 * the longest time the tool's event loop went without running its 20 ms
 * ticker (how long the transport ever blocked the caller), after
 * -w SECONDS the loop runs on that long after the last report (cached
 * connections expire and QUIT), and before it
 * "connections=N": how many connections the transport opened. Exit 0 when every
 * job reported, 75 when -t SECONDS (default 60) passed first, 1 on a usage or
 * setup error.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "config.h"
#include "delivery.h"
#include "log.h"
#include "server_config.h"
#include "transport_smtp.h"

#define JUNK "JUNK-BEFORE-CONTENT\n"

#define TICK_MS 20

/* a next hop and how many jobs go there */
struct dest {
    const char *host;
    int port, mx;
    long count;
};

struct one;

struct run {
    struct event_base *base;
    struct smtp_transport *t;
    struct delivery_job job;  /* the template: sender, recipients, content */
    struct dest *dests;
    size_t ndests, next_dest; /* the next job goes to dests[next_dest] ... */
    long next_n;              /* ... as its next_n-th */
    struct one *ones;         /* count entries: done's contexts (unreported jobs too) */
    long count, parallel, started, finished, linger;
    int failed;
    long long t0, last_tick, max_gap; /* milliseconds */
};

/* one job in flight: done's context */
struct one {
    struct run *r;
    const struct dest *d;
};

/* usage - print the synopsis and exit */
static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: smtp_deliver -c CONF -f SENDER -r RCPT... [-n COUNT] [-j PARALLEL] "
                    "[-t SECONDS] [-w SECONDS] [-v] [--host H | --mx DOMAIN] [--port P] "
                    "[--dest HOST:PORT:N]... MESSAGEFILE\n");
    exit(1);
}

static void start_more(struct run *r);

/* linger_done - -w SECONDS after the last report: stop */
static void linger_done(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;

    (void) fd;
    (void) what;
    event_base_loopbreak(r->base);
}

/* route_of - the route of a next hop */
static void route_of(const struct dest *d, struct server_route *route)
{
    memset(route, 0, sizeof(*route));
    route->transport = SERVER_TRANSPORT_SMTP;
    snprintf(route->host, sizeof(route->host), "%s", d->host);
    route->port = d->port;
    route->mx = d->mx;
    route->source = SERVER_ROUTE_TABLE;
}

/* done - one job's report: print it, start the next */
static void done(void *ctx, const struct delivery_report *rep)
{
    struct one *o = ctx;
    struct run *r = o->r;

    for (size_t i = 0; i < rep->nrcpt; i++)
        printf("%s %s %s %s\n", r->job.rcpts[i], delivery_status_name(rep->rcpt[i].status),
               rep->rcpt[i].dsn, rep->rcpt[i].text);
    printf("relay=%s conn=%.3f xmit=%.3f dest=%s%s:%d at=%.3f\n", rep->relay,
           rep->conn_time, rep->xmit_time, o->d->mx ? "mx:" : "", o->d->host, o->d->port,
           (double) (clock_now_ms() - r->t0) / 1000.0);
    if (fflush(stdout) != 0)
        r->failed = 1;
    r->finished++;
    if (r->finished == r->count) {
        struct timeval tv = { r->linger, 0 };

        /* -w: the loop runs on, so cached connections meet their time limit */
        if (r->linger <= 0 || event_base_once(r->base, -1, EV_TIMEOUT, linger_done, r, &tv) < 0)
            event_base_loopbreak(r->base);
    } else {
        start_more(r);
    }
}

/* start_more - keep PARALLEL jobs running until COUNT have started */
static void start_more(struct run *r)
{
    while (r->started < r->count && r->started - r->finished < r->parallel) {
        struct one *o = &r->ones[r->started];

        while (r->next_n >= r->dests[r->next_dest].count) {
            r->next_dest++;
            r->next_n = 0;
        }
        o->r = r;
        o->d = &r->dests[r->next_dest];
        r->next_n++;
        route_of(o->d, &r->job.route);
        if (smtp_transport_deliver(r->t, &r->job, done, o) != 0) {
            fprintf(stderr, "smtp_deliver: the transport refused job %ld\n", r->started + 1);
            r->failed = 1;
            event_base_loopbreak(r->base);
            return;
        }
        r->started++;
    }
}

/* content_file - the message with CRLF line ends behind JUNK in an unlinked temp file */
static int content_file(const char *path, off_t *offset, off_t *size)
{
    FILE *in = fopen(path, "rb"), *out = tmpfile();
    struct buf b = BUF_INIT;
    int c, prev = 0, fd;

    if (in == NULL || out == NULL) {
        fprintf(stderr, "smtp_deliver: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    buf_puts(&b, JUNK);
    while ((c = getc(in)) != EOF) {
        if (c == '\n' && prev != '\r')
            buf_putc(&b, '\r');
        buf_putc(&b, c);
        prev = c;
    }
    if (ferror(in) || fclose(in) != 0 || fwrite(b.data, 1, b.len, out) != b.len
        || fflush(out) != 0) {
        fprintf(stderr, "smtp_deliver: copying %s failed\n", path);
        exit(1);
    }
    *offset = (off_t) strlen(JUNK);
    *size = (off_t) (b.len - strlen(JUNK));
    buf_free(&b);
    fd = dup(fileno(out));
    if (fd < 0 || fclose(out) != 0) {
        fprintf(stderr, "smtp_deliver: temp file: %s\n", strerror(errno));
        exit(1);
    }
    return fd;
}

/* tick - the loop ran: remember the longest gap between two ticks */
static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;
    long long now = clock_now_ms();

    (void) fd;
    (void) what;
    if (now - r->last_tick > r->max_gap)
        r->max_gap = now - r->last_tick;
    r->last_tick = now;
}

/* add_dest - append a next hop with count jobs */
static void add_dest(struct run *r, const char *host, int port, int mx, long count)
{
    r->dests = xreallocarray(r->dests, r->ndests + 1, sizeof(*r->dests));
    r->dests[r->ndests].host = host;
    r->dests[r->ndests].port = port;
    r->dests[r->ndests].mx = mx;
    r->dests[r->ndests].count = count;
    r->ndests++;
}

/* parse_dest - "HOST:PORT:N" (split from the right, so HOST may hold colons); the
   host part is cut in place */
static int parse_dest(struct run *r, char *arg)
{
    char *n = strrchr(arg, ':'), *p, *end;
    long port, count;

    if (n == NULL)
        return -1;
    *n++ = 0;
    if ((p = strrchr(arg, ':')) == NULL)
        return -1;
    *p++ = 0;
    port = strtol(p, &end, 10);
    if (*p == 0 || *end != 0 || port < 1 || port > 65535)
        return -1;
    count = strtol(n, &end, 10);
    if (*n == 0 || *end != 0 || count < 1 || count > 100000)
        return -1;
    if (*arg == 0 || strlen(arg) >= sizeof(((struct server_route *) 0)->host))
        return -1;
    add_dest(r, arg, (int) port, 0, count);
    return 0;
}

/* timeout - -t passed before every job reported */
static void timeout(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;

    (void) fd;
    (void) what;
    fprintf(stderr, "smtp_deliver: timed out with %ld of %ld jobs reported\n", r->finished,
            r->count);
    event_base_loopbreak(r->base);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "host", required_argument, NULL, 'H' },
        { "mx", required_argument, NULL, 'M' },
        { "port", required_argument, NULL, 'P' },
        { "dest", required_argument, NULL, 'D' },
        { NULL, 0, NULL, 0 },
    };
    const char *conf_path = NULL, *sender = NULL, *host = NULL;
    const char **rcpts = NULL;
    size_t nrcpt = 0;
    int mx = 0, port = 25, opt, fd;
    long host_count = 1;
    struct dest *extra = NULL;
    size_t nextra = 0;
    long secs = 60;
    struct server_config conf;
    struct cfg_error cerr;
    struct run r;
    struct event *tev, *ticker;
    char err[256];

    memset(&r, 0, sizeof(r));
    r.parallel = 1;
    while ((opt = getopt_long(argc, argv, "c:f:r:n:j:t:w:v", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf_path = optarg; break;
        case 'f': sender = optarg; break;
        case 'r':
            rcpts = xreallocarray(rcpts, nrcpt + 1, sizeof(*rcpts));
            rcpts[nrcpt++] = optarg;
            break;
        case 'n': host_count = strtol(optarg, NULL, 10); break;
        case 'j': r.parallel = strtol(optarg, NULL, 10); break;
        case 't': secs = strtol(optarg, NULL, 10); break;
        case 'w': r.linger = strtol(optarg, NULL, 10); break;
        case 'v': log_set_verbose(1); break;
        case 'H': host = optarg; mx = 0; break;
        case 'M': host = optarg; mx = 1; break;
        case 'P': port = (int) strtol(optarg, NULL, 10); break;
        case 'D':
            if (parse_dest(&r, optarg) != 0)
                usage();
            break;
        default: usage();
        }
    }
    /* the --host/--mx jobs first */
    extra = r.dests;
    nextra = r.ndests;
    r.dests = NULL;
    r.ndests = 0;
    if (host != NULL && host_count >= 1)
        add_dest(&r, host, port, mx, host_count);
    for (size_t i = 0; i < nextra; i++)
        add_dest(&r, extra[i].host, extra[i].port, extra[i].mx, extra[i].count);
    free(extra);
    if (r.ndests == 0 || port < 1 || port > 65535
        || (host != NULL && strlen(host) >= sizeof(r.job.route.host)))
        usage();
    if (conf_path == NULL || sender == NULL || nrcpt == 0 || optind + 1 != argc
        || host_count < 1 || r.parallel < 1 || secs < 1)
        usage();
    for (size_t i = 0; i < r.ndests; i++)
        r.count += r.dests[i].count;
    r.ones = xcalloc((size_t) r.count, sizeof(*r.ones));
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        return 1;
    if (server_config_load(conf_path, &conf, &cerr) != 0) {
        fprintf(stderr, "smtp_deliver: %s\n", cerr.msg);
        return 1;
    }
    fd = content_file(argv[optind], &r.job.content_offset, &r.job.content_size);
    r.job.id = "SMTPDELIVER";
    r.job.sender = sender;
    r.job.rcpts = rcpts;
    r.job.nrcpt = nrcpt;
    r.job.content_fd = fd;
    r.base = event_base_new();
    if (r.base == NULL || (r.t = smtp_transport_new(r.base, &conf, err, sizeof(err))) == NULL) {
        fprintf(stderr, "smtp_deliver: %s\n", r.base ? err : "event_base_new failed");
        return 1;
    }
    struct timeval tv = { secs, 0 };

    struct timeval tick_tv = { 0, TICK_MS * 1000 };

    tev = evtimer_new(r.base, timeout, &r);
    ticker = event_new(r.base, -1, EV_PERSIST, tick, &r);
    if (tev == NULL || evtimer_add(tev, &tv) < 0 || ticker == NULL
        || evtimer_add(ticker, &tick_tv) < 0)
        return 1;
    r.t0 = r.last_tick = clock_now_ms();
    start_more(&r);
    if (!r.failed)
        event_base_dispatch(r.base);
    /* the gap still open when the loop ended counts too */
    if (clock_now_ms() - r.last_tick > r.max_gap)
        r.max_gap = clock_now_ms() - r.last_tick;
    size_t opened = 0;

    smtp_transport_connections(r.t, &opened);
    printf("connections=%zu\n", opened);
    printf("loop_max_gap=%.3f\n", (double) r.max_gap / 1000.0);
    if (fflush(stdout) != 0)
        r.failed = 1;
    smtp_transport_free(r.t);
    event_free(tev);
    event_free(ticker);
    event_base_free(r.base);
    if (close(fd) < 0)
        r.failed = 1;
    server_config_free(&conf);
    free(rcpts);
    free(r.dests);
    free(r.ones);
    if (r.failed)
        return 1;
    return r.finished == r.count ? 0 : 75;
}
