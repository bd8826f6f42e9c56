/* Unit tests for the agent's pure parts: reply classification, host:port, config. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_config.h"
#include "atrn_reply.h"
#include "etrn_reply.h"
#include "exitcode.h"
#include "round.h"
#include "status.h"
#include "test.h"

static void test_classify(void)
{
    static const struct {
        int code;
        enum etrn_verdict want;
    } cases[] = {
        { 250, ETRN_OK }, { 251, ETRN_OK }, { 252, ETRN_OK }, { 253, ETRN_OK },
        { 458, ETRN_TEMP }, { 421, ETRN_TEMP }, { 450, ETRN_TEMP }, { 459, ETRN_PERM },
        { 500, ETRN_PERM }, { 501, ETRN_PERM }, { 502, ETRN_PERM }, { 553, ETRN_PERM },
        { 554, ETRN_PERM }, { 0, ETRN_TEMP }, { 354, ETRN_TEMP },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *meaning = NULL;
        enum etrn_verdict got = etrn_reply_classify(cases[i].code, &meaning);

        TEST_CHECK(got == cases[i].want, "classify(%d): got %d, want %d", cases[i].code, (int) got,
                   (int) cases[i].want);
        TEST_CHECK(meaning && *meaning, "classify(%d) has a meaning", cases[i].code);
    }
    TEST_INTEQ(etrn_reply_pending("OK, 12 pending messages for node example.org started"), 12);
    TEST_INTEQ(etrn_reply_pending("OK, no messages waiting for node example.org"), -1);
    TEST_INTEQ(etrn_reply_pending("2.0.0 OK, 3 pending messages for node a1.example started"), 3);
    TEST_INTEQ(etrn_reply_pending(NULL), -1);
}

static void test_exit_status(void)
{
    struct round_report r = { NULL, 0, ETRN_OK };

    TEST_INTEQ(round_exit_status(&r), EXIT_OK);
    r.worst = ETRN_TEMP;
    TEST_INTEQ(round_exit_status(&r), EXIT_TEMPFAIL);
    r.worst = ETRN_PERM;
    TEST_INTEQ(round_exit_status(&r), EXIT_UNAVAILABLE);
}

static void test_hostport(void)
{
    static const struct {
        const char *text;
        const char *host;
        int port;
    } cases[] = {
        { "relay1.isp.example", "relay1.isp.example", 0 },
        { "relay2.isp.example:2525", "relay2.isp.example", 2525 },
        { "192.0.2.9", "192.0.2.9", 0 },
        { "192.0.2.9:26", "192.0.2.9", 26 },
        { "[2001:db8::9]:2525", "2001:db8::9", 2525 },
        { "[2001:db8::9]", "2001:db8::9", 0 },
        { "2001:db8::9", "2001:db8::9", 0 },
        { "relay:0", NULL, 0 }, { "relay:99999", NULL, 0 }, { "re lay", NULL, 0 },
        { "[nothex]:25", NULL, 0 }, { "relay:", NULL, 0 }, { "a/b:25", NULL, 0 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *host = NULL;
        int port = -1;
        const char *why = NULL;
        int rc = agent_parse_hostport(cases[i].text, &host, &port, &why);

        if (cases[i].host == NULL) {
            TEST_CHECK(rc != 0, "agent_parse_hostport(\"%s\") must fail", cases[i].text);
        } else {
            TEST_CHECK(rc == 0, "agent_parse_hostport(\"%s\"): %s", cases[i].text, why ? why : "");
            if (rc == 0) {
                TEST_STREQ(host, cases[i].host);
                TEST_INTEQ(port, cases[i].port);
            }
        }
        free(host);
    }
}

/* load_text - write an agent.ini with mode, load it, return the message */
static int load_text(const char *text, mode_t mode, struct agent_config *conf, char *msg, size_t len)
{
    char path[] = "/tmp/etrnkit-agent-XXXXXX";
    int fd = mkstemp(path);
    struct cfg_error err = { "" };
    int rc;

    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t) strlen(text))
        return -2;
    close(fd);
    chmod(path, mode);
    rc = agent_config_load(path, conf, &err);
    const char *colon = strchr(err.msg, ':');
    snprintf(msg, len, "%s", colon ? colon + 1 : err.msg);
    unlink(path);
    return rc;
}

