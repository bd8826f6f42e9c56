/*
 * Unit tests for server-lite/smtpd_auth: the AUTH exchange as a listener sees
 * it through its ops (replies, hold/resume, retract), with real crypt(3)
 * checks on the worker thread and the failure delay on a real event loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "anvil.h"
#include "clock.h"
#include "smtpd_auth.h"
#include "test.h"

/* "secret", as made by openssl passwd -6 with a fixed salt */
#define HASH_SECRET "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG."
/* base64 of "\0alice\0secret", "\0alice\0wrong", "alice", "secret", "wrong" */
#define PLAIN_GOOD "AGFsaWNlAHNlY3JldA=="
#define PLAIN_BAD "AGFsaWNlAHdyb25n"
#define B64_ALICE "YWxpY2U="
#define B64_SECRET "c2VjcmV0"
#define B64_WRONG "d3Jvbmc="

static char dir[] = "/tmp/test_smtpd_auth.XXXXXX";
static char users_path[256];
static struct event_base *base;

/* a listener's session as smtpd_auth sees it */
struct fake {
    char replies[1024];   /* every reply line, each followed by '|' */
    int held, resumed, retracted, closing;
    struct smtpd_auth_session *as;
};

static void fake_reply(void *ctx, const char *line)
{
    struct fake *f = ctx;
    size_t n = strlen(f->replies);

    snprintf(f->replies + n, sizeof(f->replies) - n, "%s|", line);
}

static void fake_hold(void *ctx)
{
    ((struct fake *) ctx)->held++;
}

static void fake_resume(void *ctx)
{
    ((struct fake *) ctx)->resumed++;
    event_base_loopbreak(base);
}

static int fake_closing(void *ctx)
{
    return ((struct fake *) ctx)->closing;
}

static void fake_retract(void *ctx)
{
    ((struct fake *) ctx)->retracted++;
}

static const struct smtpd_auth_ops ops = {
    .reply = fake_reply,
    .hold = fake_hold,
    .resume = fake_resume,
    .closing = fake_closing,
    .retract = fake_retract,
};

/* wait_verdict - run the loop until the session is resumed (bounded: 10 s) */
static void wait_verdict(struct fake *f)
{
    struct timeval limit = { 10, 0 };
    int before = f->resumed;

    event_base_loopexit(base, &limit);
    event_base_dispatch(base); /* fake_resume breaks it */
    TEST_CHECK(f->resumed == before + 1, "no verdict within 10 s");
}

/* command - an AUTH command line's argument (writable copy) */
static enum smtpd_auth_status command(struct fake *f, int tls, const char *arg)
{
    char buf[512];

    snprintf(buf, sizeof(buf), "%s", arg);
    return smtpd_auth_command(f->as, tls, buf);
}

/* response - one input line of the exchange */
static void response(struct fake *f, const char *line)
{
    char buf[512];

    snprintf(buf, sizeof(buf), "%s", line);
    smtpd_auth_response(f->as, buf, strlen(buf));
}

static struct smtpd_auth *auth_make(struct anvil *anvil, long long sleep_s, long long rate)
{
    char err[256] = "";
    struct smtpd_auth *a = smtpd_auth_new(base, anvil, "smtp", err, sizeof(err));

    TEST_CHECK(a != NULL, "smtpd_auth_new: %s", err);
    if (a == NULL)
        exit(1);
    TEST_INTEQ(smtpd_auth_set_users(a, users_path, 0, err, sizeof(err)), 0);
    smtpd_auth_set_limits(a, "mx.example", sleep_s, rate);
    return a;
}

static void fake_start(struct fake *f, struct smtpd_auth *a, const char *addr)
{
    memset(f, 0, sizeof(*f));
    f->as = smtpd_auth_session_new(a, &ops, f, addr, "client[192.0.2.1]");
}

static void test_offered(void)
{
    char err[256] = "";
    struct anvil *anvil = anvil_new(60000);
    struct smtpd_auth *a = smtpd_auth_new(base, anvil, "smtp", err, sizeof(err));

    TEST_CHECK(smtpd_auth_offered(a, 1) == NULL, "no users file: AUTH not offered");
    TEST_INTEQ(smtpd_auth_enabled(a), 0);
    TEST_INTEQ(smtpd_auth_set_users(a, "/nonexistent/users", 0, err, sizeof(err)), -1);
    TEST_CHECK(strstr(err, "/nonexistent/users") != NULL, "error names the file: %s", err);
    TEST_INTEQ(smtpd_auth_set_users(a, users_path, 0, err, sizeof(err)), 0);
    TEST_CHECK(smtpd_auth_offered(a, 0) == NULL, "PLAIN/LOGIN not offered outside TLS");
    TEST_STREQ(smtpd_auth_offered(a, 1), "PLAIN LOGIN");
    /* a reload that cannot read the file keeps the users loaded before */
    TEST_INTEQ(smtpd_auth_set_users(a, "/nonexistent/users", 1, err, sizeof(err)), 0);
    TEST_STREQ(smtpd_auth_offered(a, 1), "PLAIN LOGIN");
    TEST_INTEQ(smtpd_auth_set_users(a, "", 1, err, sizeof(err)), 0);
    TEST_CHECK(smtpd_auth_offered(a, 1) == NULL, "empty path: AUTH off");
    smtpd_auth_free(a);
    anvil_free(anvil);
}

