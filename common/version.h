/*
 * version - the etrnkit release, for --version.
 *
 * etrnkit_version is the text of the top-level VERSION file (e.g. "0.9.0"),
 * compiled in by the Makefile; the Debian packages carry the same string as
 * their version (make deb refuses to build when packaging/debian/changelog
 * names another). version_print() writes "PROGRAM (etrnkit) VERSION" and a
 * newline to stdout; it returns 0, or -1 when stdout cannot be written.
 */
#ifndef ETRNKIT_VERSION_H
#define ETRNKIT_VERSION_H

extern const char etrnkit_version[];

int version_print(const char *program);

#endif
