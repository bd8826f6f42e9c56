/*
 * smtp_client - the outbound SMTP session (contract: smtp_client.h).
 *
 * One state enum and one reply handler per state. Every command that expects
 * a reply is written with the stage that reply belongs to; the queue of
 * outstanding commands (cmds[nreplied .. nwritten)) is what PIPELINING needs:
 * MAIL, every RCPT and DATA go out in one write and each reply is matched to
 * the oldest outstanding command. Without PIPELINING the next command goes
 * out when the previous reply came. One timer per session carries the
 * deadline of the stage in progress.
 *
 * Callbacks to the owner (ready, sent, lost, gone) are always the last thing a
 * handler does: the owner may free the session inside them.
 */
#define LOG_SERVICE "smtp" /* its log lines: syslog_name/smtp[pid] */

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "log.h"
#include "loop.h"
#include "smtp_client.h"
#include "smtp_reply.h"

#define BODY_CHUNK 65536       /* content bytes read per pread */
#define BODY_HIGH (256 * 1024) /* stop filling the output buffer above this */
#define BODY_LOW (64 * 1024)   /* refill when the output drains below this */
#define LINE_MAX_IN (SMTP_REPLY_LIMIT + 2)

enum cstate {
    CS_CONNECT,   /* TCP connect in progress */
    CS_GREETING,  /* waiting for the 220 */
    CS_EHLO,
    CS_HELO,
    CS_STARTTLS,  /* waiting for the reply to STARTTLS */
    CS_HANDSHAKE, /* TLS handshake */
    CS_EHLO_TLS,  /* EHLO again over TLS */
    CS_IDLE,      /* ready for MAIL */
    CS_XACT,      /* MAIL / RCPT / DATA replies outstanding */
    CS_BODY,      /* writing the content */
    CS_DOT,       /* waiting for the reply to "." */
    CS_RSET,
    CS_QUIT,
    CS_DEAD,      /* closed, waiting to be freed */
};

enum ckind { CK_MAIL, CK_RCPT, CK_DATA, CK_DOT_ONLY };

struct cmd {
    enum ckind kind;
    size_t rcpt; /* CK_RCPT: the recipient's index in the message */
};

struct smtp_client {
    struct event_base *base;
    struct smtp_client_conf conf;
    char name[DOMAIN_MAX + 1];
    char addr[INET6_ADDRSTRLEN + 1];
    char match[DOMAIN_MAX + 2];
    int port;
    char peer[DOMAIN_MAX + INET6_ADDRSTRLEN + 4]; /* name[addr] */
    char relay[DOMAIN_MAX + INET6_ADDRSTRLEN + 12];
    int tls_level;
    int fd;                          /* the TCP socket under any filter */
    struct bufferevent *bev;
    struct event *timer;
    struct event *later;             /* a deferred callback (size refusal, attach) */
    enum cstate state;
    struct smtp_reply reply;
    long long born_ms;
    size_t nmsg;
    /* capabilities from the last EHLO */
    int esmtp, pipelining, eightbit, starttls, has_size;
    long long size_limit;
    int tls;
    int answered;
    /* setup */
    smtp_client_ready_fn ready;
    void *ready_ctx;
    struct smtp_client_setup setup;
    /* transaction */
    struct smtp_client_msg msg;
    struct delivery_report *rep;
    smtp_client_sent_fn sent;
    void *sent_ctx;
    struct cmd *cmds;
    size_t ncmds, nwritten, nreplied;
    unsigned char *accepted;         /* per recipient: RCPT got 2xx */
    size_t naccepted;
    int mail_code;                   /* 0: no reply yet */
    int refused;                     /* the transaction ended without "."; RSET next */
    int reused;                      /* this session carried a message before */
    off_t pos;
    int at_bol;
    int prev_cr;               /* the last content byte sent was CR */
    int read_errno;
    int in_call;                     /* inside smtp_client_connect */
    int busy;                        /* callbacks of c running */
    int zombie;                      /* freed by the owner while busy */
    int ready_due;                   /* a failure to report from the loop */
    /* idle and quit */
    smtp_client_note_fn lost;
    void *lost_ctx;
    smtp_client_note_fn gone;
    void *gone_ctx;
};

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

/* ---------------------------------------------------------------- small helpers */

/* arm - the deadline of the stage that starts now */
static void arm(struct smtp_client *c, long long ms)
{
    struct timeval tv = clock_timeval(ms);

    if (evtimer_add(c->timer, &tv) < 0)
        log_fatal("smtp: cannot arm a timer");
}

/* send_line - one command line, logged */
static void send_line(struct smtp_client *c, const char *fmt, ...) LOG_PRINTF(2, 3);
static void send_line(struct smtp_client *c, const char *fmt, ...)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char line[2100];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t) n >= sizeof(line) - 2)
        log_panic("smtp: command line too long");
    log_debug("%s: > %s", c->msg.id ? c->msg.id : c->relay, line);
    memcpy(line + n, "\r\n", 2);
    if (evbuffer_add(out, line, (size_t) n + 2) < 0)
        log_fatal("smtp: out of memory");
}

/* close_conn - drop the connection (the session object stays) */
static void close_conn(struct smtp_client *c)
{
    loop_bufferevent_free(&c->bev); /* closes fd, and the socket under a TLS filter */
    if (c->timer)
        evtimer_del(c->timer);
    c->state = CS_DEAD;
}

