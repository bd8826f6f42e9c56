/* Unit tests for server-lite/flush: file names, add/drop, counts, coalescing, @domain,
   garbage in a log, hostile domains, maintenance (rewrite, purge), refresh from deferred/. */
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "buf.h"
#include "flush.h"
#include "queue.h"
#include "queue_fs.h"
#include "server_config.h"
#include "test.h"

static char top[64];

#define MAX_CALLS 20000

/* the fake qmgr: records every deliver call */
struct fake {
    char id[MAX_CALLS][QUEUE_ID_MAX + 1];
    char domain[MAX_CALLS][64];
    size_t calls;
    const char *stale;        /* this ID answers 0 (gone) */
};

static struct fake fake;

/* fake_deliver - flush_deliver_fn that records the call */
static int fake_deliver(void *ctx, const char *id, const char *domain)
{
    struct fake *fk = ctx;

    if (fk->calls < MAX_CALLS) {
        snprintf(fk->id[fk->calls], sizeof(fk->id[0]), "%s", id);
        snprintf(fk->domain[fk->calls], sizeof(fk->domain[0]), "%s", domain);
    }
    fk->calls++;
    return fk->stale && strcmp(fk->stale, id) == 0 ? 0 : 1;
}

/* calls_for - how many deliver calls named id */
static size_t calls_for(const char *id)
{
    size_t n = 0;

    for (size_t i = 0; i < fake.calls && i < MAX_CALLS; i++)
        n += strcmp(fake.id[i], id) == 0;
    return n;
}

/* put - write a file under top */
static void put(const char *rel, const char *text)
{
    char path[512];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", top, rel);
    fp = fopen(path, "w");
    if (fp == NULL || fputs(text, fp) < 0 || fclose(fp) != 0) {
        printf("cannot write %s\n", path);
        exit(1);
    }
}

/* slurp - a file under top as a string ("" when missing); caller frees */
static char *slurp(const char *rel)
{
    struct buf b = BUF_INIT;
    char path[512], chunk[4096];
    size_t n;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", top, rel);
    if ((fp = fopen(path, "r")) != NULL) {
        while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
            buf_append(&b, chunk, n);
        fclose(fp);
    }
    buf_cstr(&b);
    return buf_steal(&b);
}

/* exists - a path under top exists */
static int exists(const char *rel)
{
    char path[512];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", top, rel);
    return lstat(path, &st) == 0;
}

/* count_lines - occurrences of "id\n" lines in text */
static int count_lines(const char *text, const char *id)
{
    int n = 0;
    size_t len = strlen(id);

    for (const char *p = text; (p = strstr(p, id)) != NULL; p += len)
        if ((p == text || p[-1] == '\n') && p[len] == '\n')
            n++;
    return n;
}

