/*
 * smtpd_auth.c - AUTH PLAIN and LOGIN (RFC 4954, RFC 4616) and CRAM-MD5
 * (RFC 2195) over the ops of whatever session uses it.
 *
 * The mechanisms are a table { name, needs TLS, start }; an exchange is a
 * step (the response awaited next) per session. The crypt(3) check goes to
 * a worker thread (workq); the session reads nothing (hold) until the
 * verdict, and a failure's 535 waits on a timer for the delay the client
 * address has earned (anvil_fail). A check whose session ended before the
 * worker took it is skipped; one whose session ended later still counts its
 * failure for the address.
 */
#define LOG_SERVICE "smtpd" /* its log lines: syslog_name/smtpd[pid] */

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "alloc.h"
#include "anvil.h"
#include "buf.h"
#include "clock.h"
#include "log.h"
#include "loop.h"
#include "sasl_users.h"
#include "smtpd_auth.h"
#include "workq.h"

#define AUTH_FAILURE_MAX 3      /* failed AUTH exchanges before 421 */
#define AUTH_THREADS 1          /* crypt(3) checks at the same time: one core at most */
#define AUTH_DELAY_MAX_MS 60000 /* longest delay before an AUTH failure reply */

enum auth_step {
    STEP_NONE,       /* no SASL exchange running */
    STEP_PLAIN,      /* 334 sent, waiting for the PLAIN response */
    STEP_LOGIN_USER, /* 334 Username: sent */
    STEP_LOGIN_PASS, /* 334 Password: sent */
    STEP_CRAM,       /* 334 <challenge> sent */
};

struct smtpd_auth {
    struct event_base *base;
    struct anvil *anvil;
    struct workq *wq;
    struct sasl_users *users;  /* NULL: no AUTH */
    char *service;             /* "for service smtp" */
    char *myhostname;
    char offered[2][64];       /* the EHLO list without TLS [0] and inside it [1] */
    long long error_sleep_ms;
    long long rate_limit;
    int stopping;              /* drained: failures are answered at once */
    TAILQ_HEAD(, auth_wait) delayed; /* failures waiting on their delay timer */
};

struct auth_wait;

struct smtpd_auth_session {
    struct smtpd_auth *a;
    const struct smtpd_auth_ops *ops;
    void *ctx;
    const char *addr, *client;
    int exempt;
    enum auth_step step;
    const char *method;        /* of the exchange running */
    char *login_user;
    char *challenge;           /* CRAM-MD5's, while its exchange runs */
    unsigned failures;
    char *user;                /* authenticated, or NULL */
    const char *user_method;
    struct auth_wait *wait;    /* a check or its failure delay is running */
};

/* an AUTH check on the worker thread, then maybe a delay; as is NULL once the session is gone */
struct auth_wait {
    struct smtpd_auth *a;
    struct smtpd_auth_session *as;
    char addr[ANVIL_ADDR_MAX]; /* the client's, for anvil */
    int exempt;
    const char *method;
    struct sasl_check *check;
    char *user;
    atomic_int cancelled;      /* the session ended before the worker took it: skip it */
    int ran, ok;               /* written by the worker, read after the hand-off */
    struct event *timer;       /* the delay before a failure reply */
    TAILQ_ENTRY(auth_wait) delayed_link; /* on a->delayed while timer is armed */
};

typedef void (*mech_fn)(struct smtpd_auth_session *as, const char *init);

static void plain_start(struct smtpd_auth_session *as, const char *init);
static void login_start(struct smtpd_auth_session *as, const char *init);
static void cram_start(struct smtpd_auth_session *as, const char *init);

static const struct mechanism {
    const char *name;
    int tls_only;              /* the password crosses the wire: only inside TLS */
    int cram;                  /* needs {CRAM-MD5} verifiers: offered when a user has one */
    mech_fn start;             /* init: the initial response, or NULL */
} mechanisms[] = {
    { .name = "CRAM-MD5", .cram = 1, .start = cram_start },
    { .name = "PLAIN", .tls_only = 1, .start = plain_start },
    { .name = "LOGIN", .tls_only = 1, .start = login_start },
};
#define NMECHANISMS (sizeof(mechanisms) / sizeof(mechanisms[0]))

