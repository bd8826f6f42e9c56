/*
 * log - graded logging to syslog (LOG_MAIL), standard error, or a file.
 *
 * log_open() picks the target: "syslog", "stderr" (plain "ident: text"
 * lines for people at a terminal) or a file path (appended, one write() per
 * line, with a syslog-style "Mon dd hh:mm:ss host ident[pid]: " prefix so
 * mail log tools read it; "/dev/stderr" gets that prefix too; a file that is
 * a symbolic link or has other hard links is refused). Until
 * log_open() succeeds, lines go to standard error.
 *
 * Levels as in Postfix: info lines carry no tag; warn, error, fatal and
 * panic lines start with "warning: ", "error: ", "fatal: ", "panic: ".
 * log_debug() prints only after log_set_verbose(1). log_fatal() exits with
 * EX_SOFTWARE, log_fatal_code() with the given status; log_panic() is for a
 * broken invariant and aborts (core dump). Lines are cut at 4000 bytes and
 * every byte outside printable ASCII (control characters, bytes >= 0x80) is
 * shown as '?' (printable.h), so hostile input cannot forge lines or reach
 * a terminal raw.
 *
 * Rotation: log_reopen() opens the log file again by its name (creating it,
 * mode 0640, when logrotate has renamed it away) and closes the old one; it
 * returns 1 when it reopened, 0 when the target is not a file (syslog,
 * stderr), -1 + err when the new open failed (lines keep going to the old
 * file). log_file_owner() gives a file that log_open() itself created to
 * uid:gid, so a server that drops root can still reopen it; 0 or -1 + err.
 */
#ifndef ETRNKIT_LOG_H
#define ETRNKIT_LOG_H

#include <stddef.h>
#include <sys/types.h>

#define LOG_PRINTF(f, a) __attribute__((format(printf, f, a)))

int log_open(const char *ident, const char *target, char *err, size_t errlen);
void log_close(void);
int log_reopen(char *err, size_t errlen);
int log_file_owner(uid_t uid, gid_t gid, char *err, size_t errlen);
void log_set_verbose(int verbose);
int log_verbose(void);

void log_debug(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_info(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_warn(const char *fmt, ...) LOG_PRINTF(1, 2);
void log_error(const char *fmt, ...) LOG_PRINTF(1, 2);
_Noreturn void log_fatal(const char *fmt, ...) LOG_PRINTF(1, 2);
_Noreturn void log_fatal_code(int status, const char *fmt, ...) LOG_PRINTF(2, 3);
_Noreturn void log_panic(const char *fmt, ...) LOG_PRINTF(1, 2);

#endif
