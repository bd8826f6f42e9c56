/*
 * Unit tests for server-lite/smtpd_etrn: one line per case, "client, ETRN
 * argument -> reply, and what the flush service was asked".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "anvil.h"
#include "buf.h"
#include "config.h"
#include "server_config.h"
#include "smtpd_etrn.h"
#include "test.h"

static char dir[] = "/tmp/test_smtpd_etrn.XXXXXX";
static char asked[256]; /* "domain/with_subdomains " per hook call */

/* fake_flush - the flush service's answers per domain */
static enum flush_result fake_flush(void *ctx, const char *domain, int with_subdomains,
                                    const char *client, const char *user, size_t *pending)
{
    size_t n = strlen(asked);

    (void) ctx;
    (void) client;
    (void) user;
    snprintf(asked + n, sizeof(asked) - n, "%s/%d ", domain, with_subdomains);
    if (strcmp(domain, "a.test") == 0) {
        *pending = 3;
        return FLUSH_STARTED;
    }
    if (strcmp(domain, "b.test") == 0)
        return FLUSH_NOTHING;
    if (strcmp(domain, "err.test") == 0)
        return FLUSH_ERROR;
    return FLUSH_NOT_ELIGIBLE;
}

static int load(struct server_config *conf, const char *text)
{
    char path[128];
    struct cfg_error err = { "" };
    FILE *fp;

    snprintf(path, sizeof(path), "%s/s.ini", dir);
    fp = fopen(path, "w");
    if (fp == NULL || fputs(text, fp) == EOF || fclose(fp) != 0) {
        perror(path);
        exit(2);
    }
    if (server_config_load(path, conf, &err) != 0) {
        printf("FAIL config: %s\n", err.msg);
        exit(1);
    }
    return 0;
}

#define CONF_BASE                                                                      \
    "[main]\nmyhostname = relay.test\nrelay_domains = a.test b.test\n"                 \
    "mynetworks = 192.0.2.0/24\netrn_rate_limit = 3\nanvil_rate_time_unit = 60s\n"       \
    "smtpd_etrn_restrictions = permit_mynetworks, permit_sasl_authenticated, reject\n"

#define CONF_TABLES                                                                    \
    "[etrn_queues]\nboth = a.test b.test\nmine = a.test @a.test\n"                     \
    "[etrn_users]\nalice = a.test @a.test\nbob = b.test\n"

enum who { MYNET, STRANGER, ALICE, CAROL };

