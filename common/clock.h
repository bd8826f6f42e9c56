/*
 * clock - the monotonic clock, in milliseconds.
 *
 * clock_now_ms() is the one place the programs read time for deadlines,
 * timeouts and schedules (wall-clock time is only for log and status
 * stamps), so deadlines never jump when the system time is set. It cannot
 * fail on Linux.
 */
#ifndef ETRNKIT_CLOCK_H
#define ETRNKIT_CLOCK_H

long long clock_now_ms(void);

#endif
