/*
 * smtpd.c - SMTP sessions: one bufferevent per client, a state enum and a
 * command table. Replies are queued on the bufferevent, so pipelined
 * commands are answered in order; a client that does not read its replies
 * is not read from until they drained.
 *
 * DATA is read line by line. Only <CRLF>.<CRLF> ends it: a "." line counts
 * only when it and the line before it ended in CRLF. A bare LF, a bare CR
 * or a line over SMTPD_TEXT_MAX anywhere in the data is read to the end and
 * then the whole message is refused with 550 5.5.2 (no normalising: that is
 * the SMTP smuggling defence). A message over message_size_limit is read to
 * the end, nothing is queued, and the reply is 552 5.3.4.
 * At the final dot the queue file goes to the queue's commit threads
 * (queue_commit_async: many sessions' files share the fsyncs); the session
 * waits in ST_COMMIT, reading nothing, until commit_done answers 250 (or
 * 4xx, the file removed), calls the commit hook and goes on with what the
 * client pipelined. A session that ends meanwhile leaves the commit to
 * finish on its own (the message stays queued); smtpd_free drains commits.
 * The client's name (client_name: reverse DNS with forward confirmation, off
 * the loop, bounded) is known before "connect from" and the 220 greeting.
 *
 * STARTTLS puts libevent's OpenSSL filter over the session's bufferevent
 * after the 220 was queued; whatever the client pipelined after STARTTLS is
 * drained unread (CVE-2011-0411) and the session starts over (EHLO again).
 * After TLS the session's bufferevent is the filter; when a session ends
 * its encrypted output may still sit in the socket bufferevent below, so
 * the end waits for that too (session_finish).
 * AUTH is smtpd_auth's (mechanisms, exchange, worker-thread check, delay);
 * the session gives it reply/hold/resume/closing/retract ops. While an
 * exchange runs, input lines are SASL responses, not commands; while a
 * check runs the session reads nothing (busy).
 * Deadlines (smtpd_per_request_deadline): one timer per session, restarted
 * after each complete command line; in DATA it is moved later by every
 * line received, at smtpd_min_data_rate; stopped while the server is busy.
 * ETRN: the session checks its state; smtpd_etrn has the policy (syntax,
 * rate limit, smtpd_etrn_restrictions, #queue, [etrn_users]) and maps the
 * flush service's enum flush_result to the RFC 1985 reply.
 */
#define LOG_SERVICE "smtpd" /* its log lines: syslog_name/smtpd[pid] */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "alloc.h"
#include "anvil.h"
#include "buf.h"
#include "client_name.h"
#include "clock.h"
#include "domain.h"
#include "flush.h"
#include "log.h"
#include "loop.h"
#include "odmr.h"
#include "printable.h"
#include "queue.h"
#include "recipient.h"
#include "server_config.h"
#include "smtpd.h"
#include "smtpd_auth.h"
#include "smtpd_etrn.h"
#include "smtpd_tls.h"

#define OUT_MAX (64 * 1024)   /* stop reading while this much output waits */
#define WRITE_CHUNK (64 * 1024)
#define ADDR_MAX SMTPD_ADDR_MAX
#define ACCEPT_PAUSE_MS 100    /* accept() failed (EMFILE...): listeners off this long */
#define LISTEN_BACKLOG 128

enum smtpd_state {
    ST_INIT,    /* no HELO/EHLO yet */
    ST_READY,   /* greeted, no transaction */
    ST_MAIL,    /* MAIL accepted, RCPTs may follow */
    ST_DATA,    /* reading message content */
    ST_COMMIT,  /* end of data seen: no input, no reply until the commit is done */
    ST_CLOSING, /* last reply queued; close when written */
};

struct smtpd;
struct session;

/* a commit on the queue's threads; s is NULL once the session is gone */
struct commit_wait {
    struct smtpd *srv;
    struct session *s;
    char *sender, *msgid;  /* for the log lines */
    long long size;
    size_t nrcpt;
};

struct session {
    struct smtpd *srv;
    LIST_ENTRY(session) link;      /* srv->sessions */
    struct bufferevent *bev;
    enum smtpd_state state;
    char addr[INET6_ADDRSTRLEN];
    char client[300];      /* "name[addr]", "unknown[addr]" without a verified name */
    char name[256];        /* the verified name, or "unknown" */
    struct client_name_query *name_q; /* the lookup the greeting waits for */
    int family;
    unsigned char rawaddr[16];
    int mynet;
    int exempt;            /* in smtpd_client_event_limit_exceptions */
    struct event *deadline; /* smtpd_per_request_deadline */
    long long deadline_ms;  /* 0: start a new one when armed */
    long long data_start_ms, data_bytes; /* DATA: deadline grows with smtpd_min_data_rate */
    char last_cmd[sizeof("STARTTLS")]; /* for "lost connection after CMD" */
    int esmtp;
    char *helo;
    int discard;           /* skipping the rest of an over-long line */
    int discard_cr;        /* the last discarded byte was CR */
    unsigned last_code;    /* code of the last reply */
    unsigned *ok, *total;  /* per command table entry */
    unsigned unknown_total;
    int tls;               /* bev is the OpenSSL filter */
    int flushing;          /* ending: waiting for the socket below the filter */
    struct smtpd_auth_session *auth; /* AUTH: the exchange, the check, the user */
    int odmr;              /* accepted on an odmr_listen address */
    struct odmr_turn *turn; /* after ATRN's 250: the connection goes to it */
    int busy;              /* waiting for it: no input, no deadline */
    unsigned errors;       /* 4xx/5xx replies since the last message accepted */
    unsigned junk;         /* NOOP, VRFY, ETRN, RSET since the last message accepted */
    int junk_error;        /* this line's junk command is past smtpd_junk_command_limit */
    struct event *tarpit;  /* past smtpd_soft_error_limit: the delay before the next reply */
    /* transaction */
    char *sender;
    char **rcpts;
    size_t nrcpt;
    /* DATA */
    struct queue_file qf;
    int qf_open;
    struct buf out;        /* content not yet written */
    long long size;        /* content octets received (unstuffed, CRLF) */
    int prev_crlf;         /* the previous data line ended in CRLF */
    int bad_eol, too_long, too_big, write_status;
    int in_headers, have_msgid;
    char *msgid;
    struct commit_wait *commit; /* in ST_COMMIT (or closing while it runs) */
};

struct smtpd {
    struct event_base *base;
    const struct server_config *conf;
    struct queue *q;
    int stopping;              /* smtpd_free drains the commits */
    struct evconnlistener **listeners;
    size_t nlisteners;
    struct event *accept_resume;   /* re-enables the listeners after a failed accept() */
    int accept_paused;             /* an episode of failed accept() calls is on */
    long long pause_start_ms;      /* its first failure */
    long long pause_last_ms;       /* the last time the listeners went back on */
    unsigned long pause_retries;   /* accept() failures in it */
    LIST_HEAD(, session) sessions; /* zeroed: empty */
    size_t nsessions;
    smtpd_commit_fn commit_fn;
    void *commit_ctx;
    struct smtpd_etrn_policy etrn; /* ETRN: conf, anvil, the flush hook */
    struct smtpd_tls *tls;     /* NULL: no STARTTLS */
    struct smtpd_auth *auth;   /* AUTH mechanisms, users, password checks */
    struct client_names *names; /* NULL: smtpd_peername_lookup = no */
    struct anvil *anvil;       /* per-client-address counts */
    struct odmr *odmr;         /* ATRN; NULL: ATRN answers 502 */
};

/* the commands, in the order of the counters in the disconnect line */
enum cmd_id {
    CMD_HELO, CMD_EHLO, CMD_STARTTLS, CMD_AUTH, CMD_ETRN, CMD_ATRN, CMD_MAIL, CMD_RCPT,
    CMD_DATA, CMD_RSET, CMD_NOOP, CMD_VRFY, CMD_HELP, CMD_QUIT, NCOMMANDS
};

/*
 * A command as OpenSMTPD's smtp_session.c has it: check holds the state
 * rules (it replies and returns 0 when the command may not run now; NULL:
 * always allowed), proceed does the work.
 */
struct command {
    const char *name;
    int (*check)(struct session *s, const char *arg);
    void (*proceed)(struct session *s, char *arg);
    int junk;  /* counts against smtpd_junk_command_limit */
};

static void cmd_helo(struct session *s, char *arg);
static void cmd_ehlo(struct session *s, char *arg);
static void cmd_starttls(struct session *s, char *arg);
static void cmd_auth(struct session *s, char *arg);
static void cmd_mail(struct session *s, char *arg);
static void cmd_rcpt(struct session *s, char *arg);
static void cmd_data(struct session *s, char *arg);
static void cmd_rset(struct session *s, char *arg);
static void cmd_noop(struct session *s, char *arg);
static void cmd_quit(struct session *s, char *arg);
static void cmd_vrfy(struct session *s, char *arg);
static void cmd_help(struct session *s, char *arg);
static void cmd_etrn(struct session *s, char *arg);
static void cmd_atrn(struct session *s, char *arg);
static int check_atrn(struct session *s, const char *arg);
static int check_starttls(struct session *s, const char *arg);
static int check_auth(struct session *s, const char *arg);
static int check_idle(struct session *s, const char *arg);
static int check_mail(struct session *s, const char *arg);
static int check_rcpt(struct session *s, const char *arg);
static int check_data(struct session *s, const char *arg);

static const struct command commands[NCOMMANDS] = {
    [CMD_HELO] = { "helo", NULL, cmd_helo, 0 },
    [CMD_EHLO] = { "ehlo", NULL, cmd_ehlo, 0 },
    [CMD_STARTTLS] = { "starttls", check_starttls, cmd_starttls, 0 },
    [CMD_AUTH] = { "auth", check_auth, cmd_auth, 0 },
    [CMD_ETRN] = { "etrn", check_idle, cmd_etrn, 1 },
    [CMD_ATRN] = { "atrn", check_atrn, cmd_atrn, 0 },
    [CMD_MAIL] = { "mail", check_mail, cmd_mail, 0 },
    [CMD_RCPT] = { "rcpt", check_rcpt, cmd_rcpt, 0 },
    [CMD_DATA] = { "data", check_data, cmd_data, 0 },
    [CMD_RSET] = { "rset", NULL, cmd_rset, 1 },
    [CMD_NOOP] = { "noop", NULL, cmd_noop, 1 },
    [CMD_VRFY] = { "vrfy", NULL, cmd_vrfy, 1 },
    [CMD_HELP] = { "help", NULL, cmd_help, 0 },
    [CMD_QUIT] = { "quit", NULL, cmd_quit, 0 },
};

