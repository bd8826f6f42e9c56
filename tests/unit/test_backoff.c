/* Unit tests for agent/backoff: the retry schedule, jitter, and the per-host table. */
#include <stdlib.h>

#include "backoff.h"
#include "test.h"

/* fixed - a random source that always returns *ctx */
static double fixed(void *ctx)
{
    return *(const double *) ctx;
}

/* sequence - a random source stepping through 0, 0.01, ... 0.99 */
static double sequence(void *ctx)
{
    unsigned *n = ctx;

    return (double) ((*n)++ % 100) / 100.0;
}

static void test_delay_schedule(void)
{
    /* retry_min 10s, retry_max 10m: 10, 20, 40, 80, 160, 320, 600, 600 s */
    static const long long want[] = { 10000, 20000, 40000, 80000, 160000, 320000, 600000, 600000 };
    double mid = 0.5;

    for (unsigned a = 1; a <= sizeof(want) / sizeof(want[0]); a++)
        TEST_CHECK(backoff_delay(10000, 600000, a, fixed, &mid) == want[a - 1],
                   "attempt %u: got %lld, want %lld", a, backoff_delay(10000, 600000, a, fixed, &mid),
                   want[a - 1]);
    /* attempt 0 is treated like the first */
    TEST_INTEQ(backoff_delay(10000, 600000, 0, fixed, &mid), 10000);
    /* huge attempt counts do not overflow */
    TEST_INTEQ(backoff_delay(10000, 600000, 4000000000u, fixed, &mid), 600000);
    TEST_INTEQ(backoff_delay(1LL << 61, 1LL << 62, 100, fixed, &mid), 1LL << 62);
    /* retry_max below retry_min: retry_min wins */
    TEST_INTEQ(backoff_delay(5000, 1000, 3, fixed, &mid), 5000);
    /* not doubling past retry_max when it is not a power-of-two multiple */
    TEST_INTEQ(backoff_delay(3000, 10000, 3, fixed, &mid), 10000);
    TEST_INTEQ(backoff_delay(3000, 10000, 2, fixed, &mid), 6000);
}

static void test_delay_jitter(void)
{
    double lo = 0.0, hi = 0.999999, bad = 1.5, nan_like = -0.1;
    unsigned n = 0;
    long long min = -1, max = -1;

    TEST_INTEQ(backoff_delay(10000, 600000, 1, fixed, &lo), 9000);
    TEST_CHECK(backoff_delay(10000, 600000, 1, fixed, &hi) >= 10999
               && backoff_delay(10000, 600000, 1, fixed, &hi) <= 11000,
               "top of the jitter: got %lld", backoff_delay(10000, 600000, 1, fixed, &hi));
    /* the cap is jittered too: 600 s +-10% */
    TEST_INTEQ(backoff_delay(10000, 600000, 9, fixed, &lo), 540000);
    /* a broken random source falls back to no jitter */
    TEST_INTEQ(backoff_delay(10000, 600000, 1, fixed, &bad), 10000);
    TEST_INTEQ(backoff_delay(10000, 600000, 1, fixed, &nan_like), 10000);
    TEST_INTEQ(backoff_delay(10000, 600000, 1, NULL, NULL), 10000);
    for (int i = 0; i < 100; i++) {
        long long d = backoff_delay(2000, 8000, 2, sequence, &n);

        if (min < 0 || d < min)
            min = d;
        if (d > max)
            max = d;
    }
    TEST_INTEQ(min, 3600);
    TEST_INTEQ(max, 4392);
    /* the kernel's random numbers stay in [0, 1) and are not constant */
    double first = backoff_random(NULL);
    int differ = 0;

    for (int i = 0; i < 64; i++) {
        double r = backoff_random(NULL);

        TEST_CHECK(r >= 0.0 && r < 1.0, "backoff_random() = %f", r);
        if (r != first)
            differ = 1;
    }
    TEST_CHECK(differ, "backoff_random() returned the same number 65 times");
}