/* dir_entries - entries in top/rel */
static int dir_entries(const char *rel)
{
    char path[512];
    struct dirent *de;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "%s/%s", top, rel);
    if ((d = opendir(path)) == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* drain - run the loop until the flush and refresh work is done (bounded) */
static void drain(struct event_base *base)
{
    for (int i = 0; i < 20000; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    }
}

/* test_file_names - mapping is lower-cased identity on hostnames; everything else refused */
static void test_file_names(void)
{
    static const char *const hostile[] = {
        "../x", "/etc", "a/b", "", "a..b", ".hidden", "x\r", "x\ny", "*", "%s", "\xc3\xbc" "ber.de",
        "trailing.dot.", "[192.0.2.1]", "..", ".", "-lead.example", "a b", "@example.org", "#q",
    };
    char name[300], longname[300];

    TEST_INTEQ(flush_file_name("Example.ORG", name, sizeof(name)), 0);
    TEST_STREQ(name, "example.org");
    TEST_INTEQ(flush_file_name("a-b.example", name, sizeof(name)), 0);
    TEST_STREQ(name, "a-b.example");
    TEST_INTEQ(flush_file_name("a.b.example", name, sizeof(name)), 0);
    TEST_STREQ(name, "a.b.example");
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
        TEST_CHECK(flush_file_name(hostile[i], name, sizeof(name)) == -1,
                   "hostile domain \"%s\" got a file name", hostile[i]);
    memset(longname, 'a', 300);
    longname[299] = 0;
    TEST_INTEQ(flush_file_name(longname, name, sizeof(name)), -1);
    TEST_INTEQ(flush_file_name("example.org", name, 5), -1);   /* no silent cut */
}

/* write_config - a server config with the test's fast_flush_domains */
static int load_config(struct server_config *conf)
{
    char ini[4096];
    struct cfg_error err;

    snprintf(ini, sizeof(ini),
             "[main]\n"
             "myhostname = relay.test\n"
             "inet_interfaces = 127.0.0.1:2525\n"
             "queue_directory = %s/spool\n"
             "relay_domains = example.org a-b.example a.b.example sub.example.net "
             ".sub.example.net other.test\n"
             "fast_flush_domains = example.org a-b.example a.b.example sub.example.net "
             ".sub.example.net\n"
             "fast_flush_purge_time = 1h\n",
             top);
    put("server.ini", ini);
    snprintf(ini, sizeof(ini), "%s/server.ini", top);
    if (server_config_load(ini, conf, &err) != 0) {
        printf("config: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* make_msg - a real deferred message for rcpt; its ID in id */
static void make_msg(struct queue *q, const char *rcpt1, const char *rcpt2, char *id)
{
    const char *rcpts[2] = { rcpt1, rcpt2 };
    struct queue_file qf;

    if (queue_create(q, "s@test.local", "pop[192.0.2.1]", rcpts, rcpt2 ? 2 : 1, &qf) != QUEUE_OK
        || queue_write(&qf, "x\r\n", 3) != QUEUE_OK || queue_commit(&qf) != QUEUE_OK
        || queue_move(q, qf.id, QUEUE_INCOMING, QUEUE_DEFERRED) != QUEUE_OK) {
        printf("make_msg: %s\n", queue_error(q));
        exit(1);
    }
    snprintf(id, QUEUE_ID_MAX + 1, "%s", qf.id);
}

int main(void)
{
    struct server_config conf;
    struct event_base *base;
    struct queue q;
    struct flush *f;
    char err[256], path[256], *text;
    size_t pending = 0;
    struct buf js = BUF_INIT;

    snprintf(top, sizeof(top), "/tmp/test_flush.XXXXXX");
    if (mkdtemp(top) == NULL || (base = event_base_new()) == NULL)
        return 1;
    test_file_names();

    snprintf(path, sizeof(path), "%s/spool", top);
    if (load_config(&conf) != 0 || queue_fs_open(&q, path, 1) != QUEUE_OK) {
        printf("setup failed\n");
        return 1;
    }
    /* a log with garbage lines, a duplicate, a path-like line; files that are not log names */
    put("spool/flush/example.org", "AAAA1\n../../etc/passwd\n\nAAAA2\nAAAA1\nnot an id\nAAAA3");
    put("spool/flush/Bad_Name", "BBBB1\n");
    put("spool/flush/UPPER.example", "BBBB2\n");
    f = flush_open(base, &conf, &q, err, sizeof(err));
    TEST_CHECK(f != NULL, "flush_open: %s", err);
    if (f == NULL)
        return test_summary();
    TEST_INTEQ(flush_waiting(f, "example.org"), 3);
    TEST_INTEQ(flush_waiting(f, "EXAMPLE.org"), 3);
    TEST_INTEQ(flush_waiting(f, "upper.example"), 0);
    TEST_INTEQ(flush_waiting(f, "bad_name"), 0);
    text = slurp("spool/flush/example.org");          /* garbage and the torn line repaired */
    TEST_CHECK(strlen(text) == 18 && count_lines(text, "AAAA1") == 1 && count_lines(text, "AAAA3") == 1,
               "repaired log: \"%s\"", text);
    free(text);

    /* add / drop */
    flush_note(f, "Example.Org", "CCCC1", 1);
    flush_note(f, "example.org", "CCCC1", 1);
    TEST_INTEQ(flush_waiting(f, "example.org"), 4);
    text = slurp("spool/flush/example.org");
    TEST_INTEQ(count_lines(text, "CCCC1"), 1);       /* a repeat deferral appends nothing */
    free(text);
    flush_note(f, "example.org", "AAAA2", 0);
    TEST_INTEQ(flush_waiting(f, "example.org"), 3);
    flush_note(f, "example.org", "AAAA2", 0);         /* dropping twice is harmless */
    TEST_INTEQ(flush_waiting(f, "example.org"), 3);
    flush_note(f, "example.org", "not-an-id", 1);
    TEST_INTEQ(flush_waiting(f, "example.org"), 3);

    /* not eligible, hostile: nothing in memory, no file anywhere */
    flush_note(f, "other.test", "DDDD1", 1);
    TEST_INTEQ(flush_waiting(f, "other.test"), 0);
    TEST_CHECK(!exists("spool/flush/other.test"), "log made for a domain not in fast_flush_domains");
    flush_note(f, "../evil", "DDDD2", 1);
    flush_note(f, "/tmp/evil", "DDDD2", 1);
    flush_note(f, "a/b", "DDDD2", 1);
    flush_note(f, "..", "DDDD2", 1);
    TEST_CHECK(!exists("spool/evil") && !exists("evil") && !exists("spool/flush/a"),
               "a hostile domain became a path");
    TEST_INTEQ(dir_entries("spool/flush"), 3);         /* example.org + the two ignored files */

    /* separate files for a-b.example and a.b.example */
    flush_note(f, "a-b.example", "EEEE1", 1);
    flush_note(f, "a.b.example", "EEEE2", 1);
    flush_note(f, "a.b.example", "EEEE3", 1);
    TEST_INTEQ(flush_waiting(f, "a-b.example"), 1);
    TEST_INTEQ(flush_waiting(f, "a.b.example"), 2);
    text = slurp("spool/flush/a-b.example");
    TEST_STREQ(text, "EEEE1\n");
    free(text);
    text = slurp("spool/flush/a.b.example");
    TEST_STREQ(text, "EEEE2\nEEEE3\n");
    free(text);

    /* requests */
    TEST_INTEQ(flush_request(f, "other.test", 0, "c[192.0.2.9]", "", &pending), FLUSH_NOT_ELIGIBLE);
    TEST_INTEQ(flush_request(f, "../x", 0, "c[192.0.2.9]", "", &pending), FLUSH_NOT_ELIGIBLE);
    TEST_INTEQ(flush_request(f, "[192.0.2.1]", 0, "c[192.0.2.9]", "", &pending), FLUSH_NOT_ELIGIBLE);
    TEST_INTEQ(flush_request(f, "example.org", 0, "c[192.0.2.9]", "", &pending), FLUSH_ERROR);
    flush_set_deliver(f, fake_deliver, &fake);
    TEST_INTEQ(flush_eligible(f, "Example.org"), 1);
    TEST_INTEQ(flush_eligible(f, "x.sub.example.net"), 1);
    TEST_INTEQ(flush_eligible(f, "other.test"), 0);
    TEST_INTEQ(flush_request(f, "sub.example.net", 0, "c[192.0.2.9]", "", &pending), FLUSH_NOTHING);
    TEST_INTEQ(pending, 0);

    fake.stale = "AAAA3";
    TEST_INTEQ(flush_request(f, "example.org", 0, "c[192.0.2.9]", "alice", &pending), FLUSH_STARTED);
    TEST_INTEQ(pending, 3);
    TEST_INTEQ(fake.calls, 0);                         /* the moving comes after the reply */
    TEST_INTEQ(flush_request(f, "EXAMPLE.ORG", 0, "c[192.0.2.9]", "alice", &pending), FLUSH_STARTED);
    TEST_INTEQ(pending, 3);
    drain(base);
    TEST_INTEQ(fake.calls, 3);                         /* coalesced: each ID once */
    TEST_INTEQ(calls_for("AAAA1"), 1);
    TEST_INTEQ(calls_for("AAAA3"), 1);
    TEST_INTEQ(calls_for("CCCC1"), 1);
    TEST_INTEQ(calls_for("AAAA2"), 0);                 /* dropped before the flush */
    TEST_STREQ(fake.domain[0], "example.org");
    TEST_INTEQ(flush_waiting(f, "example.org"), 2);    /* the stale one is gone */
    flush_status_json(f, &js);
    TEST_CHECK(strstr(js.data, "{\"domain\":\"example.org\",\"waiting\":2,\"flushing\":false,"
                               "\"last_etrn\":") != NULL, "status json: %s", js.data);
    TEST_CHECK(strstr(js.data, "\"client\":\"c[192.0.2.9]\",\"user\":\"alice\"}") != NULL,
               "status json: %s", js.data);
    TEST_CHECK(strncmp(js.data, "\"etrn\":[{\"domain\":\"a-b.example\"", 31) == 0,
               "status json sorted: %s", js.data);

    /* @domain: the domain and each subdomain with a log, counted together */
    fake.calls = 0;
    fake.stale = NULL;
    flush_note(f, "sub.example.net", "FFFF1", 1);
    flush_note(f, "x.sub.example.net", "FFFF2", 1);
    flush_note(f, "y.x.sub.example.net", "FFFF3", 1);
    flush_note(f, "xsub.example.net", "FFFF4", 1);     /* not below sub.example.net */
    TEST_INTEQ(flush_waiting(f, "xsub.example.net"), 0);
    TEST_INTEQ(flush_request(f, "sub.example.net", 1, "c", "", &pending), FLUSH_STARTED);
    TEST_INTEQ(pending, 3);
    TEST_INTEQ(flush_request(f, "example.net", 1, "c", "", &pending), FLUSH_STARTED);
    TEST_INTEQ(pending, 3);                            /* a parent of eligible names: coalesced */
    TEST_INTEQ(flush_request(f, "example.com", 1, "c", "", &pending), FLUSH_NOT_ELIGIBLE);
    TEST_INTEQ(flush_request(f, "a.b.example", 0, "c", "", &pending), FLUSH_STARTED);
    TEST_INTEQ(pending, 2);
    drain(base);
    TEST_INTEQ(fake.calls, 5);
    TEST_INTEQ(calls_for("FFFF2"), 1);
    for (size_t i = 0; i < fake.calls; i++)
        if (strcmp(fake.id[i], "FFFF3") == 0)
            TEST_STREQ(fake.domain[i], "y.x.sub.example.net");
    TEST_INTEQ(calls_for("EEEE1"), 0);                 /* a-b.example was not asked for */

    /* operator delete / hold: forgotten in every log; ALL empties them */
    flush_note(f, "a.b.example", "ABCD1", 1);
    flush_note(f, "a-b.example", "ABCD1", 1);
    flush_forget(f, "ABCD1");
    TEST_INTEQ(flush_waiting(f, "a.b.example"), 2);
    TEST_INTEQ(flush_waiting(f, "a-b.example"), 1);
    flush_forget(f, "../x");
    TEST_INTEQ(flush_waiting(f, "a.b.example"), 2);

    /* maintenance: a log grown past twice its live IDs (+64) is rewritten; empty logs purged */
    for (int i = 0; i < 100; i++) {
        char id[QUEUE_ID_MAX + 1];

        snprintf(id, sizeof(id), "70%04d", i);
        flush_note(f, "example.org", id, 1);
        flush_note(f, "example.org", id, 0);
    }
    flush_maintain(f, time(NULL));
    text = slurp("spool/flush/example.org");
    TEST_CHECK(count_lines(text, "AAAA1") == 1 && count_lines(text, "CCCC1") == 1
               && strlen(text) == 12, "rewritten log: \"%s\"", text);
    free(text);
    TEST_INTEQ(dir_entries("spool/tmp"), 0);
    flush_note(f, "a-b.example", "EEEE1", 0);
    flush_maintain(f, time(NULL));
    TEST_CHECK(exists("spool/flush/a-b.example"), "purged before fast_flush_purge_time");
    text = slurp("spool/flush/a-b.example");
    TEST_STREQ(text, "");
    free(text);
    flush_maintain(f, time(NULL) + 3601);
    TEST_CHECK(!exists("spool/flush/a-b.example"), "empty log not purged");
    TEST_CHECK(exists("spool/flush/a.b.example"), "a log with IDs was purged");

    /* a restart replays the logs: tombstones keep dropped IDs dropped */
    text = slurp("spool/flush/a.b.example");
    TEST_INTEQ(count_lines(text, "-ABCD1"), 1);
    free(text);
    flush_free(f);
    f = flush_open(base, &conf, &q, err, sizeof(err));
    TEST_CHECK(f != NULL, "flush_open again: %s", err);
    if (f == NULL)
        return test_summary();
    flush_set_deliver(f, fake_deliver, &fake);
    TEST_INTEQ(flush_waiting(f, "a.b.example"), 2);
    TEST_INTEQ(flush_waiting(f, "example.org"), 2);
    TEST_INTEQ(flush_waiting(f, "a-b.example"), 0);

    /* refresh: rebuilt from deferred/, IDs that are in no queue directory dropped */
    {
        char id1[QUEUE_ID_MAX + 1], id2[QUEUE_ID_MAX + 1];

        make_msg(&q, "u@Example.ORG", "v@other.test", id1);
        make_msg(&q, "w@a.b.example", NULL, id2);
        flush_note(f, "example.org", id1, 0);
        flush_refresh(f);
        drain(base);
        TEST_INTEQ(flush_waiting(f, "example.org"), 1); /* id1; AAAA1, CCCC1 are not queued */
        TEST_INTEQ(flush_waiting(f, "a.b.example"), 1); /* id2; EEEE2, EEEE3 dropped */
        TEST_INTEQ(flush_waiting(f, "other.test"), 0);
        fake.calls = 0;
        TEST_INTEQ(flush_request(f, "example.org", 0, "c", "", &pending), FLUSH_STARTED);
        drain(base);
        TEST_INTEQ(calls_for(id1), 1);
        text = slurp("spool/flush/example.org");
        TEST_INTEQ(count_lines(text, id1), 1);
        free(text);
    }

    /* scale: 10,000 waiting messages, the request itself stays O(1) and the work is batched */
    {
        struct timespec t0, t1;
        char id[QUEUE_ID_MAX + 1];
        double ms;

        for (int i = 0; i < 10000; i++) {
            snprintf(id, sizeof(id), "9%07X", (unsigned) i);
            flush_note(f, "sub.example.net", id, 1);
        }
        TEST_INTEQ(flush_waiting(f, "sub.example.net"), 10000);
        fake.calls = 0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        TEST_INTEQ(flush_request(f, "sub.example.net", 0, "c", "", &pending), FLUSH_STARTED);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ms = (double) (t1.tv_sec - t0.tv_sec) * 1e3 + (double) (t1.tv_nsec - t0.tv_nsec) / 1e6;
        TEST_INTEQ(pending, 10000);
        TEST_CHECK(ms < 1.0, "flush_request with 10000 waiting took %.3f ms", ms);
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        TEST_CHECK(fake.calls > 0 && fake.calls <= 256, "one loop turn delivered %zu", fake.calls);
        drain(base);
        TEST_INTEQ(fake.calls, 10000);
        flush_forget(f, "ALL");
        TEST_INTEQ(flush_waiting(f, "sub.example.net"), 0);
        TEST_INTEQ(flush_waiting(f, "example.org"), 0);
        TEST_INTEQ(flush_request(f, "sub.example.net", 0, "c", "", &pending), FLUSH_NOTHING);
    }

    buf_free(&js);
    flush_free(f);
    queue_close(&q);
    server_config_free(&conf);
    event_base_free(base);
    snprintf(path, sizeof(path), "rm -rf %s", top);
    if (system(path) != 0)
        printf("cannot remove %s\n", top);
    return test_summary();
}
