/* The queue interface's contract, the same assertions against each backend:
   the disk queue (queue_fs) and the memory queue (queue_ram) must agree on
   IDs, directories, recipient states, retry times, walks and errors. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "buf.h"
#include "queue.h"
#include "queue_fs.h"
#include "queue_ram.h"
#include "test.h"

static const char *backend; /* "fs" or "ram": in every failure's text */
static char top[64];

/* count_fn - queue_walk callback: count the IDs, remember whether want was seen */
struct walk_count {
    size_t n;
    const char *want;
    int seen;
};

static int count_fn(void *ctx, enum queue_dir dir, const char *id)
{
    struct walk_count *w = ctx;

    (void) dir;
    w->n++;
    if (w->want && strcmp(w->want, id) == 0)
        w->seen++;
    return 0;
}

/* walk_n - how many IDs dir holds; *seen: how often want was among them */
static size_t walk_n(struct queue *q, enum queue_dir dir, const char *want, int *seen)
{
    struct walk_count w = { 0, want, 0 };

    TEST_CHECK(queue_walk(q, dir, count_fn, &w) == QUEUE_OK, "%s: walk %s: %s", backend,
               queue_dir_name(dir), queue_error(q));
    if (seen)
        *seen = w.seen;
    return w.n;
}

/* put - a whole message in two writes; its ID in id */
static int put(struct queue *q, const char *sender, const char *const *rcpts, size_t n,
               const char *content, char *id)
{
    struct queue_file qf;
    size_t half = strlen(content) / 2;
    int rc = queue_create(q, sender, "pop[192.0.2.7]", rcpts, n, &qf);

    if (rc == QUEUE_OK && ((rc = queue_write(&qf, content, half)) != QUEUE_OK
                           || (rc = queue_write(&qf, content + half, strlen(content) - half))
                                  != QUEUE_OK)) {
        queue_abort(&qf);
        return rc;
    }
    if (rc == QUEUE_OK && (rc = queue_commit(&qf)) == QUEUE_OK)
        snprintf(id, QUEUE_ID_MAX + 1, "%s", qf.id);
    return rc;
}

/* content_of - the content queue_open_content gives for id in dir */
static void content_of(struct queue *q, enum queue_dir dir, const char *id, char *out, size_t len)
{
    struct queue_msg msg;
    ssize_t n = -1;
    int fd;

    out[0] = 0;
    if (queue_load(q, dir, id, &msg) != QUEUE_OK)
        return;
    if ((fd = queue_open_content(q, &msg)) >= 0) {
        n = read(fd, out, len - 1 < (size_t) msg.size ? len - 1 : (size_t) msg.size);
        close(fd);
    }
    out[n > 0 ? n : 0] = 0;
    queue_msg_free(&msg);
}

/* check_write_read - create/write/commit, then load, stat, content */
static void check_write_read(struct queue *q, char *id)
{
    static const char *const rcpts[] = { "a@example.org", "b@example.net", "c@example.org" };
    struct queue_msg msg;
    time_t retry = 0, before = time(NULL);
    char got[128];

    TEST_CHECK(put(q, "s@test.local", rcpts, 3, "Subject: x\r\n\r\nbody\r\n", id) == QUEUE_OK,
               "%s: commit: %s", backend, queue_error(q));
    TEST_CHECK(queue_id_valid(id), "%s: a valid ID: %s", backend, id);
    TEST_CHECK(queue_stat(q, QUEUE_INCOMING, id, &retry) == QUEUE_OK, "%s: in incoming/", backend);
    TEST_CHECK(retry >= before - 1 && retry <= time(NULL) + 1, "%s: retry time is the commit's: "
               "%lld", backend, (long long) retry);
    TEST_CHECK(queue_stat(q, QUEUE_DEFERRED, id, NULL) == QUEUE_NOTFOUND, "%s: not in deferred/",
               backend);
    TEST_CHECK(queue_load(q, QUEUE_INCOMING, id, &msg) == QUEUE_OK, "%s: load", backend);
    TEST_STREQ(msg.id, id);
    TEST_CHECK(msg.dir == QUEUE_INCOMING && msg.nrcpt == 3 && msg.size == 20
               && msg.arrival >= before - 1 && msg.arrival <= time(NULL) + 1,
               "%s: dir %d, %zu recipients, %lld bytes, arrival %lld", backend, (int) msg.dir,
               msg.nrcpt, (long long) msg.size, (long long) msg.arrival);
    TEST_STREQ(msg.sender, "s@test.local");
    TEST_STREQ(msg.client, "pop[192.0.2.7]");
    for (size_t i = 0; i < msg.nrcpt && i < 3; i++) {
        TEST_STREQ(msg.rcpts[i].address, rcpts[i]);
        TEST_CHECK(msg.rcpts[i].state == QUEUE_RCPT_PENDING && msg.rcpts[i].dsn[0] == 0
                   && msg.rcpts[i].reason[0] == 0, "%s: recipient %zu starts pending", backend, i);
    }
    queue_msg_free(&msg);
    content_of(q, QUEUE_INCOMING, id, got, sizeof(got));
    TEST_STREQ(got, "Subject: x\r\n\r\nbody\r\n");
}