static void uncount(struct session *s, enum cmd_id cmd);
static void session_free(struct session *s);
static void session_finish(struct session *s);
static void set_timeouts(struct session *s, struct bufferevent *bev);
static void session_input(struct session *s);
static int error_limits(struct session *s);
static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

/* reply - queue one reply line; the code is remembered for the counters */
static void reply(struct session *s, const char *fmt, ...) LOG_PRINTF(2, 3);
static void reply(struct session *s, const char *fmt, ...)
{
    struct buf b = BUF_INIT;
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    s->last_code = (unsigned) atoi(buf_cstr(&b));
    buf_puts(&b, "\r\n");
    if (bufferevent_write(s->bev, b.data, b.len) != 0)
        log_warn("%s: cannot queue reply", s->client);
    buf_free(&b);
}

/* session_user - the SASL user the client authenticated as, or NULL */
static const char *session_user(const struct session *s)
{
    return smtpd_auth_user(s->auth);
}

/* close_after_reply - stop reading; the session ends when the output drained */
static void close_after_reply(struct session *s)
{
    s->state = ST_CLOSING;
    bufferevent_disable(s->bev, EV_READ);
}

/* transaction_reset - forget sender, recipients and any partial message */
static void transaction_reset(struct session *s)
{
    free(s->sender);
    s->sender = NULL;
    for (size_t i = 0; i < s->nrcpt; i++)
        free(s->rcpts[i]);
    free(s->rcpts);
    s->rcpts = NULL;
    s->nrcpt = 0;
    if (s->qf_open)
        queue_abort(&s->qf);
    s->qf_open = 0;
    buf_reset(&s->out);
    free(s->msgid);
    s->msgid = NULL;
    if (s->state == ST_MAIL || s->state == ST_DATA)
        s->state = ST_READY;
}

/* helo_common - shared part of HELO and EHLO */
static int helo_common(struct session *s, const char *cmd, char *arg)
{
    if (*arg == 0 || strchr(arg, ' ') != NULL) {
        reply(s, "501 5.5.4 Syntax: %s hostname", cmd);
        return -1;
    }
    transaction_reset(s);
    free(s->helo);
    s->helo = printable_dup(arg, '?'); /* it goes into logs and the Received: header */
    s->state = ST_READY;
    return 0;
}

/* cmd_helo - HELO name */
static void cmd_helo(struct session *s, char *arg)
{
    if (helo_common(s, "HELO", arg) == 0) {
        s->esmtp = 0;
        reply(s, "250 %s", s->srv->conf->myhostname);
    }
}

/* cmd_ehlo - EHLO name and the extension list */
static void cmd_ehlo(struct session *s, char *arg)
{
    const struct server_config *conf = s->srv->conf;
    const char *mechs;

    if (helo_common(s, "EHLO", arg) != 0)
        return;
    s->esmtp = 1;
    reply(s, "250-%s", conf->myhostname);
    if (!s->odmr) {
        reply(s, "250-PIPELINING");
        if (conf->message_size_limit > 0)
            reply(s, "250-SIZE %lld", conf->message_size_limit);
        else
            reply(s, "250-SIZE");
        reply(s, "250-ETRN");
    }
    if (s->srv->tls && !s->tls)
        reply(s, "250-STARTTLS");
    if ((mechs = smtpd_auth_offered(s->srv->auth, s->tls)) != NULL)
        reply(s, "250-AUTH %s", mechs);
    if (s->odmr) {
        /* RFC 2645: AUTH and ATRN; nothing for mail transactions */
        reply(s, "250-ATRN");
        reply(s, "250 ENHANCEDSTATUSCODES");
    } else {
        reply(s, "250-ENHANCEDSTATUSCODES");
        reply(s, "250 8BITMIME");
    }
}

/* is_atext - RFC 5322 atext, without '%' and '!' (handled by the caller) */
static int is_atext(int c)
{
    return isalnum(c) || (c != 0 && strchr("#$&'*+-/=?^_`{|}~", c) != NULL);
}

enum addr_result { ADDR_OK, ADDR_SYNTAX, ADDR_ROUTING };

/*
 * parse_path - "<local@domain>" from "FROM:<...> params" or "TO:<...> params".
 * The address goes to addr (without brackets), the domain after its '@' to
 * domain, the rest of the line to *params. Source routes, quoted local parts,
 * empty parts and trailing dots are ADDR_SYNTAX; '%' and '!' in the local
 * part (relay through the recipient host) are ADDR_ROUTING.
 */
static enum addr_result parse_path(char *arg, const char *keyword, int allow_null, char *addr,
                                   char *domain, char **params)
{
    size_t klen = strlen(keyword), n;
    char *p = arg, *end, *at;
    int routing = 0;

    if (strncasecmp(p, keyword, klen) != 0)
        return ADDR_SYNTAX;
    p += klen;
    while (*p == ' ')
        p++;
    if (*p != '<' || (end = strchr(p, '>')) == NULL)
        return ADDR_SYNTAX;
    p++;
    n = (size_t) (end - p);
    if (n >= ADDR_MAX)
        return ADDR_SYNTAX;
    memcpy(addr, p, n);
    addr[n] = 0;
    *params = end + 1;
    if (**params != 0 && **params != ' ')
        return ADDR_SYNTAX;
    while (**params == ' ')
        (*params)++;
    domain[0] = 0;
    if (n == 0)
        return allow_null ? ADDR_OK : ADDR_SYNTAX;
    at = strrchr(addr, '@');
    if (at == NULL || at == addr || at[1] == 0)
        return ADDR_SYNTAX;
    /* local part: dot-atom only; a quoted string or a second '@' is refused */
    if (addr[0] == '.' || at[-1] == '.')
        return ADDR_SYNTAX;
    for (char *c = addr; c < at; c++) {
        if (*c == '%' || *c == '!')
            routing = 1;
        else if (*c == '.' && c[1] == '.')
            return ADDR_SYNTAX;
        else if (*c != '.' && !is_atext((unsigned char) *c))
            return ADDR_SYNTAX;
    }
    snprintf(domain, DOMAIN_MAX + 1, "%s", at + 1);
    if (strlen(at + 1) > DOMAIN_MAX)
        return ADDR_SYNTAX;
    if (!domain_is_hostname(domain, NULL) && !domain_is_address_literal(domain))
        return ADDR_SYNTAX;
    return routing ? ADDR_ROUTING : ADDR_OK;
}

/* smtpd_parse_path - parse_path for tests and fuzzing (smtpd.h) */
int smtpd_parse_path(char *arg, const char *keyword, int allow_null, char *addr, char *domain,
                     char **params)
{
    switch (parse_path(arg, keyword, allow_null, addr, domain, params)) {
    case ADDR_OK:
        return SMTPD_PATH_OK;
    case ADDR_ROUTING:
        return SMTPD_PATH_ROUTING;
    default:
        return SMTPD_PATH_SYNTAX;
    }
}

