#include <ctype.h>
#include <limits.h>
#include <stdio.h>

#include "duration.h"

static const struct {
    char unit;
    long long seconds;
} duration_units[] = {
    { 'w', 7 * 86400LL }, { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 },
};

/* duration_parse - "15m" -> 900 */
int duration_parse(const char *text, long long *seconds, const char **why)
{
    const char *p = text;
    long long value = 0;
    long long scale = 1;

    if (p == NULL || *p == 0) {
        *why = "empty time value";
        return -1;
    }
    if (!isdigit((unsigned char) *p)) {
        *why = "time value must start with a digit (e.g. 900s, 15m, 1h, 1d, 1w)";
        return -1;
    }
    for (; isdigit((unsigned char) *p); p++) {
        if (value > (LLONG_MAX - (*p - '0')) / 10) {
            *why = "time value too large";
            return -1;
        }
        value = value * 10 + (*p - '0');
    }
    if (*p) {
        size_t i;

        for (i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++)
            if (duration_units[i].unit == tolower((unsigned char) *p))
                break;
        if (i == sizeof(duration_units) / sizeof(duration_units[0]) || p[1] != 0) {
            *why = "bad time unit (use s, m, h, d or w)";
            return -1;
        }
        scale = duration_units[i].seconds;
    }
    if (value > LLONG_MAX / scale) {
        *why = "time value too large";
        return -1;
    }
    *seconds = value * scale;
    return 0;
}

/* duration_format - 900 -> "15m" */
void duration_format(long long seconds, char *out, size_t outlen)
{
    for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
        if (seconds != 0 && seconds % duration_units[i].seconds == 0) {
            snprintf(out, outlen, "%lld%c", seconds / duration_units[i].seconds, duration_units[i].unit);
            return;
        }
    }
    snprintf(out, outlen, "%llds", seconds);
}