static void test_config(void)
{
    static const struct {
        const char *text;
        const char *want; /* after "FILE:", NULL: loads */
    } cases[] = {
        { "[provider isp]\nhosts = relay.example\ndomains = example.org @b.example.org #q\n", NULL },
        { "[agent]\ninterval = 5x\n[provider isp]\nhosts = r\ndomains = a.org\n",
          "2: [agent] interval: \"5x\": bad time unit (use s, m, h, d or w)" },
        { "[agent]\nbogus = 1\n", "2: [agent] bogus: unknown key" },
        { "[provider isp]\nhosts = r\n", "1: [provider isp] domains: required key is missing" },
        { "[agent]\nlog = stderr\n", " no [provider NAME] section: at least one is required" },
        { "[provider isp]\nhosts = r\ndomains = a.org b/c.org\n",
          "3: [provider isp] domains: \"b/c.org\" is not a valid ETRN argument: "
          "character not allowed in a hostname (letters, digits, '-' and '.' only)" },
        { "[provider isp]\nhosts = r\ndomains = a.org\ntls = bogus\n",
          "4: [provider isp] tls: \"bogus\" is not one of: starttls, tls, none" },
        { "[provider isp]\nhosts = r\ndomains = a.org\nport = 99999\n",
          "4: [provider isp] port: 99999 is out of range (1..65535)" },
        { "[provider isp]\nhosts = mx:example.org r2\ndomains = a.org\n",
          "2: [provider isp] hosts: mx:DOMAIN must stand alone" },
        { "[provider isp]\nhosts = r\ndomains = a.org\n[provider isp]\nhosts = s\n",
          "5: [provider isp]: section given twice (first at line 1)" },
        { "[mystery]\nx = 1\n",
          "2: [mystery]: unknown section (expected [agent], [link] or [provider NAME])" },
        { "[provider isp]\nhosts = r\ndomains = a.org\nusername = u\n",
          "1: [provider isp] password_file: username is set but no password or password_file" },
        { "[agent]\nlocal_smtp = 127.0.0.1:25\n[provider isp]\nhosts = r\ndomains = a.org\n"
          "protocol = atrn\n",
          "6: [provider isp] protocol: atrn needs username and password (or password_file): "
          "ODMR serves only an authenticated site" },
        { "[provider isp]\nhosts = r\ndomains = a.org\nprotocol = atrn\nusername = u\n"
          "password = p\n",
          "4: [provider isp] protocol: atrn needs [agent] local_smtp, the site's own SMTP "
          "listener that receives the relayed mail" },
        { "[agent]\nlocal_smtp = 127.0.0.1:25\n[provider isp]\nhosts = r\n"
          "domains = a.org @b.org\nprotocol = atrn\nusername = u\npassword = p\n",
          "5: [provider isp] domains: \"@b.org\" is not an ATRN argument: \"@domain\" and "
          "\"#queue\" are ETRN forms; ATRN takes plain domains" },
        { "[provider isp]\nhosts = r\ndomains = a.org\nprotocol = odmr\n",
          "4: [provider isp] protocol: \"odmr\" is not one of: etrn, atrn" },
        { "[agent]\nlocal_smtp = 127.0.0.1:25\n[provider isp]\nhosts = r\n"
          "domains = A.org b.org\nprotocol = atrn\nusername = u\npassword = p\n", NULL },
        { "[agent]\nlocal_smtp = 127.0.0.1:25\n[provider isp]\nhosts = r\nport = 2366\n"
          "domains = a.org\nprotocol = atrn\nusername = u\npassword = p\nidle_timeout = 2m\n", NULL },
    };
    struct agent_config conf;
    char msg[1024];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = load_text(cases[i].text, 0600, &conf, msg, sizeof(msg));

        if (cases[i].want == NULL) {
            TEST_CHECK(rc == 0, "case %zu: got \"%s\", want success", i, msg);
            if (rc == 0 && i == 0) {
                TEST_INTEQ(conf.nproviders, 1);
                TEST_INTEQ(conf.providers[0].domains.count, 3);
                TEST_INTEQ(conf.providers[0].port, 25);
                TEST_INTEQ(conf.providers[0].tls, AGENT_TLS_STARTTLS);
                TEST_INTEQ(conf.providers[0].tls_verify, 1);
                TEST_INTEQ(conf.interval, 300);
                TEST_INTEQ(conf.providers[0].protocol, AGENT_PROTO_ETRN);
            }
            if (rc == 0 && conf.providers[0].protocol == AGENT_PROTO_ATRN) {
                const struct agent_provider *p = &conf.providers[0];

                /* the odmr port unless port is given; relay bounds */
                TEST_INTEQ(p->port, strstr(cases[i].text, "port =") ? 2366 : 366);
                TEST_INTEQ(p->idle_timeout, strstr(cases[i].text, "idle_timeout") ? 120 : 300);
                TEST_INTEQ(p->session_limit, 3600);
            }
            if (rc == 0)
                agent_config_free(&conf);
        } else {
            TEST_CHECK(rc != 0, "case %zu must fail", i);
            TEST_STREQ(msg, cases[i].want);
        }
    }
    /* [provider isp] twice with another section between */
    int rc = load_text("[provider isp]\nhosts = r\ndomains = a.org\n[agent]\nlog = stderr\n"
                       "[provider isp]\nhosts = s\n", 0600, &conf, msg, sizeof(msg));
    TEST_CHECK(rc != 0, "a provider section given twice is refused");
    TEST_STREQ(msg, "7: [provider isp]: section given twice (first at line 1)");

    /* a password in a config that others can read is refused */
    rc = load_text("[provider isp]\nhosts = r\ndomains = a.org\nusername = u\npassword = secret\n",
                   0644, &conf, msg, sizeof(msg));
    TEST_CHECK(rc != 0, "password in a world-readable config refused");
    TEST_CHECK(strstr(msg, "5: [provider isp] password: config file holding a password") != NULL,
               "message names line and key: %s", msg);
    rc = load_text("[provider isp]\nhosts = r\ndomains = a.org\nusername = u\npassword = secret\n",
                   0600, &conf, msg, sizeof(msg));
    TEST_CHECK(rc == 0, "password in a private config accepted: %s", msg);
    if (rc == 0) {
        TEST_STREQ(conf.providers[0].password, "secret");
        agent_config_free(&conf);
    }
}

