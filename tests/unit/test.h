/*
 * test - a minimal table-driven unit test harness.
 *
 * TEST_CHECK(cond, fmt, ...) records one assertion; on failure it prints
 * "FAIL file:line: message" ("got X, want Y"). test_summary() prints the
 * closing "N passed, N failed" line and returns the exit status (1 when
 * anything failed), so main() ends with "return test_summary();".
 */
#ifndef ETRNKIT_TEST_H
#define ETRNKIT_TEST_H

#include <stdio.h>
#include <string.h>

static int test_passed, test_failed;

#define TEST_CHECK(cond, ...)                                           \
    do {                                                                \
        if (cond) {                                                     \
            test_passed++;                                              \
        } else {                                                        \
            test_failed++;                                              \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                 \
            printf(__VA_ARGS__);                                        \
            printf("\n");                                               \
        }                                                               \
    } while (0)

#define TEST_STREQ(got, want)                                           \
    do {                                                                \
        const char *g_ = (got), *w_ = (want);                           \
        TEST_CHECK(g_ && w_ && strcmp(g_, w_) == 0,                     \
                   "%s: got \"%s\", want \"%s\"", #got,                 \
                   g_ ? g_ : "(null)", w_ ? w_ : "(null)");             \
    } while (0)

#define TEST_INTEQ(got, want)                                           \
    do {                                                                \
        long long g_ = (long long) (got), w_ = (long long) (want);      \
        TEST_CHECK(g_ == w_, "%s: got %lld, want %lld", #got, g_, w_);  \
    } while (0)

static inline int test_summary(void)
{
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

#endif
