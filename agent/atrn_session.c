#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "agent_config.h"
#include "alloc.h"
#include "atrn_reply.h"
#include "atrn_session.h"
#include "buf.h"
#include "clock.h"
#include "log.h"
#include "sasl_client.h"
#include "smtp_reply.h"

#define LINE_LIMIT 65536    /* a reply line before ATRN, a relayed command or reply line */
#define PIPELINE_MAX 4096   /* relayed commands not yet answered */
#define SHOWN_MAX 1000      /* bytes of a relayed line looked at and logged */
#define LOCAL_CONNECT_MS 10000

enum state {
    ST_CONNECT,     /* implicit TLS handshake */
    ST_GREETING,
    ST_EHLO,
    ST_STARTTLS,
    ST_HANDSHAKE,   /* after STARTTLS's 220 */
    ST_AUTH,
    ST_ATRN,
    ST_QUIT,
    ST_RELAY,
    ST_DONE,
};

enum mech { MECH_CRAM = 1, MECH_PLAIN = 2, MECH_LOGIN = 4 };

/* what a relayed command's reply will answer */
enum pending { PK_GREETING, PK_DATA, PK_EOD, PK_BDAT, PK_BDAT_LAST, PK_QUIT, PK_OTHER };

struct atrn {
    const struct atrn_target *t;
    char *const *domains;
    size_t ndomains;
    struct etrn_session *out;
    struct event_base *base;
    SSL_CTX *ctx;
    struct bufferevent *prov;
    struct bufferevent *local;
    struct event *phase;        /* timeout: connect to the ATRN reply */
    struct event *limit;        /* session_limit */
    struct event *idle;         /* idle_timeout while relaying */
    struct event *recheck;      /* closing: wait for TLS output to leave */
    enum state st;
    int tls_on;
    unsigned offered;           /* enum mech bits */
    int offers_starttls;
    int mech;                   /* the one in use */
    int auth_step;
    struct smtp_reply reply;
    int atrn_code;
    char atrn_text[512];
    char reply_line[SMTP_REPLY_MAX + 1]; /* reply_text()'s */
    /* relay */
    int data_mode;              /* provider is sending message content */
    int line_start;             /* content: the next byte starts a line */
    size_t bdat_left;           /* raw BDAT bytes still to pass */
    unsigned char pend[PIPELINE_MAX];
    size_t pend_head, pend_count;
    struct smtp_reply lreply;
    int quit_ok;                /* the provider's QUIT got 2xx */
    long relayed;
    int closing;                /* one side closed; the other's output drains */
};

/* note - record the first error and worsen the verdict; the loop goes on (the other side
   drains) */
static void note(struct atrn *a, enum etrn_verdict v, const char *error)
{
    if (a->out->error[0] == 0)
        snprintf(a->out->error, sizeof(a->out->error), "%s", error);
    if (v > a->out->verdict)
        a->out->verdict = v;
}

