/*
 * asuser - would another user be able to use these files? Ask as that user.
 *
 * asuser_check() forks; the child takes the user's identity (initgroups,
 * setgid, setuid: so groups, ACLs and every directory on the way count as
 * they will at run time), tries each path and reports one errno per path
 * (0: fine) through a pipe; the parent fills checks[i].err. Modes: R_OK
 * opens the file for reading; W_OK on a directory asks access(W_OK|X_OK)
 * (a new file can be made there); X_OK asks access(X_OK) on a regular file.
 * Only root can take another identity: asuser_check() returns -1 with why
 * set when not root, the user does not exist, or the child fails; 0 when
 * every path was tried.
 */
#ifndef ETRNKIT_ASUSER_H
#define ETRNKIT_ASUSER_H

#include <stddef.h>

struct asuser_check {
    const char *path;
    int mode; /* R_OK, W_OK (a directory) or X_OK */
    int err;  /* filled in: 0 or an errno */
};

int asuser_check(const char *user, struct asuser_check *checks, size_t n, char *why,
                 size_t whylen);

#endif