static void test_table(void)
{
    struct backoff_table t;
    struct backoff_outcome temp = { ETRN_TEMP, 0, 0 };
    struct backoff_outcome perm = { ETRN_PERM, 0, 0 };
    struct backoff_outcome started = { ETRN_OK, 0, 0 };    /* 250 */
    struct backoff_outcome pending = { ETRN_OK, 0, 1 };    /* 253 */
    struct backoff_outcome drained = { ETRN_OK, 1, 0 };    /* 251 */
    enum backoff_reason why;
    unsigned attempt;
    double mid = 0.5;

    backoff_table_init(&t, 2000, 8000, fixed, &mid);
    TEST_INTEQ(backoff_table_next_due(&t), -1);

    /* temporary failures: 2, 4, 8, 8 s */
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay1", 25, &temp, 1000, &why, &attempt), 2000);
    TEST_INTEQ(why, BACKOFF_FAILED);
    TEST_INTEQ(attempt, 1);
    TEST_INTEQ(backoff_table_next_due(&t), 3000);
    TEST_CHECK(!backoff_table_is_due(&t, "isp", "relay1", 25, 2999), "not due before its time");
    TEST_CHECK(backoff_table_is_due(&t, "isp", "relay1", 25, 3000), "due at its time");
    TEST_CHECK(!backoff_table_is_due(&t, "isp", "relay1", 2525, 3000), "the port is part of the key");
    TEST_CHECK(!backoff_table_is_due(&t, "other", "relay1", 25, 3000), "the provider is part of the key");
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay1", 25, &temp, 3000, &why, &attempt), 4000);
    TEST_INTEQ(attempt, 2);
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay1", 25, &temp, 7000, &why, &attempt), 8000);
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay1", 25, &temp, 15000, &why, &attempt), 8000);
    TEST_INTEQ(attempt, 4);

    /* a second host has its own schedule */
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay2", 25, &temp, 15000, &why, &attempt), 2000);
    TEST_INTEQ(backoff_table_next_due(&t), 17000);

    /* 253: ETRN again soon, on a schedule of its own; the failure count restarts */
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay1", 25, &pending, 23000, &why, &attempt), 2000);
    TEST_INTEQ(why, BACKOFF_PENDING);
    TEST_INTEQ(attempt, 1);
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay1", 25, &pending, 25000, &why, &attempt), 4000);
    TEST_INTEQ(attempt, 2);
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay1", 25, &temp, 29000, &why, &attempt), 2000);
    TEST_INTEQ(attempt, 1);

    /* 251 stops the repeats; 250 (Postfix) waits for the interval; so does a refusal */
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay1", 25, &drained, 31000, &why, &attempt), -1);
    TEST_INTEQ(why, BACKOFF_NONE);
    TEST_CHECK(!backoff_table_is_due(&t, "isp", "relay1", 25, 1000000), "drained host not due");
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay2", 25, &started, 31000, &why, &attempt), -1);
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay3", 25, &perm, 31000, &why, &attempt), -1);
    TEST_INTEQ(backoff_table_next_due(&t), -1);

    /* after a success the next failure starts at retry_min again */
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay2", 25, &temp, 40000, &why, &attempt), 2000);
    /* a pending answer mixed with a failure is a failure */
    struct backoff_outcome mixed = { ETRN_TEMP, 0, 1 };
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay2", 25, &mixed, 42000, &why, &attempt), 4000);
    TEST_INTEQ(why, BACKOFF_FAILED);

    /* drop_due cancels what a retry round did not reach */
    TEST_INTEQ(backoff_table_result(&t, "isp", "gone", 25, &temp, 40000, &why, &attempt), 2000);
    TEST_INTEQ(backoff_table_drop_due(&t, 42000), 1);
    TEST_CHECK(!backoff_table_is_due(&t, "isp", "gone", 25, 100000), "dropped entry not due");
    TEST_INTEQ(backoff_table_next_due(&t), 46000);

    /* new limits apply to the next delay */
    backoff_table_limits(&t, 1000, 1000);
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay2", 25, &temp, 46000, &why, &attempt), 1000);

    /* clear forgets everything (link down) */
    backoff_table_clear(&t);
    TEST_INTEQ(t.count, 0);
    TEST_INTEQ(backoff_table_next_due(&t), -1);
    TEST_INTEQ(backoff_table_result(&t, "isp", "relay2", 25, &temp, 0, &why, &attempt), 1000);
    TEST_INTEQ(attempt, 1);
    backoff_table_free(&t);
}

int main(void)
{
    test_delay_schedule();
    test_delay_jitter();
    test_table();
    return test_summary();
}
