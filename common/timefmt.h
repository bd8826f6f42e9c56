/*
 * timefmt - wall-clock times as operators read them in tables.
 *
 * timefmt_local(t, out, outlen): t (seconds since the epoch) as
 * "YYYY-MM-DD HH:MM:SS" in local time, or "-" when t is 0 or negative or
 * cannot be converted. out is always terminated; 20 bytes hold the result.
 */
#ifndef ETRNKIT_TIMEFMT_H
#define ETRNKIT_TIMEFMT_H

#include <stddef.h>

#define TIMEFMT_LOCAL_MAX 32

void timefmt_local(long long t, char *out, size_t outlen);

#endif
