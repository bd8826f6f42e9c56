/* timefmt.c - wall-clock times for status tables */
#include <stdio.h>
#include <time.h>

#include "timefmt.h"

/* timefmt_local - "YYYY-MM-DD HH:MM:SS" local time, "-" for 0 */
void timefmt_local(long long t, char *out, size_t outlen)
{
    time_t tt = (time_t) t;
    struct tm tm;

    if (t <= 0 || localtime_r(&tt, &tm) == NULL
        || strftime(out, outlen, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, outlen, "-");
}