/* fail - record the error and stop the loop */
static void fail(struct atrn *a, enum etrn_verdict v, const char *fmt, ...) LOG_PRINTF(3, 4);
static void fail(struct atrn *a, enum etrn_verdict v, const char *fmt, ...)
{
    char error[sizeof(a->out->error)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(error, sizeof(error), fmt, ap);
    va_end(ap);
    note(a, v, error);
    a->st = ST_DONE;
    event_base_loopbreak(a->base);
}

/* arm - (re)start a timer */
static void arm(struct event *ev, long long sec, long usec)
{
    struct timeval tv = { (time_t) sec, (suseconds_t) usec };

    evtimer_add(ev, &tv);
}

/* class_verdict - a refusal by its reply class */
static enum etrn_verdict class_verdict(int code)
{
    return code >= 500 ? ETRN_PERM : ETRN_TEMP;
}

/* send_line - a command to the provider; shown is what -v logs (NULL: the line) */
static void send_line(struct atrn *a, const char *line, const char *shown)
{
    log_debug("C: %s", shown ? shown : line);
    if (evbuffer_add_printf(bufferevent_get_output(a->prov), "%s\r\n", line) < 0)
        fail(a, ETRN_TEMP, "cannot queue a command for %s", a->t->conn.host);
}

/* send_secret - a credential line: sent, wiped and freed, never logged */
static void send_secret(struct atrn *a, char *line)
{
    if (line == NULL) {
        fail(a, ETRN_PERM, "the provider's CRAM-MD5 challenge is not base64");
        return;
    }
    send_line(a, line, "(credentials not shown)");
    explicit_bzero(line, strlen(line));
    free(line);
}

/* connect_fd - a connected non-blocking socket to one of the addresses; -1 + why */
static int connect_fd(const char *host, int port, const char *pin, long long ms, char *why,
                      size_t whylen)
{
    struct buf names = BUF_INIT;
    char service[16];
    int fd = -1;

    snprintf(service, sizeof(service), "%d", port);
    buf_puts(&names, pin ? pin : host);
    snprintf(why, whylen, "no address");
    for (char *save = NULL, *name = strtok_r(names.data, ",", &save); name && fd < 0;
         name = strtok_r(NULL, ",", &save)) {
        struct addrinfo hints, *res = NULL;
        size_t n = strlen(name);
        int rc;

        if (name[0] == '[' && n > 2 && name[n - 1] == ']') {
            name[n - 1] = 0;
            name++;
        }
        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICSERV | (pin ? AI_NUMERICHOST : 0);
        if ((rc = getaddrinfo(name, service, &hints, &res)) != 0) {
            snprintf(why, whylen, "%s: %s", name, gai_strerror(rc));
            continue;
        }
        for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
            int s = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            int err = 0;
            socklen_t len = sizeof(err);

            if (s < 0) {
                snprintf(why, whylen, "socket: %s", strerror(errno));
                continue;
            }
            /* a relay must not hold back a short reply (Nagle) */
            setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &(int) { 1 }, sizeof(int));
            if (connect(s, ai->ai_addr, ai->ai_addrlen) == 0) {
                fd = s;
                break;
            }
            err = errno;
            if (err == EINPROGRESS) {
                struct pollfd pfd = { s, POLLOUT, 0 };
                int r = poll(&pfd, 1, (int) ms);

                err = r == 0 ? ETIMEDOUT : r < 0 ? errno : 0;
                if (r == 1 && getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                    err = errno;
            }
            if (err == 0) {
                fd = s;
                break;
            }
            snprintf(why, whylen, "connect to %s port %d: %s", name, port, strerror(err));
            close(s);
        }
        freeaddrinfo(res);
    }
    buf_free(&names);
    return fd;
}

/* is_address - host is an IP address (no SNI; verified as an address) */
static int is_address(const char *host)
{
    unsigned char bin[16];

    return inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1;
}

/* new_ssl - an SSL for the provider: SNI and the name or address to verify */
static SSL *new_ssl(struct atrn *a)
{
    SSL *ssl = SSL_new(a->ctx);

    if (ssl == NULL)
        return NULL;
    if (!is_address(a->t->conn.host))
        SSL_set_tlsext_host_name(ssl, a->t->conn.host);
    if (a->t->conn.tls_verify) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

        if (is_address(a->t->conn.host))
            X509_VERIFY_PARAM_set1_ip_asc(param, a->t->conn.host);
        else
            SSL_set1_host(ssl, a->t->conn.host);
    }
    return ssl;
}

/* tls_failure - why a handshake failed, and whether that is permanent */
static void tls_failure(struct atrn *a, struct bufferevent *bev)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = bufferevent_get_openssl_error(bev);
    char text[256];

    if (vr != X509_V_OK) {
        fail(a, ETRN_PERM, "TLS: certificate of %s not verified: %s", a->t->conn.host,
             X509_verify_cert_error_string(vr));
        return;
    }
    if (e)
        ERR_error_string_n(e, text, sizeof(text));
    else
        snprintf(text, sizeof(text), "connection closed during the handshake");
    fail(a, ETRN_PERM, "TLS handshake with %s failed: %s", a->t->conn.host, text);
}

static void prov_read(struct bufferevent *bev, void *ctx);
static void prov_event(struct bufferevent *bev, short what, void *ctx);