static void test_cases(void)
{
    static const struct {
        enum who who;
        const char *arg;
        const char *reply;  /* ending in "(": a prefix */
        const char *asked;
    } cases[] = {
        { MYNET, "a.test", "253 OK, 3 pending messages for node a.test started", "a.test/0 " },
        { MYNET, "B.Test", "251 OK, no messages waiting for node b.test", "b.test/0 " },
        { MYNET, "@a.test", "253 OK, 3 pending messages for node @a.test started", "a.test/1 " },
        { MYNET, "x.test", "459 <x.test>: service unavailable", "x.test/0 " },
        { MYNET, "err.test", "458 Unable to queue messages for node err.test", "err.test/0 " },
        { MYNET, "[192.0.2.1]", "459 <[192.0.2.1]>: service unavailable", "[192.0.2.1]/0 " },
        { MYNET, "#both", "253 OK, 3 pending messages for node #both started",
          "a.test/0 b.test/0 " },
        { MYNET, "#mine", "253 OK, 6 pending messages for node #mine started",
          "a.test/0 a.test/1 " },
        { MYNET, "#nosuch", "459 <#nosuch>: service unavailable", "" },
        { MYNET, "", "500 5.5.2 Syntax: ETRN domain", "" },
        { MYNET, "a.test b.test", "500 5.5.2 Syntax: ETRN domain", "" },
        { MYNET, "../x", "501 5.5.4 Error: invalid parameter syntax (", "" },
        { MYNET, "a..b", "501 5.5.4 Error: invalid parameter syntax (", "" },
        { MYNET, "%s%n", "501 5.5.4 Error: invalid parameter syntax (", "" },
        { STRANGER, "a.test", "554 5.7.1 <a.test>: Etrn command rejected: Access denied", "" },
        { STRANGER, "#nosuch", "554 5.7.1 <#nosuch>: Etrn command rejected: Access denied", "" },
        { ALICE, "a.test", "253 OK, 3 pending messages for node a.test started", "a.test/0 " },
        { ALICE, "@a.test", "253 OK, 3 pending messages for node @a.test started", "a.test/1 " },
        { ALICE, "sub.a.test", "459 <sub.a.test>: service unavailable", "sub.a.test/0 " },
        { ALICE, "b.test", "459 <b.test>: service unavailable", "" },
        { ALICE, "@b.test", "459 <@b.test>: service unavailable", "" },
        { ALICE, "#both", "459 <#both>: service unavailable", "" },
        { ALICE, "#mine", "253 OK, 6 pending messages for node #mine started",
          "a.test/0 a.test/1 " },
        { ALICE, "[192.0.2.1]", "459 <[192.0.2.1]>: service unavailable", "" },
        { CAROL, "b.test", "251 OK, no messages waiting for node b.test", "b.test/0 " },
    };
    struct server_config conf;
    struct anvil *anvil = anvil_new(60000);
    struct smtpd_etrn_policy p = { .anvil = anvil, .flush = fake_flush };

    load(&conf, CONF_BASE CONF_TABLES);
    p.conf = &conf;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct smtpd_etrn_client c = {
            .addr = cases[i].who == MYNET ? "192.0.2.1" : "198.51.100.1",
            .client = "client.test[198.51.100.1]",
            .helo = "c.test",
            .user = cases[i].who == ALICE ? "alice" : cases[i].who == CAROL ? "carol" : NULL,
            .esmtp = 1,
            .mynet = cases[i].who == MYNET,
            .exempt = 1,
        };
        struct buf b = BUF_INIT;
        const char *want = cases[i].reply, *got;
        size_t wlen = strlen(want);
        int prefix = wlen > 0 && want[wlen - 1] == '(';

        asked[0] = 0;
        smtpd_etrn(&p, &c, cases[i].arg, &b);
        got = buf_cstr(&b);
        TEST_CHECK(prefix ? strncmp(got, want, wlen) == 0 : strcmp(got, want) == 0,
                   "ETRN \"%s\": got \"%s\", want \"%s\"%s", cases[i].arg, got, want,
                   prefix ? "..." : "");
        TEST_CHECK(strcmp(asked, cases[i].asked) == 0, "ETRN \"%s\": asked \"%s\", want \"%s\"",
                   cases[i].arg, asked, cases[i].asked);
        buf_free(&b);
    }
    server_config_free(&conf);
    anvil_free(anvil);
}

/* etrn_once - one ETRN from a client in mynetworks; the reply (static) */
static const char *etrn_once(const struct smtpd_etrn_policy *p, const char *addr, int exempt,
                             const char *arg)
{
    static char out[256];
    struct smtpd_etrn_client c = { .addr = addr, .client = addr, .mynet = 1, .exempt = exempt };
    struct buf b = BUF_INIT;

    smtpd_etrn(p, &c, arg, &b);
    snprintf(out, sizeof(out), "%s", buf_cstr(&b));
    buf_free(&b);
    return out;
}

static void test_rate_reply_hook(void)
{
    struct server_config conf;
    struct anvil *anvil = anvil_new(60000);
    struct smtpd_etrn_policy p = { .anvil = anvil, .flush = fake_flush };

    load(&conf, CONF_BASE "etrn_reply = postfix\n" CONF_TABLES);
    p.conf = &conf;
    /* etrn_rate_limit = 3 per client address; the 4th is 458, exempt clients never */
    for (int i = 0; i < 3; i++)
        TEST_STREQ(etrn_once(&p, "192.0.2.7", 0, "a.test"), "250 Queuing started");
    TEST_STREQ(etrn_once(&p, "192.0.2.7", 0, "b.test"),
               "458 4.7.0 Error: too many ETRN requests from 192.0.2.7");
    TEST_STREQ(etrn_once(&p, "192.0.2.8", 0, "b.test"), "250 Queuing started");
    for (int i = 0; i < 5; i++)
        TEST_STREQ(etrn_once(&p, "192.0.2.9", 1, "b.test"), "250 Queuing started");
    /* etrn_reply = postfix does not hide refusals */
    TEST_STREQ(etrn_once(&p, "192.0.2.10", 1, "x.test"), "459 <x.test>: service unavailable");
    /* no flush service wired: 458 */
    p.flush = NULL;
    TEST_STREQ(etrn_once(&p, "192.0.2.10", 1, "a.test"),
               "458 Unable to queue messages for node a.test");
    server_config_free(&conf);
    anvil_free(anvil);
}

int main(void)
{
    char path[128];

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    test_cases();
    test_rate_reply_hook();
    snprintf(path, sizeof(path), "%s/s.ini", dir);
    unlink(path);
    rmdir(dir);
    return test_summary();
}