/* check_update - recipient states in place, settle, the reason's limits, bad arguments */
static void check_update(struct queue *q, const char *id)
{
    struct queue_msg msg;
    char reason[400], want[QUEUE_REASON_MAX + 1];

    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = 0;
    reason[3] = '\t';
    snprintf(want, sizeof(want), "%s", reason);
    want[3] = '?';
    TEST_CHECK(queue_load(q, QUEUE_INCOMING, id, &msg) == QUEUE_OK, "%s: load", backend);
    TEST_INTEQ(queue_update(q, &msg, 1, QUEUE_RCPT_PENDING, "4.4.1", reason), QUEUE_OK);
    TEST_CHECK(msg.unsynced == 0, "%s: a pending state needs no settle", backend);
    TEST_INTEQ(queue_update(q, &msg, 0, QUEUE_RCPT_DELIVERED, "2.0.0", "250 ok"), QUEUE_OK);
    TEST_CHECK(msg.unsynced == 1, "%s: a final state needs a settle", backend);
    TEST_CHECK(msg.rcpts[0].state == QUEUE_RCPT_DELIVERED, "%s: msg updated too", backend);
    TEST_INTEQ(queue_settle(q, &msg), QUEUE_OK);
    TEST_CHECK(msg.unsynced == 0, "%s: settled", backend);
    TEST_INTEQ(queue_update(q, &msg, 3, QUEUE_RCPT_BOUNCED, "5.1.1", "x"), QUEUE_INVAL);
    TEST_INTEQ(queue_update(q, &msg, 2, QUEUE_RCPT_BOUNCED, "5.1", "x"), QUEUE_INVAL);
    TEST_INTEQ(queue_update(q, &msg, 2, (enum queue_rcpt_state) 'X', "", ""), QUEUE_INVAL);
    queue_msg_free(&msg);
    TEST_INTEQ(queue_mark_recipient(q, QUEUE_INCOMING, id, 2, QUEUE_RCPT_BOUNCED, "5.1.1",
                                    "550 no"), QUEUE_OK);
    TEST_INTEQ(queue_mark_recipient(q, QUEUE_DEFERRED, id, 2, QUEUE_RCPT_BOUNCED, "", ""),
               QUEUE_NOTFOUND);
    TEST_CHECK(queue_load(q, QUEUE_INCOMING, id, &msg) == QUEUE_OK && msg.nrcpt == 3,
               "%s: load again", backend);
    if (msg.nrcpt == 3) {
        TEST_CHECK(msg.rcpts[0].state == QUEUE_RCPT_DELIVERED, "%s: delivered kept", backend);
        TEST_STREQ(msg.rcpts[0].dsn, "2.0.0");
        TEST_STREQ(msg.rcpts[0].reason, "250 ok");
        TEST_CHECK(msg.rcpts[1].state == QUEUE_RCPT_PENDING, "%s: pending kept", backend);
        TEST_STREQ(msg.rcpts[1].reason, want); /* first 256 bytes, a tab shown as '?' */
        TEST_CHECK(msg.rcpts[2].state == QUEUE_RCPT_BOUNCED, "%s: bounced kept", backend);
        TEST_STREQ(msg.rcpts[2].dsn, "5.1.1");
    }
    queue_msg_free(&msg);
}

