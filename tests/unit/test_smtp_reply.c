/* Unit tests for common/smtp_reply: codes, multi-line replies, enhanced status, limits. */
#include <stdlib.h>
#include <string.h>

#include "smtp_reply.h"
#include "test.h"

/* feed - every line of a "\r\n"-separated script; the last state */
static enum smtp_reply_state feed(struct smtp_reply *r, const char *script)
{
    enum smtp_reply_state st = SMTP_REPLY_MORE;
    const char *p = script;

    smtp_reply_init(r);
    while (*p) {
        const char *e = strstr(p, "\r\n");
        size_t n = e ? (size_t) (e - p) : strlen(p);

        st = smtp_reply_feed(r, p, n);
        p += n + (e ? 2 : 0);
    }
    return st;
}

static void test_table(void)
{
    static const struct {
        const char *script;
        enum smtp_reply_state want;
        int code;
        const char *dsn, *text;
    } cases[] = {
        { "250 Ok", SMTP_REPLY_DONE, 250, "", "250 Ok" },
        { "250", SMTP_REPLY_DONE, 250, "", "250" },
        { "550 5.1.1 <a@b>: User unknown", SMTP_REPLY_DONE, 550, "5.1.1",
          "550 5.1.1 <a@b>: User unknown" },
        { "450 4.7.1 Greylisted", SMTP_REPLY_DONE, 450, "4.7.1", "450 4.7.1 Greylisted" },
        { "450 5.7.1 wrong class", SMTP_REPLY_DONE, 450, "", "450 5.7.1 wrong class" },
        { "250 2.0.0", SMTP_REPLY_DONE, 250, "2.0.0", "250 2.0.0" },
        { "250 2.100.999 x", SMTP_REPLY_DONE, 250, "2.100.999", "250 2.100.999 x" },
        { "250 2.1000.0 x", SMTP_REPLY_DONE, 250, "", "250 2.1000.0 x" },
        { "250 2.1.0x", SMTP_REPLY_DONE, 250, "", "250 2.1.0x" },
        { "250-relay.test\r\n250-PIPELINING\r\n250 SIZE 1000", SMTP_REPLY_DONE, 250, "",
          "250-relay.test\n250-PIPELINING\n250 SIZE 1000" },
        { "250-first", SMTP_REPLY_MORE, 250, "", "250-first" },
        { "250-first\r\n251 other", SMTP_REPLY_BAD, 250, "", NULL },
        { "hello", SMTP_REPLY_BAD, 0, "", NULL },
        { "25", SMTP_REPLY_BAD, 0, "", NULL },
        { "2500 x", SMTP_REPLY_BAD, 0, "", NULL },
        { "250_x", SMTP_REPLY_BAD, 0, "", NULL },
        { "150 x", SMTP_REPLY_BAD, 0, "", NULL },
        { "650 x", SMTP_REPLY_BAD, 0, "", NULL },
        { "220 a\tb\x01\x1b[31m", SMTP_REPLY_DONE, 220, "", "220 a\tb\x01\x1b[31m" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct smtp_reply r;
        enum smtp_reply_state st = feed(&r, cases[i].script);

        TEST_CHECK(st == cases[i].want, "case %zu \"%s\": state %d, want %d", i,
                   cases[i].script, (int) st, (int) cases[i].want);
        if (cases[i].want == SMTP_REPLY_BAD)
            continue;
        TEST_INTEQ(r.code, cases[i].code);
        TEST_STREQ(r.dsn, cases[i].dsn);
        TEST_STREQ(r.text, cases[i].text);
    }
}

static void test_lines(void)
{
    struct smtp_reply r;
    char out[64];

    TEST_INTEQ(feed(&r, "250-relay.test says hi\r\n250-SIZE 1000\r\n250 8BITMIME"),
               SMTP_REPLY_DONE);
    TEST_INTEQ(r.lines, 3);
    TEST_CHECK(smtp_reply_line(&r, 0, out, sizeof(out)), "line 0");
    TEST_STREQ(out, "relay.test says hi");
    TEST_CHECK(smtp_reply_line(&r, 1, out, sizeof(out)), "line 1");
    TEST_STREQ(out, "SIZE 1000");
    TEST_CHECK(smtp_reply_line(&r, 2, out, sizeof(out)), "line 2");
    TEST_STREQ(out, "8BITMIME");
    TEST_CHECK(!smtp_reply_line(&r, 3, out, sizeof(out)), "no line 3");
    TEST_INTEQ(feed(&r, "250"), SMTP_REPLY_DONE);
    TEST_CHECK(smtp_reply_line(&r, 0, out, sizeof(out)), "bare code");
    TEST_STREQ(out, "");
}

/* the one-line form: texts without codes, empty lines left out, cut to fit */
static void test_oneline(void)
{
    static const struct {
        const char *script;
        size_t outlen;
        const char *want;
    } cases[] = {
        { "450-4.7.1 first\r\n450 4.7.1 second", 64, "4.7.1 first 4.7.1 second" },
        { "453 You have no mail", 64, "You have no mail" },
        { "250-\r\n250-a\r\n250 \r\n", 64, "a" },
        { "250", 64, "" },
        { "451-one\r\n451 two", 6, "one t" },
        { "451-one\r\n451 two", 8, "one two" },
    };
    struct smtp_reply r;
    char out[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TEST_INTEQ(feed(&r, cases[i].script), SMTP_REPLY_DONE);
        TEST_STREQ(smtp_reply_oneline(&r, out, cases[i].outlen), cases[i].want);
        TEST_CHECK(strchr(out, '\n') == NULL, "case %zu: one line", i);
    }
}

/* a long reply keeps its first SMTP_REPLY_MAX bytes; an endless one stops at
   SMTP_REPLY_LIMIT and stays stopped */
static void test_cap(void)
{
    struct smtp_reply r;
    char line[100];
    enum smtp_reply_state st = SMTP_REPLY_MORE;
    size_t n = 0;

    smtp_reply_init(&r);
    memset(line, 'x', sizeof(line));
    memcpy(line, "250-", 4);
    while (st == SMTP_REPLY_MORE && n < 100000) {
        st = smtp_reply_feed(&r, line, sizeof(line));
        n++;
    }
    TEST_INTEQ(st, SMTP_REPLY_TOO_LONG);
    TEST_CHECK(n > 600 && n < 700, "refused after %zu lines of 100 bytes", n);
    TEST_CHECK(r.len <= SMTP_REPLY_MAX, "kept %zu bytes", r.len);
    TEST_INTEQ(smtp_reply_feed(&r, "250 end", 7), SMTP_REPLY_TOO_LONG);

    /* 60 lines of 100 bytes: complete, the text cut at 4096 bytes and flagged */
    smtp_reply_init(&r);
    for (int i = 0; i < 59; i++)
        st = smtp_reply_feed(&r, line, sizeof(line));
    TEST_INTEQ(st, SMTP_REPLY_MORE);
    TEST_INTEQ(smtp_reply_feed(&r, "250 last", 8), SMTP_REPLY_DONE);
    TEST_INTEQ(r.code, 250);
    TEST_INTEQ(r.len, SMTP_REPLY_MAX);
    TEST_INTEQ(strlen(r.text), SMTP_REPLY_MAX);
    TEST_CHECK(r.truncated, "a 6 KB reply is marked truncated");
    TEST_INTEQ(r.lines, 60);
    char out[200];
    TEST_CHECK(smtp_reply_line(&r, 39, out, sizeof(out)), "a line inside the kept text");
    TEST_CHECK(!smtp_reply_line(&r, 59, out, sizeof(out)), "a line cut off: none");
    /* exactly SMTP_REPLY_MAX is kept whole */
    char big[SMTP_REPLY_MAX];
    memset(big, 'y', sizeof(big));
    memcpy(big, "250 ", 4);
    smtp_reply_init(&r);
    TEST_INTEQ(smtp_reply_feed(&r, big, sizeof(big)), SMTP_REPLY_DONE);
    TEST_CHECK(!r.truncated, "4096 bytes are not truncated");
    TEST_INTEQ(r.len, SMTP_REPLY_MAX);
    smtp_reply_init(&r);
    TEST_INTEQ(smtp_reply_feed(&r, "250 short", 9), SMTP_REPLY_DONE);
    TEST_CHECK(!r.truncated, "short reply");
}

int main(void)
{
    test_table();
    test_lines();
    test_oneline();
    test_cap();
    return test_summary();
}