/* stage_text - Postfix's "while ..." for the stage in progress */
static const char *stage_text(const struct smtp_client *c)
{
    switch (c->state) {
    case CS_CONNECT:
    case CS_GREETING:
        return "receiving the initial server greeting";
    case CS_EHLO:
    case CS_EHLO_TLS:
        return "performing the EHLO handshake";
    case CS_HELO:
        return "performing the HELO handshake";
    case CS_STARTTLS:
    case CS_HANDSHAKE:
        return "performing the STARTTLS handshake";
    case CS_XACT:
        if (c->nreplied < c->ncmds)
            switch (c->cmds[c->nreplied].kind) {
            case CK_MAIL:
                return "sending MAIL FROM";
            case CK_RCPT:
                return "sending RCPT TO";
            case CK_DATA:
                return "sending DATA command";
            case CK_DOT_ONLY:
                break;
            }
        return "sending end of data -- message may be sent more than once";
    case CS_BODY:
        return "sending message body";
    case CS_DOT:
        return "sending end of data -- message may be sent more than once";
    case CS_RSET:
        return "sending RSET";
    case CS_IDLE:
    case CS_QUIT:
    case CS_DEAD:
        break;
    }
    return "talking to it";
}

/* one_line - the reply's text with its line joints as blanks (for a result text,
   which delivery_set masks further) */
static const char *one_line(struct smtp_client *c)
{
    for (char *p = c->reply.text; *p; p++)
        if (*p == '\n')
            *p = ' ';
    return c->reply.text;
}

/* ---------------------------------------------------------------- setup */

/* ready_fail - the setup failed: say why, close, tell the owner */
static void ready_fail(struct smtp_client *c, enum delivery_status st, const char *dsn,
                       const char *fmt, ...) LOG_PRINTF(4, 5);
static void ready_fail(struct smtp_client *c, enum delivery_status st, const char *dsn,
                       const char *fmt, ...)
{
    va_list ap;

    c->setup.ok = 0;
    c->setup.status = st;
    snprintf(c->setup.dsn, sizeof(c->setup.dsn), "%s", dsn);
    va_start(ap, fmt);
    vsnprintf(c->setup.text, sizeof(c->setup.text), fmt, ap);
    va_end(ap);
    c->setup.answered = c->answered;
    close_conn(c);
    log_debug("%s: setup failed: %s", c->relay, c->setup.text);
    if (c->in_call) {
        c->ready_due = 1; /* never inside smtp_client_connect */
        event_active(c->later, 0, 0);
        return;
    }
    c->ready(c->ready_ctx, c, &c->setup);
}

/* ready_ok - the session can take MAIL */
static void ready_ok(struct smtp_client *c)
{
    evtimer_del(c->timer);
    c->state = CS_IDLE;
    c->setup.ok = 1;
    c->setup.answered = 1;
    c->ready(c->ready_ctx, c, &c->setup);
}

/* reply_fail - the setup got a refusal: "host H[A] said: ... (in reply to WHAT)" */
static void reply_fail(struct smtp_client *c, const char *what)
{
    char dsn[QUEUE_DSN_MAX + 1];
    enum delivery_status st = delivery_from_reply(c->reply.code, c->reply.text, dsn, sizeof(dsn));

    if (st == DELIVERY_OK) {
        st = DELIVERY_TEMP;
        snprintf(dsn, sizeof(dsn), "4.5.0");
    }
    ready_fail(c, st, dsn, "host %s said: %s (in reply to %s)", c->peer, one_line(c), what);
}

/* send_ehlo - EHLO (or HELO) with our name */
static void send_ehlo(struct smtp_client *c, enum cstate st)
{
    c->state = st;
    send_line(c, "%s %s", st == CS_HELO ? "HELO" : "EHLO", c->conf.helo);
    arm(c, c->conf.helo_ms);
}

/* parse_ehlo - the extensions the peer offers */
static void parse_ehlo(struct smtp_client *c)
{
    char line[SMTP_REPLY_MAX + 1];

    c->esmtp = 1;
    c->pipelining = c->eightbit = c->starttls = c->has_size = 0;
    c->size_limit = 0;
    for (size_t i = 1; smtp_reply_line(&c->reply, i, line, sizeof(line)); i++) {
        char *arg = line + strcspn(line, " ");

        if (*arg)
            *arg++ = 0;
        if (strcasecmp(line, "PIPELINING") == 0) {
            c->pipelining = 1;
        } else if (strcasecmp(line, "8BITMIME") == 0) {
            c->eightbit = 1;
        } else if (strcasecmp(line, "STARTTLS") == 0) {
            c->starttls = 1;
        } else if (strcasecmp(line, "SIZE") == 0) {
            char *end;
            long long v = strtoll(arg, &end, 10);

            c->has_size = 1;
            if (end != arg && v > 0)
                c->size_limit = v;
        }
    }
}

/* tls_wanted - whether STARTTLS goes out now; -1: required but not offered */
static int tls_wanted(const struct smtp_client *c)
{
    if (c->tls || c->tls_level == SERVER_TLS_NONE)
        return 0;
    if (c->starttls && c->conf.ssl_ctx)
        return 1;
    return c->tls_level == SERVER_TLS_MAY ? 0 : -1;
}

