/* Unit tests for server-lite/queue: round trip, durable recipient state, recovery, IDs, disk full. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "buf.h"
#include "queue.h"
#include "queue_fs.h"
#include "test.h"

static char top[64];

/* count_files - regular entries in top/sub */
static int count_files(const char *sub)
{
    char cmd[256];
    FILE *fp;
    int n = -1;

    snprintf(cmd, sizeof(cmd), "ls -A %s/%s | wc -l", top, sub);
    if ((fp = popen(cmd, "r")) == NULL)
        return -1;
    if (fscanf(fp, "%d", &n) != 1)
        n = -1;
    pclose(fp);
    return n;
}

/* exists - top/sub/name exists */
static int exists(const char *sub, const char *name)
{
    char path[256];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s/%s", top, sub, name);
    return stat(path, &st) == 0;
}

/* put - write a file under top */
static void put(const char *rel, const char *text, size_t len)
{
    char path[256];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", top, rel);
    fp = fopen(path, "w");
    if (fp == NULL || fwrite(text, 1, len, fp) != len || fclose(fp) != 0) {
        printf("cannot write %s\n", path);
        exit(1);
    }
}

/* make_msg - commit one message; returns status, id in out */
static int make_msg(struct queue *q, const char *content, char *id, size_t idlen)
{
    static const char *const rcpts[] = { "a@example.org", "b@example.org", "c@example.net" };
    struct queue_file qf;
    int rc = queue_create(q, "sender@test.local", "pop[192.168.11.12]", rcpts, 3, &qf);

    if (rc != QUEUE_OK)
        return rc;
    size_t half = strlen(content) / 2;
    if ((rc = queue_write(&qf, content, half)) != QUEUE_OK
        || (rc = queue_write(&qf, content + half, strlen(content) - half)) != QUEUE_OK) {
        queue_abort(&qf);
        return rc;
    }
    TEST_INTEQ(count_files("tmp"), 1);
    TEST_INTEQ(count_files("incoming"), 0);
    rc = queue_commit(&qf);
    snprintf(id, idlen, "%s", qf.id);
    return rc;
}

