/* Unit tests for the agent's ODMR parts: CRAM-MD5 and PLAIN, the ATRN command, reply mapping. */
#include <stdlib.h>

#include "atrn_reply.h"
#include "buf.h"
#include "sasl_client.h"
#include "test.h"

static void test_cram_md5(void)
{
    /* RFC 2195, section 2: the example exchange */
    char *got = sasl_cram_md5("tim", "tanstaaftanstaaf",
                              "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");

    TEST_STREQ(got, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
    free(got);
    TEST_CHECK(sasl_cram_md5("tim", "x", "") == NULL, "an empty challenge gets no answer");
    TEST_CHECK(sasl_cram_md5("tim", "x", "not base64!") == NULL, "a bad challenge gets no answer");
    TEST_CHECK(sasl_cram_md5("tim", "x", "PDE4OTY") == NULL, "a cut challenge gets no answer");
}

static void test_plain_login(void)
{
    char *got = sasl_plain("tim", "tanstaaf");

    TEST_STREQ(got, "AHRpbQB0YW5zdGFhZg=="); /* "\0tim\0tanstaaf" */
    free(got);
    got = sasl_base64("tim");
    TEST_STREQ(got, "dGlt");
    free(got);
}

static void test_command(void)
{
    static const struct {
        const char *domains[4];
        const char *want;    /* the command, or the reason's start */
        int bad;             /* index of the bad domain; 4: the list; -1: fine */
    } cases[] = {
        { { "example.org", NULL }, "ATRN example.org", -1 },
        { { "Example.ORG", "b.example.net", NULL }, "ATRN example.org,b.example.net", -1 },
        { { "a.org", "@b.org", NULL }, "\"@domain\" and \"#queue\" are ETRN forms", 1 },
        { { "#queue", NULL }, "\"@domain\" and \"#queue\" are ETRN forms", 0 },
        { { "a.org", "A.ORG", NULL }, "given twice", 1 },
        { { "a..org", NULL }, "", 0 },
        { { "a.org,b.org", NULL }, "", 0 },
        { { "a b.org", NULL }, "", 0 },
        { { NULL }, "no domain", 4 },
    };
    struct buf cmd = BUF_INIT;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = 0, bad = 99;
        const char *why = NULL;
        int rc;

        while (n < 4 && cases[i].domains[n])
            n++;
        rc = atrn_command((char *const *) cases[i].domains, n, &cmd, &bad, &why);
        if (cases[i].bad < 0) {
            TEST_CHECK(rc == 0, "case %zu: refused: %s", i, why ? why : "");
            TEST_STREQ(buf_cstr(&cmd), cases[i].want);
        } else {
            TEST_CHECK(rc != 0, "case %zu must be refused", i);
            TEST_INTEQ(bad, cases[i].bad == 4 ? n : (size_t) cases[i].bad);
            TEST_CHECK(why && strncmp(why, cases[i].want, strlen(cases[i].want)) == 0,
                       "case %zu: reason \"%s\", want it to start \"%s\"", i, why ? why : "",
                       cases[i].want);
        }
    }

    /* too many domains for one 512-byte command line */
    char *many[40], name[40];
    size_t bad = 0;
    const char *why = NULL;

    for (size_t i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "site%02zu.customer-domain.example", i);
        many[i] = strdup(name);
    }
    /* "ATRN " + 16 names of 30 bytes + 15 commas + CRLF = 502: fits; 17 make 533 */
    TEST_INTEQ(atrn_command(many, 16, &cmd, &bad, &why), 0);
    TEST_INTEQ(cmd.len + 2, 502);
    TEST_INTEQ(atrn_command(many, 17, &cmd, &bad, &why), -1);
    TEST_INTEQ(bad, 17);
    TEST_CHECK(why && strstr(why, "too many domains") != NULL, "reason: %s", why ? why : "");
    for (size_t i = 0; i < 40; i++)
        free(many[i]);
    buf_free(&cmd);
}

static void test_classify(void)
{
    static const struct {
        int code;
        enum etrn_verdict want;
    } cases[] = {
        { 250, ETRN_OK }, { 453, ETRN_OK }, { 451, ETRN_TEMP }, { 421, ETRN_TEMP },
        { 450, ETRN_PERM }, { 530, ETRN_PERM }, { 502, ETRN_PERM }, { 500, ETRN_PERM },
        { 554, ETRN_PERM }, { 0, ETRN_TEMP }, { 220, ETRN_TEMP },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *meaning = NULL;
        enum etrn_verdict got = atrn_reply_classify(cases[i].code, &meaning);

        TEST_CHECK(got == cases[i].want, "classify(%d): got %d, want %d", cases[i].code, (int) got,
                   (int) cases[i].want);
        TEST_CHECK(meaning && *meaning, "classify(%d) has a meaning", cases[i].code);
    }
}

int main(void)
{
    test_cram_md5();
    test_plain_login();
    test_command();
    test_classify();
    return test_summary();
}