/* start_tls - the peer said 220 to STARTTLS: the handshake through an OpenSSL filter */
static void start_tls(struct smtp_client *c)
{
    struct bufferevent *tbev;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    SSL *ssl = SSL_new(c->conf.ssl_ctx);
    int verify = c->tls_level >= SERVER_TLS_VERIFY;
    struct in6_addr bin;
    int ip = inet_pton(AF_INET, c->name, &bin) == 1 || inet_pton(AF_INET6, c->name, &bin) == 1;

    if (ssl == NULL) {
        ready_fail(c, DELIVERY_TEMP, "4.7.5", "Cannot start TLS: cannot make a TLS session");
        return;
    }
    /* RFC 3207: nothing the server sent before the handshake counts */
    evbuffer_drain(in, evbuffer_get_length(in));
    if (!ip)
        SSL_set_tlsext_host_name(ssl, c->name);
    if (verify) {
        SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
        if (c->tls_level == SERVER_TLS_SECURE) {
            char dot[DOMAIN_MAX + 3];

            /* Postfix's smtp_tls_secure_cert_match = nexthop, dot-nexthop */
            snprintf(dot, sizeof(dot), ".%s", c->match);
            SSL_set1_host(ssl, c->match);
            SSL_add1_host(ssl, dot);
        } else if (ip) {
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c->name);
        } else {
            SSL_set1_host(ssl, c->name);
        }
    } else {
        SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    }
    bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
    tbev = bufferevent_openssl_filter_new(c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
                                          BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (tbev == NULL) {
        SSL_free(ssl);
        ready_fail(c, DELIVERY_TEMP, "4.7.5", "Cannot start TLS: cannot start the TLS filter");
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
    c->bev = tbev;
    c->state = CS_HANDSHAKE;
    bufferevent_setcb(tbev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(tbev, EV_READ | EV_WRITE);
    arm(c, c->conf.starttls_ms);
}

/* tls_failed - the handshake broke: why, and whether plaintext may follow */
static void tls_failed(struct smtp_client *c)
{
    SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
    unsigned long e = bufferevent_get_openssl_error(c->bev);
    char why[256] = "";
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

    if (e != 0)
        ERR_error_string_n(e, why, sizeof(why));
    ERR_clear_error();
    if (c->tls_level >= SERVER_TLS_VERIFY && vr != X509_V_OK) {
        ready_fail(c, DELIVERY_TEMP, "4.7.5", "Server certificate not verified: %s[%s]: %s",
                   c->name, c->addr, X509_verify_cert_error_string(vr));
        return;
    }
    c->setup.tls_failed = c->tls_level == SERVER_TLS_MAY;
    ready_fail(c, DELIVERY_TEMP, "4.7.5", "Cannot start TLS: handshake failure with %s%s%s",
               c->peer, *why ? ": " : "", why);
}

/* setup_reply - a complete reply during the setup */
static void setup_reply(struct smtp_client *c)
{
    int code = c->reply.code;
    int want;

    switch (c->state) {
    case CS_GREETING:
        c->answered = 1;
        if (code / 100 != 2) {
            char dsn[QUEUE_DSN_MAX + 1];

            /* a refused greeting is never final (Postfix's smtp_skip_5xx_greeting) */
            delivery_from_reply(code, c->reply.text, dsn, sizeof(dsn));
            dsn[0] = '4';
            ready_fail(c, DELIVERY_TEMP, dsn, "host %s refused to talk to me: %s", c->peer,
                       one_line(c));
            return;
        }
        send_ehlo(c, CS_EHLO);
        return;
    case CS_EHLO:
    case CS_EHLO_TLS:
        if (code / 100 == 5 && c->state == CS_EHLO) {
            send_ehlo(c, CS_HELO);
            return;
        }
        if (code / 100 != 2) {
            reply_fail(c, "EHLO command");
            return;
        }
        parse_ehlo(c);
        if (c->state == CS_EHLO && (want = tls_wanted(c)) != 0) {
            if (want < 0) {
                ready_fail(c, DELIVERY_TEMP, "4.7.4",
                           "TLS is required, but was not offered by host %s", c->peer);
                return;
            }
            c->state = CS_STARTTLS;
            send_line(c, "STARTTLS");
            arm(c, c->conf.starttls_ms);
            return;
        }
        ready_ok(c);
        return;
    case CS_HELO:
        if (code / 100 != 2) {
            reply_fail(c, "HELO command");
            return;
        }
        c->esmtp = c->pipelining = c->eightbit = c->starttls = c->has_size = 0;
        if (c->tls_level >= SERVER_TLS_ENCRYPT && !c->tls) {
            ready_fail(c, DELIVERY_TEMP, "4.7.4",
                       "TLS is required, but was not offered by host %s", c->peer);
            return;
        }
        ready_ok(c);
        return;
    case CS_STARTTLS:
        if (code != 220) {
            if (c->tls_level == SERVER_TLS_MAY) {
                ready_ok(c); /* opportunistic: go on in plaintext on this connection */
                return;
            }
            reply_fail(c, "STARTTLS command");
            return;
        }
        start_tls(c);
        return;
    default:
        return;
    }
}

/* ---------------------------------------------------------------- transaction */

/* said - recipient i from the current reply to WHAT */
static void said(struct smtp_client *c, size_t i, const char *what)
{
    char dsn[QUEUE_DSN_MAX + 1];
    enum delivery_status st = delivery_from_reply(c->reply.code, c->reply.text, dsn, sizeof(dsn));

    if (st == DELIVERY_OK) {
        /* a 2xx where a 354 or a refusal was due: a protocol error, try later */
        st = DELIVERY_TEMP;
        snprintf(dsn, sizeof(dsn), "4.5.0");
    }
    delivery_set(c->rep, i, st, dsn, "host %s said: %s (in reply to %s)", c->peer, one_line(c),
                 what);
}

/* sendable - whether recipient i goes out */
static int sendable(const struct smtp_client *c, size_t i)
{
    return c->msg.skip == NULL || !c->msg.skip[i];
}

/* xact_end - the transaction is over; RSET first when it was refused */
static void xact_end(struct smtp_client *c, enum smtp_client_after after)
{
    evtimer_del(c->timer);
    if (after == SMTP_CLIENT_REUSABLE && c->refused) {
        c->state = CS_RSET;
        send_line(c, "RSET");
        arm(c, c->conf.rset_ms);
        return;
    }
    if (after != SMTP_CLIENT_REUSABLE)
        close_conn(c);
    else
        c->state = CS_IDLE;
    c->nmsg++;
    c->msg.id = NULL;
    c->sent(c->sent_ctx, c, after);
}

/* xact_lost - the connection broke or timed out during the transaction */
static void xact_lost(struct smtp_client *c, int timed_out)
{
    const char *stage = stage_text(c);

    if (c->state == CS_RSET) {
        xact_end(c, SMTP_CLIENT_CLOSED); /* the results stand */
        return;
    }
    if (c->reused && c->mail_code == 0 && !timed_out) {
        /* a cached connection the peer had closed: nothing happened, start afresh */
        log_debug("%s: cached connection to %s was closed; trying a new one", c->msg.id,
                  c->relay);
        close_conn(c);
        c->msg.id = NULL;
        c->sent(c->sent_ctx, c, SMTP_CLIENT_RETRY);
        return;
    }
    for (size_t i = 0; i < c->msg.nrcpt; i++) {
        if (!sendable(c, i))
            continue;
        /* recipients refused already keep their reply */
        if (c->mail_code != 0 && c->mail_code / 100 != 2)
            continue;
        if (c->cmds && c->state == CS_XACT) {
            int answered = 0;

            for (size_t k = 0; k < c->nreplied; k++)
                if (c->cmds[k].kind == CK_RCPT && c->cmds[k].rcpt == i)
                    answered = 1;
            if (answered && !c->accepted[i])
                continue;
        } else if (!c->accepted[i]) {
            continue;
        }
        if (c->read_errno)
            delivery_set(c->rep, i, DELIVERY_TEMP, "4.3.0", "error reading the queue file: %s",
                         strerror(c->read_errno));
        else if (timed_out)
            delivery_set(c->rep, i, DELIVERY_TEMP, "4.4.2",
                         "conversation with %s timed out while %s", c->peer, stage);
        else
            delivery_set(c->rep, i, DELIVERY_TEMP, "4.4.2", "lost connection with %s while %s",
                         c->peer, stage);
    }
    xact_end(c, SMTP_CLIENT_CLOSED);
}

/* write_cmd - command k of the transaction */
static void write_cmd(struct smtp_client *c, size_t k)
{
    const struct cmd *cmd = &c->cmds[k];

    switch (cmd->kind) {
    case CK_MAIL:
        if (c->esmtp) {
            char ext[80] = "";

            if (c->has_size)
                snprintf(ext, sizeof(ext), " SIZE=%lld", (long long) c->msg.size);
            if (c->eightbit)
                snprintf(ext + strlen(ext), sizeof(ext) - strlen(ext), " BODY=8BITMIME");
            send_line(c, "MAIL FROM:<%s>%s", c->msg.sender, ext);
        } else {
            send_line(c, "MAIL FROM:<%s>", c->msg.sender);
        }
        break;
    case CK_RCPT:
        send_line(c, "RCPT TO:<%s>", c->msg.rcpts[cmd->rcpt]);
        break;
    case CK_DATA:
        send_line(c, "DATA");
        break;
    case CK_DOT_ONLY:
        break;
    }
    c->nwritten = k + 1;
}

/* arm_for - the deadline for the oldest outstanding reply */
static void arm_for(struct smtp_client *c)
{
    const long long ms[] = {
        [CK_MAIL] = c->conf.mail_ms, [CK_RCPT] = c->conf.rcpt_ms,
        [CK_DATA] = c->conf.data_init_ms, [CK_DOT_ONLY] = c->conf.data_done_ms,
    };

    arm(c, ms[c->cmds[c->nreplied].kind]);
}

/* fill_body - dot-stuffed content into the output buffer up to BODY_HIGH, each
   bare LF sent as CRLF (SMTP lines end in CRLF whatever the queue file holds);
   the final "." when all is in. -1: the queue file could not be read (closed). */
static int fill_body(struct smtp_client *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    char chunk[BODY_CHUNK];

    while (c->pos < c->msg.size && evbuffer_get_length(out) < BODY_HIGH) {
        size_t want = c->msg.size - c->pos < (off_t) sizeof(chunk) ? (size_t) (c->msg.size - c->pos)
                                                                   : sizeof(chunk);
        ssize_t n;
        size_t start = 0;

        do
            n = pread(c->msg.fd, chunk, want, c->msg.offset + c->pos);
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
            c->read_errno = n < 0 ? errno : EIO; /* 0: shorter than the queue file says */
            return -1;
        }
        for (size_t i = 0; i < (size_t) n; i++) {
            const char *insert = NULL;

            if (c->at_bol && chunk[i] == '.')
                insert = ".";
            else if (chunk[i] == '\n' && !c->prev_cr)
                insert = "\r";
            if (insert) {
                if (evbuffer_add(out, chunk + start, i - start) < 0 || evbuffer_add(out, insert, 1) < 0)
                    log_fatal("smtp: out of memory");
                start = i;
            }
            c->at_bol = chunk[i] == '\n';
            c->prev_cr = chunk[i] == '\r';
        }
        if (evbuffer_add(out, chunk + start, (size_t) n - start) < 0)
            log_fatal("smtp: out of memory");
        c->pos += n;
    }
    if (c->pos >= c->msg.size) {
        if (!c->at_bol && evbuffer_add(out, "\r\n", 2) < 0)
            log_fatal("smtp: out of memory");
        if (evbuffer_add(out, ".\r\n", 3) < 0)
            log_fatal("smtp: out of memory");
        log_debug("%s: > (%lld bytes of content) .", c->msg.id, (long long) c->msg.size);
        c->state = CS_DOT;
        arm(c, c->conf.data_done_ms);
    } else {
        arm(c, c->conf.data_xfer_ms);
    }
    return 0;
}

/* start_body - 354: the content goes out */
static void start_body(struct smtp_client *c)
{
    c->state = CS_BODY;
    c->pos = 0;
    c->at_bol = 1;
    c->prev_cr = 0;
    bufferevent_setwatermark(c->bev, EV_WRITE, BODY_LOW, 0);
    if (fill_body(c) < 0)
        xact_lost(c, 0);
}

/* xact_reply - a complete reply to MAIL, RCPT or DATA (or a lone ".") */
static void xact_reply(struct smtp_client *c)
{
    const struct cmd *cmd;
    int ok = c->reply.code / 100 == 2;

    if (c->nreplied >= c->nwritten) {
        /* a reply nobody asked for: protocol error */
        c->reply.code = 0;
        xact_lost(c, 0);
        return;
    }
    cmd = &c->cmds[c->nreplied++];
    switch (cmd->kind) {
    case CK_MAIL:
        c->mail_code = c->reply.code;
        if (!ok) {
            for (size_t i = 0; i < c->msg.nrcpt; i++)
                if (sendable(c, i))
                    said(c, i, "MAIL FROM command");
            c->refused = 1;
        }
        break;
    case CK_RCPT:
        if (c->mail_code / 100 != 2)
            break; /* pipelined after a refused MAIL: the MAIL reply stands */
        if (ok) {
            c->accepted[cmd->rcpt] = 1;
            c->naccepted++;
        } else {
            said(c, cmd->rcpt, "RCPT TO command");
        }
        break;
    case CK_DATA:
        if (c->reply.code == 354) {
            if (c->mail_code / 100 == 2 && c->naccepted > 0) {
                start_body(c);
                return;
            }
            /* RFC 2920 3.1: DATA accepted without a valid recipient; end it empty */
            c->cmds[c->nreplied - 1].kind = CK_DOT_ONLY;
            c->nreplied--;
            send_line(c, ".");
            arm(c, c->conf.data_done_ms);
            c->refused = 1;
            return;
        }
        if (c->mail_code / 100 == 2)
            for (size_t i = 0; i < c->msg.nrcpt; i++)
                if (c->accepted[i])
                    said(c, i, "DATA command");
        c->refused = 1;
        break;
    case CK_DOT_ONLY:
        c->refused = 1;
        break;
    }
    if (c->nreplied < c->nwritten) {
        arm_for(c);
        return;
    }
    /* nothing outstanding: without PIPELINING, the next command, if any is due */
    if (c->nwritten < c->ncmds && c->mail_code / 100 == 2) {
        size_t k = c->nwritten;

        if (c->cmds[k].kind == CK_DATA && c->naccepted == 0) {
            c->refused = 1;
            xact_end(c, SMTP_CLIENT_REUSABLE);
            return;
        }
        write_cmd(c, k);
        arm_for(c);
        return;
    }
    c->refused = 1; /* every path that gets here did not send the content */
    xact_end(c, SMTP_CLIENT_REUSABLE);
}

/* dot_reply - the reply to the final "." */
static void dot_reply(struct smtp_client *c)
{
    char dsn[QUEUE_DSN_MAX + 1];

    for (size_t i = 0; i < c->msg.nrcpt; i++) {
        if (!c->accepted[i])
            continue;
        if (c->reply.code / 100 == 2) {
            delivery_from_reply(c->reply.code, c->reply.text, dsn, sizeof(dsn));
            delivery_set(c->rep, i, DELIVERY_OK, dsn, "%s", one_line(c));
        } else {
            said(c, i, "end of DATA command");
        }
    }
    c->refused = 0;
    xact_end(c, SMTP_CLIENT_REUSABLE);
}

/* ---------------------------------------------------------------- events */

/* conn_over - an idle or quitting connection ended (a reply, a close or a timeout): close it
   and tell the owner (lost while idle, gone after QUIT); after QUIT, free c */
static void conn_over(struct smtp_client *c)
{
    int quit = c->state == CS_QUIT;
    smtp_client_note_fn note = quit ? c->gone : c->lost;
    void *ctx = quit ? c->gone_ctx : c->lost_ctx;

    close_conn(c);
    if (note)
        note(ctx, c);
    if (quit)
        smtp_client_free(c);
}

/* got_reply - a complete reply: hand it to the current state */
static void got_reply(struct smtp_client *c)
{
    switch (c->state) {
    case CS_GREETING:
    case CS_EHLO:
    case CS_HELO:
    case CS_STARTTLS:
    case CS_EHLO_TLS:
        setup_reply(c);
        return;
    case CS_XACT:
        xact_reply(c);
        return;
    case CS_DOT:
        dot_reply(c);
        return;
    case CS_RSET:
        c->refused = 0;
        xact_end(c, c->reply.code / 100 == 2 ? SMTP_CLIENT_REUSABLE : SMTP_CLIENT_CLOSED);
        return;
    case CS_BODY:
        /* a reply while the content is still going out: the peer gave up on it */
        c->state = CS_DOT;
        dot_reply(c);
        return;
    case CS_IDLE: /* e.g. "421 timeout" while cached: the connection is no good any more */
    case CS_QUIT:
        conn_over(c);
        return;
    case CS_CONNECT:
    case CS_HANDSHAKE:
    case CS_DEAD:
        return;
    }
}

/* broken - the connection ended, timed out or spoke nonsense, in any state; why:
   the connect error, or "(reply too long)" and the like for a protocol error */
static void broken(struct smtp_client *c, int timed_out, const char *why)
{
    switch (c->state) {
    case CS_CONNECT:
        ready_fail(c, DELIVERY_TEMP, "4.4.1", "connect to %s[%s]:%d: %s", c->name, c->addr,
                   c->port, timed_out ? "Connection timed out" : why);
        return;
    case CS_HANDSHAKE:
        /* a timeout is said as in the other setup states */
        if (!timed_out) {
            tls_failed(c);
            return;
        }
        /* FALLTHROUGH */
    case CS_GREETING:
    case CS_EHLO:
    case CS_HELO:
    case CS_STARTTLS:
    case CS_EHLO_TLS:
        if (timed_out)
            ready_fail(c, DELIVERY_TEMP, "4.4.2", "conversation with %s timed out while %s",
                       c->peer, stage_text(c));
        else
            ready_fail(c, DELIVERY_TEMP, "4.4.2", "lost connection with %s while %s%s%s",
                       c->peer, stage_text(c), why && *why ? " " : "", why ? why : "");
        return;
    case CS_XACT:
    case CS_BODY:
    case CS_DOT:
    case CS_RSET:
        xact_lost(c, timed_out);
        return;
    case CS_IDLE:
    case CS_QUIT:
        conn_over(c);
        return;
    case CS_DEAD:
        return;
    }
}

/* hold - a callback of c runs: the owner's smtp_client_free only marks it */
static void hold(struct smtp_client *c)
{
    c->busy++;
}

static void destroy(struct smtp_client *c);

/* release - the callback ends; free c now if the owner asked for it meanwhile */
static void release(struct smtp_client *c)
{
    if (--c->busy == 0 && c->zombie)
        destroy(c);
}

/* read_cb - reply lines */
static void read_cb(struct bufferevent *bev, void *arg)
{
    struct smtp_client *c = arg;

    (void) bev;
    hold(c);
    while (!c->zombie && c->bev != NULL && c->state != CS_DEAD) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        size_t n = 0;
        char *line;
        enum smtp_reply_state st;

        line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
        if (line == NULL) {
            if (evbuffer_get_length(in) > LINE_MAX_IN) {
                log_warn("%s: reply line longer than %d bytes from %s; closing",
                         c->msg.id ? c->msg.id : c->relay, SMTP_REPLY_LIMIT, c->peer);
                broken(c, 0, "(reply too long)");
            }
            break;
        }
        log_debug("%s: < %s", c->msg.id ? c->msg.id : c->relay, line);
        st = smtp_reply_feed(&c->reply, line, n);
        free(line);
        if (st == SMTP_REPLY_MORE)
            continue;
        if (st != SMTP_REPLY_DONE) {
            log_warn("%s: %s from %s; closing", c->msg.id ? c->msg.id : c->relay,
                     st == SMTP_REPLY_TOO_LONG ? "reply longer than 65536 bytes"
                                               : "malformed reply", c->peer);
            broken(c, 0, st == SMTP_REPLY_TOO_LONG ? "(reply too long)" : "(malformed reply)");
            break;
        }
        if (c->reply.truncated)
            log_warn("%s: reply from %s truncated to %d bytes", c->msg.id ? c->msg.id : c->relay,
                     c->peer, SMTP_REPLY_MAX);
        got_reply(c);
        if (!c->zombie)
            smtp_reply_init(&c->reply);
    }
    release(c);
}