/* say - queue one reply line through the session */
static void say(struct smtpd_auth_session *as, const char *fmt, ...) LOG_PRINTF(2, 3);
static void say(struct smtpd_auth_session *as, const char *fmt, ...)
{
    struct buf b = BUF_INIT;
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    as->ops->reply(as->ctx, buf_cstr(&b));
    buf_free(&b);
}

/* b64_char - a character of the base64 alphabet (RFC 4648 section 4) */
static int b64_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+'
           || c == '/';
}

/*
 * b64_decode - strict, padded base64 into a new NUL-terminated buffer that
 * the caller wipes and frees; "=" is the empty response (RFC 4954). -1: bad.
 */
static int b64_decode(const char *in, unsigned char **out, size_t *outlen)
{
    size_t len = strlen(in), pad = 0;
    int n;

    if (strcmp(in, "=") == 0) {
        *out = xcalloc(1, 1);
        *outlen = 0;
        return 0;
    }
    if (len == 0 || len % 4 != 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '=') {
            if (i < len - 2)
                return -1;
            pad++;
        } else if (pad > 0 || !b64_char((unsigned char) in[i])) {
            return -1;
        }
    }
    *out = xmalloc(len / 4 * 3 + 1);
    n = EVP_DecodeBlock(*out, (const unsigned char *) in, (int) len);
    if (n < 0 || (size_t) n < pad) {
        free(*out);
        *out = NULL;
        return -1;
    }
    *outlen = (size_t) n - pad;
    (*out)[*outlen] = 0;
    return 0;
}

/* wipe - clear and free a secret */
static void wipe(unsigned char *p, size_t len)
{
    if (p == NULL)
        return;
    OPENSSL_cleanse(p, len);
    free(p);
}

/* exchange_end - the SASL exchange is over */
static void exchange_end(struct smtpd_auth_session *as)
{
    as->step = STEP_NONE;
    free(as->challenge);
    as->challenge = NULL;
    if (as->login_user) {
        wipe((unsigned char *) as->login_user, strlen(as->login_user));
        as->login_user = NULL;
    }
}

/* failed - 535 and a warning; after 334 the AUTH no longer counts as a success */
static void failed(struct smtpd_auth_session *as, const char *user, int after)
{
    as->failures++;
    say(as, "535 5.7.8 Error: authentication failed: authentication failure");
    log_warn("%s: SASL %s authentication failed: authentication failure, sasl_username=%s",
             as->client, as->method, user ? user : "");
    if (after)
        as->ops->retract(as->ctx);
}

/* wait_free - the check is over */
static void wait_free(struct auth_wait *w)
{
    sasl_check_free(w->check);
    if (w->timer) {
        TAILQ_REMOVE(&w->a->delayed, w, delayed_link);
        event_free(w->timer);
    }
    free(w->user);
    free(w);
}

/* fail_reply - the 535 after the delay (none when a 421 ended the session meanwhile) */
static void fail_reply(struct auth_wait *w)
{
    struct smtpd_auth_session *as = w->as;

    as->wait = NULL;
    if (!as->ops->closing(as->ctx))
        failed(as, w->user, 1);
    wait_free(w);
    as->ops->resume(as->ctx); /* may free as */
}

/* delay_cb - the delay before a failure reply is over */
static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    fail_reply(arg);
}

/* check_work - (worker thread) the crypt(3) check */
static void check_work(void *arg)
{
    struct auth_wait *w = arg;

    if (atomic_load(&w->cancelled))
        return;
    w->ran = 1;
    w->ok = sasl_check_run(w->check);
}

/* fail_delay_ms - a failure counts for the address; the delay it earned */
static long long fail_delay_ms(struct auth_wait *w)
{
    long long delay;
    unsigned n;

    if (!w->ran || w->ok || w->exempt)
        return 0;
    n = anvil_fail(w->a->anvil, w->addr, clock_now_ms());
    delay = w->a->error_sleep_ms * (long long) n;
    return delay > AUTH_DELAY_MAX_MS || delay < 0 ? AUTH_DELAY_MAX_MS : delay;
}