/* check_moves - retry time, moves, walks, the listing, bad IDs and directories */
static void check_moves(struct queue *q, const char *id)
{
    struct buf out = BUF_INIT;
    time_t retry = 0;
    int seen = 0;

    TEST_INTEQ(queue_set_retry_time(q, QUEUE_INCOMING, id, 2000000000), QUEUE_OK);
    TEST_INTEQ(queue_move(q, id, QUEUE_INCOMING, QUEUE_DEFERRED), QUEUE_OK);
    TEST_INTEQ(queue_move(q, id, QUEUE_INCOMING, QUEUE_DEFERRED), QUEUE_NOTFOUND);
    TEST_CHECK(queue_stat(q, QUEUE_DEFERRED, id, &retry) == QUEUE_OK && retry == 2000000000,
               "%s: the retry time moves along: %lld", backend, (long long) retry);
    TEST_INTEQ(queue_stat(q, QUEUE_INCOMING, id, NULL), QUEUE_NOTFOUND);
    TEST_CHECK(walk_n(q, QUEUE_DEFERRED, id, &seen) == 1 && seen == 1, "%s: deferred/ walk: %d",
               backend, seen);
    TEST_CHECK(walk_n(q, QUEUE_INCOMING, id, &seen) == 0, "%s: incoming/ empty", backend);
    TEST_INTEQ(queue_move(q, id, QUEUE_DEFERRED, QUEUE_HOLD), QUEUE_OK);
    TEST_INTEQ(queue_list(q, &out), QUEUE_OK);
    TEST_CHECK(strstr(buf_cstr(&out), "! ") != NULL && strstr(buf_cstr(&out), id) != NULL
               && strstr(buf_cstr(&out), "-- 0 Kbytes in 1 Request.\n") != NULL
               && strstr(buf_cstr(&out), "a@example.org") == NULL
               && strstr(buf_cstr(&out), "b@example.net") != NULL,
               "%s: listing: %s", backend, buf_cstr(&out));
    buf_free(&out);
    TEST_INTEQ(queue_move(q, id, QUEUE_HOLD, QUEUE_ACTIVE), QUEUE_OK);
    TEST_INTEQ(queue_recover(q), QUEUE_OK);
    TEST_CHECK(queue_stat(q, QUEUE_INCOMING, id, NULL) == QUEUE_OK, "%s: recovered from active/",
               backend);
    TEST_INTEQ(queue_load(q, QUEUE_INCOMING, "../x", &(struct queue_msg) { 0 }), QUEUE_BADID);
    TEST_INTEQ(queue_move(q, "abc", QUEUE_INCOMING, QUEUE_HOLD), QUEUE_BADID);
    TEST_INTEQ(queue_delete(q, QUEUE_INCOMING, "", 0), QUEUE_BADID);
    TEST_INTEQ(queue_stat(q, QUEUE_NDIRS, id, NULL), QUEUE_INVAL);
    TEST_INTEQ(queue_move(q, id, QUEUE_INCOMING, (enum queue_dir) 9), QUEUE_INVAL);
    TEST_INTEQ(queue_walk(q, QUEUE_NDIRS, count_fn, NULL), QUEUE_INVAL);
}

/* check_abort_delete - refused envelopes, an aborted message, deletes */
static void check_abort_delete(struct queue *q, const char *id)
{
    static const char *const one[] = { "x@example.org" }, *const bad[] = { "x\r\n@e" };
    struct queue_file qf;
    struct buf out = BUF_INIT;
    char id2[QUEUE_ID_MAX + 1] = "";

    TEST_INTEQ(queue_create(q, "", "c", one, 0, &qf), QUEUE_INVAL);
    TEST_INTEQ(queue_create(q, "a\nb", "c", one, 1, &qf), QUEUE_INVAL);
    TEST_INTEQ(queue_create(q, "", "c", bad, 1, &qf), QUEUE_INVAL);
    TEST_INTEQ(queue_create(q, "", "c", one, 1, &qf), QUEUE_OK);
    TEST_INTEQ(queue_write(&qf, "abc", 3), QUEUE_OK);
    queue_abort(&qf);
    queue_abort(&qf); /* twice is harmless */
    TEST_CHECK(walk_n(q, QUEUE_INCOMING, NULL, NULL) == 1, "%s: the aborted one is nowhere", backend);
    TEST_INTEQ(put(q, "", one, 1, "", id2), QUEUE_OK);
    TEST_CHECK(strcmp(id, id2) != 0, "%s: a new ID", backend);
    TEST_INTEQ(queue_delete(q, QUEUE_INCOMING, id2, QUEUE_LATER), QUEUE_OK);
    TEST_INTEQ(queue_sync(q), QUEUE_OK);
    TEST_INTEQ(queue_delete(q, QUEUE_INCOMING, id2, 0), QUEUE_NOTFOUND);
    TEST_INTEQ(queue_delete(q, QUEUE_DEFERRED, id, 0), QUEUE_NOTFOUND);
    TEST_INTEQ(queue_delete(q, QUEUE_INCOMING, id, 0), QUEUE_OK);
    TEST_INTEQ(queue_stat(q, QUEUE_INCOMING, id, NULL), QUEUE_NOTFOUND);
    TEST_INTEQ(queue_list(q, &out), QUEUE_OK);
    TEST_STREQ(buf_cstr(&out), "Mail queue is empty\n");
    buf_free(&out);
}

