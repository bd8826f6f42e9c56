/*
 * status - the agent's status file: the last result per provider host and domain.
 *
 * A status_table is an object its owner keeps as long as results should
 * accumulate (the daemon: its whole run, so a retry of one host keeps the
 * others' results; etrn-agent --once: one round). status_new() makes an
 * empty one, status_free() releases it. status_record() merges one
 * session's outcome into it. status_write() writes it as JSON atomically
 * (temporary file in the same directory, fsync, rename, fsync of the
 * directory) and returns -1 with a reason on failure. Per domain: code,
 * text, meaning, verdict, time, and for 253 the pending count; per host:
 * the session error, if any, and the next attempt the daemon planned
 * (status_set_next; status_clear_next() forgets every plan).
 *
 * status_print() reads a status file back (any process: etrn-agent
 * --status) and prints it in words, one line per provider host and domain:
 * last reply and its meaning, its age, the pending count of a 253, the next
 * attempt; -1 with why when the file is missing or not a status file.
 * status_hostport() writes "host:port", an IPv6 address as "[addr]:port".
 */
#ifndef ETRNKIT_STATUS_H
#define ETRNKIT_STATUS_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "etrn_session.h"

struct status_table;

struct status_table *status_new(void);
void status_free(struct status_table *st);
void status_record(struct status_table *st, const char *provider, const char *host, int port,
                   const struct etrn_session *s, time_t when);
int status_write(const struct status_table *st, const char *path, char *why, size_t whylen);
void status_set_next(struct status_table *st, const char *provider, const char *host, int port,
                     time_t next, const char *why);
void status_clear_next(struct status_table *st);
int status_print(const char *path, time_t now, FILE *out, char *why, size_t whylen);
void status_hostport(char *out, size_t len, const char *host, int port);

#endif
