/*
 * smtp_attach - hand an already connected (optionally TLS) connection to the SMTP
 * client, as the ODMR turn will, and send one message over it; for end-to-end tests.
 *
 *   smtp_attach -c server-lite.ini -f SENDER -r RCPT [-r RCPT]... [--tls] [--no-greeting]
 *               [-v] --port P MESSAGEFILE
 *
 * Connects to 127.0.0.1:P itself; with --tls it runs a TLS handshake (no
 * certificate check) through an OpenSSL bufferevent filter of its own first.
 * Then smtp_client_attach() takes the bufferevent (tls_active = --tls), waits
 * for the 220 greeting (unless --no-greeting: it starts with EHLO), and the
 * message (LF line ends become CRLF) goes out with smtp_client_send(). Prints
 * one line per recipient, "RCPT STATUS DSN TEXT", then "setup=ok|failed TEXT"
 * and "tls=0|1" (smtp_client_tls). Exit 0 when the session reported, 75 after
 * 30 s, 1 on a usage or setup error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <getopt.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "delivery.h"
#include "log.h"
#include "server_config.h"
#include "smtp_client.h"

struct run {
    struct event_base *base;
    struct smtp_client_conf cc;
    struct smtp_client_msg msg;
    struct delivery_report rep;
    struct smtp_client *c;
    struct bufferevent *bev;
    SSL_CTX *ctx;
    int tls, greeting, reported, port;
};

static _Noreturn void usage(void)
{
    fprintf(stderr, "usage: smtp_attach -c CONF -f SENDER -r RCPT... [--tls] [--no-greeting] [-v] "
                    "--port P MESSAGEFILE\n");
    exit(1);
}

/* content - the message with CRLF line ends in an unlinked temp file */
static int content(const char *path, off_t *size)
{
    FILE *in = fopen(path, "rb"), *out = tmpfile();
    struct buf b = BUF_INIT;
    int c, prev = 0, fd;

    if (in == NULL || out == NULL) {
        fprintf(stderr, "smtp_attach: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    while ((c = getc(in)) != EOF) {
        if (c == '\n' && prev != '\r')
            buf_putc(&b, '\r');
        buf_putc(&b, c);
        prev = c;
    }
    if (ferror(in) || fclose(in) != 0 || fwrite(b.data, 1, b.len, out) != b.len
        || fflush(out) != 0 || (fd = dup(fileno(out))) < 0 || fclose(out) != 0) {
        fprintf(stderr, "smtp_attach: copying %s failed\n", path);
        exit(1);
    }
    *size = (off_t) b.len;
    buf_free(&b);
    return fd;
}

/* sent - the transaction ended: print, stop */
static void sent(void *ctx, struct smtp_client *c, enum smtp_client_after after)
{
    struct run *r = ctx;

    (void) after;
    for (size_t i = 0; i < r->rep.nrcpt; i++)
        printf("%s %s %s %s\n", r->msg.rcpts[i], delivery_status_name(r->rep.rcpt[i].status),
               r->rep.rcpt[i].dsn, r->rep.rcpt[i].text);
    printf("setup=ok relay=%s\ntls=%d\n", r->rep.relay, smtp_client_tls(c));
    r->reported = 1;
    event_base_loopbreak(r->base);
}

/* ready - the attached session greeted and said EHLO, or failed */
static void ready(void *ctx, struct smtp_client *c, const struct smtp_client_setup *setup)
{
    struct run *r = ctx;

    if (!setup->ok) {
        printf("setup=failed %s %s\n", setup->dsn, setup->text);
        r->reported = 1;
        event_base_loopbreak(r->base);
        return;
    }
    if (smtp_client_send(c, &r->msg, &r->rep, sent, r) < 0) {
        printf("setup=failed send refused\n");
        event_base_loopbreak(r->base);
    }
}

/* attach - the connection (and its TLS) is up: the client takes it over */
static void attach(struct run *r, struct bufferevent *bev)
{
    r->c = smtp_client_attach(r->base, &r->cc, bev, r->tls, r->greeting, "127.0.0.1", "127.0.0.1",
                              r->port, ready, r);
}

/* conn_cb - our own connection's events, before the client has it */
static void conn_cb(struct bufferevent *bev, short what, void *arg)
{
    struct run *r = arg;

    if (!(what & BEV_EVENT_CONNECTED)) {
        printf("setup=failed our own connection: event 0x%x\n", (unsigned) what);
        event_base_loopbreak(r->base);
        return;
    }
    if (r->tls && bufferevent_get_underlying(bev) == NULL) {
        SSL *ssl = SSL_new(r->ctx);
        struct bufferevent *tbev;

        bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
        tbev = bufferevent_openssl_filter_new(r->base, bev, ssl, BUFFEREVENT_SSL_CONNECTING,
                                              BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (tbev == NULL) {
            printf("setup=failed no TLS filter\n");
            event_base_loopbreak(r->base);
            return;
        }
        bufferevent_setcb(tbev, NULL, NULL, conn_cb, r);
        bufferevent_enable(tbev, EV_READ | EV_WRITE);
        return;
    }
    attach(r, bev);
}

static void timeout(evutil_socket_t fd, short what, void *arg)
{
    struct run *r = arg;

    (void) fd;
    (void) what;
    fprintf(stderr, "smtp_attach: timed out\n");
    event_base_loopbreak(r->base);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "port", required_argument, NULL, 'P' },
        { "tls", no_argument, NULL, 'T' },
        { "no-greeting", no_argument, NULL, 'G' },
        { NULL, 0, NULL, 0 },
    };
    const char *conf_path = NULL, *sender = NULL;
    const char **rcpts = NULL;
    size_t nrcpt = 0;
    int port = 0, opt;
    struct server_config conf;
    struct cfg_error cerr;
    struct run r;
    struct sockaddr_in sin;
    struct event *tev;
    struct timeval tv = { 30, 0 };

    memset(&r, 0, sizeof(r));
    r.greeting = 1;
    while ((opt = getopt_long(argc, argv, "c:f:r:v", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': conf_path = optarg; break;
        case 'f': sender = optarg; break;
        case 'r':
            rcpts = xreallocarray(rcpts, nrcpt + 1, sizeof(*rcpts));
            rcpts[nrcpt++] = optarg;
            break;
        case 'v': log_set_verbose(1); break;
        case 'P': port = (int) strtol(optarg, NULL, 10); break;
        case 'T': r.tls = 1; break;
        case 'G': r.greeting = 0; break;
        default: usage();
        }
    }
    if (conf_path == NULL || sender == NULL || nrcpt == 0 || port < 1 || port > 65535
        || optind + 1 != argc)
        usage();
    r.port = port;
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        return 1;
    if (server_config_load(conf_path, &conf, &cerr) != 0) {
        fprintf(stderr, "smtp_attach: %s\n", cerr.msg);
        return 1;
    }
    r.ctx = SSL_CTX_new(TLS_client_method());
    if (r.ctx == NULL)
        return 1;
    SSL_CTX_set_verify(r.ctx, SSL_VERIFY_NONE, NULL);
    smtp_client_conf_set(&r.cc, &conf, r.ctx);
    r.msg.id = "ATTACH";
    r.msg.sender = sender;
    r.msg.rcpts = rcpts;
    r.msg.nrcpt = nrcpt;
    r.msg.fd = content(argv[optind], &r.msg.size);
    delivery_report_init(&r.rep, nrcpt);
    r.base = event_base_new();
    r.bev = bufferevent_socket_new(r.base, -1, BEV_OPT_CLOSE_ON_FREE);
    tev = evtimer_new(r.base, timeout, &r);
    if (r.base == NULL || r.bev == NULL || tev == NULL || evtimer_add(tev, &tv) < 0)
        return 1;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bufferevent_setcb(r.bev, NULL, NULL, conn_cb, &r);
    bufferevent_enable(r.bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(r.bev, (struct sockaddr *) &sin, sizeof(sin)) < 0) {
        printf("setup=failed connect: %s\n", strerror(errno));
        return 1;
    }
    event_base_dispatch(r.base);
    if (fflush(stdout) != 0)
        r.reported = 0;
    if (r.c)
        smtp_client_free(r.c);
    else if (r.bev)
        bufferevent_free(r.bev);
    event_free(tev);
    event_base_free(r.base);
    SSL_CTX_free(r.ctx);
    delivery_report_free(&r.rep);
    close(r.msg.fd);
    server_config_free(&conf);
    free(rcpts);
    return r.reported ? 0 : 75;
}