/* write_cb - the output drained below the watermark: more content */
static void write_cb(struct bufferevent *bev, void *arg)
{
    struct smtp_client *c = arg;

    (void) bev;
    if (c->state != CS_BODY)
        return;
    hold(c);
    if (fill_body(c) < 0)
        xact_lost(c, 0);
    release(c);
}

static void event_step(struct smtp_client *c, short what);

/* event_cb - connected, handshake done, closed or failed */
static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct smtp_client *c = arg;

    (void) bev;
    hold(c);
    event_step(c, what);
    release(c);
}

/* event_step - event_cb's work */
static void event_step(struct smtp_client *c, short what)
{
    char why[200];

    if (what & BEV_EVENT_CONNECTED) {
        if (c->state == CS_CONNECT) {
            c->state = CS_GREETING;
            arm(c, c->conf.helo_ms);
        } else if (c->state == CS_HANDSHAKE) {
            c->tls = 1;
            smtp_reply_init(&c->reply);
            send_ehlo(c, CS_EHLO_TLS);
        }
        return;
    }
    why[0] = 0;
    if (c->state == CS_CONNECT) {
        int e = EVUTIL_SOCKET_ERROR();

        snprintf(why, sizeof(why), "%s", (what & BEV_EVENT_ERROR) && e ? strerror(e)
                                         : "Connection closed");
    }
    broken(c, 0, why);
}

