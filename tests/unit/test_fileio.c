/* Unit tests for common/fileio: whole writes and atomic replacement. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "test.h"

static char top[] = "/tmp/test_fileio.XXXXXX";

/* slurp - a file's content (at most size-1 bytes), "" when missing */
static const char *slurp(int dirfd, const char *name, char *out, size_t size)
{
    int fd = openat(dirfd, name, O_RDONLY);
    ssize_t n = fd < 0 ? 0 : read(fd, out, size - 1);

    out[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
    return out;
}

static int exists(int dirfd, const char *name)
{
    struct stat st;

    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void test_writes(int dfd)
{
    char got[64];
    int fd = openat(dfd, "w", O_RDWR | O_CREAT | O_TRUNC, 0600);

    TEST_INTEQ(fileio_write_all(fd, "hello, world", 12), 0);
    TEST_INTEQ(fileio_pwrite_all(fd, "W", 1, 7), 0);
    TEST_INTEQ(fileio_write_all(fd, "!", 1), 0);
    close(fd);
    TEST_STREQ(slurp(dfd, "w", got, sizeof(got)), "hello, World!");
    errno = 0;
    TEST_INTEQ(fileio_write_all(-1, "x", 1), -1);
    TEST_INTEQ(errno, EBADF);
    TEST_INTEQ(fileio_write_all(-1, "", 0), 0);
}

static void test_replace(int dfd)
{
    char got[64];
    const char *step = NULL;
    struct stat st;
    int old;

    mkdirat(dfd, "tmp", 0700);
    int tfd = openat(dfd, "tmp", O_RDONLY | O_DIRECTORY);

    /* a new file */
    TEST_INTEQ(fileio_replace(tfd, "t1", dfd, "f", "one\n", 4, 0640, FILEIO_SYNC_DIR, &step), 0);
    TEST_STREQ(slurp(dfd, "f", got, sizeof(got)), "one\n");
    TEST_CHECK(!exists(tfd, "t1"), "the temporary file is gone after the rename");
    TEST_CHECK(fstatat(dfd, "f", &st, 0) == 0 && (st.st_mode & 07777) == 0640,
               "mode 0640, got %o", (unsigned) (st.st_mode & 07777));

    /* over an existing file: a reader holding the old one keeps it whole */
    old = openat(dfd, "f", O_RDONLY);
    TEST_INTEQ(fileio_replace(tfd, "t2", dfd, "f", "two\n", 4, 0600, 0, &step), 0);
    TEST_STREQ(slurp(dfd, "f", got, sizeof(got)), "two\n");
    ssize_t n = pread(old, got, sizeof(got) - 1, 0);
    got[n > 0 ? n : 0] = '\0';
    TEST_STREQ(got, "one\n");
    close(old);

    /* empty content */
    TEST_INTEQ(fileio_replace(tfd, "t3", dfd, "f", "", 0, 0600, 0, &step), 0);
    TEST_STREQ(slurp(dfd, "f", got, sizeof(got)), "");

    /* a temporary file that cannot be created */
    step = NULL;
    TEST_INTEQ(fileio_replace(tfd, "missing/t4", dfd, "f", "x", 1, 0600, 0, &step), -1);
    TEST_STREQ(step, "create");
    TEST_INTEQ(errno, ENOENT);

    /* a rename that fails (the target is a non-empty directory): the old file
       stays, the temporary file is removed */
    mkdirat(dfd, "d", 0700);
    int ddfd = openat(dfd, "d", O_RDONLY | O_DIRECTORY);
    close(openat(ddfd, "inside", O_WRONLY | O_CREAT, 0600));
    close(ddfd);
    step = NULL;
    TEST_INTEQ(fileio_replace(tfd, "t5", dfd, "d", "x", 1, 0600, 0, &step), -1);
    TEST_STREQ(step, "rename");
    TEST_CHECK(errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST, "errno %d", errno);
    TEST_CHECK(!exists(tfd, "t5"), "the temporary file is removed after a failed rename");
    TEST_CHECK(exists(dfd, "d/inside"), "the target is untouched");
    close(tfd);
}

int main(void)
{
    char cmd[64];
    int dfd;

    if (mkdtemp(top) == NULL || (dfd = open(top, O_RDONLY | O_DIRECTORY)) < 0) {
        perror(top);
        return 1;
    }
    test_writes(dfd);
    test_replace(dfd);
    close(dfd);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
    if (system(cmd) != 0)
        printf("cannot remove %s\n", top);
    return test_summary();
}