static void test_round_trip(void)
{
    struct queue q;
    struct queue_msg msg;
    const char *content = "Subject: test\r\n\r\nhello\r\n";
    char id[QUEUE_ID_MAX + 1], got[256];

    TEST_INTEQ(queue_fs_open(&q, top, 1), QUEUE_OK);
    static const char *const subs[] = { "incoming", "active", "deferred", "hold", "corrupt", "flush",
                                        "tmp", "public" };
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        TEST_CHECK(exists(subs[i], "."), "%s/ made", subs[i]);
    TEST_INTEQ(make_msg(&q, content, id, sizeof(id)), QUEUE_OK);
    TEST_CHECK(queue_id_valid(id), "commit gives a valid ID: %s", id);
    TEST_INTEQ(count_files("tmp"), 0);
    TEST_CHECK(exists("incoming", id), "incoming/%s exists", id);

    TEST_INTEQ(queue_load(&q, QUEUE_INCOMING, id, &msg), QUEUE_OK);
    TEST_STREQ(msg.sender, "sender@test.local");
    TEST_STREQ(msg.client, "pop[192.168.11.12]");
    TEST_INTEQ(msg.nrcpt, 3);
    TEST_INTEQ(msg.size, strlen(content));
    TEST_CHECK(msg.arrival > time(NULL) - 60 && msg.arrival <= time(NULL), "arrival is now");
    if (msg.nrcpt == 3) {
        TEST_STREQ(msg.rcpts[2].address, "c@example.net");
        TEST_INTEQ(msg.rcpts[0].state, QUEUE_RCPT_PENDING);
        TEST_STREQ(msg.rcpts[0].dsn, "");
    }
    int fd = queue_open_content(&q, &msg);
    TEST_CHECK(fd >= 0, "content fd");
    if (fd >= 0) {
        ssize_t n = read(fd, got, sizeof(got) - 1);
        got[n > 0 ? n : 0] = 0;
        TEST_STREQ(got, content);
        close(fd);
    }
    queue_msg_free(&msg);

    /* per-recipient updates survive closing and reopening */
    TEST_INTEQ(queue_mark_recipient(&q, QUEUE_INCOMING, id, 0, QUEUE_RCPT_DELIVERED, "2.0.0",
                                    "250 2.0.0 Ok: queued as X"), QUEUE_OK);
    TEST_INTEQ(queue_mark_recipient(&q, QUEUE_INCOMING, id, 2, QUEUE_RCPT_PENDING, "4.4.1",
                                    "connect to 192.0.2.11[192.0.2.11]:25: Connection refused\r\n"),
               QUEUE_OK);
    TEST_INTEQ(queue_mark_recipient(&q, QUEUE_INCOMING, id, 3, QUEUE_RCPT_BOUNCED, "5.1.1", "x"),
               QUEUE_INVAL);
    TEST_INTEQ(queue_mark_recipient(&q, QUEUE_INCOMING, id, 1, QUEUE_RCPT_BOUNCED, "5.1", "x"),
               QUEUE_INVAL);
    TEST_INTEQ(queue_mark_recipient(&q, QUEUE_INCOMING, id, 1, QUEUE_RCPT_BOUNCED, "4.4.1\nX", "x"),
               QUEUE_INVAL);
    TEST_INTEQ(queue_set_retry_time(&q, QUEUE_INCOMING, id, 2000000000), QUEUE_OK);
    queue_close(&q);

    TEST_INTEQ(queue_fs_open(&q, top, 0), QUEUE_OK);
    TEST_INTEQ(queue_move(&q, id, QUEUE_INCOMING, QUEUE_DEFERRED), QUEUE_OK);
    TEST_INTEQ(queue_load(&q, QUEUE_INCOMING, id, &msg), QUEUE_NOTFOUND);
    TEST_INTEQ(queue_load(&q, QUEUE_DEFERRED, id, &msg), QUEUE_OK);
    if (msg.nrcpt == 3) {
        TEST_INTEQ(msg.rcpts[0].state, QUEUE_RCPT_DELIVERED);
        TEST_STREQ(msg.rcpts[0].dsn, "2.0.0");
        TEST_STREQ(msg.rcpts[0].reason, "250 2.0.0 Ok: queued as X");
        TEST_INTEQ(msg.rcpts[1].state, QUEUE_RCPT_PENDING);
        TEST_STREQ(msg.rcpts[1].reason, "");
        TEST_STREQ(msg.rcpts[2].dsn, "4.4.1");
        TEST_STREQ(msg.rcpts[2].reason, "connect to 192.0.2.11[192.0.2.11]:25: Connection refused??");
        TEST_STREQ(msg.rcpts[2].address, "c@example.net");
    }
    TEST_INTEQ(msg.retry_time, 2000000000);
    TEST_INTEQ(msg.size, strlen(content));
    queue_msg_free(&msg);

    /* a reason longer than the field keeps its first QUEUE_REASON_MAX bytes */
    char longreason[600];
    memset(longreason, 'x', sizeof(longreason) - 1);
    longreason[sizeof(longreason) - 1] = 0;
    TEST_INTEQ(queue_mark_recipient(&q, QUEUE_DEFERRED, id, 1, QUEUE_RCPT_BOUNCED, "5.1.1", longreason),
               QUEUE_OK);
    TEST_INTEQ(queue_load(&q, QUEUE_DEFERRED, id, &msg), QUEUE_OK);
    if (msg.nrcpt == 3) {
        TEST_INTEQ(strlen(msg.rcpts[1].reason), QUEUE_REASON_MAX);
        TEST_INTEQ(msg.rcpts[1].state, QUEUE_RCPT_BOUNCED);
        TEST_STREQ(msg.rcpts[2].address, "c@example.net");
    }
    queue_msg_free(&msg);

    /* listing: one deferred message with two pending recipients' reasons; as
       Postfix's mailq, "(reason)" ends in column 78 */
    struct buf out = BUF_INIT;
    TEST_INTEQ(queue_list(&q, &out), QUEUE_OK);
    TEST_CHECK(strstr(buf_cstr(&out), "\n                  (connect to 192.0.2.11[192.0.2.11]:25: "
                                      "Connection refused?\?)\n"
                                      "                                         c@example.net\n\n"
                                      "-- 0 Kbytes in 1 Request.\n") != NULL,
               "listing: %s", buf_cstr(&out));
    TEST_CHECK(strstr(buf_cstr(&out), "a@example.org") == NULL, "delivered recipient not listed");
    buf_free(&out);

    /* marks on a loaded message: a final state asks for queue_settle, a pending one does not */
    TEST_INTEQ(queue_load(&q, QUEUE_DEFERRED, id, &msg), QUEUE_OK);
    TEST_INTEQ(msg.unsynced, 0);
    TEST_INTEQ(queue_update(&q, &msg, 2, QUEUE_RCPT_PENDING, "4.4.2", "lost"), QUEUE_OK);
    TEST_INTEQ(msg.unsynced, 0);
    TEST_INTEQ(queue_update(&q, &msg, 2, QUEUE_RCPT_DELIVERED, "2.0.0", "250 ok"), QUEUE_OK);
    TEST_INTEQ(msg.unsynced, 1);
    TEST_INTEQ(queue_settle(&q, &msg), QUEUE_OK);
    TEST_INTEQ(msg.unsynced, 0);
    queue_msg_free(&msg);
    /* the unsynced move and a sync: the file and its marks move along */
    TEST_INTEQ(queue_move(&q, id, QUEUE_DEFERRED, QUEUE_ACTIVE), QUEUE_OK);
    TEST_INTEQ(queue_move(&q, id, QUEUE_DEFERRED, QUEUE_ACTIVE), QUEUE_NOTFOUND);
    TEST_INTEQ(queue_sync(&q), QUEUE_OK);
    TEST_INTEQ(queue_stat(&q, QUEUE_NDIRS, id, NULL), QUEUE_INVAL);
    TEST_INTEQ(queue_load(&q, QUEUE_ACTIVE, id, &msg), QUEUE_OK);
    if (msg.nrcpt == 3) {
        TEST_INTEQ(msg.rcpts[2].state, QUEUE_RCPT_DELIVERED);
        TEST_STREQ(msg.rcpts[2].reason, "250 ok");
    }
    queue_msg_free(&msg);
    TEST_INTEQ(queue_move(&q, id, QUEUE_ACTIVE, QUEUE_DEFERRED), QUEUE_OK);
    TEST_INTEQ(queue_delete(&q, QUEUE_ACTIVE, id, QUEUE_LATER), QUEUE_NOTFOUND);
    TEST_INTEQ(queue_delete(&q, QUEUE_ACTIVE, "../x", QUEUE_LATER), QUEUE_BADID);

    TEST_INTEQ(queue_delete(&q, QUEUE_DEFERRED, id, 0), QUEUE_OK);
    TEST_INTEQ(count_files("deferred"), 0);
    TEST_INTEQ(queue_delete(&q, QUEUE_DEFERRED, id, 0), QUEUE_NOTFOUND);
    TEST_INTEQ(queue_list(&q, &out), QUEUE_OK);
    TEST_STREQ(buf_cstr(&out), "Mail queue is empty\n");
    buf_free(&out);

    /* abort leaves nothing behind */
    struct queue_file qf;
    const char *one[] = { "x@example.org" };
    TEST_INTEQ(queue_create(&q, "", "c", one, 1, &qf), QUEUE_OK);
    TEST_INTEQ(queue_write(&qf, "abc", 3), QUEUE_OK);
    queue_abort(&qf);
    TEST_INTEQ(count_files("tmp"), 0);
    TEST_INTEQ(count_files("incoming"), 0);

    /* envelope values that would break the format are refused */
    const char *bad[] = { "x@example.org\r\nR P" };
    TEST_INTEQ(queue_create(&q, "", "c", bad, 1, &qf), QUEUE_INVAL);
    TEST_INTEQ(queue_create(&q, "a\nb", "c", one, 1, &qf), QUEUE_INVAL);
    TEST_INTEQ(queue_create(&q, "", "c", one, 0, &qf), QUEUE_INVAL);
    TEST_INTEQ(count_files("tmp"), 0);
    queue_close(&q);
}