/* cmd_mail - MAIL FROM:<sender> [SIZE=n] [BODY=...] */
static void cmd_mail(struct session *s, char *arg)
{
    const struct server_config *conf = s->srv->conf;
    char addr[ADDR_MAX], domain[DOMAIN_MAX + 1], *params, *tok, *save;

    if (parse_path(arg, "FROM:", 1, addr, domain, &params) == ADDR_SYNTAX) {
        reply(s, "501 5.1.7 Bad sender address syntax");
        return;
    }
    for (tok = strtok_r(params, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (strncasecmp(tok, "SIZE=", 5) == 0 && s->esmtp) {
            char *e;
            long long size;

            errno = 0;
            size = strtoll(tok + 5, &e, 10);
            if (!isdigit((unsigned char) tok[5]) || *e != 0 || errno != 0) {
                reply(s, "501 5.5.4 Bad message size syntax");
                return;
            }
            if (conf->message_size_limit > 0 && size > conf->message_size_limit) {
                reply(s, "552 5.3.4 Message size exceeds fixed limit");
                return;
            }
        } else if (strcasecmp(tok, "BODY=8BITMIME") == 0 || strcasecmp(tok, "BODY=7BIT") == 0) {
            if (!s->esmtp) {
                reply(s, "555 5.5.4 Unsupported option: %s", tok);
                return;
            }
        } else {
            reply(s, "555 5.5.4 Unsupported option: %s", tok);
            return;
        }
    }
    s->sender = xstrdup(addr);
    s->state = ST_MAIL;
    reply(s, "250 2.1.0 Ok");
}

/* relay_allowed - relay_domains for anyone, any domain from mynetworks or after AUTH */
static int relay_allowed(const struct session *s, const char *domain)
{
    if (s->mynet || session_user(s))
        return 1;
    if (domain[0] == '[')
        return 0;
    return server_domain_match(&s->srv->conf->relay_domains, domain)
        || server_domain_match(&s->srv->conf->mydestination, domain);
}

/* rcpt_reject - refuse one recipient, logged as Postfix logs a NOQUEUE reject */
static void rcpt_reject(struct session *s, const char *addr, const char *code, const char *text)
{
    reply(s, "%s <%s>: %s", code, addr, text);
    log_info("NOQUEUE: reject: RCPT from %s: %s <%s>: %s; from=<%s> to=<%s> proto=%s helo=<%s>",
             s->client, code, addr, text, s->sender, addr, s->esmtp ? "ESMTP" : "SMTP", s->helo);
}

/* local_user_known - 1 known, 0 unknown, -1 cannot tell now (local_recipient_maps) */
static int local_user_known(const struct server_config *conf, const char *addr,
                            const char *user, const char *domain)
{
    char failed[256];
    int fd;

    if (conf->local_recipients)
        return recipient_map_lookup(conf->local_recipients, addr, 1);
    /* no table: the users are those whose Maildir exists; none is created here */
    if (conf->local_maildir_base == NULL || *conf->local_maildir_base == 0)
        return 0;
    fd = recipient_maildir_open(conf->local_maildir_base, conf->home_mailbox, user, domain, 0,
                                failed, sizeof(failed));
    if (fd >= 0) {
        close(fd);
        return 1;
    }
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
        return 0;
    log_warn("%s: local recipient lookup: %s: %s", addr, failed, strerror(errno));
    return -1;
}

/* rcpt_user_known - the recipient exists (local and relay recipient tables); else replied */
static int rcpt_user_known(struct session *s, const char *addr, const char *domain)
{
    const struct server_config *conf = s->srv->conf;
    char user[RECIPIENT_LOCAL_PART_MAX + 1];
    const char *at = strrchr(addr, '@');

    if (domain[0] == '[')
        return 1;
    if (server_domain_match(&conf->mydestination, domain)) {
        size_t n = (size_t) (at - addr);

        if (n >= sizeof(user)) {
            rcpt_reject(s, addr, "501 5.1.3", "Recipient address rejected: "
                        "local part too long for a mailbox");
            return 0;
        }
        memcpy(user, addr, n);
        user[n] = 0;
        if (!recipient_local_part_ok(user)) {
            rcpt_reject(s, addr, "501 5.1.3", "Recipient address rejected: "
                        "local part not valid for a mailbox");
            return 0;
        }
        switch (local_user_known(conf, addr, user, domain)) {
        case 1:
            return 1;
        case 0:
            rcpt_reject(s, addr, "550 5.1.1", "Recipient address rejected: "
                        "User unknown in local recipient table");
            return 0;
        default:
            rcpt_reject(s, addr, "451 4.3.0", "Temporary lookup failure");
            return 0;
        }
    }
    if (conf->relay_recipients && server_domain_match(&conf->relay_domains, domain)
        && !recipient_map_lookup(conf->relay_recipients, addr, 0)) {
        rcpt_reject(s, addr, "550 5.1.1", "Recipient address rejected: "
                    "User unknown in relay recipient table");
        return 0;
    }
    return 1;
}

/* cmd_rcpt - RCPT TO:<recipient>, with relay control */
static void cmd_rcpt(struct session *s, char *arg)
{
    const struct server_config *conf = s->srv->conf;
    char addr[ADDR_MAX], domain[DOMAIN_MAX + 1], *params;
    enum addr_result r;

    r = parse_path(arg, "TO:", 0, addr, domain, &params);
    if (r == ADDR_SYNTAX) {
        reply(s, "501 5.1.3 Bad recipient address syntax");
        return;
    }
    if (*params) {
        reply(s, "555 5.5.4 Unsupported option: %s", params);
        return;
    }
    if (r == ADDR_ROUTING || !relay_allowed(s, domain)) {
        reply(s, "554 5.7.1 <%s>: Relay access denied", addr);
        log_info("NOQUEUE: reject: RCPT from %s: 554 5.7.1 <%s>: Relay access denied; "
                 "from=<%s> to=<%s> proto=%s helo=<%s>", s->client, addr, s->sender, addr,
                 s->esmtp ? "ESMTP" : "SMTP", s->helo);
        return;
    }
    if (!rcpt_user_known(s, addr, domain))
        return;
    if (conf->smtpd_recipient_limit > 0 && (long long) s->nrcpt >= conf->smtpd_recipient_limit) {
        reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    s->rcpts = xreallocarray(s->rcpts, s->nrcpt + 1, sizeof(char *));
    s->rcpts[s->nrcpt++] = xstrdup(addr);
    reply(s, "250 2.1.5 Ok");
}

/* content_flush - write buffered content to the queue file */
static void content_flush(struct session *s)
{
    int rc;

    if (!s->qf_open || s->out.len == 0)
        return;
    rc = queue_write(&s->qf, s->out.data, s->out.len);
    buf_reset(&s->out);
    if (rc != QUEUE_OK) {
        log_error("%s: %s", s->qf.id, queue_error(s->srv->q));
        s->write_status = rc;
        queue_abort(&s->qf);
        s->qf_open = 0;
    }
}

/* content_put - append content (with CRLF), written in chunks */
static void content_put(struct session *s, const char *data, size_t len)
{
    if (!s->qf_open)
        return;
    buf_append(&s->out, data, len);
    if (s->out.len >= WRITE_CHUNK)
        content_flush(s);
}

/* queue_fail_reply - the reply for a failed queue operation */
static void queue_fail_reply(struct session *s, int rc)
{
    if (rc == QUEUE_NOSPACE)
        reply(s, "452 4.3.1 Insufficient system storage");
    else
        reply(s, "451 4.3.0 Error: queue file write error");
}

/* cmd_data - open the queue file, add Received:, switch to content */
static void cmd_data(struct session *s, char *arg)
{
    const struct server_config *conf = s->srv->conf;
    struct buf b = BUF_INIT;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    int rc;

    (void) arg;
    rc = queue_create(s->srv->q, s->sender, s->client, (const char *const *) s->rcpts, s->nrcpt,
                      &s->qf);
    if (rc != QUEUE_OK) {
        log_error("%s: cannot create queue file: %s", s->client, queue_error(s->srv->q));
        queue_fail_reply(s, rc);
        return;
    }
    s->qf_open = 1;
    if (session_user(s))
        log_info("%s: client=%s, sasl_method=%s, sasl_username=%s", s->qf.id, s->client,
                 smtpd_auth_method(s->auth), session_user(s));
    else
        log_info("%s: client=%s", s->qf.id, s->client);
    localtime_r(&now, &tm);
    if (strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
        date[0] = 0;
    buf_printf(&b, "Received: from %s (%s [%s])\r\n", s->helo, s->name, s->addr);
    if (s->tls) {
        SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

        if (ssl)
            buf_printf(&b, "\t(using %s with cipher %s)\r\n", SSL_get_version(ssl),
                       SSL_get_cipher_name(ssl));
    }
    /* RFC 3848 protocol names */
    buf_printf(&b, "\tby %s (etrn-server) with %s%s%s id %s", conf->myhostname,
               s->esmtp ? "ESMTP" : "SMTP", s->esmtp && s->tls ? "S" : "",
               s->esmtp && session_user(s) ? "A" : "", s->qf.id);
    if (s->nrcpt == 1)
        buf_printf(&b, "\r\n\tfor <%s>", s->rcpts[0]);
    buf_printf(&b, "; %s\r\n", date);
    buf_reset(&s->out);
    s->size = 0;
    s->prev_crlf = 1;
    s->bad_eol = s->too_long = s->too_big = 0;
    s->write_status = QUEUE_OK;
    s->in_headers = 1;
    s->have_msgid = 0;
    content_put(s, b.data, b.len);
    buf_free(&b);
    s->state = ST_DATA;
    s->data_start_ms = clock_now_ms();
    s->data_bytes = 0;
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* header_end - first non-header line: add a Message-Id if the client sent none */
static void header_end(struct session *s)
{
    struct buf b = BUF_INIT;

    s->in_headers = 0;
    if (s->have_msgid)
        return;
    buf_printf(&b, "<%s@%s>", s->qf.id, s->srv->conf->myhostname);
    s->msgid = buf_steal(&b);
    buf_printf(&b, "Message-Id: %s\r\n", s->msgid);
    content_put(s, b.data, b.len);
    buf_free(&b);
}

/* header_line - note the Message-ID of one header line */
static void header_line(struct session *s, const char *line, size_t len)
{
    const char *p;

    if (len == 0 || (line[0] != ' ' && line[0] != '\t' && memchr(line, ':', len) == NULL)) {
        header_end(s);
        return;
    }
    if (s->have_msgid || len < 11 || strncasecmp(line, "message-id:", 11) != 0)
        return;
    p = line + 11;
    while (p < line + len && (*p == ' ' || *p == '\t'))
        p++;
    s->have_msgid = 1;
    s->msgid = xstrndup(p, (size_t) (line + len - p));
}

/* data_end - a refused DATA does not count as a success; fresh transaction */
static void data_end(struct session *s)
{
    if (s->last_code >= 400) {
        /* the 354 counted DATA as a success; the message was not taken after all */
        uncount(s, CMD_DATA);
    }
    s->state = ST_MAIL; /* transaction_reset returns it to ST_READY */
    transaction_reset(s);
}

/* commit_done - the queue file is durable (250) or gone (4xx); resume the session */
static void commit_done(void *ctx, const char *id, int status, const char *error)
{
    struct commit_wait *w = ctx;
    struct session *s = w->s;
    struct smtpd *srv = w->srv;

    if (status != QUEUE_OK) {
        log_error("%s: %s", id, error);
    } else {
        /* in Postfix, cleanup logs the message-id and the qmgr takes the message */
        log_info_as("cleanup", "%s: message-id=%s", id, w->msgid ? w->msgid : "");
        log_info_as("qmgr", "%s: from=<%s>, size=%lld, nrcpt=%zu (queue active)", id, w->sender,
                    w->size, w->nrcpt);
    }
    free(w->sender);
    free(w->msgid);
    free(w);
    if (s == NULL) {
        /* the client left before the reply: the message is queued all the same */
        if (status == QUEUE_OK && srv->commit_fn)
            srv->commit_fn(srv->commit_ctx, id);
        return;
    }
    s->commit = NULL;
    if (s->state != ST_COMMIT) {
        /* closing (timeout): the last reply was sent already */
        if (status == QUEUE_OK && srv->commit_fn)
            srv->commit_fn(srv->commit_ctx, id);
        return;
    }
    if (status == QUEUE_OK) {
        reply(s, "250 2.0.0 Ok: queued as %s", id);
        s->errors = 0; /* Postfix: errors count "without delivering mail" */
        s->junk = 0;
    } else {
        queue_fail_reply(s, status);
    }
    if (status == QUEUE_OK && srv->commit_fn)
        srv->commit_fn(srv->commit_ctx, id);
    data_end(s);
    if (srv->stopping)
        return;
    /* commands pipelined after the dot, in order */
    bufferevent_enable(s->bev, EV_READ);
    session_input(s);
    if (s->state == ST_CLOSING)
        session_finish(s);
}

/* commit_start - hand the file to the commit threads; the session waits in ST_COMMIT */
static int commit_start(struct session *s)
{
    struct commit_wait *w = xcalloc(1, sizeof(*w));
    int rc;

    w->srv = s->srv;
    w->s = s;
    w->size = (long long) s->qf.size;
    w->nrcpt = s->nrcpt;
    s->qf_open = 0;
    if ((rc = queue_commit_async(&s->qf, commit_done, w)) != QUEUE_OK) {
        free(w);
        return rc;
    }
    w->sender = s->sender;
    s->sender = NULL;
    w->msgid = s->msgid;
    s->msgid = NULL;
    s->commit = w;
    transaction_reset(s);
    s->state = ST_COMMIT;
    bufferevent_disable(s->bev, EV_READ);
    return QUEUE_OK;
}

/* data_done - end of DATA: refuse, or commit (the reply comes from commit_done) */
static void data_done(struct session *s)
{
    int rc;

    if (s->in_headers && s->qf_open)
        header_end(s);
    if (s->bad_eol || s->too_long) {
        reply(s, "550 5.5.2 Error: %s in message data",
              s->bad_eol ? "bare <CR> or <LF>" : "line too long");
        log_info("%s: reject: %s in message data from %s", s->qf_open ? s->qf.id : "NOQUEUE",
                 s->bad_eol ? "bare CR or LF" : "text line too long", s->client);
    } else if (s->too_big) {
        reply(s, "552 5.3.4 Error: message file too big");
        log_info("NOQUEUE: reject: message from %s larger than message_size_limit", s->client);
    } else if (s->write_status != QUEUE_OK) {
        queue_fail_reply(s, s->write_status);
    } else {
        content_flush(s);
        if (s->write_status != QUEUE_OK) {
            queue_fail_reply(s, s->write_status);
        } else if ((rc = commit_start(s)) != QUEUE_OK) {
            log_error("%s: %s", s->qf.id, queue_error(s->srv->q));
            queue_fail_reply(s, rc);
        } else {
            return;
        }
    }
    data_end(s);
}

/* data_line - one line of content (without its line end) */
static void data_line(struct session *s, char *line, size_t len, int crlf)
{
    const struct server_config *conf = s->srv->conf;

    if (crlf && s->prev_crlf && len == 1 && line[0] == '.') {
        data_done(s);
        return;
    }
    s->prev_crlf = crlf;
    if (!crlf || memchr(line, '\r', len) != NULL)
        s->bad_eol = 1;
    if (len > 0 && line[0] == '.') {
        line++;
        len--;
    }
    s->size += (long long) len + 2;
    if (conf->message_size_limit > 0 && s->size > conf->message_size_limit && !s->too_big) {
        s->too_big = 1;
        if (s->qf_open)
            queue_abort(&s->qf);
        s->qf_open = 0;
    }
    if (s->bad_eol || s->too_big || !s->qf_open)
        return;
    if (s->in_headers)
        header_line(s, line, len);
    content_put(s, line, len);
    content_put(s, "\r\n", 2);
}

/* cmd_rset - RSET */
static void cmd_rset(struct session *s, char *arg)
{
    (void) arg;
    transaction_reset(s);
    reply(s, "250 2.0.0 Ok");
}

/* cmd_noop - NOOP */
static void cmd_noop(struct session *s, char *arg)
{
    (void) arg;
    reply(s, "250 2.0.0 Ok");
}

/* cmd_quit - QUIT */
static void cmd_quit(struct session *s, char *arg)
{
    (void) arg;
    reply(s, "221 2.0.0 Bye");
    close_after_reply(s);
}

/* cmd_vrfy - VRFY never reveals anything */
static void cmd_vrfy(struct session *s, char *arg)
{
    if (*arg == 0)
        reply(s, "501 5.5.4 Syntax: VRFY address");
    else
        reply(s, "252 2.0.0 Cannot VRFY user; try RCPT to attempt delivery");
}

/* cmd_help - HELP */
static void cmd_help(struct session *s, char *arg)
{
    (void) arg;
    reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP ETRN%s%s",
          s->srv->tls ? " STARTTLS" : "", smtpd_auth_enabled(s->srv->auth) ? " AUTH" : "");
}

/* uncount - a command first counted as a success failed later (AUTH after 334) */
static void uncount(struct session *s, enum cmd_id cmd)
{
    if (s->ok[cmd] > 0)
        s->ok[cmd]--;
}

/* cmd_starttls - 220, then TLS over the same connection; plaintext after it is dropped */
static void cmd_starttls(struct session *s, char *arg)
{
    struct smtpd *srv = s->srv;
    struct bufferevent *under = s->bev, *tbev;
    struct evbuffer *in = bufferevent_get_input(under);
    SSL *ssl;
    size_t dropped;

    (void) arg;
    ERR_clear_error();
    if ((ssl = smtpd_tls_ssl(srv->tls)) == NULL) {
        char why[256];

        ERR_error_string_n(ERR_get_error(), why, sizeof(why));
        ERR_clear_error();
        log_warn("%s: cannot make a TLS session: %s", s->client, why);
        reply(s, "454 4.7.0 TLS not available due to local problem");
        return;
    }
    reply(s, "220 2.0.0 Ready to start TLS");
    /* CVE-2011-0411: nothing the client sent before the handshake may count */
    dropped = evbuffer_get_length(in);
    if (dropped > 0) {
        evbuffer_drain(in, dropped);
        log_info("%s: discarded %zu octets pipelined after STARTTLS", s->client, dropped);
    }
    /* RFC 3207 4.2: forget everything learnt before TLS */
    transaction_reset(s);
    free(s->helo);
    s->helo = NULL;
    s->esmtp = 0;
    s->state = ST_INIT;
    bufferevent_set_timeouts(under, NULL, NULL);
    /* deferred callbacks: a failing handshake never frees s under our feet */
    tbev = bufferevent_openssl_filter_new(srv->base, under, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                          BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (tbev == NULL) {
        SSL_free(ssl);
        log_error("%s: cannot start the TLS filter", s->client);
        close_after_reply(s);
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(tbev, 1);
    s->bev = tbev;
    s->tls = 1;
    bufferevent_setcb(tbev, read_cb, write_cb, event_cb, s);
    set_timeouts(s, tbev);
    bufferevent_enable(tbev, EV_READ | EV_WRITE);
}

/* session_hold - the server works for this session: read nothing until session_resume */
static void session_hold(struct session *s)
{
    s->busy = 1;
    bufferevent_disable(s->bev, EV_READ);
}

/* session_resume - go on with what the client sent meanwhile */
static void session_resume(struct session *s)
{
    s->busy = 0;
    if (s->srv->stopping)
        return;
    if (s->state != ST_CLOSING) {
        bufferevent_enable(s->bev, EV_READ);
        session_input(s);
    }
    if (s->state == ST_CLOSING)
        session_finish(s); /* may free s */
}

/* auth_reply - smtpd_auth_ops: one reply line */
static void auth_reply(void *ctx, const char *line)
{
    reply(ctx, "%s", line);
}

/* auth_hold - smtpd_auth_ops: a password check runs; the AUTH command counts as answered */
static void auth_hold(void *ctx)
{
    struct session *s = ctx;

    s->last_code = 0;
    session_hold(s);
}

/* auth_resume - smtpd_auth_ops: the verdict was given; a 535 counts for the
   error limits as an error answered at once does */
static void auth_resume(void *ctx)
{
    struct session *s = ctx;

    s->busy = 0;
    if (error_limits(s)) {
        if (s->state == ST_CLOSING)
            session_finish(s); /* may free s */
        return;
    }
    session_resume(s);
}

/* auth_closing - smtpd_auth_ops: the last reply (a 421) was queued */
static int auth_closing(void *ctx)
{
    return ((struct session *) ctx)->state == ST_CLOSING;
}

/* auth_retract - smtpd_auth_ops: AUTH, counted as a success at its 334, failed */
static void auth_retract(void *ctx)
{
    uncount(ctx, CMD_AUTH);
}

static const struct smtpd_auth_ops auth_ops = {
    .reply = auth_reply,
    .hold = auth_hold,
    .resume = auth_resume,
    .closing = auth_closing,
    .retract = auth_retract,
};

/* cmd_auth - AUTH PLAIN|LOGIN [initial-response] (RFC 4954), only inside TLS */
static void cmd_auth(struct session *s, char *arg)
{
    if (smtpd_auth_command(s->auth, s->tls, arg) == SMTPD_AUTH_CLOSE)
        close_after_reply(s);
}

/* cmd_etrn - ETRN host | @host | #queue | [address] (RFC 1985): smtpd_etrn's policy */
static void cmd_etrn(struct session *s, char *arg)
{
    struct smtpd_etrn_client c = {
        .addr = s->addr,
        .client = s->client,
        .helo = s->helo,
        .user = session_user(s),
        .esmtp = s->esmtp,
        .mynet = s->mynet,
        .exempt = s->exempt,
    };
    struct buf b = BUF_INIT;

    smtpd_etrn(&s->srv->etrn, &c, arg, &b);
    reply(s, "%s", buf_cstr(&b));
    buf_free(&b);
}

/*
 * The state rules, each written once. Every check replies and returns 0
 * when the command may not run now, else returns 1.
 */

/* cmd_atrn - ATRN [domain[,domain...]]: on 250 the connection goes to the turn */
static void cmd_atrn(struct session *s, char *arg)
{
    struct buf b = BUF_INIT;
    struct odmr_turn *t;
    long long limit = s->srv->conf->etrn_rate_limit;

    /* counted with ETRN: each ATRN may read the queue (odmr.h), so it is rate-limited too */
    if (!s->exempt && limit > 0
        && anvil_event(s->srv->anvil, ANVIL_ETRN, s->addr, clock_now_ms())
               > (unsigned long long) limit) {
        log_warn("reject: ATRN from %s, sasl_username=%s: more than etrn_rate_limit (%lld) "
                 "requests", s->client, session_user(s), limit);
        reply(s, "451 4.7.0 Error: too many ATRN requests from %s", s->addr);
        return;
    }
    odmr_atrn(s->srv->odmr, session_user(s), s->addr, s->client, arg, &b, &t);
    reply(s, "%s", buf_cstr(&b));
    buf_free(&b);
    if (t) {
        s->turn = t;
        close_after_reply(s); /* write_cb hands the connection over once 250 is out */
    }
}

/* need_greeting - HELO/EHLO came first */
static int need_greeting(struct session *s)
{
    if (s->state != ST_INIT)
        return 1;
    reply(s, "503 5.5.1 Error: send HELO/EHLO first");
    return 0;
}

/* no_transaction - no MAIL transaction runs */
static int no_transaction(struct session *s)
{
    if (s->state != ST_MAIL)
        return 1;
    reply(s, "503 5.5.1 Error: MAIL transaction in progress");
    return 0;
}

/* no_argument - the command takes none */
static int no_argument(struct session *s, const char *arg, const char *cmd)
{
    if (*arg == 0)
        return 1;
    reply(s, "501 5.5.4 Syntax: %s", cmd);
    return 0;
}

/* check_idle - ETRN: greeted, outside a transaction */
static int check_idle(struct session *s, const char *arg)
{
    (void) arg;
    return need_greeting(s) && no_transaction(s);
}

/* check_atrn - the ODMR listener only; greeted; authenticated */
static int check_atrn(struct session *s, const char *arg)
{
    (void) arg;
    if (!s->odmr || s->srv->odmr == NULL) {
        reply(s, "502 5.5.1 Error: command not implemented");
        return 0;
    }
    if (!need_greeting(s))
        return 0;
    if (session_user(s) == NULL) {
        reply(s, "530 5.7.0 Authentication required");
        return 0;
    }
    return 1;
}

/* check_starttls - no argument, not in TLS yet, a certificate, outside a transaction */
static int check_starttls(struct session *s, const char *arg)
{
    if (!no_argument(s, arg, "STARTTLS"))
        return 0;
    if (s->tls) {
        reply(s, "503 5.5.1 Error: TLS already active");
        return 0;
    }
    if (s->srv->tls == NULL) {
        reply(s, "454 4.7.0 TLS not available");
        return 0;
    }
    return no_transaction(s);
}

/* check_auth - offered here (TLS, users), greeted, outside a transaction */
static int check_auth(struct session *s, const char *arg)
{
    if (smtpd_auth_offered(s->srv->auth, s->tls) == NULL) {
        reply(s, "503 5.5.1 Error: authentication not enabled");
        return 0;
    }
    return check_idle(s, arg);
}

/* check_mail - greeted, no transaction yet */
static int check_mail(struct session *s, const char *arg)
{
    (void) arg;
    if (!need_greeting(s))
        return 0;
    if (s->state != ST_READY) {
        reply(s, "503 5.5.1 Error: nested MAIL command");
        return 0;
    }
    return 1;
}

/* check_rcpt - inside a transaction */
static int check_rcpt(struct session *s, const char *arg)
{
    (void) arg;
    if (s->state == ST_MAIL)
        return 1;
    reply(s, "503 5.5.1 Error: need MAIL command");
    return 0;
}

/* check_data - no argument, inside a transaction, with a recipient */
static int check_data(struct session *s, const char *arg)
{
    if (!no_argument(s, arg, "DATA"))
        return 0;
    if (s->state != ST_MAIL) {
        reply(s, "503 5.5.1 Error: need RCPT command");
        return 0;
    }
    if (s->nrcpt == 0) {
        reply(s, "554 5.5.1 Error: no valid recipients");
        return 0;
    }
    return 1;
}

/* odmr_command - the commands an ODMR listener takes (RFC 2645) */
static int odmr_command(size_t cmd)
{
    return cmd == CMD_EHLO || cmd == CMD_STARTTLS || cmd == CMD_AUTH || cmd == CMD_ATRN
           || cmd == CMD_NOOP || cmd == CMD_RSET || cmd == CMD_QUIT;
}

/* command_line - dispatch one command line (without its line end) */
static void command_line(struct session *s, char *line, size_t len)
{
    char *arg;
    size_t n;

    if (memchr(line, 0, len) != NULL || memchr(line, '\r', len) != NULL) {
        s->unknown_total++;
        reply(s, "500 5.5.2 Error: bad character in command");
        return;
    }
    line[len] = 0;
    n = strcspn(line, " ");
    arg = line + n;
    while (*arg == ' ')
        arg++;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strlen(commands[i].name) == n && strncasecmp(line, commands[i].name, n) == 0) {
            size_t alen = strlen(arg);

            while (alen > 0 && arg[alen - 1] == ' ')
                arg[--alen] = 0;
            s->total[i]++;
            snprintf(s->last_cmd, sizeof(s->last_cmd), "%s", commands[i].name);
            for (char *c = s->last_cmd; *c; c++)
                *c = (char) toupper((unsigned char) *c);
            if (s->odmr && !odmr_command(i))
                reply(s, "502 5.5.1 Error: command not available on the ODMR service");
            else if (commands[i].check == NULL || commands[i].check(s, arg))
                commands[i].proceed(s, arg);
            if (s->last_code < 400)
                s->ok[i]++;
            /* Postfix: past smtpd_junk_command_limit each junk command is an error */
            if (commands[i].junk && ++s->junk > (unsigned) s->srv->conf->smtpd_junk_command_limit)
                s->junk_error = 1;
            return;
        }
    }
    s->unknown_total++;
    snprintf(s->last_cmd, sizeof(s->last_cmd), "UNKNOWN");
    reply(s, "502 5.5.2 Error: command not recognized");
}

/* discard_input - skip to the end of an over-long line; 1 when the LF was seen */
static int discard_input(struct session *s, struct evbuffer *in)
{
    struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
    size_t len = evbuffer_get_length(in);
    char c;

    if (eol.pos < 0) {
        struct evbuffer_ptr last;

        if (len > 0 && evbuffer_ptr_set(in, &last, len - 1, EVBUFFER_PTR_SET) == 0
            && evbuffer_copyout_from(in, &last, &c, 1) == 1)
            s->discard_cr = c == '\r';
        evbuffer_drain(in, len);
        return 0;
    }
    if (eol.pos > 0) {
        struct evbuffer_ptr before;

        if (evbuffer_ptr_set(in, &before, (size_t) eol.pos - 1, EVBUFFER_PTR_SET) == 0
            && evbuffer_copyout_from(in, &before, &c, 1) == 1)
            s->discard_cr = c == '\r';
    }
    evbuffer_drain(in, (size_t) eol.pos + 1);
    s->discard = 0;
    return 1;
}

/*
 * set_timeouts - bufferevent timeouts: per read without request deadlines;
 * writes always. The TLS filter's write timeout runs whenever writing is
 * enabled, output or not (an idle timer), so with request deadlines the
 * write timeout goes on the socket below it, where it only runs while
 * output waits.
 */
static void set_timeouts(struct session *s, struct bufferevent *bev)
{
    struct bufferevent *under = bufferevent_get_underlying(bev);
    struct timeval tv;

    tv.tv_sec = (time_t) s->srv->conf->smtpd_timeout;
    tv.tv_usec = 0;
    if (!s->srv->conf->smtpd_per_request_deadline) {
        bufferevent_set_timeouts(bev, &tv, &tv);
    } else if (under) {
        bufferevent_set_timeouts(bev, NULL, NULL);
        bufferevent_set_timeouts(under, NULL, &tv);
    } else {
        bufferevent_set_timeouts(bev, NULL, &tv);
    }
}

/* session_timeout - 421 and close: smtpd_timeout or the request deadline passed */
static void session_timeout(struct session *s)
{
    if (s->state == ST_DATA)
        log_info("timeout after DATA (%lld bytes) from %s", s->size, s->client);
    else
        log_info("timeout after %s from %s", s->state == ST_COMMIT ? "END-OF-MESSAGE"
                 : s->last_cmd[0] ? s->last_cmd : "CONNECT", s->client);
    reply(s, "421 4.4.2 %s Error: timeout exceeded", s->srv->conf->myhostname);
    close_after_reply(s);
    bufferevent_enable(s->bev, EV_WRITE);
}

/* deadline_cb - a command line or the DATA stream took longer than allowed */
static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    (void) fd;
    (void) what;
    if (s->state != ST_CLOSING && s->state != ST_COMMIT)
        session_timeout(s);
}

/*
 * deadline_arm - smtpd_per_request_deadline: a command line must arrive
 * complete within smtpd_timeout of the previous one's end; DATA gets
 * smtpd_timeout from its 354 plus one second per smtpd_min_data_rate bytes
 * received. No deadline runs while the server itself is busy.
 */
static void deadline_arm(struct session *s)
{
    const struct server_config *conf = s->srv->conf;
    long long now, due;
    struct timeval tv;

    if (s->deadline == NULL)
        return;
    if (!conf->smtpd_per_request_deadline || s->state == ST_COMMIT || s->state == ST_CLOSING
        || s->busy) {
        evtimer_del(s->deadline);
        s->deadline_ms = 0;
        return;
    }
    now = clock_now_ms();
    if (s->state == ST_DATA) {
        due = s->data_start_ms + conf->smtpd_timeout * 1000
              + s->data_bytes * 1000 / conf->smtpd_min_data_rate;
    } else {
        if (s->deadline_ms == 0)
            s->deadline_ms = now + conf->smtpd_timeout * 1000;
        due = s->deadline_ms;
    }
    tv = clock_timeval(due > now ? due - now : 0);
    evtimer_add(s->deadline, &tv);
}

static void session_lines(struct session *s);

/* session_input - handle every complete line that is buffered, then set the deadline */
static void session_input(struct session *s)
{
    session_lines(s);
    deadline_arm(s);
}

/* session_lines - the lines of session_input */
static void session_lines(struct session *s)
{
    char line[SMTPD_TEXT_MAX + 1];

    while (s->state != ST_CLOSING && s->state != ST_COMMIT && !s->busy) {
        /* fetched each time: STARTTLS replaces the bufferevent */
        struct evbuffer *in = bufferevent_get_input(s->bev);
        struct evbuffer *outbuf = bufferevent_get_output(s->bev);
        size_t limit = s->state == ST_DATA ? SMTPD_TEXT_MAX : SMTPD_LINE_MAX;
        struct evbuffer_ptr eol;
        size_t len;
        int crlf;

        if (evbuffer_get_length(outbuf) > OUT_MAX) {
            bufferevent_disable(s->bev, EV_READ);
            return;
        }
        if (s->discard) {
            if (!discard_input(s, in))
                return;
            if (s->state == ST_DATA) {
                s->prev_crlf = s->discard_cr;
            } else if (smtpd_auth_running(s->auth)) {
                smtpd_auth_too_long(s->auth);
            } else {
                s->unknown_total++;
                reply(s, "500 5.5.2 Error: line too long");
            }
            continue;
        }
        eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
        len = evbuffer_get_length(in);
        if (eol.pos < 0 ? len >= limit : (size_t) eol.pos + 1 > limit) {
            s->discard = 1;
            s->discard_cr = 0;
            if (s->state == ST_DATA) {
                s->too_long = 1;
                s->size += (long long) (eol.pos < 0 ? len : (size_t) eol.pos);
            }
            continue;
        }
        if (eol.pos < 0)
            return;
        len = (size_t) eol.pos + 1;
        if (evbuffer_remove(in, line, len) != (int) len) {
            log_error("%s: cannot read input buffer", s->client);
            close_after_reply(s);
            return;
        }
        /* a complete line: the next request starts, or DATA earns time */
        if (s->state == ST_DATA)
            s->data_bytes += (long long) len;
        else
            s->deadline_ms = 0;
        len--; /* the LF */
        crlf = len > 0 && line[len - 1] == '\r';
        if (crlf)
            len--;
        line[len] = 0;
        if (s->state == ST_DATA) {
            data_line(s, line, len, crlf);
            continue;
        }
        s->last_code = 0;
        s->junk_error = 0;
        if (smtpd_auth_running(s->auth))
            smtpd_auth_response(s->auth, line, len);
        else
            command_line(s, line, len);
        if (error_limits(s))
            return;
    }
}

/* tarpit_cb - the delay is over: send the held reply, go on reading */
static void tarpit_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;

    (void) fd;
    (void) what;
    bufferevent_enable(s->bev, EV_WRITE);
    session_resume(s); /* may free s */
}

/*
 * error_limits - Postfix's smtpd_soft_error_limit and smtpd_hard_error_limit
 * after a command: count a 4xx/5xx reply; at the hard limit answer 421 and
 * end the session; past the soft limit hold the reply and all input for
 * smtpd_error_sleep_time. A junk command past smtpd_junk_command_limit
 * counts as an error too. The counts restart when a message is accepted.
 * Clients in smtpd_client_event_limit_exceptions are not slowed or cut off.
 * Returns 1 when the caller must stop reading lines.
 */
static int error_limits(struct session *s)
{
    const struct server_config *conf = s->srv->conf;
    struct timeval tv;

    if ((s->last_code < 400 && !s->junk_error) || s->state == ST_CLOSING || s->exempt)
        return 0;
    s->junk_error = 0;
    s->errors++;
    if (conf->smtpd_hard_error_limit > 0 && s->errors >= (unsigned) conf->smtpd_hard_error_limit) {
        log_info("too many errors after %s from %s", s->last_cmd, s->client);
        reply(s, "421 4.7.0 %s Error: too many errors", conf->myhostname);
        close_after_reply(s);
        return 1;
    }
    if (s->busy || s->errors <= (unsigned) conf->smtpd_soft_error_limit
        || conf->smtpd_error_sleep_time <= 0 || s->srv->stopping)
        return 0;
    if (s->tarpit == NULL && (s->tarpit = evtimer_new(s->srv->base, tarpit_cb, s)) == NULL)
        return 0;
    tv.tv_sec = (time_t) conf->smtpd_error_sleep_time;
    tv.tv_usec = 0;
    session_hold(s);
    bufferevent_disable(s->bev, EV_WRITE); /* the reply waits too, as Postfix's sleep */
    evtimer_add(s->tarpit, &tv);
    return 1;
}

/* read_cb - bufferevent: input arrived */
static void read_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;

    (void) bev;
    session_input(s);
    if (s->state == ST_CLOSING)
        session_finish(s);
}