/* one exchange: command, then input lines; what the session saw */
struct exchange_case {
    const char *name;
    const char *cmd;
    const char *lines[3];
    int checks;            /* password checks awaited (verdicts) */
    const char *replies;
    int retracted;
    const char *user;      /* afterwards, or NULL */
};

static void test_exchanges(void)
{
    static const struct exchange_case cases[] = {
        { "plain initial", "PLAIN " PLAIN_GOOD, { NULL }, 1,
          "235 2.7.0 Authentication successful|", 0, "alice" },
        { "plain 334", "plain", { PLAIN_GOOD }, 1,
          "334 |235 2.7.0 Authentication successful|", 0, "alice" },
        { "plain wrong", "PLAIN " PLAIN_BAD, { NULL }, 1,
          "535 5.7.8 Error: authentication failed: authentication failure|", 1, NULL },
        { "login", "LOGIN", { B64_ALICE, B64_SECRET }, 1,
          "334 VXNlcm5hbWU6|334 UGFzc3dvcmQ6|235 2.7.0 Authentication successful|", 0, "alice" },
        { "login initial", "LOGIN " B64_ALICE, { B64_SECRET }, 1,
          "334 UGFzc3dvcmQ6|235 2.7.0 Authentication successful|", 0, "alice" },
        { "login wrong", "LOGIN", { B64_ALICE, B64_WRONG }, 1,
          "334 VXNlcm5hbWU6|334 UGFzc3dvcmQ6|"
          "535 5.7.8 Error: authentication failed: authentication failure|", 1, NULL },
        { "abort", "LOGIN", { "*" }, 0,
          "334 VXNlcm5hbWU6|501 5.7.0 Authentication aborted|", 1, NULL },
        { "bad base64 after 334", "PLAIN", { "!!!!" }, 0,
          "334 |501 5.5.2 Cannot decode response|", 1, NULL },
        { "bad base64 initial", "PLAIN a", { NULL }, 0,
          "501 5.5.2 Cannot decode response|", 0, NULL },
        { "other authzid", "PLAIN Ym9iAGFsaWNlAHNlY3JldA==", { NULL }, 0,
          "535 5.7.8 Error: authentication failed: authentication failure|", 0, NULL },
        { "unknown mechanism", "CRAM-MD5", { NULL }, 0,
          "504 5.5.4 Unsupported authentication mechanism|", 0, NULL },
        { "no mechanism", "", { NULL }, 0, "501 5.5.4 Syntax: AUTH mechanism|", 0, NULL },
        { "two arguments", "PLAIN a b", { NULL }, 0, "501 5.5.4 Syntax: AUTH mechanism|", 0, NULL },
    };
    struct anvil *anvil = anvil_new(60000);
    struct smtpd_auth *a = auth_make(anvil, 0, 0);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct exchange_case *c = &cases[i];
        struct fake f;

        fake_start(&f, a, "192.0.2.1");
        TEST_INTEQ(command(&f, 1, c->cmd), SMTPD_AUTH_DONE);
        for (int l = 0; l < 3 && c->lines[l]; l++) {
            TEST_CHECK(smtpd_auth_running(f.as), "%s: exchange running before line %d", c->name,
                       l);
            response(&f, c->lines[l]);
        }
        if (c->checks)
            wait_verdict(&f);
        TEST_CHECK(strcmp(f.replies, c->replies) == 0, "%s: got \"%s\", want \"%s\"", c->name,
                   f.replies, c->replies);
        TEST_CHECK(f.held == c->checks && f.resumed == c->checks,
                   "%s: held %d resumed %d, want %d", c->name, f.held, f.resumed, c->checks);
        TEST_CHECK(f.retracted == c->retracted, "%s: retracted %d, want %d", c->name,
                   f.retracted, c->retracted);
        TEST_CHECK(!smtpd_auth_running(f.as), "%s: exchange over", c->name);
        if (c->user) {
            TEST_CHECK(smtpd_auth_user(f.as) && strcmp(smtpd_auth_user(f.as), c->user) == 0,
                       "%s: user %s", c->name, smtpd_auth_user(f.as));
        } else {
            TEST_CHECK(smtpd_auth_user(f.as) == NULL, "%s: no user, got %s", c->name,
                       smtpd_auth_user(f.as));
        }
        smtpd_auth_session_free(f.as);
    }
    smtpd_auth_free(a);
    anvil_free(anvil);
}