static void test_bad_ids(void)
{
    static const char *const ids[] = { "../x", "a/b", "", "0123456789ABCDEF0123456789ABCDEF0", ".", "..",
                                       "abcdef", "ABC DEF", "/etc/passwd", "ABC\n" };
    struct queue q;
    struct queue_msg msg;

    TEST_INTEQ(queue_fs_open(&q, top, 1), QUEUE_OK);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        TEST_CHECK(!queue_id_valid(ids[i]), "queue_id_valid(\"%s\") refused", ids[i]);
        TEST_INTEQ(queue_load(&q, QUEUE_INCOMING, ids[i], &msg), QUEUE_BADID);
        TEST_INTEQ(queue_move(&q, ids[i], QUEUE_INCOMING, QUEUE_HOLD), QUEUE_BADID);
        TEST_INTEQ(queue_delete(&q, QUEUE_INCOMING, ids[i], 0), QUEUE_BADID);
        TEST_INTEQ(queue_mark_recipient(&q, QUEUE_INCOMING, ids[i], 0, QUEUE_RCPT_DELIVERED, "", ""),
                   QUEUE_BADID);
        TEST_INTEQ(queue_set_retry_time(&q, QUEUE_INCOMING, ids[i], 1), QUEUE_BADID);
    }
    TEST_CHECK(queue_id_valid("3813B8AF7DB"), "Postfix-style ID accepted");
    TEST_CHECK(queue_id_valid("0123456789ABCDEF0123456789ABCDEF"), "32 digits accepted");
    queue_close(&q);
}