/*
 * check_back - (loop) the verdict: 235 at once; a failure counts for the
 * client address (across sessions) and is answered after
 * smtpd_error_sleep_time times the failures counted, at most
 * AUTH_DELAY_MAX_MS (exempt addresses: at once).
 */
static void check_back(void *arg)
{
    struct auth_wait *w = arg;
    struct smtpd_auth_session *as = w->as;
    long long delay = fail_delay_ms(w);
    struct timeval tv;

    if (as == NULL) {
        /* the client left: a failure the check found counts all the same */
        wait_free(w);
        return;
    }
    if (w->ok) {
        as->wait = NULL;
        if (!as->ops->closing(as->ctx)) {
            /* else a write timeout ended the session meanwhile: its 421 was the last reply */
            as->user = xstrdup(w->user);
            as->user_method = w->method;
            log_debug("%s: SASL %s authentication succeeded, sasl_username=%s", as->client,
                      w->method, w->user);
            say(as, "235 2.7.0 Authentication successful");
        }
        wait_free(w);
        as->ops->resume(as->ctx); /* may free as */
        return;
    }
    if (delay > 0 && !w->a->stopping && (w->timer = evtimer_new(w->a->base, delay_cb, w))) {
        tv = clock_timeval(delay);
        if (evtimer_add(w->timer, &tv) == 0) {
            TAILQ_INSERT_TAIL(&w->a->delayed, w, delayed_link);
            return;
        }
        loop_event_free(&w->timer);
    }
    fail_reply(w);
}

static void submit(struct smtpd_auth_session *as, const char *user, struct sasl_check *check);

/* verify - hand the credentials to the worker thread; the session holds until the verdict */
static void verify(struct smtpd_auth_session *as, const char *user, const char *password)
{
    submit(as, user, sasl_check_new(as->a->users, user, password));
}

/* submit - run check on the worker thread; the session holds until the verdict */
static void submit(struct smtpd_auth_session *as, const char *user, struct sasl_check *check)
{
    struct auth_wait *w = xcalloc(1, sizeof(*w));

    exchange_end(as);
    w->a = as->a;
    w->as = as;
    snprintf(w->addr, sizeof(w->addr), "%s", as->addr);
    w->exempt = as->exempt;
    w->method = as->method;
    w->user = xstrdup(user);
    w->check = check;
    as->wait = w;
    as->ops->hold(as->ctx);
    workq_submit(as->a->wq, check_work, check_back, w);
}

/* bad_response - 501 for undecodable input; the exchange ends */
static void bad_response(struct smtpd_auth_session *as, int after)
{
    exchange_end(as);
    say(as, "501 5.5.2 Cannot decode response");
    if (after)
        as->ops->retract(as->ctx);
}

/* refuse - a decoded response that is not what the mechanism takes: wipe it, 535 */
static void refuse(struct smtpd_auth_session *as, unsigned char *dec, size_t len, int after)
{
    wipe(dec, len);
    exchange_end(as);
    failed(as, NULL, after);
}

/* plain_response - "authzid NUL authcid NUL password" */
static void plain_response(struct smtpd_auth_session *as, unsigned char *dec, size_t len,
                           int after)
{
    const char *end = (const char *) dec + len, *authz = (const char *) dec, *user, *pass;

    user = memchr(authz, 0, len);
    pass = user ? memchr(user + 1, 0, (size_t) (end - user - 1)) : NULL;
    if (user == NULL || pass == NULL || memchr(pass + 1, 0, (size_t) (end - pass - 1)) != NULL) {
        refuse(as, dec, len, after);
        return;
    }
    user++;
    pass++;
    if (*authz && strcmp(authz, user) != 0) {
        /* acting for another user is not offered */
        exchange_end(as);
        failed(as, user, after);
    } else {
        verify(as, user, pass);
    }
    wipe(dec, len);
}

/* login_user - the LOGIN user name; ask for the password */
static void login_user(struct smtpd_auth_session *as, unsigned char *dec, size_t len, int after)
{
    if (len == 0) {
        refuse(as, dec, len, after);
        return;
    }
    as->login_user = (char *) dec;
    as->step = STEP_LOGIN_PASS;
    say(as, "334 UGFzc3dvcmQ6"); /* "Password:" */
}