/* session - a finished session with one domain's reply */
static void session(struct etrn_session *s, struct etrn_domain_result *r, const char *domain,
                    int code, long pending)
{
    memset(s, 0, sizeof(*s));
    memset(r, 0, sizeof(*r));
    r->domain = (char *) domain;
    r->code = code;
    r->text = (char *) "OK";
    r->verdict = etrn_reply_classify(code, &r->meaning);
    r->pending = pending;
    s->verdict = r->verdict;
    s->results = r;
    s->count = 1;
    s->relayed = -1; /* an ETRN session */
}

/* test_status_tables - two tables are independent; a written table reads back in words */
static void test_status_tables(void)
{
    struct status_table *a = status_new(), *b = status_new();
    struct etrn_session s;
    struct etrn_domain_result r;
    char path[] = "/tmp/etrnkit-status.XXXXXX", why[256], out[4096];
    time_t t = 1700000000;
    int fd = mkstemp(path);
    FILE *fp;
    size_t n;

    session(&s, &r, "a.test", 253, 3);
    status_record(a, "p1", "mx.a.test", 25, &s, t);
    session(&s, &r, "b.test", 251, -1);
    status_record(b, "p2", "mx.b.test", 2525, &s, t);
    status_set_next(b, "p2", "mx.b.test", 2525, t + 60, "interval round");
    TEST_CHECK(fd >= 0, "mkstemp");
    if (fd < 0)
        return;
    close(fd);
    TEST_INTEQ(status_write(a, path, why, sizeof(why)), 0);
    fp = tmpfile();
    TEST_INTEQ(status_print(path, t + 5, fp, why, sizeof(why)), 0);
    rewind(fp);
    n = fread(out, 1, sizeof(out) - 1, fp);
    out[n] = 0;
    fclose(fp);
    TEST_CHECK(strstr(out, "provider p1 host mx.a.test:25 domain a.test: 253 ") != NULL
                   && strstr(out, "5s ago; 3 pending; next attempt: at the next round") != NULL,
               "table a in words: %s", out);
    TEST_CHECK(strstr(out, "1 host(s)") != NULL && strstr(out, "mx.b.test") == NULL,
               "table b's host is not in table a's file: %s", out);
    TEST_CHECK(strstr(out, "relayed") == NULL, "an ETRN session shows no relayed count: %s", out);

    /* an ATRN session: its count of relayed messages is written and read back */
    session(&s, &r, "c.test", 250, -1);
    r.verdict = atrn_reply_classify(250, &r.meaning);
    s.relayed = 20;
    status_record(a, "p3", "odmr.c.test", 366, &s, t);
    TEST_INTEQ(status_write(a, path, why, sizeof(why)), 0);
    fp = tmpfile();
    TEST_INTEQ(status_print(path, t + 5, fp, why, sizeof(why)), 0);
    rewind(fp);
    n = fread(out, 1, sizeof(out) - 1, fp);
    out[n] = 0;
    fclose(fp);
    TEST_CHECK(strstr(out, "provider p3 host odmr.c.test:366 domain c.test: 250 reversing the "
                           "connection, 5s ago; 20 relayed") != NULL,
               "ATRN in words: %s", out);
    status_free(a);
    status_free(b);
    unlink(path);
}

int main(void)
{
    test_classify();
    test_exit_status();
    test_hostport();
    test_config();
    test_status_tables();
    return test_summary();
}