static void test_recover(void)
{
    struct queue q;
    struct queue_msg msg;
    char id[QUEUE_ID_MAX + 1], id2[QUEUE_ID_MAX + 1], path[256];

    TEST_INTEQ(queue_fs_open(&q, top, 1), QUEUE_OK);
    TEST_INTEQ(make_msg(&q, "body\r\n", id, sizeof(id)), QUEUE_OK);
    TEST_INTEQ(queue_move(&q, id, QUEUE_INCOMING, QUEUE_ACTIVE), QUEUE_OK);
    TEST_INTEQ(queue_set_retry_time(&q, QUEUE_ACTIVE, id, 1700000000), QUEUE_OK);
    TEST_INTEQ(make_msg(&q, "second\r\n", id2, sizeof(id2)), QUEUE_OK);
    TEST_INTEQ(queue_move(&q, id2, QUEUE_INCOMING, QUEUE_DEFERRED), QUEUE_OK);
    /* a truncated copy of a good file: the size no longer matches */
    snprintf(path, sizeof(path), "cp %s/deferred/%s %s/deferred/ABCD01 && truncate -s -2 %s/deferred/ABCD01 "
             "&& sed -i 's/^id .*/id ABCD01/' %s/deferred/ABCD01", top, id2, top, top, top);
    TEST_INTEQ(system(path), 0);
    put("tmp/t999.1", "half a message", 14);
    put("incoming/ABCDEF", "garbage\n", 8);
    put("hold/junk", "x", 1);

    /* capture the warnings */
    char logpath[128];
    snprintf(logpath, sizeof(logpath), "%s.log", top);
    fflush(stderr);
    int saved = dup(2);
    int lfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(lfd, 2);
    int rc = queue_recover(&q);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(lfd);
    TEST_INTEQ(rc, QUEUE_OK);
    TEST_INTEQ(count_files("tmp"), 0);
    TEST_INTEQ(count_files("active"), 0);
    TEST_CHECK(exists("incoming", id), "active message back in incoming");
    TEST_INTEQ(queue_load(&q, QUEUE_INCOMING, id, &msg), QUEUE_OK);
    TEST_INTEQ(msg.retry_time, 1700000000);
    queue_msg_free(&msg);
    TEST_CHECK(exists("deferred", id2), "good deferred message stays");
    TEST_CHECK(exists("corrupt", "ABCDEF"), "garbage to corrupt/");
    TEST_CHECK(exists("corrupt", "ABCD01"), "truncated file to corrupt/");
    TEST_CHECK(exists("corrupt", "junk"), "bad name to corrupt/");
    TEST_INTEQ(count_files("corrupt"), 3);

    char log[4096] = "";
    FILE *fp = fopen(logpath, "r");
    if (fp) {
        size_t n = fread(log, 1, sizeof(log) - 1, fp);
        log[n] = 0;
        fclose(fp);
    }
    unlink(logpath);
    char want[256];
    snprintf(want, sizeof(want), "warning: %s/incoming/ABCDEF: not a version 1 queue file; moved to corrupt/", top);
    TEST_CHECK(strstr(log, want) != NULL, "log names the file and problem: %s", log);
    TEST_CHECK(strstr(log, "deferred/ABCD01: file is ") != NULL, "size mismatch logged: %s", log);
    TEST_CHECK(strstr(log, "hold/junk: file name is not a queue ID; moved to corrupt/") != NULL,
               "bad name logged: %s", log);
    queue_close(&q);
}

/* capture_recover - queue_recover() with standard error (its warnings) in log */
static int capture_recover(struct queue *q, char *log, size_t loglen)
{
    char logpath[128];
    FILE *fp;
    int saved, lfd, rc;

    snprintf(logpath, sizeof(logpath), "%s.log", top);
    fflush(stderr);
    saved = dup(2);
    lfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(lfd, 2);
    rc = queue_recover(q);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(lfd);
    log[0] = 0;
    if ((fp = fopen(logpath, "r")) != NULL) {
        size_t n = fread(log, 1, loglen - 1, fp);

        log[n] = 0;
        fclose(fp);
    }
    unlink(logpath);
    return rc;
}

/*
 * test_control_chars - a file with a control character in the sender or a
 * recipient address is corrupt (found by fuzz_queue_file: a CR in an
 * address would have reached RCPT TO and a bounce's header); one in a
 * reason is not (older versions wrote raw bytes there; output masks them)
 */
