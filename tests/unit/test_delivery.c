/*
 * test_delivery - the delivery result type: reply classification, DSN codes,
 * text cleaning and truncation, report defaults.
 */
#include <string.h>

#include "delivery.h"
#include "test.h"

/* test_from_reply - status and DSN from reply code and text */
static void test_from_reply(void)
{
    static const struct {
        int code;
        const char *text;
        enum delivery_status want;
        const char *dsn;
    } cases[] = {
        { 250, "2.0.0 Ok: queued as 4F1", DELIVERY_OK, "2.0.0" },
        { 250, "Ok", DELIVERY_OK, "2.0.0" },
        { 250, "250 2.1.5 Ok", DELIVERY_OK, "2.1.5" },
        { 251, "2.1.5 User not local; will forward", DELIVERY_OK, "2.1.5" },
        { 450, "4.2.0 <b@x.test>: Recipient address rejected: Greylisted", DELIVERY_TEMP, "4.2.0" },
        { 421, "Service not available", DELIVERY_TEMP, "4.0.0" },
        { 452, "452-4.5.3 Too many recipients", DELIVERY_TEMP, "4.5.3" },
        { 550, "5.1.1 <c@x.test>: Recipient address rejected: User unknown", DELIVERY_PERM, "5.1.1" },
        { 554, "Transaction failed", DELIVERY_PERM, "5.0.0" },
        { 550, "550 5.7.1 relay denied", DELIVERY_PERM, "5.7.1" },
        { 552, "5.3.4 Message size exceeds fixed limit", DELIVERY_PERM, "5.3.4" },
        { 553, "5.123.456 longest form", DELIVERY_PERM, "5.123.456" },
        /* not an enhanced code: four digits, missing part, glued text */
        { 550, "5.1.1234 no", DELIVERY_PERM, "5.0.0" },
        { 550, "5.1 no", DELIVERY_PERM, "5.0.0" },
        { 550, "5.1.1x no", DELIVERY_PERM, "5.0.0" },
        { 550, "", DELIVERY_PERM, "5.0.0" },
        /* an enhanced code whose class disagrees follows the reply code */
        { 550, "4.2.2 mailbox full", DELIVERY_PERM, "5.2.2" },
        { 451, "5.3.0 local error", DELIVERY_TEMP, "4.3.0" },
        /* anything but 2xx/4xx/5xx is tried again */
        { 354, "End data", DELIVERY_TEMP, "4.0.0" },
        { 0, "garbage", DELIVERY_TEMP, "4.0.0" },
        { 999, "x", DELIVERY_TEMP, "4.0.0" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char dsn[QUEUE_DSN_MAX + 1] = "";
        enum delivery_status st = delivery_from_reply(cases[i].code, cases[i].text, dsn, sizeof(dsn));

        TEST_CHECK(st == cases[i].want, "case %zu (%d %s): got status %d, want %d", i,
                   cases[i].code, cases[i].text, (int) st, (int) cases[i].want);
        TEST_CHECK(strcmp(dsn, cases[i].dsn) == 0, "case %zu (%d %s): got dsn %s, want %s", i,
                   cases[i].code, cases[i].text, dsn, cases[i].dsn);
    }
    char dsn[QUEUE_DSN_MAX + 1] = "";

    TEST_INTEQ(delivery_from_reply(550, NULL, dsn, sizeof(dsn)), DELIVERY_PERM);
    TEST_STREQ(dsn, "5.0.0");
}

/* test_report - defaults, set, set_all, cleaning, truncation */
static void test_report(void)
{
    struct delivery_report r;
    char long_text[1000];

    delivery_report_init(&r, 3);
    TEST_INTEQ(r.nrcpt, 3);
    TEST_STREQ(r.relay, "none");
    for (size_t i = 0; i < 3; i++) {
        TEST_INTEQ(r.rcpt[i].status, DELIVERY_TEMP);
        TEST_STREQ(r.rcpt[i].dsn, "4.3.0");
        TEST_STREQ(r.rcpt[i].text, "delivery not attempted");
    }

    delivery_set_all(&r, DELIVERY_TEMP, "4.4.1", "connect to %s[%s]:%d: %s", "mx.test",
                     "127.0.0.2", 25, "Connection refused");
    for (size_t i = 0; i < 3; i++) {
        TEST_STREQ(r.rcpt[i].dsn, "4.4.1");
        TEST_STREQ(r.rcpt[i].text, "connect to mx.test[127.0.0.2]:25: Connection refused");
    }

    /* CR, LF, TAB, ESC, other controls and DEL become '?': no forged log lines */
    delivery_set(&r, 1, DELIVERY_PERM, "5.1.1", "said: 550 bad\r\nID: to=<x>, status=sent\t\x01\x7f\x1b[2J!");
    TEST_INTEQ(r.rcpt[1].status, DELIVERY_PERM);
    TEST_STREQ(r.rcpt[1].text, "said: 550 bad??ID: to=<x>, status=sent????[2J!");
    TEST_STREQ(r.rcpt[0].text, "connect to mx.test[127.0.0.2]:25: Connection refused");

    /* bytes >= 0x80 too (a C1 control such as 0x9b is CSI to some terminals) */
    delivery_set(&r, 2, DELIVERY_OK, "2.0.0", "250 ok \xc3\xa9t\xc3\xa9 \x9b" "2J");
    TEST_STREQ(r.rcpt[2].text, "250 ok ??t?? ?2J");

    /* a long text keeps its first QUEUE_REASON_MAX bytes */
    memset(long_text, 'a', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = 0;
    delivery_set(&r, 0, DELIVERY_TEMP, "4.0.0", "%s", long_text);
    TEST_INTEQ(strlen(r.rcpt[0].text), QUEUE_REASON_MAX);

    /* a missing or oversized DSN falls back to the status's class */
    delivery_set(&r, 0, DELIVERY_PERM, "", "x");
    TEST_STREQ(r.rcpt[0].dsn, "5.0.0");
    delivery_set(&r, 0, DELIVERY_OK, "2.0.0.0.0.0.0", "x");
    TEST_STREQ(r.rcpt[0].dsn, "2.0.0");
    delivery_set(&r, 0, DELIVERY_TEMP, NULL, "x");
    TEST_STREQ(r.rcpt[0].dsn, "4.3.0");

    /* out of range is ignored, not a crash */
    delivery_set(&r, 3, DELIVERY_OK, "2.0.0", "x");
    TEST_INTEQ(r.nrcpt, 3);

    delivery_report_free(&r);
    TEST_CHECK(r.rcpt == NULL && r.nrcpt == 0, "report freed");
}

/* test_names - Postfix's status words */
static void test_names(void)
{
    TEST_STREQ(delivery_status_name(DELIVERY_OK), "sent");
    TEST_STREQ(delivery_status_name(DELIVERY_TEMP), "deferred");
    TEST_STREQ(delivery_status_name(DELIVERY_PERM), "bounced");
}

int main(void)
{
    test_from_reply();
    test_report();
    test_names();
    return test_summary();
}