/* start_tls - put TLS under the provider connection (after STARTTLS's 220) */
static void start_tls(struct atrn *a)
{
    SSL *ssl = new_ssl(a);
    struct bufferevent *tbev;

    if (evbuffer_get_length(bufferevent_get_input(a->prov)) > 0) {
        fail(a, ETRN_PERM, "%s sent data after its STARTTLS reply (not trusted)", a->t->conn.host);
        SSL_free(ssl);
        return;
    }
    if (ssl == NULL || (tbev = bufferevent_openssl_filter_new(a->base, a->prov, ssl,
                                                              BUFFEREVENT_SSL_CONNECTING,
                                                              BEV_OPT_CLOSE_ON_FREE)) == NULL) {
        SSL_free(ssl);
        fail(a, ETRN_TEMP, "TLS setup failed");
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
    a->prov = tbev;
    bufferevent_setcb(tbev, prov_read, NULL, prov_event, a);
    bufferevent_enable(tbev, EV_READ | EV_WRITE);
    a->st = ST_HANDSHAKE;
}

/* send_ehlo - EHLO and forget what the previous one offered */
static void send_ehlo(struct atrn *a)
{
    char line[300];

    a->offered = 0;
    a->offers_starttls = 0;
    snprintf(line, sizeof(line), "EHLO %s", a->t->conn.helo);
    send_line(a, line, NULL);
    a->st = ST_EHLO;
}

/* parse_ehlo - STARTTLS and AUTH mechanisms from the EHLO reply */
static void parse_ehlo(struct atrn *a)
{
    char line[1024];

    for (size_t i = 1; smtp_reply_line(&a->reply, i, line, sizeof(line)); i++) {
        char *save = NULL, *word = strtok_r(line, " =", &save);

        if (word == NULL)
            continue;
        if (strcasecmp(word, "STARTTLS") == 0)
            a->offers_starttls = 1;
        if (strcasecmp(word, "AUTH") != 0)
            continue;
        while ((word = strtok_r(NULL, " ", &save)) != NULL) {
            if (strcasecmp(word, "CRAM-MD5") == 0)
                a->offered |= MECH_CRAM;
            else if (strcasecmp(word, "PLAIN") == 0)
                a->offered |= MECH_PLAIN;
            else if (strcasecmp(word, "LOGIN") == 0)
                a->offered |= MECH_LOGIN;
        }
    }
}

/* start_auth - the mechanism: CRAM-MD5 when offered, else PLAIN/LOGIN inside TLS only */
static void start_auth(struct atrn *a)
{
    a->st = ST_AUTH;
    a->auth_step = 0;
    if (a->offered & MECH_CRAM) {
        a->mech = MECH_CRAM;
        send_line(a, "AUTH CRAM-MD5", NULL);
    } else if (a->offered == 0) {
        fail(a, ETRN_PERM, "%s offered no AUTH%s; ATRN needs a login, nothing sent", a->t->conn.host,
             a->tls_on ? "" : " (without TLS)");
    } else if (!a->tls_on) {
        fail(a, ETRN_PERM, "%s offers no CRAM-MD5 and the connection is not encrypted: "
             "the password is not sent in clear (set tls = starttls or tls)", a->t->conn.host);
    } else if (a->offered & MECH_PLAIN) {
        struct buf cmd = BUF_INIT;
        char *ir = sasl_plain(a->t->conn.username, a->t->conn.password);

        a->mech = MECH_PLAIN;
        buf_printf(&cmd, "AUTH PLAIN %s", ir);
        send_line(a, buf_cstr(&cmd), "AUTH PLAIN (credentials not shown)");
        explicit_bzero(cmd.data, cmd.len);
        explicit_bzero(ir, strlen(ir));
        free(ir);
        buf_free(&cmd);
    } else {
        a->mech = MECH_LOGIN;
        send_line(a, "AUTH LOGIN", NULL);
    }
}

/* reply_text - the reply's lines without their codes on one line (common/smtp_reply) */
static const char *reply_text(struct atrn *a)
{
    return smtp_reply_oneline(&a->reply, a->reply_line, sizeof(a->reply_line));
}

/* auth_reply - one reply during AUTH */
static void auth_reply(struct atrn *a)
{
    const struct smtp_reply *r = &a->reply;
    char first[SMTP_REPLY_MAX + 1];

    if (r->code == 235) {
        log_debug("authenticated as %s", a->t->conn.username);
        a->st = ST_ATRN;
        return;
    }
    if (r->code != 334 || a->auth_step >= (a->mech == MECH_LOGIN ? 2 : a->mech == MECH_CRAM ? 1 : 0)) {
        fail(a, r->code >= 400 && r->code < 500 ? ETRN_TEMP : ETRN_PERM,
             "AUTH %s as %s refused: %d %s", a->mech == MECH_CRAM ? "CRAM-MD5"
             : a->mech == MECH_PLAIN ? "PLAIN" : "LOGIN", a->t->conn.username, r->code, reply_text(a));
        return;
    }
    smtp_reply_line(r, 0, first, sizeof(first));
    if (a->mech == MECH_CRAM)
        send_secret(a, sasl_cram_md5(a->t->conn.username, a->t->conn.password, first));
    else
        send_secret(a, sasl_base64(a->auth_step == 0 ? a->t->conn.username : a->t->conn.password));
    a->auth_step++;
}

static void start_relay(struct atrn *a);

/* send_atrn - the ATRN command with the domains */
static void send_atrn(struct atrn *a, char *const *domains, size_t ndomains)
{
    struct buf cmd = BUF_INIT;
    const char *why;
    size_t bad;

    if (atrn_command(domains, ndomains, &cmd, &bad, &why) != 0) {
        fail(a, ETRN_PERM, "ATRN not sent: %s%s%s", bad < ndomains ? domains[bad] : "",
             bad < ndomains ? ": " : "", why);
    } else {
        send_line(a, buf_cstr(&cmd), NULL);
        a->st = ST_ATRN;
    }
    buf_free(&cmd);
}

/* expect - the reply has the code the step needs; else fail with "what: code text" */
static int expect(struct atrn *a, int code, const char *what)
{
    const struct smtp_reply *r = &a->reply;

    if (r->code == code)
        return 1;
    fail(a, class_verdict(r->code), "%s: %d %s", what, r->code, reply_text(a));
    return 0;
}

/* handle_reply - one complete reply before the relay */
static void handle_reply(struct atrn *a)
{
    const struct smtp_reply *r = &a->reply;

    switch (a->st) {
    case ST_GREETING:
        if (expect(a, 220, "greeting"))
            send_ehlo(a);
        return;
    case ST_EHLO:
        if (!expect(a, 250, "EHLO refused"))
            return;
        parse_ehlo(a);
        if (!a->tls_on && a->t->conn.tls == AGENT_TLS_STARTTLS) {
            if (!a->offers_starttls) {
                fail(a, ETRN_PERM, "%s offered no STARTTLS (tls = starttls); nothing sent",
                     a->t->conn.host);
                return;
            }
            send_line(a, "STARTTLS", NULL);
            a->st = ST_STARTTLS;
            return;
        }
        start_auth(a);
        return;
    case ST_STARTTLS:
        if (expect(a, 220, "STARTTLS refused"))
            start_tls(a);
        return;
    case ST_AUTH:
        auth_reply(a);
        if (a->st == ST_ATRN)
            send_atrn(a, a->domains, a->ndomains);
        return;
    case ST_ATRN:
        a->atrn_code = r->code;
        snprintf(a->atrn_text, sizeof(a->atrn_text), "%s", reply_text(a));
        event_del(a->phase);
        if (r->code == 250) {
            start_relay(a);
            return;
        }
        send_line(a, "QUIT", NULL);
        a->st = ST_QUIT;
        arm(a->phase, 10, 0);
        return;
    case ST_QUIT:
        a->st = ST_DONE;
        event_base_loopbreak(a->base);
        return;
    default:
        return;
    }
}

/* --- the relay ------------------------------------------------------------ */

/* pend_push - a relayed command waits for its reply; -1 when too many do */
static int pend_push(struct atrn *a, enum pending kind)
{
    if (a->pend_count >= PIPELINE_MAX)
        return -1;
    a->pend[(a->pend_head + a->pend_count++) % PIPELINE_MAX] = (unsigned char) kind;
    return 0;
}

/* pend_pop - what the reply that just arrived answers; PK_OTHER when nothing waited */
static enum pending pend_pop(struct atrn *a)
{
    enum pending kind;

    if (a->pend_count == 0)
        return PK_OTHER;
    kind = (enum pending) a->pend[a->pend_head];
    a->pend_head = (a->pend_head + 1) % PIPELINE_MAX;
    a->pend_count--;
    return kind;
}

/* command_kind - which reply a relayed command line will get; BDAT's size into *size */
static enum pending command_kind(const char *line, size_t *size)
{
    if (strcasecmp(line, "DATA") == 0)
        return PK_DATA;
    if (strcasecmp(line, "QUIT") == 0)
        return PK_QUIT;
    if (strncasecmp(line, "BDAT ", 5) == 0) {
        char *end;
        unsigned long long n = strtoull(line + 5, &end, 10);

        *size = (size_t) n;
        while (*end == ' ')
            end++;
        return strcasecmp(end, "LAST") == 0 ? PK_BDAT_LAST : PK_BDAT;
    }
    return PK_OTHER;
}

/* copy_line - the first bytes of a line (without CR LF) into out */
static size_t copy_line(struct evbuffer *in, size_t linelen, char *out, size_t outlen)
{
    size_t n = linelen < outlen - 1 ? linelen : outlen - 1;
    ev_ssize_t got = evbuffer_copyout(in, out, n);

    n = got < 0 ? 0 : (size_t) got;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        n--;
    out[n] = 0;
    return n;
}

/* relay_end - stop relaying: an error (verdict TEMP) unless clean */
static void relay_end(struct atrn *a, const char *error)
{
    if (error)
        fail(a, ETRN_TEMP, "%s", error);
    a->st = ST_DONE;
    event_base_loopbreak(a->base);
}

/* out_pending - bytes still to leave through a bufferevent (and a TLS filter's socket) */
static size_t out_pending(struct bufferevent *bev)
{
    struct bufferevent *under = bufferevent_get_underlying(bev);

    return evbuffer_get_length(bufferevent_get_output(bev))
           + (under ? evbuffer_get_length(bufferevent_get_output(under)) : 0);
}

/* drain_check - once the surviving side's output left, the session ends */
static void drain_check(evutil_socket_t fd, short what, void *ctx)
{
    struct atrn *a = ctx;
    struct bufferevent *bev = a->closing == 1 ? a->local : a->prov;

    (void) fd;
    (void) what;
    if (bev == NULL || out_pending(bev) == 0) {
        relay_end(a, NULL);
        return;
    }
    arm(a->recheck, 0, 20000);
}

/* relay_closed - one side closed (1 provider, 2 local): judge, then let the other drain */
static void relay_closed(struct atrn *a, int side, short what)
{
    char error[300];

    if (a->closing) {
        relay_end(a, NULL); /* the other side is gone too: nothing left to pass */
        return;
    }
    a->closing = side;
    error[0] = 0;
    if (side == 1 && !a->quit_ok && a->pend_count == 1 && a->pend[a->pend_head] == PK_GREETING)
        snprintf(error, sizeof(error), "%s %s after ATRN's 250, before delivering anything",
                 a->t->conn.host, what & BEV_EVENT_ERROR ? "failed" : "closed the connection");
    else if (side == 1 && !a->quit_ok && (a->pend_count > 0 || a->data_mode || a->bdat_left))
        snprintf(error, sizeof(error), "%s %s during a message or with %zu commands unanswered "
                 "(the provider keeps what the site's MTA did not accept)", a->t->conn.host,
                 what & BEV_EVENT_ERROR ? "failed" : "closed the connection", a->pend_count);
    else if (side == 1 && !a->quit_ok)
        snprintf(error, sizeof(error), "%s %s without QUIT after %ld message%s: more may be "
                 "waiting", a->t->conn.host, what & BEV_EVENT_ERROR ? "failed" : "closed the connection",
                 a->relayed, a->relayed == 1 ? "" : "s");
    else if (side == 2 && !a->quit_ok)
        snprintf(error, sizeof(error), "the site's MTA %s %s the connection before the "
                 "provider's QUIT", a->t->local_smtp, what & BEV_EVENT_ERROR ? "broke" : "closed");
    if (error[0])
        note(a, ETRN_TEMP, error);
    if (side == 1) {
        bufferevent_free(a->prov);
        a->prov = NULL;
    } else {
        bufferevent_free(a->local);
        a->local = NULL;
    }
    drain_check(-1, 0, a);
}

/* reply_done - a complete reply of the site's MTA, judged against its command */
static void reply_done(struct atrn *a)
{
    const struct smtp_reply *r = &a->lreply;

    switch (pend_pop(a)) {
    case PK_DATA:
        if (r->code == 354) {
            a->data_mode = 1;
            a->line_start = 1;
        }
        break;
    case PK_EOD:
    case PK_BDAT_LAST:
        if (r->code >= 200 && r->code < 300)
            a->relayed++;
        break;
    case PK_QUIT:
        if (r->code >= 200 && r->code < 300)
            a->quit_ok = 1;
        break;
    default:
        break;
    }
}

/* relay_from_provider - the provider's commands and content to the site's MTA */
static void relay_from_provider(struct atrn *a)
{
    struct evbuffer *in = bufferevent_get_input(a->prov);
    struct evbuffer *out = bufferevent_get_output(a->local);
    char line[SHOWN_MAX + 1];

    while (a->st == ST_RELAY && evbuffer_get_length(in) > 0) {
        size_t len = evbuffer_get_length(in), linelen;
        struct evbuffer_ptr eol;

        if (a->bdat_left > 0) {
            size_t n = len < a->bdat_left ? len : a->bdat_left;

            evbuffer_remove_buffer(in, out, n);
            a->bdat_left -= n;
            continue;
        }
        eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
        if (eol.pos < 0) {
            if (a->data_mode && (!a->line_start || len >= 3)) {
                evbuffer_remove_buffer(in, out, len); /* part of a long content line */
                a->line_start = 0;
            } else if (len > LINE_LIMIT) {
                relay_end(a, "the provider sent a command line over 64 KB");
            }
            return;
        }
        linelen = (size_t) eol.pos + 1;
        if (a->data_mode) {
            if (a->line_start && linelen == 3) {
                char dot[3];

                if (evbuffer_copyout(in, dot, 3) == 3 && memcmp(dot, ".\r\n", 3) == 0) {
                    a->data_mode = 0;
                    if (pend_push(a, PK_EOD) != 0) {
                        relay_end(a, "too many commands unanswered");
                        return;
                    }
                }
            }
            a->line_start = 1;
            evbuffer_remove_buffer(in, out, linelen);
            continue;
        }
        size_t size = 0;
        enum pending kind;

        copy_line(in, linelen, line, sizeof(line));
        kind = command_kind(line, &size);
        log_debug("provider: %s", strncasecmp(line, "AUTH", 4) == 0 ? "AUTH (not shown)" : line);
        if (pend_push(a, kind) != 0) {
            relay_end(a, "the provider sent over 4096 commands without waiting for replies");
            return;
        }
        evbuffer_remove_buffer(in, out, linelen);
        if (kind == PK_BDAT || kind == PK_BDAT_LAST)
            a->bdat_left = size;
    }
}

/* relay_from_local - the site's MTA's replies to the provider, followed */
static void relay_from_local(struct atrn *a)
{
    struct evbuffer *in = bufferevent_get_input(a->local);
    struct evbuffer *out = bufferevent_get_output(a->prov);
    char line[SHOWN_MAX + 1];

    while (a->st == ST_RELAY && evbuffer_get_length(in) > 0) {
        struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
        size_t linelen, n;

        if (eol.pos < 0) {
            if (evbuffer_get_length(in) > LINE_LIMIT)
                relay_end(a, "the site's MTA sent a reply line over 64 KB");
            return;
        }
        linelen = (size_t) eol.pos + 1;
        n = copy_line(in, linelen, line, sizeof(line));
        evbuffer_remove_buffer(in, out, linelen);
        log_debug("local: %s", line);
        switch (smtp_reply_feed(&a->lreply, line, n)) {
        case SMTP_REPLY_MORE:
            continue;
        case SMTP_REPLY_DONE:
            reply_done(a);
            break;
        default:
            log_warn("the site's MTA %s sent a line that is not an SMTP reply; relayed as is",
                     a->t->local_smtp);
            break;
        }
        smtp_reply_init(&a->lreply);
    }
}

/* idle_fired - no byte from either side for idle_timeout */
static void idle_fired(evutil_socket_t fd, short what, void *ctx)
{
    struct atrn *a = ctx;
    char error[200];

    (void) fd;
    (void) what;
    snprintf(error, sizeof(error), "relay idle for %llds (idle_timeout); both connections closed",
             a->t->idle_timeout);
    relay_end(a, error);
}

/* touch - activity: the idle timer starts again */
static void touch(struct atrn *a)
{
    arm(a->idle, (time_t) a->t->idle_timeout, 0);
}

static void local_read(struct bufferevent *bev, void *ctx)
{
    struct atrn *a = ctx;

    (void) bev;
    touch(a);
    if (a->prov)
        relay_from_local(a);
}

static void local_event(struct bufferevent *bev, short what, void *ctx)
{
    struct atrn *a = ctx;

    (void) bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (a->prov)
            relay_from_local(a);
        relay_closed(a, 2, what);
    }
}