static void test_control_chars(void)
{
    static const struct {
        const char *sed, *what;
    } cases[] = {
        { "/^R /s/a@example[.]org$/a@example.org\\rRSET/", "CR in an address" },
        { "s/^sender \\(.*\\)$/sender \\1\\r/", "CR in the sender" },
    };
    struct queue q;
    struct queue_msg msg;
    char id[QUEUE_ID_MAX + 1], cmd[512], saved_top[sizeof(top)];

    memcpy(saved_top, top, sizeof(top));
    snprintf(top, sizeof(top), "%s/ctl", saved_top);
    TEST_INTEQ(queue_fs_open(&q, top, 1), QUEUE_OK);
    TEST_INTEQ(make_msg(&q, "body\r\n", id, sizeof(id)), QUEUE_OK);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(cmd, sizeof(cmd), "sed -e '%s' -e 's/^id .*/id ABCD1%zu/' %s/incoming/%s "
                 ">%s/deferred/ABCD1%zu && ! cmp -s %s/incoming/%s %s/deferred/ABCD1%zu",
                 cases[i].sed, i, top, id, top, i, top, id, top, i);
        TEST_CHECK(system(cmd) == 0, "%s: the test file differs from the good one", cases[i].what);
        snprintf(cmd, sizeof(cmd), "ABCD1%zu", i);
        TEST_CHECK(queue_load(&q, QUEUE_DEFERRED, cmd, &msg) == QUEUE_CORRUPT,
                   "%s: the file is corrupt (%s)", cases[i].what, queue_error(&q));
    }
    snprintf(cmd, sizeof(cmd), "sed -e '/^R /s/^\\(R . .\\{9\\} \\) /\\1\\x1b/' "
             "-e 's/^id .*/id ABCD19/' %s/incoming/%s >%s/deferred/ABCD19", top, id, top);
    TEST_INTEQ(system(cmd), 0);
    TEST_INTEQ(queue_load(&q, QUEUE_DEFERRED, "ABCD19", &msg), QUEUE_OK);
    TEST_CHECK(msg.nrcpt == 3 && msg.rcpts[0].reason[0] == 0x1b, "ESC in a reason loads as it is");
    queue_msg_free(&msg);
    queue_close(&q);
    memcpy(top, saved_top, sizeof(top));
}

/* test_rcpts_bound - a recipient count the file cannot hold is refused before any allocation */
static void test_rcpts_bound(void)
{
    struct queue q;
    struct queue_msg msg;
    char id[QUEUE_ID_MAX + 1], cmd[512], log[4096], want[256];
    char saved_top[sizeof(top)];

    /* a queue of its own: make_msg wants an empty incoming/ */
    memcpy(saved_top, top, sizeof(top));
    snprintf(top, sizeof(top), "%s/bound", saved_top);
    TEST_INTEQ(queue_fs_open(&q, top, 1), QUEUE_OK);
    TEST_INTEQ(make_msg(&q, "body\r\n", id, sizeof(id)), QUEUE_OK);
    /* a good file of 3 recipients that claims a million */
    snprintf(cmd, sizeof(cmd), "sed -e 's/^rcpts 3$/rcpts 1000000/' -e 's/^id .*/id ABCD02/' "
             "%s/incoming/%s >%s/deferred/ABCD02", top, id, top);
    TEST_INTEQ(system(cmd), 0);
    TEST_INTEQ(queue_load(&q, QUEUE_DEFERRED, "ABCD02", &msg), QUEUE_CORRUPT);
    TEST_CHECK(strstr(queue_error(&q), "rcpts 1000000, but the file has room for at most ") != NULL,
               "the error names the count and the bound: %s", queue_error(&q));

    /* ~280 MB for 1000000 records: in an address space of 128 MB more than now,
       the old loader died in xcalloc; the bound refuses the file instead */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
    pid_t pid = fork();

    if (pid == 0) {
        unsigned long pages = 0;
        FILE *fp = fopen("/proc/self/statm", "r");
        struct rlimit rl;

        if (fp == NULL || fscanf(fp, "%lu", &pages) != 1)
            _exit(3);
        fclose(fp);
        rl.rlim_cur = rl.rlim_max = pages * (rlim_t) sysconf(_SC_PAGESIZE) + (128u << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(4);
        _exit(queue_load(&q, QUEUE_DEFERRED, "ABCD02", &msg) == QUEUE_CORRUPT ? 0 : 1);
    }
    int status = 0;

    TEST_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork and wait");
    TEST_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
               "load under a 128 MB address space limit: QUEUE_CORRUPT, not a crash (status %#x)",
               status);
#else
    printf("SKIP address space limit: AddressSanitizer reserves more than that\n");
#endif

    /* recovery moves it to corrupt/ and says why, naming the file */
    TEST_INTEQ(capture_recover(&q, log, sizeof(log)), QUEUE_OK);
    TEST_CHECK(exists("corrupt", "ABCD02"), "the file is kept in corrupt/");
    TEST_INTEQ(count_files("corrupt"), 1);
    TEST_INTEQ(count_files("deferred"), 0);
    TEST_CHECK(exists("incoming", id), "the good message stays");
    snprintf(want, sizeof(want), "warning: %s/deferred/ABCD02: rcpts 1000000, but the file has room "
             "for at most ", top);
    TEST_CHECK(strstr(log, want) != NULL && strstr(log, " recipient records; moved to corrupt/") != NULL,
               "the warning names the file and the problem: %s", log);
    queue_close(&q);
    memcpy(top, saved_top, sizeof(top));
}