/* turn_over - ATRN's 250 is out: the connection (TLS kept) goes to the turn */
static void turn_over(struct session *s)
{
    struct bufferevent *bev = s->bev;
    struct odmr_turn *t = s->turn;
    int tls = s->tls;

    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    bufferevent_set_timeouts(bev, NULL, NULL);
    s->bev = NULL;
    s->turn = NULL;
    session_free(s);
    odmr_turn_start(t, bev, tls);
}

/* write_cb - bufferevent: output drained */
static void write_cb(struct bufferevent *bev, void *arg)
{
    struct session *s = arg;

    (void) bev;
    if (s->state == ST_CLOSING) {
        session_finish(s);
        return;
    }
    if (s->state != ST_COMMIT && !s->busy && !(bufferevent_get_enabled(s->bev) & EV_READ)) {
        bufferevent_enable(s->bev, EV_READ);
        read_cb(s->bev, s);
    }
}

/* event_cb - bufferevent: EOF, error or timeout */
static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct session *s = arg;

    (void) bev;
    if (what & BEV_EVENT_CONNECTED) {
        SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

        if (ssl)
            log_info("Anonymous TLS connection established from %s: %s with cipher %s",
                     s->client, SSL_get_version(ssl), SSL_get_cipher_name(ssl));
        return;
    }
    if ((what & BEV_EVENT_TIMEOUT) && s->state != ST_CLOSING) {
        session_timeout(s);
        return;
    }
    if ((what & BEV_EVENT_ERROR) && s->tls) {
        unsigned long e = bufferevent_get_openssl_error(s->bev);
        char why[256];

        if (e != 0) {
            ERR_error_string_n(e, why, sizeof(why));
            log_info("SSL_accept error from %s: %s", s->client, why);
        } else {
            log_info("lost connection from %s: %s", s->client,
                     errno ? strerror(errno) : "TLS error");
        }
    } else if (what & BEV_EVENT_ERROR)
        log_info("lost connection from %s: %s", s->client, strerror(errno));
    else if ((what & BEV_EVENT_EOF) && s->state != ST_CLOSING)
        log_info("lost connection after %s from %s", s->state == ST_DATA || s->state == ST_COMMIT ? "END-OF-MESSAGE"
                 : s->last_cmd[0] ? s->last_cmd : "CONNECT", s->client);
    session_free(s);
}

