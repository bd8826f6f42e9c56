#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "asuser.h"

/* try_one - one check in the child, as the user; 0 or errno */
static int try_one(const struct asuser_check *c)
{
    int fd;

    if (c->mode == R_OK) {
        if ((fd = open(c->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
            return errno;
        close(fd);
        return 0;
    }
    if (c->mode == W_OK)
        return access(c->path, W_OK | X_OK) == 0 ? 0 : errno;
    return access(c->path, X_OK) == 0 ? 0 : errno;
}

/* asuser_check - try each path as user (contract in asuser.h) */
int asuser_check(const char *user, struct asuser_check *checks, size_t n, char *why,
                 size_t whylen)
{
    struct passwd *pw;
    int fds[2], status;
    pid_t pid;
    size_t got = 0;

    if (geteuid() != 0) {
        snprintf(why, whylen, "only root can check files as user %s", user);
        return -1;
    }
    if ((pw = getpwnam(user)) == NULL) {
        snprintf(why, whylen, "no such user %s", user);
        return -1;
    }
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(why, whylen, "pipe: %s", strerror(errno));
        return -1;
    }
    if ((pid = fork()) < 0) {
        snprintf(why, whylen, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0
            || setuid(pw->pw_uid) != 0 || setuid(0) == 0)
            _exit(2);
        for (size_t i = 0; i < n; i++) {
            int e = try_one(&checks[i]);

            if (write(fds[1], &e, sizeof(e)) != (ssize_t) sizeof(e))
                _exit(3);
        }
        _exit(0);
    }
    close(fds[1]);
    while (got < n) {
        int e;
        ssize_t r = read(fds[0], &e, sizeof(e));

        if (r < 0 && errno == EINTR)
            continue;
        if (r != (ssize_t) sizeof(e))
            break;
        checks[got++].err = e;
    }
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(why, whylen, "waitpid: %s", strerror(errno));
            return -1;
        }
    if (got != n || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(why, whylen, "could not take the identity of user %s", user);
        return -1;
    }
    return 0;
}