/* timer_cb - the stage's deadline passed */
static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_client *c = arg;

    (void) fd;
    (void) what;
    hold(c);
    if (c->state == CS_IDLE) {
        if (c->lost)
            c->lost(c->lost_ctx, c); /* the cache time limit: the owner quits it */
    } else {
        log_debug("%s: %s: %s timed out", c->msg.id ? c->msg.id : c->relay, c->relay,
                  stage_text(c));
        broken(c, 1, NULL);
    }
    release(c);
}

/* later_cb - a result that must not be reported inside the call that made it */
static void later_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtp_client *c = arg;

    (void) fd;
    (void) what;
    hold(c);
    if (c->ready_due) {
        c->ready_due = 0;
        c->ready(c->ready_ctx, c, &c->setup);
    } else if (c->sent != NULL && c->state == CS_IDLE && c->msg.id != NULL) {
        c->msg.id = NULL;
        c->sent(c->sent_ctx, c, SMTP_CLIENT_REUSABLE);
    } else if (c->state == CS_EHLO) {
        send_ehlo(c, CS_EHLO); /* attach without a greeting */
    }
    release(c);
}

/* ---------------------------------------------------------------- public */

/* smtp_client_conf_set - the session settings from the configuration */
void smtp_client_conf_set(struct smtp_client_conf *cc, const struct server_config *conf,
                          SSL_CTX *ssl_ctx)
{
    snprintf(cc->helo, sizeof(cc->helo), "%s", conf->myhostname ? conf->myhostname : "localhost");
    cc->connect_ms = conf->smtp_connect_timeout * 1000;
    cc->helo_ms = conf->smtp_helo_timeout * 1000;
    cc->starttls_ms = conf->smtp_starttls_timeout * 1000;
    cc->mail_ms = conf->smtp_mail_timeout * 1000;
    cc->rcpt_ms = conf->smtp_rcpt_timeout * 1000;
    cc->data_init_ms = conf->smtp_data_init_timeout * 1000;
    cc->data_xfer_ms = conf->smtp_data_xfer_timeout * 1000;
    cc->data_done_ms = conf->smtp_data_done_timeout * 1000;
    cc->rset_ms = conf->smtp_rset_timeout * 1000;
    cc->quit_ms = conf->smtp_quit_timeout * 1000;
    cc->ssl_ctx = ssl_ctx;
}

