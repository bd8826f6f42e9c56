#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "fileio.h"

/* write_loop - write len bytes, at off when positioned, through short writes and EINTR */
static int write_loop(int fd, const char *p, size_t len, off_t off, int positioned)
{
    while (len > 0) {
        ssize_t n = positioned ? pwrite(fd, p, len, off) : write(fd, p, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t) n;
        off += n;
    }
    return 0;
}

/* fileio_write_all - write a whole buffer at the file offset */
int fileio_write_all(int fd, const void *data, size_t len)
{
    return write_loop(fd, data, len, 0, 0);
}

/* fileio_pwrite_all - write a whole buffer at offset off */
int fileio_pwrite_all(int fd, const void *data, size_t len, off_t off)
{
    return write_loop(fd, data, len, off, 1);
}

/* write_tmp - create tmpdirfd/tmpname with data, fsynced and closed; removed on failure */
static int write_tmp(int tmpdirfd, const char *tmpname, const void *data, size_t len,
                     mode_t mode, const char **step)
{
    int fd = openat(tmpdirfd, tmpname, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                    mode);
    int saved;

    if (fd < 0) {
        *step = "create";
        return -1;
    }
    if (fileio_write_all(fd, data, len) != 0) {
        *step = "write";
    } else if (fsync(fd) != 0) {
        *step = "fsync";
    } else {
        if (close(fd) == 0)
            return 0;
        *step = "close";
        fd = -1;
    }
    saved = errno;
    if (fd >= 0)
        (void) close(fd);
    (void) unlinkat(tmpdirfd, tmpname, 0);
    errno = saved;
    return -1;
}

/* fileio_replace - write temp, fsync, rename over name, fsync the directory */
int fileio_replace(int tmpdirfd, const char *tmpname, int dirfd, const char *name,
                   const void *data, size_t len, mode_t mode, unsigned flags,
                   const char **step)
{
    int saved;

    if (write_tmp(tmpdirfd, tmpname, data, len, mode, step) != 0)
        return -1;
    if (renameat(tmpdirfd, tmpname, dirfd, name) != 0) {
        *step = "rename";
        saved = errno;
        (void) unlinkat(tmpdirfd, tmpname, 0);
        errno = saved;
        return -1;
    }
    if ((flags & FILEIO_SYNC_DIR) && fsync(dirfd) != 0) {
        *step = "fsync directory";
        return -1;
    }
    return 0;
}