static void test_limits(void)
{
    struct anvil *anvil = anvil_new(60000);
    struct smtpd_auth *a = auth_make(anvil, 0, 0);
    struct fake f;

    /* three failed exchanges, then 421 and the session ends */
    fake_start(&f, a, "192.0.2.2");
    for (int i = 0; i < 3; i++) {
        command(&f, 1, "PLAIN " PLAIN_BAD);
        wait_verdict(&f);
    }
    f.replies[0] = 0;
    TEST_INTEQ(command(&f, 1, "PLAIN " PLAIN_GOOD), SMTPD_AUTH_CLOSE);
    TEST_STREQ(f.replies, "421 4.7.0 mx.example Error: too many failed AUTH attempts|");
    smtpd_auth_session_free(f.as);

    /* after 235, AUTH again is refused */
    fake_start(&f, a, "192.0.2.3");
    command(&f, 1, "PLAIN " PLAIN_GOOD);
    wait_verdict(&f);
    f.replies[0] = 0;
    TEST_INTEQ(command(&f, 1, "PLAIN " PLAIN_GOOD), SMTPD_AUTH_DONE);
    TEST_STREQ(f.replies, "503 5.5.1 Error: already authenticated|");
    TEST_STREQ(smtpd_auth_method(f.as), "PLAIN");
    smtpd_auth_session_free(f.as);
    smtpd_auth_free(a);

    /* smtpd_client_auth_rate_limit = 2: the third AUTH of the address gets 450 */
    a = auth_make(anvil, 0, 2);
    fake_start(&f, a, "192.0.2.4");
    command(&f, 1, "LOGIN");
    response(&f, "*");
    command(&f, 1, "LOGIN");
    response(&f, "*");
    f.replies[0] = 0;
    command(&f, 1, "LOGIN");
    TEST_STREQ(f.replies, "450 4.7.1 Error: too many AUTH commands from 192.0.2.4|");
    /* exempt addresses are not counted */
    smtpd_auth_session_exempt(f.as, 1);
    f.replies[0] = 0;
    command(&f, 1, "LOGIN");
    TEST_STREQ(f.replies, "334 VXNlcm5hbWU6|");
    smtpd_auth_session_free(f.as);
    smtpd_auth_free(a);
    anvil_free(anvil);
}

static void test_delay_and_gone(void)
{
    struct anvil *anvil = anvil_new(60000);
    struct smtpd_auth *a = auth_make(anvil, 1, 0);
    struct fake f;
    long long start;

    /* smtpd_error_sleep_time = 1s: the first failure of the address waits >= 1 s */
    fake_start(&f, a, "192.0.2.5");
    start = clock_now_ms();
    command(&f, 1, "PLAIN " PLAIN_BAD);
    wait_verdict(&f);
    TEST_CHECK(clock_now_ms() - start >= 900, "535 after %lld ms, want >= 1000",
               clock_now_ms() - start);
    TEST_STREQ(f.replies, "535 5.7.8 Error: authentication failed: authentication failure|");
    TEST_INTEQ(anvil_failures(anvil, "192.0.2.5", clock_now_ms()), 1);

    /* a session closing (421 sent) meanwhile gets no 235 */
    f.replies[0] = 0;
    f.closing = 1;
    command(&f, 1, "PLAIN " PLAIN_GOOD);
    wait_verdict(&f);
    TEST_STREQ(f.replies, "");
    TEST_CHECK(smtpd_auth_user(f.as) == NULL, "no user after a 421");
    smtpd_auth_session_free(f.as);

    /* the session goes away during the check: no callback, the failure still counts */
    fake_start(&f, a, "192.0.2.5");
    command(&f, 1, "PLAIN " PLAIN_BAD);
    smtpd_auth_session_free(f.as);
    smtpd_auth_drain(a); /* the check's verdict arrives now, without a session */
    TEST_INTEQ(f.resumed, 0);
    smtpd_auth_free(a);
    anvil_free(anvil);
}

int main(void)
{
    FILE *fp;

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(users_path, sizeof(users_path), "%s/users", dir);
    fp = fopen(users_path, "w");
    if (fp == NULL || fputs("alice:" HASH_SECRET "\n", fp) == EOF || fclose(fp) != 0
        || chmod(users_path, 0600) != 0) {
        perror(users_path);
        return 2;
    }
    base = event_base_new();
    test_offered();
    test_exchanges();
    test_limits();
    test_delay_and_gone();
    event_base_free(base);
    unlink(users_path);
    rmdir(dir);
    return test_summary();
}