/* new_client - the common part of connect and attach */
static struct smtp_client *new_client(struct event_base *base, const struct smtp_client_conf *conf,
                                      const char *name, const char *addr, int port,
                                      smtp_client_ready_fn ready, void *ctx)
{
    struct smtp_client *c = xcalloc(1, sizeof(*c));

    c->base = base;
    c->conf = *conf;
    if (c->conf.ssl_ctx)
        SSL_CTX_up_ref(c->conf.ssl_ctx);
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    snprintf(c->match, sizeof(c->match), "%s", name);
    c->port = port;
    snprintf(c->peer, sizeof(c->peer), "%s[%s]", name, addr);
    snprintf(c->relay, sizeof(c->relay), "%s[%s]:%d", name, addr, port);
    c->ready = ready;
    c->ready_ctx = ctx;
    c->fd = -1;
    c->born_ms = clock_now_ms();
    smtp_reply_init(&c->reply);
    c->timer = evtimer_new(base, timer_cb, c);
    c->later = event_new(base, -1, 0, later_cb, c);
    if (c->timer == NULL || c->later == NULL)
        log_fatal("smtp: cannot create a timer");
    return c;
}

/* smtp_client_connect - a new connection, then the setup */
struct smtp_client *smtp_client_connect(struct event_base *base,
                                        const struct smtp_client_conf *conf, const char *name,
                                        const char *addr, int port, int tls_level,
                                        const char *match_name, smtp_client_ready_fn ready,
                                        void *ctx)
{
    struct smtp_client *c = new_client(base, conf, name, addr, port, ready, ctx);
    struct sockaddr_storage ss;
    socklen_t sslen;

    memset(&ss, 0, sizeof(ss));
    c->tls_level = tls_level;
    if (match_name)
        snprintf(c->match, sizeof(c->match), "%s", match_name);
    if (inet_pton(AF_INET, addr, &((struct sockaddr_in *) &ss)->sin_addr) == 1) {
        ((struct sockaddr_in *) &ss)->sin_family = AF_INET;
        ((struct sockaddr_in *) &ss)->sin_port = htons((uint16_t) port);
        sslen = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *) &ss)->sin6_addr) == 1) {
        ((struct sockaddr_in6 *) &ss)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *) &ss)->sin6_port = htons((uint16_t) port);
        sslen = sizeof(struct sockaddr_in6);
    } else {
        log_panic("smtp: \"%s\" is not a numeric address", addr);
    }
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL)
        log_fatal("smtp: cannot create a bufferevent");
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->state = CS_CONNECT;
    arm(c, conf->connect_ms);
    /* an immediate failure calls event_cb from inside: ready_fail defers it */
    c->in_call = 1;
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *) &ss, (int) sslen) < 0
        && c->state == CS_CONNECT)
        broken(c, 0, strerror(errno ? errno : ECONNREFUSED));
    c->in_call = 0;
    c->fd = c->bev ? bufferevent_getfd(c->bev) : -1;
    return c;
}

