#include <stdio.h>

#include "version.h"

#ifndef ETRNKIT_VERSION
#error "ETRNKIT_VERSION must be defined (the Makefile reads it from VERSION)"
#endif

const char etrnkit_version[] = ETRNKIT_VERSION;

/* version_print - "PROGRAM (etrnkit) VERSION" on stdout */
int version_print(const char *program)
{
    if (printf("%s (etrnkit) %s\n", program, etrnkit_version) < 0 || fflush(stdout) != 0)
        return -1;
    return 0;
}
