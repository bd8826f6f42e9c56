#include <time.h>

#include "clock.h"

/* the time a unit test set; negative: read the system clock */
static double fixed_wall = -1.0;

/* clock_now_ms - milliseconds on the monotonic clock */
long long clock_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* clock_timeval - ms milliseconds as a struct timeval */
struct timeval clock_timeval(long long ms)
{
    struct timeval tv = { (time_t) (ms / 1000), (suseconds_t) (ms % 1000 * 1000) };

    return tv;
}

/* clock_wall - seconds since the epoch, with microseconds */
double clock_wall(void)
{
    struct timespec ts;

    if (fixed_wall >= 0)
        return fixed_wall;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* clock_wall_sec - whole seconds since the epoch */
time_t clock_wall_sec(void)
{
    return (time_t) clock_wall();
}

/* clock_set_wall - unit tests: clock_wall() answers t from now on (t < 0: the system clock) */
void clock_set_wall(double t)
{
    fixed_wall = t < 0 ? -1.0 : t;
}