/* test_disk_full - ENOSPC comes back as QUEUE_NOSPACE (needs root for a tiny tmpfs) */
static void test_disk_full(void)
{
    char mnt[128], spool[160];
    struct queue q;
    struct queue_file qf;
    const char *one[] = { "x@example.org" };
    static char block[65536];

    snprintf(mnt, sizeof(mnt), "%s-full", top);
    if (mkdir(mnt, 0700) != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=64k") != 0) {
        printf("SKIP disk full: cannot mount a small tmpfs: %s\n", strerror(errno));
        rmdir(mnt);
        return;
    }
    snprintf(spool, sizeof(spool), "%s/spool", mnt);
    TEST_INTEQ(queue_fs_open(&q, spool, 1), QUEUE_OK);
    TEST_INTEQ(queue_create(&q, "", "c", one, 1, &qf), QUEUE_OK);
    int rc = QUEUE_OK;
    memset(block, 'x', sizeof(block));
    for (int i = 0; i < 8 && rc == QUEUE_OK; i++)
        rc = queue_write(&qf, block, sizeof(block));
    TEST_INTEQ(rc, QUEUE_NOSPACE);
    queue_abort(&qf);
    queue_close(&q);
    if (umount(mnt) != 0)
        printf("warning: umount %s: %s\n", mnt, strerror(errno));
    rmdir(mnt);
}

/* a commit's result */
struct done {
    int calls, status;
    char id[QUEUE_ID_MAX + 1];
};

/* on_done - queue_done_fn for the async tests */
static void on_done(void *ctx, const char *id, int status, const char *error)
{
    struct done *d = ctx;

    (void) error;
    d->calls++;
    d->status = status;
    snprintf(d->id, sizeof(d->id), "%s", id);
}

/* start_msg - queue_create and the content; the caller commits */
static int start_msg(struct queue *q, const char *content, struct queue_file *qf)
{
    static const char *const one[] = { "a@example.org" };
    int rc = queue_create(q, "s@test.local", "c", one, 1, qf);

    if (rc == QUEUE_OK && (rc = queue_write(qf, content, strlen(content))) != QUEUE_OK)
        queue_abort(qf);
    return rc;
}

/* content_is - the message id in incoming/ holds exactly content */
static int content_is(struct queue *q, const char *id, const char *content)
{
    struct queue_msg msg;
    char got[256] = "";
    int fd, ok = 0;

    if (queue_load(q, QUEUE_INCOMING, id, &msg) != QUEUE_OK)
        return 0;
    if ((fd = queue_open_content(q, &msg)) >= 0) {
        ssize_t n = read(fd, got, sizeof(got) - 1);

        got[n > 0 ? n : 0] = 0;
        ok = strcmp(got, content) == 0 && msg.size == (off_t) strlen(content);
        close(fd);
    }
    queue_msg_free(&msg);
    return ok;
}

/* queue_walk callback: count walk_want */
static char walk_want[QUEUE_ID_MAX + 1];
static int walk_seen;

static int walk_count(void *ctx, enum queue_dir dir, const char *id)
{
    (void) ctx;
    (void) dir;
    walk_seen += strcmp(id, walk_want) == 0;
    return 0;
}

