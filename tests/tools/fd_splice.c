/*
 * fd_splice - pass bytes both ways between two inherited sockets until either closes.
 *
 *   fd_splice FD1 FD2
 *
 * For bench/odmr_turn.py: after the ATRN handshake it hands the site's
 * connection and etrn-server's delivery connection to this program, so the
 * stand-in provider adds no interpreter to the measured path. A closed or
 * failed side shuts the other down for writing after its pending bytes;
 * exit 0 then, 64 for usage, 1 on a poll error.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "exitcode.h"

/* copy - one read from `from`, written whole to `to`; 0 when `from` ended */
static int copy(int from, int to)
{
    char buf[65536];
    ssize_t n = read(from, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 1;
    if (n <= 0)
        return 0;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(to, buf + off, (size_t) (n - off));

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return 0;
        off += w;
    }
    return 1;
}

/* main - poll both, copy what arrives, stop at the first end */
int main(int argc, char **argv)
{
    struct pollfd p[2];

    if (argc != 3) {
        fprintf(stderr, "usage: fd_splice FD1 FD2\n");
        return EXIT_USAGE;
    }
    p[0].fd = atoi(argv[1]);
    p[1].fd = atoi(argv[2]);
    p[0].events = p[1].events = POLLIN;
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("fd_splice: poll");
            return 1;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (!copy(p[i].fd, p[1 - i].fd)) {
                    shutdown(p[1 - i].fd, SHUT_WR);
                    return 0;
                }
            }
        }
    }
}
