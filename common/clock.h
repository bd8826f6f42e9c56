/*
 * clock - the programs' one reading of time, and the seam tests replace.
 *
 * clock_now_ms(): milliseconds on the monotonic clock, for deadlines,
 * timeouts and schedules that live only as long as the process, so they
 * never jump when the system time is set.
 * clock_wall(): seconds since the epoch with microseconds, for what must
 * outlive the process or be shown (retry times kept in a file's mtime,
 * the flush index's ages, status stamps); clock_wall_sec() the same in
 * whole seconds. Neither can fail on Linux.
 * clock_timeval(ms): a duration in milliseconds as the struct timeval that
 * libevent timers take.
 *
 * clock_set_wall(t) is for unit tests only: from then on clock_wall()
 * answers t until the next call (t < 0: the system clock again), so a test
 * moves time instead of sleeping. No program calls it, and no option or
 * environment variable reaches it; the monotonic clock is never replaced.
 */
#ifndef ETRNKIT_CLOCK_H
#define ETRNKIT_CLOCK_H

#include <sys/time.h>
#include <time.h>

long long clock_now_ms(void);
double clock_wall(void);
time_t clock_wall_sec(void);
void clock_set_wall(double t);
struct timeval clock_timeval(long long ms);

#endif
