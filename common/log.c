#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exitcode.h"
#include "log.h"
#include "printable.h"

#define LOG_LINE_MAX 4000

enum log_target { LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_FILE };

enum log_level { LEVEL_DEBUG, LEVEL_INFO, LEVEL_WARN, LEVEL_ERROR, LEVEL_FATAL, LEVEL_PANIC };

static const char *const level_tag[] = { "", "", "warning: ", "error: ", "fatal: ", "panic: " };
static const int level_priority[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR, LOG_CRIT, LOG_CRIT };

static struct {
    enum log_target target;
    int fd;
    int verbose;
    int created;            /* log_open() made the file (O_EXCL succeeded) */
    char ident[64];
    char host[64];
    char path[PATH_MAX];    /* the file of LOG_TO_FILE, for log_reopen() */
    char syslog_tag[128];   /* what openlog() holds: ident or ident/service */
} log_state = { LOG_TO_STDERR, 2, 0, 0, "etrnkit", "localhost", "", "" };

/* openlog() keeps one tag per process: a line of another service re-opens under this lock */
static pthread_mutex_t log_syslog_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * open_file - open a log file for appending; -1 + err on failure. Sets
 * *created when this call made the file. A symbolic link is not followed
 * (opened as root, a link planted by a less privileged user must not be) and
 * a file with other hard links is refused.
 */
static int open_file(const char *path, int *created, char *err, size_t errlen)
{
    struct stat st;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);

    *created = fd >= 0;
    if (fd < 0 && errno == EEXIST)
        fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open log file %s: %s", path,
                 errno == ELOOP ? "it is a symbolic link (refused)" : strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink > 1) {
        snprintf(err, errlen, "cannot open log file %s: it has %lu hard links (refused)", path,
                 (unsigned long) st.st_nlink);
        close(fd);
        return -1;
    }
    return fd;
}

/* log_open - choose where log lines go */
int log_open(const char *ident, const char *target, char *err, size_t errlen)
{
    int fd = -1, created = 0;
    enum log_target kind;

    if (target == NULL || *target == 0 || strcmp(target, "syslog") == 0) {
        kind = LOG_TO_SYSLOG;
    } else if (strcmp(target, "stderr") == 0) {
        kind = LOG_TO_STDERR;
    } else if (strcmp(target, "/dev/stderr") == 0) {
        kind = LOG_TO_FILE;
        fd = 2;
    } else {
        kind = LOG_TO_FILE;
        if (strlen(target) >= sizeof(log_state.path)) {
            snprintf(err, errlen, "log file name too long: %.64s...", target);
            return -1;
        }
        if ((fd = open_file(target, &created, err, errlen)) < 0)
            return -1;
    }
    log_close();
    if (kind == LOG_TO_FILE && fd != 2)
        snprintf(log_state.path, sizeof(log_state.path), "%s", target);
    log_state.created = created;
    snprintf(log_state.ident, sizeof(log_state.ident), "%s", ident);
    if (gethostname(log_state.host, sizeof(log_state.host)) != 0)
        snprintf(log_state.host, sizeof(log_state.host), "localhost");
    log_state.host[sizeof(log_state.host) - 1] = 0;
    log_state.host[strcspn(log_state.host, ".")] = 0;
    log_state.target = kind;
    log_state.fd = kind == LOG_TO_STDERR ? 2 : fd;
    if (kind == LOG_TO_SYSLOG) {
        pthread_mutex_lock(&log_syslog_lock);
        snprintf(log_state.syslog_tag, sizeof(log_state.syslog_tag), "%s", log_state.ident);
        openlog(log_state.syslog_tag, LOG_PID | LOG_NDELAY, LOG_MAIL);
        pthread_mutex_unlock(&log_syslog_lock);
    }
    return 0;
}

/* log_close - return to logging on standard error */
void log_close(void)
{
    if (log_state.target == LOG_TO_SYSLOG) {
        pthread_mutex_lock(&log_syslog_lock);
        closelog();
        log_state.syslog_tag[0] = 0;
        pthread_mutex_unlock(&log_syslog_lock);
    }
    if (log_state.target == LOG_TO_FILE && log_state.fd > 2)
        close(log_state.fd);
    log_state.target = LOG_TO_STDERR;
    log_state.fd = 2;
    log_state.path[0] = 0;
    log_state.created = 0;
}

/* log_reopen - open the log file again by name (after logrotate renamed it) */
int log_reopen(char *err, size_t errlen)
{
    int fd, created;

    if (log_state.target != LOG_TO_FILE || log_state.path[0] == 0)
        return 0;
    if ((fd = open_file(log_state.path, &created, err, errlen)) < 0)
        return -1;
    if (close(log_state.fd) != 0) {
        /* the old file is gone from our view either way; lines go to the new one */
    }
    log_state.fd = fd;
    return 1;
}