/* under_write_cb - the socket below the TLS filter drained: the session can end */
static void under_write_cb(struct bufferevent *bev, void *arg)
{
    (void) bev;
    session_free(arg);
}

/* under_event_cb - the socket below the TLS filter failed while draining */
static void under_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void) bev;
    (void) what;
    session_free(arg);
}

/* session_finish - end a closing session once everything queued was written */
static void session_finish(struct session *s)
{
    struct bufferevent *under;
    struct timeval tv;

    if (s->flushing || evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
        return;
    if (s->turn) {
        /* ATRN's 250 left the session's buffer: the turn takes the connection as it is */
        turn_over(s);
        return;
    }
    under = s->tls ? bufferevent_get_underlying(s->bev) : NULL;
    if (under && evbuffer_get_length(bufferevent_get_output(under)) > 0) {
        /* the filter is done; the encrypted bytes are still below it */
        s->flushing = 1;
        bufferevent_setcb(under, NULL, under_write_cb, under_event_cb, s);
        tv.tv_sec = (time_t) s->srv->conf->smtpd_timeout;
        tv.tv_usec = 0;
        bufferevent_set_timeouts(under, NULL, &tv);
        bufferevent_enable(under, EV_WRITE);
        return;
    }
    session_free(s);
}

/* counter - " name=ok" or " name=ok/total" */
static void counter(struct buf *b, const char *name, unsigned ok, unsigned total)
{
    if (total == 0)
        return;
    if (ok == total)
        buf_printf(b, " %s=%u", name, ok);
    else
        buf_printf(b, " %s=%u/%u", name, ok, total);
}

/* session_free - log the disconnect line and release everything */
static void session_free(struct session *s)
{
    struct smtpd *srv = s->srv;
    struct buf b = BUF_INIT;
    unsigned ok = 0, total = s->unknown_total;

    for (size_t i = 0; i < NCOMMANDS; i++) {
        counter(&b, commands[i].name, s->ok[i], s->total[i]);
        ok += s->ok[i];
        total += s->total[i];
    }
    counter(&b, "unknown", 0, s->unknown_total);
    counter(&b, "commands", ok, total);
    if (total == 0)
        buf_puts(&b, " commands=0");
    client_name_cancel(s->name_q);
    log_info("disconnect from %s%s", s->client, buf_cstr(&b));
    buf_free(&b);
    if (s->commit)
        s->commit->s = NULL; /* the commit finishes without the session */
    smtpd_auth_session_free(s->auth); /* a check running finishes without the session */
    transaction_reset(s);
    buf_free(&s->out);
    odmr_turn_abort(s->turn); /* the session ended before ATRN's 250 was out */
    loop_bufferevent_free(&s->bev);
    LIST_REMOVE(s, link);
    srv->nsessions--;
    loop_event_free(&s->deadline);
    loop_event_free(&s->tarpit);
    anvil_disconnect(srv->anvil, s->addr, clock_now_ms());
    free(s->helo);
    free(s->ok);
    free(s->total);
    free(s);
}

/* refuse - send one 421 line and close, without a session */
static void refuse(evutil_socket_t fd, const char *client, const char *fmt, ...) LOG_PRINTF(3, 4);
static void refuse(evutil_socket_t fd, const char *client, const char *fmt, ...)
{
    struct buf b = BUF_INIT;
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    buf_puts(&b, "\r\n");
    /* a new socket's buffer takes one line: the write cannot block or be short */
    if (write(fd, b.data, b.len) < 0)
        log_info("cannot send 421 to %s: %s", client, strerror(errno));
    if (close(fd) != 0)
        log_warn("close: %s", strerror(errno));
    buf_free(&b);
}

/*
 * Out of descriptors. accept() failing with EMFILE or ENFILE leaves the
 * connection in the kernel's queue, so the listening socket stays readable
 * and the loop would call accept() again at once, forever, at 100% CPU,
 * taking it from the sessions that are open. Instead every listener is
 * switched off for ACCEPT_PAUSE_MS and then tried again; one warning per
 * episode, and an info line with the first connection accepted after it.
 */

/* accept_error_cb - accept() failed: pause every listener, retry in ACCEPT_PAUSE_MS */
static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    struct smtpd *srv = arg;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = { 0, ACCEPT_PAUSE_MS * 1000 };

    (void) l;
    for (size_t i = 0; i < srv->nlisteners; i++)
        evconnlistener_disable(srv->listeners[i]);
    evtimer_add(srv->accept_resume, &tv);
    srv->pause_retries++;
    if (srv->accept_paused)
        return;
    srv->accept_paused = 1;
    srv->pause_start_ms = srv->pause_last_ms = clock_now_ms();
    log_warn("accept: %s: not accepting new connections, retrying every %d ms "
             "(%zu sessions open)", strerror(err), ACCEPT_PAUSE_MS, srv->nsessions);
}

