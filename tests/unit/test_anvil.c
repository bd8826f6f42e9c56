/* Unit tests for server-lite/anvil: per-address sessions, rates, failures, expiry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anvil.h"
#include "test.h"

static void test_sessions(void)
{
    struct anvil *a = anvil_new(60000);
    const char *x = "192.0.2.3", *y = "192.0.2.4";
    unsigned rate;

    TEST_INTEQ(anvil_connect(a, x, 0, &rate), 1);
    TEST_INTEQ(anvil_connect(a, x, 10, &rate), 2);
    TEST_INTEQ(rate, 2);
    /* another address has its own count */
    TEST_INTEQ(anvil_connect(a, y, 20, &rate), 1);
    TEST_INTEQ(rate, 1);
    anvil_disconnect(a, x, 30);
    TEST_INTEQ(anvil_connect(a, x, 40, &rate), 2);
    TEST_INTEQ(rate, 3);
    /* a client with open sessions never expires, whatever the time */
    TEST_INTEQ(anvil_connect(a, x, 10000000, &rate), 3);
    TEST_INTEQ(rate, 1); /* a new window */
    anvil_disconnect(a, x, 10000001);
    anvil_disconnect(a, x, 10000001);
    anvil_disconnect(a, x, 10000001);
    anvil_disconnect(a, x, 10000001); /* one too many: ignored */
    anvil_disconnect(a, y, 10000001);
    TEST_INTEQ(anvil_clients(a), 2);
    /* a unit later both are gone */
    TEST_INTEQ(anvil_failures(a, x, 10000001 + 60000), 0);
    TEST_INTEQ(anvil_clients(a), 0);
    anvil_free(a);
}

static void test_rates(void)
{
    struct anvil *a = anvil_new(1000);
    const char *x = "198.51.100.1";

    for (unsigned i = 1; i <= 5; i++)
        TEST_INTEQ(anvil_event(a, ANVIL_AUTH, x, 100 * i), i);
    /* ETRN is counted apart from AUTH */
    TEST_INTEQ(anvil_event(a, ANVIL_ETRN, x, 600), 1);
    /* the window started at 100 ends at 1100 */
    TEST_INTEQ(anvil_event(a, ANVIL_AUTH, x, 1099), 6);
    TEST_INTEQ(anvil_event(a, ANVIL_AUTH, x, 1100), 1);
    anvil_free(a);
}

static void test_failures(void)
{
    struct anvil *a = anvil_new(1000);
    const char *x = "203.0.113.9", *y = "203.0.113.10";

    TEST_INTEQ(anvil_fail(a, x, 0), 1);
    TEST_INTEQ(anvil_fail(a, x, 900), 2);
    /* counted across the unit as long as failures keep coming */
    TEST_INTEQ(anvil_fail(a, x, 1800), 3);
    TEST_INTEQ(anvil_failures(a, x, 2000), 3);
    TEST_INTEQ(anvil_failures(a, y, 2000), 0);
    /* a whole unit without a failure forgets them */
    TEST_INTEQ(anvil_failures(a, x, 2800), 0);
    TEST_INTEQ(anvil_fail(a, x, 2801), 1);
    /* also while other events keep the address in the table */
    TEST_INTEQ(anvil_fail(a, x, 2900), 2);
    TEST_INTEQ(anvil_event(a, ANVIL_AUTH, x, 3500), 1);
    TEST_INTEQ(anvil_fail(a, x, 3900), 1);
    anvil_free(a);
}

static void test_bounded(void)
{
    struct anvil *a = anvil_new(60000);
    const char *held = "10.255.255.255";
    char k[ANVIL_ADDR_MAX];
    unsigned rate;

    anvil_connect(a, held, 0, &rate);
    for (unsigned i = 0; i < ANVIL_MAX_CLIENTS + 100; i++) {
        snprintf(k, sizeof(k), "2001:db8::%x:%x", i >> 16, i & 0xffff);
        anvil_event(a, ANVIL_AUTH, k, 1);
    }
    /* idle addresses stay at the cap; the one with a session is kept */
    TEST_INTEQ(anvil_clients(a), ANVIL_MAX_CLIENTS + 1);
    TEST_INTEQ(anvil_connect(a, held, 2, &rate), 2);
    /* the oldest idle one was forgotten early, the newest is still counted */
    TEST_INTEQ(anvil_event(a, ANVIL_AUTH, "2001:db8::0:0", 3), 1);
    snprintf(k, sizeof(k), "2001:db8::%x:%x", (ANVIL_MAX_CLIENTS + 99) >> 16,
             (ANVIL_MAX_CLIENTS + 99) & 0xffff);
    TEST_INTEQ(anvil_event(a, ANVIL_AUTH, k, 3), 2);
    anvil_free(a);
}

int main(void)
{
    test_sessions();
    test_rates();
    test_failures();
    test_bounded();
    return test_summary();
}
