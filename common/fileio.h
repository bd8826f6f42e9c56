/*
 * fileio - whole writes and atomic file replacement.
 *
 * fileio_write_all(fd, data, len) writes all of data at the file offset,
 * retrying short writes and EINTR; fileio_pwrite_all does the same at offset
 * off without moving the file offset. Both return 0, or -1 with errno set.
 *
 * fileio_replace() gives dirfd/name the content data as one step: it writes
 * tmpdirfd/tmpname (created, or truncated, mode mode, no symlink followed),
 * fsyncs and closes it, renames it over dirfd/name and, with
 * FILEIO_SYNC_DIR, fsyncs dirfd so the rename survives a crash. It returns 0,
 * or -1 with errno set and *step naming what failed ("create", "write",
 * "fsync", "close", "rename", "fsync directory"); on a failure before the
 * rename the temporary file is removed. Both directories must be on one
 * file system.
 */
#ifndef ETRNKIT_FILEIO_H
#define ETRNKIT_FILEIO_H

#include <stddef.h>
#include <sys/types.h>

#define FILEIO_SYNC_DIR 1u

int fileio_write_all(int fd, const void *data, size_t len);
int fileio_pwrite_all(int fd, const void *data, size_t len, off_t off);
int fileio_replace(int tmpdirfd, const char *tmpname, int dirfd, const char *name,
                   const void *data, size_t len, mode_t mode, unsigned flags,
                   const char **step);

#endif