/* start_relay - ATRN 250: connect the site's MTA and pass bytes both ways */
static void start_relay(struct atrn *a)
{
    char why[300], *host = NULL;
    const char *reason;
    int port = 0, fd;

    if (agent_parse_hostport(a->t->local_smtp, &host, &port, &reason) != 0)
        log_panic("local_smtp \"%s\" passed validation but does not parse", a->t->local_smtp);
    fd = connect_fd(host, port, NULL, LOCAL_CONNECT_MS, why, sizeof(why));
    free(host);
    if (fd < 0) {
        fail(a, ETRN_TEMP, "ATRN accepted but local_smtp %s: %s; connection dropped, the mail "
             "stays at the provider", a->t->local_smtp, why);
        return;
    }
    a->local = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (a->local == NULL) {
        close(fd);
        fail(a, ETRN_TEMP, "cannot set up the local connection");
        return;
    }
    log_debug("relaying between %s and %s", a->t->conn.host, a->t->local_smtp);
    bufferevent_setcb(a->local, local_read, NULL, local_event, a);
    bufferevent_enable(a->local, EV_READ | EV_WRITE);
    smtp_reply_init(&a->lreply);
    a->relayed = 0;
    a->st = ST_RELAY;
    pend_push(a, PK_GREETING);
    touch(a);
}

