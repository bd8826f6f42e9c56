/*
 * status - the agent's status file: the last result per provider host and domain.
 *
 * status_record() merges one session's outcome into a table that lives for
 * the whole process (so a daemon that retries one host keeps the others'
 * results); only this module touches that table. status_write() writes the
 * table as JSON atomically (temporary file in the same directory, fsync,
 * rename, fsync of the directory) and returns -1 with a reason on failure.
 * Per domain: code, text, meaning, verdict, time, and for 253 the pending
 * count; per host: the session error, if any. status_reset() empties it.
 */
#ifndef ETRNKIT_STATUS_H
#define ETRNKIT_STATUS_H

#include <stddef.h>
#include <time.h>

#include "etrn_session.h"

void status_record(const char *provider, const char *host, int port, const struct etrn_session *s,
                   time_t when);
int status_write(const char *path, char *why, size_t whylen);
void status_reset(void);

#endif