/* login_pass - the LOGIN password */
static void login_pass(struct smtpd_auth_session *as, unsigned char *dec, size_t len)
{
    char *user = as->login_user;

    as->login_user = NULL;
    verify(as, user, (const char *) dec);
    wipe((unsigned char *) user, strlen(user));
    wipe(dec, len);
}

/* cram_response - "user SP 32 hex digits" (RFC 2195) */
static void cram_response(struct smtpd_auth_session *as, unsigned char *dec, size_t len,
                          int after)
{
    char *sp = strrchr((char *) dec, ' ');

    if (sp == NULL || sp == (char *) dec) {
        refuse(as, dec, len, after);
        return;
    }
    *sp = 0;
    submit(as, (const char *) dec,
           sasl_check_new_cram(as->a->users, (const char *) dec, as->challenge, sp + 1));
    wipe(dec, len);
}

/* respond - a base64 response at a step of the exchange (after: not an initial response);
   decoded once here, then the step's function owns (and wipes) the text */
static void respond(struct smtpd_auth_session *as, enum auth_step step, const char *text,
                    int after)
{
    unsigned char *dec;
    size_t len;

    if (step == STEP_NONE)
        return;
    if (b64_decode(text, &dec, &len) != 0) {
        bad_response(as, after);
        return;
    }
    if (step != STEP_PLAIN && memchr(dec, 0, len) != NULL) {
        /* only PLAIN separates its fields with NUL bytes */
        refuse(as, dec, len, after);
        return;
    }
    switch (step) {
    case STEP_PLAIN:
        plain_response(as, dec, len, after);
        break;
    case STEP_LOGIN_USER:
        login_user(as, dec, len, after);
        break;
    case STEP_LOGIN_PASS:
        login_pass(as, dec, len);
        break;
    case STEP_CRAM:
        cram_response(as, dec, len, after);
        break;
    case STEP_NONE:
        break;
    }
}

/* cram_start - AUTH CRAM-MD5: a challenge "<random.time@myhostname>" */
static void cram_start(struct smtpd_auth_session *as, const char *init)
{
    unsigned char rnd[8];
    uint64_t r = 0;
    struct buf b = BUF_INIT;
    char *enc;
    size_t enclen;

    if (init) {
        say(as, "501 5.5.4 Syntax: CRAM-MD5 takes no initial response");
        return;
    }
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        say(as, "454 4.7.0 Temporary authentication failure");
        return;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        r = r << 8 | rnd[i];
    buf_printf(&b, "<%llu.%lld@%s>", (unsigned long long) r, (long long) time(NULL),
               as->a->myhostname);
    as->challenge = xstrdup(buf_cstr(&b));
    enclen = 4 * ((b.len + 2) / 3) + 1;
    enc = xmalloc(enclen);
    EVP_EncodeBlock((unsigned char *) enc, (const unsigned char *) buf_cstr(&b), (int) b.len);
    as->step = STEP_CRAM;
    say(as, "334 %s", enc);
    free(enc);
    buf_free(&b);
}

/* plain_start - AUTH PLAIN [initial-response] */
static void plain_start(struct smtpd_auth_session *as, const char *init)
{
    if (init) {
        respond(as, STEP_PLAIN, init, 0);
    } else {
        as->step = STEP_PLAIN;
        say(as, "334 ");
    }
}

/* login_start - AUTH LOGIN [initial-response] */
static void login_start(struct smtpd_auth_session *as, const char *init)
{
    if (init) {
        respond(as, STEP_LOGIN_USER, init, 0);
    } else {
        as->step = STEP_LOGIN_USER;
        say(as, "334 VXNlcm5hbWU6"); /* "Username:" */
    }
}

/* smtpd_auth_response - one line of a running SASL exchange */
void smtpd_auth_response(struct smtpd_auth_session *as, char *line, size_t len)
{
    if (memchr(line, 0, len) != NULL) {
        bad_response(as, 1);
        return;
    }
    line[len] = 0;
    if (strcmp(line, "*") == 0) {
        exchange_end(as);
        say(as, "501 5.7.0 Authentication aborted");
        as->ops->retract(as->ctx);
        return;
    }
    if (as->a->users == NULL) {
        /* a reload turned AUTH off while this exchange waited for the client */
        exchange_end(as);
        say(as, "454 4.7.0 Temporary authentication failure");
        as->ops->retract(as->ctx);
        return;
    }
    respond(as, as->step, line, 1);
}