/* accept_resume_cb - the pause is over: listen again (a new failure pauses again) */
static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
    struct smtpd *srv = arg;

    (void) fd;
    (void) what;
    srv->pause_last_ms = clock_now_ms();
    for (size_t i = 0; i < srv->nlisteners; i++)
        evconnlistener_enable(srv->listeners[i]);
}

/* accept_resumed - the first connection accepted after a pause: say so once */
static void accept_resumed(struct smtpd *srv)
{
    long long ms = srv->pause_last_ms - srv->pause_start_ms;

    log_info("accepting new connections again after %lld.%lld s (%lu failed accept() calls)",
             ms / 1000, ms % 1000 / 100, srv->pause_retries);
    srv->accept_paused = 0;
    srv->pause_retries = 0;
}

/* greet - the client has its name: log the connection, send 220, start reading */
static void greet(struct session *s)
{
    log_info("connect from %s", s->client);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    reply(s, "220 %s ESMTP etrn-server", s->srv->conf->myhostname);
    deadline_arm(s);
}

/* name_found - the lookup is over: name[addr], or unknown[addr] when name is NULL */
static void name_found(void *ctx, const char *name)
{
    struct session *s = ctx;

    s->name_q = NULL;
    if (name) {
        snprintf(s->name, sizeof(s->name), "%s", name);
        snprintf(s->client, sizeof(s->client), "%s[%s]", name, s->addr);
    }
    greet(s);
}