/* log_file_owner - hand a log file that log_open() created to uid:gid */
int log_file_owner(uid_t uid, gid_t gid, char *err, size_t errlen)
{
    if (log_state.target != LOG_TO_FILE || !log_state.created || log_state.path[0] == 0)
        return 0;
    if (fchown(log_state.fd, uid, gid) != 0) {
        snprintf(err, errlen, "chown %s: %s", log_state.path, strerror(errno));
        return -1;
    }
    return 0;
}

void log_set_verbose(int verbose)
{
    log_state.verbose = verbose;
}

int log_verbose(void)
{
    return log_state.verbose;
}

/* log_syslog - one line to syslog under ident or ident/service */
static void log_syslog(enum log_level level, const char *tag, const char *text)
{
    pthread_mutex_lock(&log_syslog_lock);
    if (strcmp(tag, log_state.syslog_tag) != 0) {
        snprintf(log_state.syslog_tag, sizeof(log_state.syslog_tag), "%s", tag);
        openlog(log_state.syslog_tag, LOG_PID | LOG_NDELAY, LOG_MAIL);
    }
    syslog(level_priority[level], "%s%s", level_tag[level], text);
    pthread_mutex_unlock(&log_syslog_lock);
}

/* log_write - format one line, neutralise control characters, emit it */
static void log_write(const char *service, enum log_level level, const char *fmt, va_list ap)
{
    char text[LOG_LINE_MAX];
    char line[LOG_LINE_MAX + 256];
    char tag[128];
    int saved_errno = errno;
    int len;
    size_t n;

    len = vsnprintf(text, sizeof(text), fmt, ap);
    if (len < 0)
        snprintf(text, sizeof(text), "(unformattable log text)");
    printable(text, '?');

    if (service && *service)
        snprintf(tag, sizeof(tag), "%s/%s", log_state.ident, service);
    else
        snprintf(tag, sizeof(tag), "%s", log_state.ident);

    switch (log_state.target) {
    case LOG_TO_SYSLOG:
        log_syslog(level, tag, text);
        break;
    case LOG_TO_STDERR:
        len = snprintf(line, sizeof(line), "%s: %s%s\n", tag, level_tag[level], text);
        n = len < 0 ? 0 : (size_t) len < sizeof(line) ? (size_t) len : sizeof(line) - 1;
        if (write(log_state.fd, line, n) < 0) {
            /* nowhere left to report it */
        }
        break;
    case LOG_TO_FILE: {
        char stamp[32];
        time_t now = time(NULL);
        struct tm tm;

        localtime_r(&now, &tm);
        if (strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm) == 0)
            stamp[0] = 0;
        len = snprintf(line, sizeof(line), "%s %s %s[%ld]: %s%s\n", stamp, log_state.host,
                       tag, (long) getpid(), level_tag[level], text);
        n = len < 0 ? 0 : (size_t) len < sizeof(line) ? (size_t) len : sizeof(line) - 1;
        if (n > 0 && line[n - 1] != '\n')
            line[n - 1] = '\n';
        if (write(log_state.fd, line, n) < 0) {
            /* nowhere left to report it */
        }
        break;
    }
    }
    errno = saved_errno;
}

#define LOG_FUNCTION(name, level)                        \
    void name(const char *service, const char *fmt, ...) \
    {                                                    \
        va_list ap;                                      \
        va_start(ap, fmt);                               \
        log_write(service, level, fmt, ap);              \
        va_end(ap);                                      \
    }

/* log_debug_as - an info line, only in verbose mode */
void log_debug_as(const char *service, const char *fmt, ...)
{
    va_list ap;

    if (!log_state.verbose)
        return;
    va_start(ap, fmt);
    log_write(service, LEVEL_INFO, fmt, ap);
    va_end(ap);
}

LOG_FUNCTION(log_info_as, LEVEL_INFO)
LOG_FUNCTION(log_warn_as, LEVEL_WARN)
LOG_FUNCTION(log_error_as, LEVEL_ERROR)

/* log_fatal_as - log and exit with EX_SOFTWARE */
void log_fatal_as(const char *service, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_write(service, LEVEL_FATAL, fmt, ap);
    va_end(ap);
    exit(EXIT_SOFTWARE);
}

/* log_fatal_code_as - log and exit with the given status */
void log_fatal_code_as(const char *service, int status, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_write(service, LEVEL_FATAL, fmt, ap);
    va_end(ap);
    exit(status);
}

/* log_panic_as - a broken invariant: log and dump core */
void log_panic_as(const char *service, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_write(service, LEVEL_PANIC, fmt, ap);
    va_end(ap);
    abort();
}