/* smtp_client_attach - take over a connected bufferevent */
struct smtp_client *smtp_client_attach(struct event_base *base,
                                       const struct smtp_client_conf *conf,
                                       struct bufferevent *bev, int tls_active, int greeting,
                                       const char *name, const char *addr, int port,
                                       smtp_client_ready_fn ready, void *ctx)
{
    struct smtp_client *c = new_client(base, conf, name, addr, port, ready, ctx);
    struct bufferevent *under = bufferevent_get_underlying(bev);

    c->bev = bev;
    c->tls = tls_active;
    c->tls_level = SERVER_TLS_NONE; /* the connection is what it is */
    c->fd = bufferevent_getfd(under ? under : bev);
    c->answered = 1;
    bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (greeting) {
        c->state = CS_GREETING;
        arm(c, conf->helo_ms);
    } else {
        c->state = CS_EHLO;
        event_active(c->later, 0, 0); /* EHLO from the loop: ready never inside attach */
    }
    return c;
}

/* smtp_client_send - one transaction on an idle session */
int smtp_client_send(struct smtp_client *c, const struct smtp_client_msg *msg,
                     struct delivery_report *rep, smtp_client_sent_fn sent, void *ctx)
{
    size_t k = 0;

    if (c->state != CS_IDLE || c->bev == NULL)
        return -1;
    c->msg = *msg;
    c->rep = rep;
    c->sent = sent;
    c->sent_ctx = ctx;
    c->reused = c->nmsg > 0;
    c->mail_code = 0;
    c->refused = 0;
    c->naccepted = 0;
    c->read_errno = 0;
    c->lost = NULL;
    evtimer_del(c->timer);
    snprintf(rep->relay, sizeof(rep->relay), "%s", c->relay);
    free(c->accepted);
    c->accepted = xcalloc(msg->nrcpt ? msg->nrcpt : 1, 1);
    free(c->cmds);
    c->cmds = xcalloc(msg->nrcpt + 2, sizeof(*c->cmds));
    if (c->has_size && c->size_limit > 0 && msg->size > c->size_limit) {
        for (size_t i = 0; i < msg->nrcpt; i++)
            if (sendable(c, i))
                delivery_set(rep, i, DELIVERY_PERM, "5.3.4",
                             "message size %lld exceeds size limit %lld of server %s",
                             (long long) msg->size, c->size_limit, c->peer);
        c->ncmds = c->nwritten = c->nreplied = 0;
        event_active(c->later, 0, 0);
        return 0;
    }
    c->cmds[k++].kind = CK_MAIL;
    for (size_t i = 0; i < msg->nrcpt; i++)
        if (sendable(c, i)) {
            c->cmds[k].kind = CK_RCPT;
            c->cmds[k++].rcpt = i;
        }
    c->cmds[k++].kind = CK_DATA;
    c->ncmds = k;
    c->nwritten = c->nreplied = 0;
    c->state = CS_XACT;
    smtp_reply_init(&c->reply);
    if (c->pipelining) {
        for (size_t j = 0; j < c->ncmds; j++)
            write_cmd(c, j);
    } else {
        write_cmd(c, 0);
    }
    arm_for(c);
    return 0;
}