/*
 * want_name - look the client up? As Postfix with smtpd_peername_lookup = yes,
 * except a loopback client while dns_resolver is unset: its PTR query would
 * leave the machine for the system's DNS server to no purpose.
 */
static int want_name(const struct smtpd *srv, const struct session *s)
{
    static const unsigned char v6_loopback[16] = { [15] = 1 };
    static const unsigned char v4_mapped[12] = { [10] = 0xff, [11] = 0xff };
    const struct server_config *conf = srv->conf;
    int loopback = (s->family == AF_INET && s->rawaddr[0] == 127)
                   || (s->family == AF_INET6 && (memcmp(s->rawaddr, v6_loopback, 16) == 0
                                                 || (memcmp(s->rawaddr, v4_mapped, 12) == 0
                                                     && s->rawaddr[12] == 127)));

    if (srv->names == NULL || !conf->smtpd_peername_lookup
        || (s->family != AF_INET && s->family != AF_INET6))
        return 0;
    return !loopback || (conf->dns_resolver && *conf->dns_resolver);
}

/*
 * admit - default_process_limit for everyone; for clients outside
 * smtpd_client_event_limit_exceptions, the per-address session count and
 * connection rate. 0: go on; -1: refused (421 sent, fd closed).
 */
static int admit(struct smtpd *srv, evutil_socket_t fd, const char *addr, const char *client,
                 int exempt)
{
    const struct server_config *conf = srv->conf;
    unsigned count, rate;

    if ((long long) srv->nsessions >= conf->default_process_limit) {
        log_warn("service \"smtp\" has reached its process limit \"%lld\": refusing %s",
                 conf->default_process_limit, client);
        refuse(fd, client, "421 4.3.2 %s Error: too many sessions, try again later",
               conf->myhostname);
        return -1;
    }
    count = anvil_connect(srv->anvil, addr, clock_now_ms(), &rate);
    if (!exempt && conf->smtpd_client_connection_count_limit > 0
        && count > conf->smtpd_client_connection_count_limit) {
        log_warn("Connection concurrency limit exceeded: %u from %s for service smtp", count,
                 client);
    } else if (!exempt && conf->smtpd_client_connection_rate_limit > 0
               && rate > conf->smtpd_client_connection_rate_limit) {
        log_warn("Connection rate limit exceeded: %u from %s for service smtp", rate, client);
    } else {
        return 0;
    }
    anvil_disconnect(srv->anvil, addr, clock_now_ms());
    refuse(fd, client, "421 4.7.0 %s Error: too many connections from %s", conf->myhostname, addr);
    return -1;
}

/* client_address - family, raw address and "unknown[addr]" of a peer */
static int client_address(const struct sockaddr *sa, unsigned char raw[16],
                          char addr[INET6_ADDRSTRLEN], char *client, size_t clientlen)
{
    int family = sa->sa_family;

    memset(raw, 0, 16);
    snprintf(addr, INET6_ADDRSTRLEN, "unknown");
    if (family == AF_INET) {
        memcpy(raw, &((const struct sockaddr_in *) sa)->sin_addr, 4);
        inet_ntop(AF_INET, raw, addr, INET6_ADDRSTRLEN);
    } else if (family == AF_INET6) {
        memcpy(raw, &((const struct sockaddr_in6 *) sa)->sin6_addr, 16);
        inet_ntop(AF_INET6, raw, addr, INET6_ADDRSTRLEN);
    }
    snprintf(client, clientlen, "unknown[%s]", addr);
    return family;
}

/* session_start - a session on a connected bufferevent (counted by anvil): name, then 220 */
static void session_start(struct smtpd *srv, struct bufferevent *bev, int family,
                          const unsigned char raw[16], const char *addr, const char *client,
                          int exempt, int odmr)
{
    const struct server_config *conf = srv->conf;
    struct session *s = xcalloc(1, sizeof(*s));

    s->srv = srv;
    s->odmr = odmr;
    s->family = family;
    memcpy(s->rawaddr, raw, sizeof(s->rawaddr));
    s->exempt = exempt;
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
    snprintf(s->client, sizeof(s->client), "%s", client);
    snprintf(s->name, sizeof(s->name), "unknown");
    s->mynet = server_netlist_match(&conf->mynetworks_nets, family, raw);
    s->auth = smtpd_auth_session_new(srv->auth, &auth_ops, s, s->addr, s->client);
    smtpd_auth_session_exempt(s->auth, exempt);
    s->ok = xcalloc(NCOMMANDS, sizeof(unsigned));
    s->total = xcalloc(NCOMMANDS, sizeof(unsigned));
    s->bev = bev;
    s->deadline = evtimer_new(srv->base, deadline_cb, s);
    if (s->deadline == NULL) {
        log_error("cannot make a bufferevent for %s", client);
        bufferevent_free(bev);
        anvil_disconnect(srv->anvil, addr, clock_now_ms());
        smtpd_auth_session_free(s->auth);
        free(s->ok);
        free(s->total);
        free(s);
        return;
    }
    LIST_INSERT_HEAD(&srv->sessions, s, link);
    srv->nsessions++;
    bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
    set_timeouts(s, s->bev);
    if (!want_name(srv, s)
        || (s->name_q = client_name_lookup(srv->names, s->addr, name_found, s)) == NULL)
        greet(s);
}

/* accept_any - new connection: the limits, then a session */
static void accept_any(struct smtpd *srv, evutil_socket_t fd, struct sockaddr *sa, int odmr)
{
    const struct server_config *conf = srv->conf;
    struct bufferevent *bev;
    char addr[INET6_ADDRSTRLEN], client[INET6_ADDRSTRLEN + 16];
    unsigned char raw[16];
    int family = client_address(sa, raw, addr, client, sizeof(client)), exempt;

    if (srv->accept_paused)
        accept_resumed(srv);
    exempt = server_netlist_match(&conf->event_limit_exception_nets, family, raw);
    if (admit(srv, fd, addr, client, exempt) != 0)
        return;
    bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        log_error("cannot make a bufferevent for %s", client);
        close(fd);
        anvil_disconnect(srv->anvil, addr, clock_now_ms());
        return;
    }
    session_start(srv, bev, family, raw, addr, client, exempt, odmr);
}

/* accept_cb - a connection on an inet_interfaces address */
static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
    (void) l;
    (void) salen;
    accept_any(arg, fd, sa, 0);
}

/* accept_odmr_cb - a connection on an odmr_listen address */
static void accept_odmr_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                           int salen, void *arg)
{
    (void) l;
    (void) salen;
    accept_any(arg, fd, sa, 1);
}

/* smtpd_attach - a session on a bufferevent that is already connected (smtpd.h) */
void smtpd_attach(struct smtpd *srv, struct bufferevent *bev, const struct sockaddr *sa)
{
    char addr[INET6_ADDRSTRLEN], client[INET6_ADDRSTRLEN + 16];
    unsigned char raw[16];
    int family = client_address(sa, raw, addr, client, sizeof(client));
    unsigned rate;

    /* counted as every session is (its end uncounts it); no limit refuses it */
    (void) anvil_connect(srv->anvil, addr, clock_now_ms(), &rate);
    session_start(srv, bev, family, raw, addr, client,
                  server_netlist_match(&srv->conf->event_limit_exception_nets, family, raw), 0);
}

/* V6L - three printf arguments: an IPv6 host in brackets before its ":port" */
#define V6L(host) strchr((host), ':') ? "[" : "", (host), strchr((host), ':') ? "]" : ""