/* test_async - group commit, unnamed spare files, recycled files of removed messages */
static void test_async(void)
{
    char path[128], err[256] = "";
    struct queue q, q2;
    struct queue_file qf;
    struct done d = { 0 };
    struct event_base *base = event_base_new();
    int unnamed = 0;

    snprintf(path, sizeof(path), "%s/async", top);
    snprintf(top + strlen(top), sizeof(top) - strlen(top), "%s", "/async");
    TEST_INTEQ(queue_fs_open(&q, path, 1), QUEUE_OK);
    TEST_INTEQ(queue_attach(&q, base, 2, err, sizeof(err)), QUEUE_OK);
    if (err[0])
        goto out;

    /* the first file is a named one in tmp/: spares are made after the first take */
    TEST_INTEQ(start_msg(&q, "first\r\n", &qf), QUEUE_OK);
    TEST_INTEQ(count_files("tmp"), 1);
    TEST_INTEQ(queue_commit_async(&qf, on_done, &d), QUEUE_OK);
    TEST_INTEQ(queue_pending(&q), 1);
    queue_drain(&q);
    TEST_INTEQ(d.calls, 1);
    TEST_INTEQ(d.status, QUEUE_OK);
    TEST_CHECK(content_is(&q, d.id, "first\r\n"), "first message intact in incoming/%s", d.id);
    TEST_INTEQ(count_files("tmp"), 0);

    /* then unnamed spares: nothing in tmp/ while the message is written (bounded wait) */
    for (int i = 0; i < 200 && !unnamed; i++) {
        if (start_msg(&q, "second\r\n", &qf) != QUEUE_OK)
            break;
        unnamed = count_files("tmp") == 0;
        if (!unnamed) {
            queue_abort(&qf);
            usleep(10000);
        }
    }
    TEST_CHECK(unnamed, "a spare (unnamed) file within 2 s");
    if (unnamed) {
        TEST_INTEQ(queue_commit_async(&qf, on_done, &d), QUEUE_OK);
        queue_drain(&q);
        TEST_INTEQ(d.calls, 2);
        TEST_INTEQ(d.status, QUEUE_OK);
        TEST_CHECK(content_is(&q, d.id, "second\r\n"), "unnamed file linked as incoming/%s", d.id);
        /* the synchronous commit links one too (bounces use it) */
        TEST_INTEQ(start_msg(&q, "third\r\n", &qf), QUEUE_OK);
        TEST_INTEQ(queue_commit(&qf), QUEUE_OK);
        TEST_CHECK(content_is(&q, qf.id, "third\r\n"), "sync commit of a spare: incoming/%s", qf.id);
        /* an aborted spare leaves nothing anywhere */
        TEST_INTEQ(start_msg(&q, "aborted\r\n", &qf), QUEUE_OK);
        queue_abort(&qf);
        TEST_INTEQ(count_files("tmp"), 0);
        TEST_INTEQ(count_files("incoming"), 3);
    }

    /* a removed message's file waits in tmp/ as it was (emptying it there cost the loop an
       ftruncate per delivery), and the next message reuses it, cut to its own length */
    char gone[QUEUE_ID_MAX + 1];
    snprintf(gone, sizeof(gone), "%s", d.id);
    TEST_INTEQ(queue_delete(&q, QUEUE_INCOMING, gone, 0), QUEUE_OK);
    TEST_INTEQ(queue_delete(&q, QUEUE_INCOMING, gone, 0), QUEUE_NOTFOUND);
    TEST_INTEQ(count_files("incoming"), unnamed ? 2 : 0);
    TEST_INTEQ(count_files("tmp"), 1);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "test -n \"$(find %s/tmp -type f -size +0)\"", top);
    TEST_CHECK(system(cmd) == 0, "the recycled file is not emptied on removal");
    TEST_INTEQ(start_msg(&q, "4\r\n", &qf), QUEUE_OK);
    TEST_CHECK(qf.tmpname[0] == 'r', "the recycled file is used: %s", qf.tmpname);
    TEST_INTEQ(queue_commit_async(&qf, on_done, &d), QUEUE_OK);
    queue_drain(&q);
    TEST_INTEQ(d.status, QUEUE_OK);
    TEST_CHECK(content_is(&q, d.id, "4\r\n"), "recycled file holds only the new message");
    TEST_CHECK(strcmp(d.id, gone) != 0, "a new ID: %s after %s", d.id, gone);
    TEST_INTEQ(count_files("tmp"), 0);

    /* a QUEUE_LATER removal's file is reused only after its directory's fsync */
    TEST_INTEQ(queue_delete(&q, QUEUE_INCOMING, d.id, QUEUE_LATER), QUEUE_OK);
    TEST_INTEQ(count_files("tmp"), 1);
    TEST_INTEQ(start_msg(&q, "not yet\r\n", &qf), QUEUE_OK);
    TEST_CHECK(qf.tmpname[0] != 'r', "not reused before the fsync: %s", qf.tmpname);
    queue_abort(&qf);
    /* the backend's own timer fsyncs the directory: one loop pass waits for it */
    TEST_INTEQ(event_base_loop(base, EVLOOP_ONCE), 0);
    TEST_INTEQ(start_msg(&q, "now\r\n", &qf), QUEUE_OK);
    TEST_CHECK(qf.tmpname[0] == 'r', "reused after the fsync: %s", qf.tmpname);

    /* a scan of incoming/ does not see a file whose commit has not reported yet */
    int in_incoming = 0;
    TEST_INTEQ(queue_commit_async(&qf, on_done, &d), QUEUE_OK);
    for (int i = 0; i < 200 && !in_incoming; i++) {
        in_incoming = exists("incoming", qf.id);
        if (!in_incoming)
            usleep(10000);
    }
    TEST_CHECK(in_incoming, "the commit thread renamed %s into incoming/", qf.id);
    snprintf(walk_want, sizeof(walk_want), "%s", qf.id);
    walk_seen = 0;
    TEST_INTEQ(queue_walk(&q, QUEUE_INCOMING, walk_count, NULL), QUEUE_OK);
    TEST_INTEQ(walk_seen, 0);
    queue_drain(&q);
    TEST_INTEQ(d.status, QUEUE_OK);
    walk_seen = 0;
    TEST_INTEQ(queue_walk(&q, QUEUE_INCOMING, walk_count, NULL), QUEUE_OK);
    TEST_INTEQ(walk_seen, 1);

    /* a restart (queue_recover) removes recycled files; a name gone from tmp/ is skipped */
    TEST_INTEQ(queue_delete(&q, QUEUE_INCOMING, d.id, QUEUE_LATER), QUEUE_OK);
    TEST_INTEQ(queue_sync(&q), QUEUE_OK);
    TEST_INTEQ(count_files("tmp"), 1);
    snprintf(path, sizeof(path), "%s", top);
    TEST_INTEQ(queue_fs_open(&q2, path, 0), QUEUE_OK);
    TEST_INTEQ(queue_recover(&q2), QUEUE_OK);
    queue_close(&q2);
    TEST_INTEQ(count_files("tmp"), 0);
    TEST_INTEQ(start_msg(&q, "fifth\r\n", &qf), QUEUE_OK);
    TEST_CHECK(qf.tmpname[0] != 'r', "no stale recycled name used: %s", qf.tmpname);
    TEST_INTEQ(queue_commit(&qf), QUEUE_OK);
    TEST_CHECK(content_is(&q, qf.id, "fifth\r\n"), "fifth message intact");
    queue_detach(&q);
    TEST_INTEQ(count_files("tmp"), 0);
