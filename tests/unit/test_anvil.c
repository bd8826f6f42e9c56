/* Unit tests for server-lite/anvil: per-address sessions, rates, failures, expiry. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "anvil.h"
#include "test.h"

/* v4 - the key of an IPv4 address */
static struct anvil_addr v4(const char *text)
{
    struct anvil_addr k;

    memset(&k, 0, sizeof(k));
    k.family = AF_INET;
    inet_pton(AF_INET, text, k.addr);
    return k;
}

static void test_sessions(void)
{
    struct anvil *a = anvil_new(60000);
    struct anvil_addr x = v4("192.0.2.3"), y = v4("192.0.2.4");
    unsigned rate;

    TEST_INTEQ(anvil_connect(a, &x, 0, &rate), 1);
    TEST_INTEQ(anvil_connect(a, &x, 10, &rate), 2);
    TEST_INTEQ(rate, 2);
    /* another address has its own count */
    TEST_INTEQ(anvil_connect(a, &y, 20, &rate), 1);
    TEST_INTEQ(rate, 1);
    anvil_disconnect(a, &x, 30);
    TEST_INTEQ(anvil_connect(a, &x, 40, &rate), 2);
    TEST_INTEQ(rate, 3);
    /* a client with open sessions never expires, whatever the time */
    TEST_INTEQ(anvil_connect(a, &x, 10000000, &rate), 3);
    TEST_INTEQ(rate, 1); /* a new window */
    anvil_disconnect(a, &x, 10000001);
    anvil_disconnect(a, &x, 10000001);
    anvil_disconnect(a, &x, 10000001);
    anvil_disconnect(a, &x, 10000001); /* one too many: ignored */
    anvil_disconnect(a, &y, 10000001);
    TEST_INTEQ(anvil_clients(a), 2);
    /* a unit later both are gone */
    TEST_INTEQ(anvil_failures(a, &x, 10000001 + 60000), 0);
    TEST_INTEQ(anvil_clients(a), 0);
    anvil_free(a);
}

static void test_rates(void)
{
    struct anvil *a = anvil_new(1000);
    struct anvil_addr x = v4("198.51.100.1");

    for (unsigned i = 1; i <= 5; i++)
        TEST_INTEQ(anvil_event(a, ANVIL_AUTH, &x, 100 * i), i);
    /* ETRN is counted apart from AUTH */
    TEST_INTEQ(anvil_event(a, ANVIL_ETRN, &x, 600), 1);
    /* the window started at 100 ends at 1100 */
    TEST_INTEQ(anvil_event(a, ANVIL_AUTH, &x, 1099), 6);
    TEST_INTEQ(anvil_event(a, ANVIL_AUTH, &x, 1100), 1);
    anvil_free(a);
}

static void test_failures(void)
{
    struct anvil *a = anvil_new(1000);
    struct anvil_addr x = v4("203.0.113.9"), y = v4("203.0.113.10");

    TEST_INTEQ(anvil_fail(a, &x, 0), 1);
    TEST_INTEQ(anvil_fail(a, &x, 900), 2);
    /* counted across the unit as long as failures keep coming */
    TEST_INTEQ(anvil_fail(a, &x, 1800), 3);
    TEST_INTEQ(anvil_failures(a, &x, 2000), 3);
    TEST_INTEQ(anvil_failures(a, &y, 2000), 0);
    /* a whole unit without a failure forgets them */
    TEST_INTEQ(anvil_failures(a, &x, 2800), 0);
    TEST_INTEQ(anvil_fail(a, &x, 2801), 1);
    anvil_free(a);
}

static void test_bounded(void)
{
    struct anvil *a = anvil_new(60000);
    struct anvil_addr k, held = v4("10.255.255.255");
    unsigned rate;

    anvil_connect(a, &held, 0, &rate);
    memset(&k, 0, sizeof(k));
    k.family = AF_INET6;
    for (unsigned i = 0; i < ANVIL_MAX_CLIENTS + 100; i++) {
        memcpy(k.addr + 12, &i, sizeof(i));
        anvil_event(a, ANVIL_AUTH, &k, 1);
    }
    /* idle addresses stay at the cap; the one with a session is kept */
    TEST_INTEQ(anvil_clients(a), ANVIL_MAX_CLIENTS + 1);
    TEST_INTEQ(anvil_connect(a, &held, 2, &rate), 2);
    /* the oldest idle one was forgotten early, the newest is still counted */
    k.addr[12] = k.addr[13] = k.addr[14] = k.addr[15] = 0;
    TEST_INTEQ(anvil_event(a, ANVIL_AUTH, &k, 3), 1);
    {
        unsigned last = ANVIL_MAX_CLIENTS + 99;

        memcpy(k.addr + 12, &last, sizeof(last));
        TEST_INTEQ(anvil_event(a, ANVIL_AUTH, &k, 3), 2);
    }
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