/* listen_one - bind every address of one inet_interfaces entry */
static int listen_one(struct smtpd *srv, const struct server_listen *l, evconnlistener_cb cb,
                      char *err, size_t errlen)
{
    struct addrinfo hints, *res, *ai;
    char port[16];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", l->port);
    rc = getaddrinfo(l->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "inet_interfaces %s%s%s:%d: %s", V6L(l->host), l->port,
                 gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        struct evconnlistener *lev;
        int fd, on = 1;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0
            || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0
            || (ai->ai_family == AF_INET6
                && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0)
            || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            snprintf(err, errlen, "bind %s%s%s:%d: %s", V6L(l->host), l->port, strerror(errno));
            if (fd >= 0)
                close(fd);
            freeaddrinfo(res);
            return -1;
        }
        /* bound now (as root), listening only from smtpd_listen (backlog 0: no listen()) */
        lev = evconnlistener_new(srv->base, cb, srv,
                                 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED,
                                 0, fd);
        if (lev == NULL) {
            snprintf(err, errlen, "listen %s%s%s:%d: %s", V6L(l->host), l->port, strerror(errno));
            close(fd);
            freeaddrinfo(res);
            return -1;
        }
        evconnlistener_set_error_cb(lev, accept_error_cb);
        srv->listeners = xreallocarray(srv->listeners, srv->nlisteners + 1, sizeof(*srv->listeners));
        srv->listeners[srv->nlisteners++] = lev;
    }
    freeaddrinfo(res);
    return 0;
}

/* smtpd_new_unbound - smtpd_new without listeners (smtpd.h) */
struct smtpd *smtpd_new_unbound(struct event_base *base, const struct server_config *conf,
                                struct queue *q, char *err, size_t errlen)
{
    struct smtpd *srv = xcalloc(1, sizeof(*srv));

    srv->base = base;
    srv->conf = conf;
    srv->q = q;
    srv->anvil = anvil_new(conf->anvil_rate_time_unit * 1000);
    srv->etrn.conf = conf;
    srv->etrn.anvil = srv->anvil;
    if ((srv->auth = smtpd_auth_new(base, srv->anvil, "smtp", err, errlen)) == NULL) {
        smtpd_free(srv);
        return NULL;
    }
    if (conf->smtpd_tls_cert_file && *conf->smtpd_tls_cert_file
        && (srv->tls = smtpd_tls_new(conf->smtpd_tls_cert_file, conf->smtpd_tls_key_file, err,
                                     errlen)) == NULL) {
        smtpd_free(srv);
        return NULL;
    }
    smtpd_auth_set_limits(srv->auth, conf->myhostname, conf->smtpd_error_sleep_time,
                          conf->smtpd_client_auth_rate_limit);
    if (smtpd_auth_set_users(srv->auth, conf->smtpd_sasl_users_file, 0, err, errlen) != 0) {
        smtpd_free(srv);
        return NULL;
    }
    if ((srv->accept_resume = evtimer_new(base, accept_resume_cb, srv)) == NULL) {
        snprintf(err, errlen, "cannot create the accept timer");
        smtpd_free(srv);
        return NULL;
    }
    if ((srv->names = client_name_new(base, conf->dns_resolver, err, errlen)) == NULL) {
        smtpd_free(srv);
        return NULL;
    }
    return srv;
}

/* smtpd_new - bind the listeners and register them on base */
struct smtpd *smtpd_new(struct event_base *base, const struct server_config *conf,
                        struct queue *q, char *err, size_t errlen)
{
    struct smtpd *srv;

    if (conf->nlisten == 0) {
        snprintf(err, errlen, "inet_interfaces: no address to listen on");
        return NULL;
    }
    if ((srv = smtpd_new_unbound(base, conf, q, err, errlen)) == NULL)
        return NULL;
    for (size_t i = 0; i < conf->nlisten; i++) {
        if (listen_one(srv, &conf->listen[i], accept_cb, err, errlen) != 0) {
            smtpd_free(srv);
            return NULL;
        }
    }
    for (size_t i = 0; i < conf->nodmr; i++) {
        if (listen_one(srv, &conf->odmr[i], accept_odmr_cb, err, errlen) != 0) {
            smtpd_free(srv);
            return NULL;
        }
    }
    return srv;
}

/*
 * reload_files - SIGHUP: read the TLS files and the users file again. A file
 * that can no longer be read (privileges dropped) keeps the loaded copy.
 */
static void reload_files(struct smtpd *srv, const struct server_config *conf)
{
    char err[512];

    if (conf->smtpd_tls_cert_file && *conf->smtpd_tls_cert_file) {
        struct smtpd_tls *tls = smtpd_tls_new(conf->smtpd_tls_cert_file,
                                              conf->smtpd_tls_key_file, err, sizeof(err));

        if (tls) {
            smtpd_tls_free(srv->tls);
            srv->tls = tls;
        } else {
            log_warn("reload: %s; %s", err, srv->tls ? "keeping the TLS files loaded before"
                                                      : "STARTTLS stays off");
        }
    } else {
        smtpd_tls_free(srv->tls);
        srv->tls = NULL;
    }
    smtpd_auth_set_users(srv->auth, conf->smtpd_sasl_users_file, 1, err, sizeof(err));
    smtpd_auth_set_limits(srv->auth, conf->myhostname, conf->smtpd_error_sleep_time,
                          conf->smtpd_client_auth_rate_limit);
}

/* smtpd_listen - start accepting on every bound address: the server is ready */
int smtpd_listen(struct smtpd *srv, char *err, size_t errlen)
{
    for (size_t i = 0; i < srv->nlisteners; i++) {
        evutil_socket_t fd = evconnlistener_get_fd(srv->listeners[i]);

        if (listen(fd, LISTEN_BACKLOG) != 0) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";

            if (getsockname(fd, (struct sockaddr *) &ss, &len) == 0)
                getnameinfo((struct sockaddr *) &ss, len, host, sizeof(host), port, sizeof(port),
                            NI_NUMERICHOST | NI_NUMERICSERV);
            snprintf(err, errlen, "listen %s:%s: %s", host, port, strerror(errno));
            return -1;
        }
        if (evconnlistener_enable(srv->listeners[i]) != 0) {
            snprintf(err, errlen, "cannot watch the listening socket");
            return -1;
        }
    }
    return 0;
}

/* smtpd_set_config - use a reloaded configuration from now on */
void smtpd_set_config(struct smtpd *srv, const struct server_config *conf)
{
    struct session *s;

    reload_files(srv, conf);
    srv->conf = conf;
    srv->etrn.conf = conf;
    client_name_set_resolver(srv->names, conf->dns_resolver);
    anvil_set_unit(srv->anvil, conf->anvil_rate_time_unit * 1000);
    LIST_FOREACH(s, &srv->sessions, link) {
        s->mynet = server_netlist_match(&conf->mynetworks_nets, s->family, s->rawaddr);
        s->exempt = server_netlist_match(&conf->event_limit_exception_nets, s->family,
                                         s->rawaddr);
        smtpd_auth_session_exempt(s->auth, s->exempt);
    }
}

/* smtpd_set_commit_hook - tell fn about every message answered 250 */
void smtpd_set_commit_hook(struct smtpd *srv, smtpd_commit_fn fn, void *ctx)
{
    srv->commit_fn = fn;
    srv->commit_ctx = ctx;
}

/* smtpd_set_odmr - ATRN on the odmr_listen addresses goes to o */
void smtpd_set_odmr(struct smtpd *srv, struct odmr *o)
{
    srv->odmr = o;
}

/* smtpd_set_etrn_hook - the flush service ETRN asks (without it ETRN answers 458) */
void smtpd_set_etrn_hook(struct smtpd *srv, smtpd_etrn_fn fn, void *ctx)
{
    srv->etrn.flush = fn;
    srv->etrn.flush_ctx = ctx;
}

/* smtpd_sessions - number of open sessions */
size_t smtpd_sessions(const struct smtpd *srv)
{
    return srv->nsessions;
}

/* smtpd_pending - work on other threads not answered yet: commits, AUTH checks */
size_t smtpd_pending(const struct smtpd *srv)
{
    return queue_pending(srv->q) + smtpd_auth_pending(srv->auth);
}

/* smtpd_free - close every session and listener */
/*
 * flush_output - shutdown: one non-blocking write of what the session has
 * queued. The loop has ended, so no bufferevent writes any more: the socket's
 * output buffer is unfrozen (a bufferevent keeps its front frozen for its own
 * writer) and written here; it is freed right after.
 */
static void flush_output(struct session *s)
{
    struct bufferevent *bev = s->bev, *under;
    struct evbuffer *out;

    if (bev == NULL)
        return;
    if ((under = bufferevent_get_underlying(bev)) != NULL) {
        /*
         * STARTTLS: the OpenSSL filter encrypts only from the loop (its
         * bufferevent_flush does nothing in libevent 2.1): encrypt what waits
         * here; the filter's BIO puts the record on the socket's bufferevent.
         */
        SSL *ssl = bufferevent_openssl_get_ssl(bev);
        struct evbuffer *plain = bufferevent_get_output(bev);
        size_t len = evbuffer_get_length(plain);

        if (ssl && SSL_is_init_finished(ssl) && len > 0 && len <= INT_MAX)
            (void) SSL_write(ssl, evbuffer_pullup(plain, -1), (int) len);
        bev = under;
    }
    out = bufferevent_get_output(bev);
    if (evbuffer_get_length(out) > 0) {
        evbuffer_unfreeze(out, 1);
        (void) evbuffer_write(out, bufferevent_getfd(bev));
    }
}

void smtpd_free(struct smtpd *srv)
{
    struct session *s;

    if (srv == NULL)
        return;
    /* every message handed to the commit threads ends durable or removed */
    srv->stopping = 1;
    queue_drain(srv->q);
    /* the AUTH checks still running end with their reply (no delay while stopping) */
    smtpd_auth_drain(srv->auth);
    /* the replies of those commits, "250 ... queued as", reach their clients */
    LIST_FOREACH(s, &srv->sessions, link)
        flush_output(s);
    while (!LIST_EMPTY(&srv->sessions))
        session_free(LIST_FIRST(&srv->sessions));
    client_name_free(srv->names);
    for (size_t i = 0; i < srv->nlisteners; i++)
        evconnlistener_free(srv->listeners[i]);
    free(srv->listeners);
    loop_event_free(&srv->accept_resume);
    smtpd_tls_free(srv->tls);
    smtpd_auth_free(srv->auth);
    anvil_free(srv->anvil);
    free(srv);
}