out:
    queue_close(&q);
    event_base_free(base);
    top[strlen(top) - strlen("/async")] = 0;
}

/* test_open_links - a link or a non-directory in the tree is refused, its target untouched */
static void test_open_links(void)
{
    struct queue q;
    char spool[128], victim[128], path[256], want[512];
    struct stat st;

    snprintf(spool, sizeof(spool), "%s/links", top);
    snprintf(victim, sizeof(victim), "%s/victim", top);
    TEST_INTEQ(mkdir(victim, 0755), 0);
    TEST_INTEQ(queue_fs_open(&q, spool, 1), QUEUE_OK);
    queue_close(&q);

    snprintf(path, sizeof(path), "%s/flush", spool);
    TEST_INTEQ(rmdir(path), 0);
    TEST_INTEQ(symlink(victim, path), 0);
    TEST_INTEQ(queue_fs_open(&q, spool, 1), QUEUE_ERR);
    snprintf(want, sizeof(want), "%s is a symbolic link: refusing to follow it (a queue "
             "directory must be a plain directory; remove the link)", path);
    TEST_STREQ(queue_error(&q), want);
    queue_close(&q);
    TEST_CHECK(lstat(path, &st) == 0 && S_ISLNK(st.st_mode), "flush/ is still the link");
    TEST_INTEQ(unlink(path), 0);
    TEST_INTEQ(mkdir(path, 0700), 0);

    snprintf(path, sizeof(path), "%s/tmp", spool);
    TEST_INTEQ(rmdir(path), 0);
    put("links/tmp", "x", 1);
    TEST_INTEQ(queue_fs_open(&q, spool, 0), QUEUE_ERR);
    snprintf(want, sizeof(want), "%s is not a directory: refusing it", path);
    TEST_STREQ(queue_error(&q), want);
    queue_close(&q);
    TEST_INTEQ(unlink(path), 0);

    /* the top itself: the link is refused even though it points at a good tree */
    snprintf(path, sizeof(path), "%s/links-link", top);
    TEST_INTEQ(symlink(spool, path), 0);
    TEST_INTEQ(queue_fs_open(&q, path, 1), QUEUE_ERR);
    snprintf(want, sizeof(want), "%s is a symbolic link: refusing to follow it (a queue "
             "directory must be a plain directory; remove the link)", path);
    TEST_STREQ(queue_error(&q), want);
    queue_close(&q);
    TEST_INTEQ(count_files("victim"), 0);

    if (geteuid() != 0)
        return; /* ownership checks: root only */
    snprintf(path, sizeof(path), "%s/owned", top);
    TEST_INTEQ(queue_fs_open_owned(&q, path, 65534, 65534), QUEUE_OK);
    queue_close(&q);
    snprintf(want, sizeof(want), "%s/owned/hold", top);
    TEST_CHECK(stat(want, &st) == 0 && st.st_uid == 65534 && st.st_gid == 65534,
               "hold/ given to 65534: uid %ld", (long) st.st_uid);
    TEST_INTEQ(chown(want, 1, 1), 0);
    TEST_INTEQ(queue_fs_open_owned(&q, path, 65534, 65534), QUEUE_ERR);
    snprintf(want, sizeof(want), "%s/owned/hold is owned by uid 1, not by mail_owner (uid "
             "65534) or root: refusing it", top);
    TEST_STREQ(queue_error(&q), want);
    queue_close(&q);
}

int main(void)
{
    snprintf(top, sizeof(top), "/tmp/etrnkit-q-XXXXXX");
    if (mkdtemp(top) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_bad_ids();
    test_recover();
    test_rcpts_bound();
    test_control_chars();
    test_disk_full();
    test_async();
    test_open_links();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
    if (system(cmd) != 0)
        printf("warning: could not remove %s\n", top);
    return test_summary();
}
