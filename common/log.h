/*
 * log - graded logging to syslog (LOG_MAIL), standard error, or a file.
 *
 * log_open() picks the target: "syslog", "stderr" (plain "ident: text"
 * lines for people at a terminal) or a file path (appended, one write() per
 * line, with a syslog-style "Mon dd hh:mm:ss host ident/service[pid]: "
 * prefix so mail log tools read it; "/dev/stderr" gets that prefix too; a
 * file that is a symbolic link or has other hard links is refused). Until
 * log_open() succeeds, lines go to standard error.
 *
 * Service: as Postfix's "postfix/smtpd[pid]:", a line carries the part of
 * the program that wrote it. A .c file names its service once, before any
 * #include: `#define LOG_SERVICE "smtpd"`; log_info() and friends pass it
 * to the log_*_as() functions, which a line that belongs to another service
 * calls directly (smtpd logging cleanup's message-id=). A file that names
 * none logs as plain "ident[pid]:". Safe from any thread.
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

#ifndef LOG_SERVICE
#define LOG_SERVICE NULL
#endif

int log_open(const char *ident, const char *target, char *err, size_t errlen);
void log_close(void);
int log_reopen(char *err, size_t errlen);
int log_file_owner(uid_t uid, gid_t gid, char *err, size_t errlen);
void log_set_verbose(int verbose);
int log_verbose(void);

void log_debug_as(const char *service, const char *fmt, ...) LOG_PRINTF(2, 3);
void log_info_as(const char *service, const char *fmt, ...) LOG_PRINTF(2, 3);
void log_warn_as(const char *service, const char *fmt, ...) LOG_PRINTF(2, 3);
void log_error_as(const char *service, const char *fmt, ...) LOG_PRINTF(2, 3);
_Noreturn void log_fatal_as(const char *service, const char *fmt, ...) LOG_PRINTF(2, 3);
_Noreturn void log_fatal_code_as(const char *service, int status, const char *fmt, ...)
    LOG_PRINTF(3, 4);
_Noreturn void log_panic_as(const char *service, const char *fmt, ...) LOG_PRINTF(2, 3);

#define log_debug(...) log_debug_as(LOG_SERVICE, __VA_ARGS__)
#define log_info(...) log_info_as(LOG_SERVICE, __VA_ARGS__)
#define log_warn(...) log_warn_as(LOG_SERVICE, __VA_ARGS__)
#define log_error(...) log_error_as(LOG_SERVICE, __VA_ARGS__)
#define log_fatal(...) log_fatal_as(LOG_SERVICE, __VA_ARGS__)
#define log_fatal_code(...) log_fatal_code_as(LOG_SERVICE, __VA_ARGS__)
#define log_panic(...) log_panic_as(LOG_SERVICE, __VA_ARGS__)

#endif
