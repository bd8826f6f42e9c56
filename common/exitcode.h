/*
 * exitcode - the exit statuses of etrnkit's programs, from sysexits.h.
 *
 * Hook scripts and cron jobs act on these: EXIT_TEMPFAIL means "try again
 * later", EXIT_UNAVAILABLE means "refused, retrying will not help",
 * EXIT_CONFIG means "fix the configuration". Programs never exit with a bare
 * number.
 */
#ifndef ETRNKIT_EXITCODE_H
#define ETRNKIT_EXITCODE_H

#include <sysexits.h>

#define EXIT_OK          EX_OK           /* 0: everything accepted */
#define EXIT_USAGE       EX_USAGE        /* 64: bad command line */
#define EXIT_DATAERR     EX_DATAERR      /* 65: bad input data */
#define EXIT_NOINPUT     EX_NOINPUT      /* 66: an input file is missing or unreadable */
#define EXIT_UNAVAILABLE EX_UNAVAILABLE  /* 69: refused, permanent */
#define EXIT_SOFTWARE    EX_SOFTWARE     /* 70: internal error */
#define EXIT_OSERR       EX_OSERR        /* 71: system error (memory, fork) */
#define EXIT_IOERR       EX_IOERR        /* 74: I/O error */
#define EXIT_TEMPFAIL    EX_TEMPFAIL     /* 75: temporary, retry later */
#define EXIT_NOPERM      EX_NOPERM       /* 77: permission denied */
#define EXIT_CONFIG      EX_CONFIG       /* 78: bad configuration */

#endif