/* smtpd_auth_too_long - a response line over the limit ends the exchange */
void smtpd_auth_too_long(struct smtpd_auth_session *as)
{
    exchange_end(as);
    say(as, "500 5.5.2 Error: line too long");
    as->ops->retract(as->ctx);
}

/* rate_exceeded - count one AUTH command of this address; 1 past the limit (replied) */
static int rate_exceeded(struct smtpd_auth_session *as)
{
    struct smtpd_auth *a = as->a;
    unsigned n;

    if (as->exempt || a->rate_limit <= 0)
        return 0;
    n = anvil_event(a->anvil, ANVIL_AUTH, as->addr, clock_now_ms());
    if (n <= a->rate_limit)
        return 0;
    log_warn("AUTH command rate limit exceeded: %u from %s for service %s", n, as->client,
             a->service);
    say(as, "450 4.7.1 Error: too many AUTH commands from %s", as->addr);
    return 1;
}

/* smtpd_auth_command - AUTH mechanism [initial-response] */
enum smtpd_auth_status smtpd_auth_command(struct smtpd_auth_session *as, int tls, char *arg)
{
    char *init = strchr(arg, ' ');

    if (as->user) {
        say(as, "503 5.5.1 Error: already authenticated");
        return SMTPD_AUTH_DONE;
    }
    if (as->failures >= AUTH_FAILURE_MAX) {
        say(as, "421 4.7.0 %s Error: too many failed AUTH attempts", as->a->myhostname);
        log_warn("%s: too many failed AUTH attempts", as->client);
        return SMTPD_AUTH_CLOSE;
    }
    if (rate_exceeded(as))
        return SMTPD_AUTH_DONE;
    if (init) {
        *init++ = 0;
        while (*init == ' ')
            init++;
    }
    if (*arg == 0 || (init && strchr(init, ' ') != NULL)) {
        say(as, "501 5.5.4 Syntax: AUTH mechanism");
        return SMTPD_AUTH_DONE;
    }
    for (size_t i = 0; i < NMECHANISMS; i++) {
        if (strcasecmp(arg, mechanisms[i].name) == 0 && (tls || !mechanisms[i].tls_only)
            && (!mechanisms[i].cram || sasl_users_cram(as->a->users) > 0)) {
            as->method = mechanisms[i].name;
            mechanisms[i].start(as, init);
            return SMTPD_AUTH_DONE;
        }
    }
    say(as, "504 5.5.4 Unsupported authentication mechanism");
    return SMTPD_AUTH_DONE;
}

/* smtpd_auth_running - input lines are SASL responses */
int smtpd_auth_running(const struct smtpd_auth_session *as)
{
    return as->step != STEP_NONE;
}

/* smtpd_auth_user - the authenticated user, or NULL */
const char *smtpd_auth_user(const struct smtpd_auth_session *as)
{
    return as->user;
}

/* smtpd_auth_method - the mechanism the user authenticated with, or NULL */
const char *smtpd_auth_method(const struct smtpd_auth_session *as)
{
    return as->user ? as->user_method : NULL;
}

/* smtpd_auth_session_new - the AUTH state of one client session */
struct smtpd_auth_session *smtpd_auth_session_new(struct smtpd_auth *a,
                                                  const struct smtpd_auth_ops *ops, void *ctx,
                                                  const char *addr, const char *client)
{
    struct smtpd_auth_session *as = xcalloc(1, sizeof(*as));

    as->a = a;
    as->ops = ops;
    as->ctx = ctx;
    as->addr = addr;
    as->client = client;
    return as;
}

/* smtpd_auth_session_exempt - the address is in smtpd_client_event_limit_exceptions */
void smtpd_auth_session_exempt(struct smtpd_auth_session *as, int exempt)
{
    as->exempt = exempt;
}

/* smtpd_auth_session_free - the session ends; a check running finishes without it */
void smtpd_auth_session_free(struct smtpd_auth_session *as)
{
    if (as == NULL)
        return;
    if (as->wait && as->wait->timer) {
        wait_free(as->wait); /* only the delay was left */
    } else if (as->wait) {
        as->wait->as = NULL;
        atomic_store(&as->wait->cancelled, 1);
    }
    exchange_end(as);
    free(as->user);
    free(as);
}

