/*
 * fuzz_flush_log - the flush log reader (flush.c) and what is built on it.
 * Input: up to four flush logs, separated by the line "==": the first
 * goes to flush/example.org, the second to flush/example.net, the third
 * to flush/sub.example.org, the fourth to flush/other.test (not in
 * fast_flush_domains). Then flush_open() loads them, flush_note() and
 * flush_forget() change them, flush_maintain() rewrites and purges, and the
 * logs are loaded again. Checks: the reloaded logs hold the IDs the first
 * flush knew (a rewrite loses no live ID and revives no dropped one). Then
 * a flush request per log runs its moves on the event loop against a fake
 * deliver callback that finds every ID stale.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "buf.h"
#include "flush.h"
#include "queue.h"
#include "queue_fs.h"
#include "server_config.h"
#include "support.h"

static const char *const names[] = { "example.org", "example.net", "sub.example.org", "other.test" };
#define NNAMES (sizeof(names) / sizeof(names[0]))

static struct server_config conf;
static struct queue q;
static struct event_base *base;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    support_init("flush_log");
    support_server_config("fast_flush_purge_time = 1d\n", NULL, &conf);
    if (queue_fs_open(&q, conf.queue_directory, 1) != QUEUE_OK)
        abort();
    support_mkdir("queue/flush");
    base = event_base_new();
    if (base == NULL)
        abort();
    return 0;
}

/* stale - the deliver callback: no ID is waiting in the queue */
static int stale(void *ctx, const char *id, const char *domain)
{
    (void) ctx;
    if (!queue_id_valid(id) || domain == NULL)
        abort();
    return 0;
}

/* clear - remove every file in flush/ */
static void clear(void)
{
    char path[600];
    DIR *d = opendir(support_path("queue/flush"));
    struct dirent *de;

    if (d == NULL)
        abort();
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", support_path("queue/flush"), de->d_name);
        unlink(path);
    }
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *) data, *end = p + size;
    size_t waiting[NNAMES];
    char err[512], path[600];
    struct flush *f;
    struct buf json = BUF_INIT;

    if (size > 1 << 18)
        return 0;
    clear();
    for (size_t i = 0; i < NNAMES && p <= end; i++) {
        const char *sep = memmem(p, (size_t) (end - p), "\n==\n", 4);
        const char *stop = sep ? sep + 1 : end;

        snprintf(path, sizeof(path), "%s/%s", support_path("queue/flush"), names[i]);
        support_write(path, p, (size_t) (stop - p), 0600);
        if (sep == NULL)
            break;
        p = sep + 4;
    }
    if ((f = flush_open(base, &conf, &q, err, sizeof(err))) == NULL)
        abort();
    flush_note(f, "example.org", "ABCDEF0123", 1);
    flush_note(f, "example.net", "ABCDEF0123", 0);
    flush_note(f, "other.test", "ABCDEF0124", 1);
    flush_forget(f, "ABCDEF0125");
    flush_maintain(f, time(NULL) + 30 * 86400);
    for (size_t i = 0; i < NNAMES; i++)
        waiting[i] = flush_waiting(f, names[i]);
    flush_status_json(f, &json);
    buf_free(&json);
    flush_free(f);

    if ((f = flush_open(base, &conf, &q, err, sizeof(err))) == NULL)
        abort();
    for (size_t i = 0; i < NNAMES; i++)
        if (flush_waiting(f, names[i]) != waiting[i])
            abort();
    flush_set_deliver(f, stale, NULL);
    for (size_t i = 0; i < NNAMES; i++) {
        size_t pending = 0;

        (void) flush_request(f, names[i], i == 0, "unknown[127.0.0.1]", NULL, &pending);
    }
    for (int turn = 0; turn < 1000 && event_base_loop(base, EVLOOP_NONBLOCK) == 0; turn++) {
        int left = 0;

        for (size_t i = 0; i < 3; i++)
            left += flush_waiting(f, names[i]) != 0;
        if (!left)
            break;
    }
    flush_free(f);
    return 0;
}