struct done {
    int calls, status;
    char id[QUEUE_ID_MAX + 1];
};

/* on_done - a background commit's report */
static void on_done(void *ctx, const char *id, int status, const char *error)
{
    struct done *d = ctx;

    (void) error;
    d->calls++;
    d->status = status;
    snprintf(d->id, sizeof(d->id), "%s", id);
}

/* check_async - commit_async reports from the loop; no walk sees the message before */
static void check_async(struct queue *q)
{
    static const char *const one[] = { "x@example.org" };
    struct event_base *base = event_base_new();
    struct queue_file qf;
    struct done d = { 0, 1, "" };
    char err[256] = "", id[QUEUE_ID_MAX + 1], got[64];
    int seen = 1;

    TEST_INTEQ(queue_create(q, "", "c", one, 1, &qf), QUEUE_OK);
    TEST_INTEQ(queue_commit_async(&qf, on_done, &d), QUEUE_INVAL); /* not attached */
    queue_abort(&qf);
    TEST_CHECK(queue_attach(q, base, 2, err, sizeof(err)) == QUEUE_OK, "%s: attach: %s", backend,
               err);
    TEST_INTEQ(queue_create(q, "", "c", one, 1, &qf), QUEUE_OK);
    TEST_INTEQ(queue_write(&qf, "async\r\n", 7), QUEUE_OK);
    snprintf(id, sizeof(id), "%s", qf.id);
    TEST_INTEQ(queue_commit_async(&qf, on_done, &d), QUEUE_OK);
    queue_abort(&qf); /* harmless: the commit owns the message */
    TEST_INTEQ(queue_pending(q), 1);
    walk_n(q, QUEUE_INCOMING, id, &seen);
    TEST_CHECK(seen == 0 && d.calls == 0, "%s: not seen, not reported before the loop", backend);
    queue_drain(q);
    TEST_CHECK(d.calls == 1 && d.status == QUEUE_OK && strcmp(d.id, id) == 0,
               "%s: reported once: %d calls, status %d, %s", backend, d.calls, d.status, d.id);
    TEST_INTEQ(queue_pending(q), 0);
    walk_n(q, QUEUE_INCOMING, id, &seen);
    TEST_CHECK(seen == 1, "%s: in incoming/ after the report", backend);
    content_of(q, QUEUE_INCOMING, id, got, sizeof(got));
    TEST_STREQ(got, "async\r\n");
    /* a delete with QUEUE_LATER while attached: gone at once for every reader */
    TEST_INTEQ(queue_delete(q, QUEUE_INCOMING, id, QUEUE_LATER), QUEUE_OK);
    TEST_INTEQ(queue_stat(q, QUEUE_INCOMING, id, NULL), QUEUE_NOTFOUND);
    queue_detach(q);
    event_base_free(base);
}

/* run - every check against one opened queue */
static void run(struct queue *q)
{
    char id[QUEUE_ID_MAX + 1] = "";

    check_write_read(q, id);
    check_update(q, id);
    check_moves(q, id);
    check_abort_delete(q, id);
    check_async(q);
    queue_close(q);
}

int main(void)
{
    struct queue q;
    char path[128], cmd[160];

    snprintf(top, sizeof(top), "/tmp/etrnkit-qcontract.XXXXXX");
    if (mkdtemp(top) == NULL)
        return 1;
    snprintf(path, sizeof(path), "%s/spool", top);
    backend = "fs";
    if (queue_fs_open(&q, path, 1) == QUEUE_OK)
        run(&q);
    else
        TEST_CHECK(0, "fs: open: %s", queue_error(&q));
    backend = "ram";
    if (queue_ram_open(&q) == QUEUE_OK)
        run(&q);
    else
        TEST_CHECK(0, "ram: open");
    snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
    if (system(cmd) != 0)
        printf("cannot remove %s\n", top);
    return test_summary();
}
