/* Unit tests for server-lite/odmr: the ATRN argument parser (RFC 2645). */
#include <stdio.h>
#include <string.h>

#include "odmr.h"
#include "test.h"

/* join - the parsed domains as "a|b|c" */
static const char *join(const struct odmr_domains *d)
{
    static char out[4096];

    out[0] = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (i)
            strncat(out, "|", sizeof(out) - strlen(out) - 1);
        strncat(out, d->name[i], sizeof(out) - strlen(out) - 1);
    }
    return out;
}

static void test_parse(void)
{
    static const struct {
        const char *arg;
        int rc;
        const char *want; /* the domains, or the start of the reason */
    } cases[] = {
        { "", 0, "" },
        { "a.test", 0, "a.test" },
        { "a.test,b.test", 0, "a.test|b.test" },
        { "A.Test,B.TEST", 0, "a.test|b.test" },           /* case folded */
        { "a.test,A.TEST,a.test", 0, "a.test" },           /* duplicates dropped */
        { "a.test,", -1, "empty domain in the list" },
        { ",a.test", -1, "empty domain in the list" },
        { "a.test,,b.test", -1, "empty domain in the list" },
        { "a.test b.test", -1, "\"a.test b.test\": " },     /* a blank is not a separator */
        { "@a.test", -1, "\"@a.test\": " },                 /* ETRN's forms are not ATRN's */
        { "#queue", -1, "\"#queue\": " },
        { "[192.0.2.1]", -1, "\"[192.0.2.1]\": " },
        { "a..test", -1, "\"a..test\": " },
        { "-a.test", -1, "\"-a.test\": " },
        { "\xc3\xa9.test", -1, "\"\xc3\xa9.test\": " },
    };
    struct odmr_domains d;
    char why[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc;

        why[0] = 0;
        rc = odmr_atrn_parse(cases[i].arg, &d, why, sizeof(why));
        TEST_CHECK(rc == cases[i].rc, "case %zu \"%s\": rc %d, want %d (%s)", i, cases[i].arg, rc,
                   cases[i].rc, why);
        if (rc == 0)
            TEST_CHECK(strcmp(join(&d), cases[i].want) == 0, "case %zu: got \"%s\", want \"%s\"",
                       i, join(&d), cases[i].want);
        else
            TEST_CHECK(strncmp(why, cases[i].want, strlen(cases[i].want)) == 0,
                       "case %zu: got \"%s\", want \"%s...\"", i, why, cases[i].want);
    }
}

static void test_limits(void)
{
    char arg[2048], why[256], name[64];
    struct odmr_domains d;
    size_t n;

    /* exactly ODMR_DOMAINS_MAX domains: taken; one more: refused */
    arg[0] = 0;
    for (n = 0; n < ODMR_DOMAINS_MAX; n++) {
        snprintf(name, sizeof(name), "%sd%zu.test", n ? "," : "", n);
        strncat(arg, name, sizeof(arg) - strlen(arg) - 1);
    }
    TEST_INTEQ(odmr_atrn_parse(arg, &d, why, sizeof(why)), 0);
    TEST_INTEQ(d.n, ODMR_DOMAINS_MAX);
    strncat(arg, ",extra.test", sizeof(arg) - strlen(arg) - 1);
    TEST_INTEQ(odmr_atrn_parse(arg, &d, why, sizeof(why)), -1);
    TEST_STREQ(why, "too many domains (at most 32)");
    /* repeats do not count against the limit */
    arg[0] = 0;
    for (n = 0; n < 2 * ODMR_DOMAINS_MAX; n++)
        strncat(arg, n ? ",same.test" : "same.test", sizeof(arg) - strlen(arg) - 1);
    TEST_INTEQ(odmr_atrn_parse(arg, &d, why, sizeof(why)), 0);
    TEST_INTEQ(d.n, 1);
    /* a name over 255 octets */
    memset(arg, 'a', 300);
    arg[300] = 0;
    TEST_INTEQ(odmr_atrn_parse(arg, &d, why, sizeof(why)), -1);
    TEST_STREQ(why, "domain name too long");
}

int main(void)
{
    test_parse();
    test_limits();
    return test_summary();
}