/* --- the provider connection ---------------------------------------------- */

static void prov_read(struct bufferevent *bev, void *ctx)
{
    struct atrn *a = ctx;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n;
    char *line;

    if (a->st == ST_RELAY) {
        touch(a);
        if (a->local)
            relay_from_provider(a);
        return;
    }
    while (a->st != ST_DONE && a->st != ST_HANDSHAKE && a->st != ST_RELAY
           && (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
        enum smtp_reply_state rs;

        log_debug("S: %s", line);
        rs = smtp_reply_feed(&a->reply, line, n);
        free(line);
        if (rs == SMTP_REPLY_MORE)
            continue;
        if (rs != SMTP_REPLY_DONE) {
            fail(a, ETRN_TEMP, "%s sent %s", a->t->conn.host,
                 rs == SMTP_REPLY_TOO_LONG ? "an endless reply" : "a line that is not an SMTP reply");
            return;
        }
        handle_reply(a);
        smtp_reply_init(&a->reply);
    }
    if (a->st == ST_RELAY && a->local && evbuffer_get_length(in) > 0)
        relay_from_provider(a);
    else if (a->st != ST_DONE && a->st != ST_RELAY && evbuffer_get_length(in) > LINE_LIMIT)
        fail(a, ETRN_TEMP, "%s sent a reply line over 64 KB", a->t->conn.host);
}

static void prov_event(struct bufferevent *bev, short what, void *ctx)
{
    struct atrn *a = ctx;

    if (what & BEV_EVENT_CONNECTED) {
        a->tls_on = 1;
        log_debug("TLS established with %s: %s %s", a->t->conn.host,
                  SSL_get_version(bufferevent_openssl_get_ssl(bev)),
                  SSL_get_cipher_name(bufferevent_openssl_get_ssl(bev)));
        if (a->st == ST_CONNECT)
            a->st = ST_GREETING;
        else
            send_ehlo(a);
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    if (a->st == ST_RELAY) {
        if (a->local)
            relay_from_provider(a);
        relay_closed(a, 1, what);
        return;
    }
    if (a->st == ST_HANDSHAKE || a->st == ST_CONNECT) {
        tls_failure(a, bev);
        return;
    }
    if (a->st == ST_QUIT) {
        a->st = ST_DONE;
        event_base_loopbreak(a->base);
        return;
    }
    fail(a, ETRN_TEMP, "%s %s%s%s", a->t->conn.host,
         what & BEV_EVENT_ERROR ? "connection failed" : "closed the connection",
         a->reply.lines ? " after " : "", a->reply.lines ? a->reply.text : "");
}

/* phase_fired - connect to ATRN reply (or QUIT's reply) took too long */
static void phase_fired(evutil_socket_t fd, short what, void *ctx)
{
    struct atrn *a = ctx;

    (void) fd;
    (void) what;
    if (a->st == ST_QUIT) {
        a->st = ST_DONE;
        event_base_loopbreak(a->base);
        return;
    }
    fail(a, ETRN_TEMP, "no ATRN reply from %s within %llds (timeout)", a->t->conn.host, a->t->conn.timeout);
}

/* limit_fired - session_limit reached */
static void limit_fired(evutil_socket_t fd, short what, void *ctx)
{
    struct atrn *a = ctx;

    (void) fd;
    (void) what;
    fail(a, ETRN_TEMP, "session_limit of %llds reached; connections closed", a->t->session_limit);
}

/* make_ctx - the TLS client context: verification as configured */
static SSL_CTX *make_ctx(const struct atrn_target *t, char *why, size_t whylen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        snprintf(why, whylen, "TLS context: %s", ERR_reason_error_string(ERR_get_error()));
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (t->conn.tls_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if ((t->conn.ca_file ? SSL_CTX_load_verify_locations(ctx, t->conn.ca_file, NULL)
                        : SSL_CTX_set_default_verify_paths(ctx)) != 1) {
            snprintf(why, whylen, "ca_file %s: %s", t->conn.ca_file ? t->conn.ca_file : "(system)",
                     ERR_reason_error_string(ERR_get_error()));
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

/* fill_results - one result per domain from the ATRN reply */
static void fill_results(struct atrn *a, char *const *domains, size_t ndomains)
{
    struct etrn_session *out = a->out;

    out->results = xcalloc(ndomains, sizeof(*out->results));
    out->count = ndomains;
    for (size_t i = 0; i < ndomains; i++) {
        struct etrn_domain_result *r = &out->results[i];

        r->domain = xstrdup(domains[i]);
        r->pending = -1;
        if (a->atrn_code) {
            r->code = a->atrn_code;
            r->text = xstrdup(a->atrn_text);
            r->verdict = atrn_reply_classify(r->code, &r->meaning);
        } else {
            r->verdict = out->verdict;
            r->meaning = "not sent";
            r->text = xstrdup(out->error);
        }
        if (r->verdict > out->verdict)
            out->verdict = r->verdict;
    }
}

/* atrn_session_run - one ODMR session; contract in atrn_session.h */
void atrn_session_run(const struct atrn_target *t, char *const *domains, size_t ndomains,
                      struct etrn_session *out)
{
    struct atrn a;
    char why[300];
    int fd;

    memset(out, 0, sizeof(*out));
    memset(&a, 0, sizeof(a));
    out->verdict = ETRN_OK;
    out->relayed = -1;
    a.t = t;
    a.domains = domains;
    a.ndomains = ndomains;
    a.out = out;
    a.relayed = -1;
    smtp_reply_init(&a.reply);
    if (t->conn.tls != AGENT_TLS_NONE && (a.ctx = make_ctx(t, why, sizeof(why))) == NULL) {
        snprintf(out->error, sizeof(out->error), "%s", why);
        out->verdict = ETRN_PERM;
        fill_results(&a, domains, ndomains);
        return;
    }
    if ((a.base = event_base_new()) == NULL)
        log_fatal("event_base_new failed");
    a.phase = evtimer_new(a.base, phase_fired, &a);
    a.limit = evtimer_new(a.base, limit_fired, &a);
    a.idle = evtimer_new(a.base, idle_fired, &a);
    a.recheck = evtimer_new(a.base, drain_check, &a);
    if (!a.phase || !a.limit || !a.idle || !a.recheck)
        log_fatal("evtimer_new failed");
    arm(a.limit, (time_t) t->session_limit, 0);
    arm(a.phase, (time_t) t->conn.timeout, 0);

    fd = connect_fd(t->conn.host, t->conn.port, t->conn.pin_addr, t->conn.timeout * 1000, why, sizeof(why));
    if (fd < 0) {
        fail(&a, ETRN_TEMP, "%s", why);
    } else {
        if (t->conn.tls == AGENT_TLS_IMPLICIT) {
            SSL *ssl = new_ssl(&a);

            a.prov = ssl ? bufferevent_openssl_socket_new(a.base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
                                                          BEV_OPT_CLOSE_ON_FREE)
                         : NULL;
            if (a.prov)
                bufferevent_openssl_set_allow_dirty_shutdown(a.prov, 1);
            a.st = ST_CONNECT;
        } else {
            a.prov = bufferevent_socket_new(a.base, fd, BEV_OPT_CLOSE_ON_FREE);
            a.st = ST_GREETING;
        }
        if (a.prov == NULL) {
            close(fd);
            fail(&a, ETRN_TEMP, "cannot set up the connection to %s", t->conn.host);
        } else {
            bufferevent_setcb(a.prov, prov_read, NULL, prov_event, &a);
            bufferevent_enable(a.prov, EV_READ | EV_WRITE);
            event_base_dispatch(a.base);
        }
    }
    if (a.prov)
        bufferevent_free(a.prov);
    if (a.local)
        bufferevent_free(a.local);
    event_free(a.phase);
    event_free(a.limit);
    event_free(a.idle);
    event_free(a.recheck);
    event_base_free(a.base);
    if (a.ctx)
        SSL_CTX_free(a.ctx);
    out->relayed = a.relayed;
    fill_results(&a, domains, ndomains);
}