/* smtpd_auth_new - the worker thread; no users (AUTH off) until smtpd_auth_set_users */
struct smtpd_auth *smtpd_auth_new(struct event_base *base, struct anvil *anvil,
                                  const char *service, char *err, size_t errlen)
{
    struct smtpd_auth *a = xcalloc(1, sizeof(*a));

    a->base = base;
    a->anvil = anvil;
    TAILQ_INIT(&a->delayed);
    a->service = xstrdup(service);
    a->myhostname = xstrdup("");
    if ((a->wq = workq_new(base, AUTH_THREADS, err, errlen)) == NULL) {
        smtpd_auth_free(a);
        return NULL;
    }
    return a;
}

/* set_offered - the EHLO lists for the users loaded */
static void set_offered(struct smtpd_auth *a)
{
    for (int tls = 0; tls < 2; tls++) {
        struct buf b = BUF_INIT;

        for (size_t i = 0; a->users && i < NMECHANISMS; i++)
            if ((tls || !mechanisms[i].tls_only)
                && (!mechanisms[i].cram || sasl_users_cram(a->users) > 0))
                buf_printf(&b, "%s%s", b.len ? " " : "", mechanisms[i].name);
        snprintf(a->offered[tls], sizeof(a->offered[tls]), "%s", buf_cstr(&b));
        buf_free(&b);
    }
}

/* smtpd_auth_set_users - (re)load the users file; an empty path turns AUTH off */
int smtpd_auth_set_users(struct smtpd_auth *a, const char *path, int reload, char *err,
                         size_t errlen)
{
    struct sasl_users *users;

    if (path == NULL || *path == 0) {
        sasl_users_free(a->users);
        a->users = NULL;
        set_offered(a);
        return 0;
    }
    if ((users = sasl_users_load(path, err, errlen)) == NULL) {
        if (!reload)
            return -1;
        log_warn("reload: %s; %s", err, a->users ? "keeping the users loaded before"
                                                  : "AUTH stays off");
        return 0;
    }
    sasl_users_free(a->users);
    a->users = users;
    set_offered(a);
    return 0;
}

/* smtpd_auth_set_limits - the configuration parameters AUTH follows */
void smtpd_auth_set_limits(struct smtpd_auth *a, const char *myhostname,
                           long long error_sleep_time, long long auth_rate_limit)
{
    free(a->myhostname);
    a->myhostname = xstrdup(myhostname);
    a->error_sleep_ms = error_sleep_time * 1000;
    a->rate_limit = auth_rate_limit;
}

/* smtpd_auth_offered - the mechanisms for EHLO, or NULL: AUTH not enabled here */
const char *smtpd_auth_offered(const struct smtpd_auth *a, int tls)
{
    const char *list = a->offered[tls != 0];

    return a->users && *list ? list : NULL;
}

/* smtpd_auth_enabled - a users file is loaded */
int smtpd_auth_enabled(const struct smtpd_auth *a)
{
    return a->users != NULL;
}

/* smtpd_auth_pending - checks whose verdict has not come back yet */
size_t smtpd_auth_pending(const struct smtpd_auth *a)
{
    return a && a->wq ? workq_pending(a->wq) : 0;
}

/*
 * smtpd_auth_drain - shutdown: every check ends now, failures without delay:
 * the checks still on the worker, then the 535s still waiting on their timer.
 */
void smtpd_auth_drain(struct smtpd_auth *a)
{
    if (a == NULL)
        return;
    a->stopping = 1;
    workq_free(a->wq);
    a->wq = NULL;
    while (!TAILQ_EMPTY(&a->delayed))
        fail_reply(TAILQ_FIRST(&a->delayed));
}

/* smtpd_auth_free - after every session's smtpd_auth_session_free */
void smtpd_auth_free(struct smtpd_auth *a)
{
    if (a == NULL)
        return;
    smtpd_auth_drain(a);
    sasl_users_free(a->users);
    free(a->service);
    free(a->myhostname);
    free(a);
}