/* smtp_client_idle - watch an idle session for the peer going away or idle_ms */
void smtp_client_idle(struct smtp_client *c, long long idle_ms, smtp_client_note_fn lost,
                      void *ctx)
{
    c->lost = lost;
    c->lost_ctx = ctx;
    if (c->state == CS_IDLE)
        arm(c, idle_ms);
}

/* smtp_client_alive - idle, and the socket shows neither data nor an end */
int smtp_client_alive(struct smtp_client *c)
{
    char b;
    ssize_t n;

    if (c->state != CS_IDLE || c->bev == NULL || c->fd < 0)
        return 0;
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        return 0;
    n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

/* smtp_client_quit - QUIT, then free when it is answered (or at once if dead) */
void smtp_client_quit(struct smtp_client *c, smtp_client_note_fn gone, void *ctx)
{
    if (c->state != CS_IDLE || c->bev == NULL) {
        smtp_client_free(c);
        return;
    }
    c->gone = gone;
    c->gone_ctx = ctx;
    c->lost = NULL;
    c->state = CS_QUIT;
    smtp_reply_init(&c->reply);
    send_line(c, "QUIT");
    arm(c, c->conf.quit_ms);
}

/* smtp_client_free - close and release now (inside c's own callback: when it
   returns); no callback */
void smtp_client_free(struct smtp_client *c)
{
    if (c == NULL || c->zombie)
        return;
    c->zombie = 1;
    close_conn(c);
    if (c->busy == 0)
        destroy(c);
}

/* destroy - release everything */
static void destroy(struct smtp_client *c)
{
    loop_bufferevent_free(&c->bev);
    loop_event_free(&c->timer);
    loop_event_free(&c->later);
    if (c->conf.ssl_ctx)
        SSL_CTX_free(c->conf.ssl_ctx);
    free(c->cmds);
    free(c->accepted);
    free(c);
}

const char *smtp_client_relay(const struct smtp_client *c)
{
    return c->relay;
}

int smtp_client_tls(const struct smtp_client *c)
{
    return c->tls;
}

long long smtp_client_age_ms(const struct smtp_client *c)
{
    return clock_now_ms() - c->born_ms;
}

size_t smtp_client_messages(const struct smtp_client *c)
{
    return c->nmsg;
}
