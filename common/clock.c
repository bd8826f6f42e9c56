#include <time.h>

#include "clock.h"

/* clock_now_ms - milliseconds on the monotonic clock */
long long clock_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
