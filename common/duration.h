/*
 * duration - Postfix time units.
 *
 * duration_parse() accepts a non-negative whole number with an optional
 * unit: s (seconds), m (minutes), h (hours), d (days), w (weeks); a bare
 * number is seconds, as in Postfix. "15m" is 900. Anything else ("", "5x",
 * "-1", "1.5h", overflow) returns -1 with a reason in *why (a static string).
 * duration_format() writes the shortest exact form ("900s" -> "15m").
 */
#ifndef ETRNKIT_DURATION_H
#define ETRNKIT_DURATION_H

#include <stddef.h>

int duration_parse(const char *text, long long *seconds, const char **why);
void duration_format(long long seconds, char *out, size_t outlen);

#endif
