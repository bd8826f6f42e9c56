/* Unit tests for server-lite/qmgr, bounce and transport_local: the retry table,
   a DSN parsed back, Maildir delivery, and scheduling with a fake transport. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bounce.h"
#include "buf.h"
#include "clock.h"
#include "delivery.h"
#include "qmgr.h"
#include "queue.h"
#include "queue_ram.h"
#include "server_config.h"
#include "test.h"
#include "transport_local.h"

static char top[64];

/* test_backoff - Postfix's schedule from qmgr_backoff, tries at arrival + sum */
static void test_backoff(void)
{
    static const struct {
        long long min, max;
        long long want[8]; /* try times after arrival */
    } cases[] = {
        { 900, 3600, { 0, 900, 1800, 3600, 7200, 10800, 14400, 18000 } },
        { 2, 8, { 0, 2, 4, 8, 16, 24, 32, 40 } },
        { 60, 60, { 0, 60, 120, 180, 240, 300, 360, 420 } },
    };

    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        time_t arrival = 1000000, t = arrival;

        for (int k = 0; k < 8; k++) {
            TEST_CHECK(t - arrival == cases[c].want[k], "min %lld max %lld try %d: got +%lld, want +%lld",
                       cases[c].min, cases[c].max, k, (long long) (t - arrival), cases[c].want[k]);
            t += qmgr_backoff(arrival, t, cases[c].min, cases[c].max);
        }
    }
    TEST_INTEQ(qmgr_backoff(100, 50, 10, 20), 10); /* clock went back: the minimum */
    TEST_INTEQ(qmgr_backoff(0, 100000, 900, 3600), 3600);
}

/* part_of - the body of the MIME part whose Content-Type starts with type */
static char *part_of(const char *msg, const char *boundary, const char *type)
{
    char delim[300];
    const char *p = msg;

    snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
    while ((p = strstr(p, delim)) != NULL) {
        p += strlen(delim);
        const char *hdr_end = strstr(p, "\r\n\r\n"), *next = strstr(p, delim);
        char want[128];

        snprintf(want, sizeof(want), "Content-Type: %s", type);
        if (hdr_end && next && hdr_end < next) {
            const char *ct = strstr(p, want);

            if (ct && ct < hdr_end)
                return strndup(hdr_end + 4, (size_t) (next - hdr_end - 4));
        }
    }
    return NULL;
}

/* test_bounce_format - build a DSN and parse it back */
static void test_bounce_format(void)
{
    static const struct bounce_rcpt rcpts[] = {
        { "gone@example.org", "5.1.1", "host mx[192.0.2.1] said: 550 5.1.1 no such user" },
        { "slow@example.net", "4.4.1", "connect to mx[192.0.2.2]:25: Connection refused" },
    };
    const char *headers = "Subject: hello\r\nMessage-Id: <x@src>\r\n";
    struct bounce_info info = { "relay.test", "ABC123", "alice@src.test", 1700000000, 1700000100,
                                rcpts, 2, headers, strlen(headers) };
    struct buf b = BUF_INIT;
    char boundary[256], *p;

    bounce_format(&b, &info);
    const char *msg = buf_cstr(&b);
    TEST_CHECK(strncmp(msg, "Date: ", 6) == 0, "starts with Date:");
    TEST_CHECK(strstr(msg, "\r\nFrom: MAILER-DAEMON@relay.test") != NULL, "From MAILER-DAEMON");
    TEST_CHECK(strstr(msg, "\r\nTo: <alice@src.test>\r\n") != NULL, "To the sender");
    TEST_CHECK(strstr(msg, "Content-Type: multipart/report; report-type=delivery-status;") != NULL,
               "multipart/report");
    p = strstr(msg, "boundary=\"");
    TEST_CHECK(p != NULL, "boundary parameter");
    if (p == NULL)
        return;
    snprintf(boundary, sizeof(boundary), "%.*s", (int) strcspn(p + 10, "\""), p + 10);
    TEST_STREQ(boundary, "ABC123.1700000100/relay.test");
    TEST_CHECK(strstr(msg, "\r\n--ABC123.1700000100/relay.test--\r\n") != NULL, "closing boundary");
    for (const char *s = msg; *s; s++)
        if (*s == '\n' && (s == msg || s[-1] != '\r')) {
            TEST_CHECK(0, "bare LF at offset %td", s - msg);
            break;
        }

    char *human = part_of(msg, boundary, "text/plain");
    char *ds = part_of(msg, boundary, "message/delivery-status");
    char *orig = part_of(msg, boundary, "text/rfc822-headers");
    TEST_CHECK(human && strstr(human, "<gone@example.org>: host mx[192.0.2.1] said: 550") != NULL,
               "human part names the recipient and reason");
    TEST_CHECK(ds != NULL, "delivery-status part");
    if (ds) {
        TEST_CHECK(strncmp(ds, "Reporting-MTA: dns; relay.test\r\n", 32) == 0, "Reporting-MTA first: %s", ds);
        TEST_CHECK(strstr(ds, "\r\nArrival-Date: ") != NULL, "Arrival-Date");
        TEST_CHECK(strstr(ds, "\r\n\r\nFinal-Recipient: rfc822; gone@example.org\r\nAction: failed\r\n"
                              "Status: 5.1.1\r\nDiagnostic-Code: smtp; host mx[192.0.2.1] said: 550 5.1.1 no such user\r\n")
                       != NULL, "first recipient block");
        TEST_CHECK(strstr(ds, "Final-Recipient: rfc822; slow@example.net\r\nAction: failed\r\n"
                              "Status: 5.4.1\r\n") != NULL, "expired 4.4.1 reported as 5.4.1");
    }
    TEST_CHECK(orig && strstr(orig, "Subject: hello\r\nMessage-Id: <x@src>\r\n") != NULL,
               "original headers");
    free(human);
    free(ds);
    free(orig);
    buf_free(&b);
}

/* test_bounce_headers - the header block only, cut at the empty line */
static void test_bounce_headers(void)
{
    char path[128];
    const char *content = "A: 1\r\nB: 2\r\n\r\nbody\r\n";
    struct buf b = BUF_INIT;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/content", top);
    fp = fopen(path, "w+");
    fputs("HEADERJUNK", fp);
    fputs(content, fp);
    fflush(fp);
    bounce_headers(fileno(fp), 10, (off_t) strlen(content), &b);
    TEST_STREQ(buf_cstr(&b), "A: 1\r\nB: 2\r\n");
    fclose(fp);
    buf_free(&b);
}

/* write_conf - a configuration file; returns 0 when it loads */
static int write_conf(struct server_config *conf, const char *extra)
{
    char path[128];
    struct cfg_error err;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/server.ini", top);
    fp = fopen(path, "w");
    fprintf(fp, "[main]\nmyhostname = relay.test\nqueue_directory = %s/spool\n"
                "relay_domains = t.test src.test\nrelayhost = [127.0.0.1]:9\n"
                "mydestination = local.test\nlocal_maildir_base = %s/mail\n"
                "minimal_backoff_time = 60s\nmaximal_backoff_time = 120s\n"
                "maximal_queue_lifetime = 1d\n%s"
                "[transport]\nt.test = smtp:[127.0.0.1]:9\nsrc.test = smtp:[127.0.0.1]:9\n",
            top, top, extra);
    fclose(fp);
    if (server_config_load(path, conf, &err) != 0) {
        printf("config: %s\n", err.msg);
        return -1;
    }
    return 0;
}

/* test_local - Maildir delivery through local_transport_deliver_now: a Maildir is
   made only for a local_recipient_maps entry, an existing one is used, others bounce */
static void test_local(void)
{
    struct server_config conf;
    struct delivery_report rep;
    const char *rcpts[] = { "Ann@local.test", ".bad@local.test", "zed@local.test",
                            "old@local.test" };
    const char *content = "Subject: x\r\n\r\nline\r\n";
    char path[256], buf[512], extra[256];
    struct stat st;
    FILE *fp;

    snprintf(path, sizeof(path), "%s/local-users", top);
    fp = fopen(path, "w");
    fputs("ann@local.test OK\n", fp);
    fclose(fp);
    snprintf(path, sizeof(path), "mkdir -p %s/mail/local.test/old/Maildir", top);
    if (system(path) != 0)
        printf("cannot make the old Maildir\n");
    snprintf(extra, sizeof(extra), "local_recipient_maps = %s/local-users\n", top);
    if (write_conf(&conf, extra) != 0) {
        TEST_CHECK(0, "config loads");
        return;
    }
    snprintf(path, sizeof(path), "%s/lcontent", top);
    fp = fopen(path, "w+");
    fputs(content, fp);
    fflush(fp);
    struct delivery_job job = { "ID1", "s@src.test", rcpts, 4, fileno(fp), 0,
                                (off_t) strlen(content), { 0 } };
    delivery_report_init(&rep, 4);
    local_transport_deliver_now(&conf, &job, &rep);
    TEST_INTEQ(rep.rcpt[0].status, DELIVERY_OK);
    TEST_STREQ(rep.rcpt[0].text, "delivered to maildir");
    TEST_INTEQ(rep.rcpt[1].status, DELIVERY_PERM);
    TEST_STREQ(rep.rcpt[1].dsn, "5.1.3");
    TEST_INTEQ(rep.rcpt[2].status, DELIVERY_PERM);
    TEST_STREQ(rep.rcpt[2].dsn, "5.1.1");
    snprintf(path, sizeof(path), "%s/mail/local.test/zed", top);
    TEST_CHECK(stat(path, &st) != 0, "no Maildir made for an unlisted recipient");
    TEST_INTEQ(rep.rcpt[3].status, DELIVERY_OK);
    TEST_STREQ(rep.relay, "local");
    snprintf(buf, sizeof(buf), "cat %s/mail/local.test/ann/Maildir/new/* 2>/dev/null", top);
    FILE *p = popen(buf, "r");
    size_t n = fread(buf, 1, sizeof(buf) - 1, p);
    buf[n] = 0;
    pclose(p);
    TEST_STREQ(buf, "Return-Path: <s@src.test>\nDelivered-To: ann@local.test\nSubject: x\n\nline\n");
    delivery_report_free(&rep);
    fclose(fp);
    server_config_free(&conf);
}

/* ---- scheduling with a fake transport ---- */

struct fake_call {
    struct delivery_report rep;
    delivery_done_fn done;
    void *ctx;
};

static struct fake_call calls[64];
static int ncalls, nreported, hook_added, hook_done, hook_site_done;
static char hook_forgot[64]; /* the last id the hook was told to forget */
static char last_transport_sender[64];

/* fake_reply_cb - answer every pending fake job */
static void fake_reply_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
    while (nreported < ncalls) {
        struct fake_call *c = &calls[nreported++];

        c->done(c->ctx, &c->rep);
        delivery_report_free(&c->rep);
    }
}

static struct event *reply_ev;

/* fake_deliver - ok@ 250, temp@ 450, perm@ 550; anything else 250 */
static int fake_deliver(void *ctx, const struct delivery_job *job, delivery_done_fn done,
                        void *done_ctx)
{
    struct fake_call *c = &calls[ncalls++];
    struct timeval zero = { 0, 0 };

    (void) ctx;
    snprintf(last_transport_sender, sizeof(last_transport_sender), "%s", job->sender);
    delivery_report_init(&c->rep, job->nrcpt);
    snprintf(c->rep.relay, sizeof(c->rep.relay), "fake[127.0.0.1]:9");
    for (size_t i = 0; i < job->nrcpt; i++) {
        if (strncmp(job->rcpts[i], "temp@", 5) == 0)
            delivery_set(&c->rep, i, DELIVERY_TEMP, "4.2.0", "450 4.2.0 busy");
        else if (strncmp(job->rcpts[i], "perm@", 5) == 0)
            delivery_set(&c->rep, i, DELIVERY_PERM, "5.1.1", "550 5.1.1 no such user");
        else
            delivery_set(&c->rep, i, DELIVERY_OK, "2.0.0", "250 2.0.0 Ok");
    }
    c->done = done;
    c->ctx = done_ctx;
    evtimer_add(reply_ev, &zero);
    return 0;
}

/* hook - count flush hook calls */
static void hook(void *ctx, const char *domain, const char *id, int added)
{
    (void) ctx;
    if (domain == NULL) {
        snprintf(hook_forgot, sizeof(hook_forgot), "%s", id);
        return;
    }
    if (strcmp(domain, "t.test") == 0)
        added ? hook_added++ : hook_done++;
    if (strcmp(domain, "site.test") == 0 && !added)
        hook_site_done++;
}

/* settle - run every event that is due, and what those make due, without waiting:
   the clock does not move while it runs, so no retry comes due */
static void settle(struct event_base *base)
{
    for (int i = 0; i < 200; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
}

/* count_fn - queue_walk callback: one more message */
static int count_fn(void *ctx, enum queue_dir dir, const char *id)
{
    (void) dir;
    (void) id;
    ++*(int *) ctx;
    return 0;
}

/* count_dir - messages in one queue directory */
static int count_dir(struct queue *q, enum queue_dir dir)
{
    int n = 0;

    if (queue_walk(q, dir, count_fn, &n) != QUEUE_OK)
        return -1;
    return n;
}

/* test_schedule - ok / temp / perm in one message, etrn-only deferred at arrival; the
   queue is the memory one and time moves through the clock seam */
static void test_schedule(void)
{
    static const char *const rcpts[] = { "ok@t.test", "temp@t.test", "perm@t.test" };
    static const char *const wait_rcpts[] = { "w@site.test" };
    struct server_config conf;
    struct event_base *base = event_base_new();
    struct queue q;
    struct queue_file qf;
    struct queue_msg msg;
    struct qmgr *m;
    struct buf js = BUF_INIT;
    char err[256], id[QUEUE_ID_MAX + 1], wid[QUEUE_ID_MAX + 1], path[256];

    reply_ev = evtimer_new(base, fake_reply_cb, NULL);
    if (write_conf(&conf, "etrn_only_domains = site.test\n") != 0
        || queue_ram_open(&q) != QUEUE_OK) {
        TEST_CHECK(0, "setup");
        return;
    }
    m = qmgr_new(base, &conf, &q, err, sizeof(err));
    TEST_CHECK(m != NULL, "qmgr_new: %s", err);
    qmgr_set_transport(m, SERVER_TRANSPORT_SMTP, fake_deliver, NULL);
    qmgr_set_flush_hook(m, hook, NULL);

    queue_create(&q, "alice@src.test", "test", rcpts, 3, &qf);
    queue_write(&qf, "Subject: s\r\n\r\nbody\r\n", 20);
    TEST_INTEQ(queue_commit(&qf), QUEUE_OK);
    snprintf(id, sizeof(id), "%s", qf.id);
    queue_create(&q, "bob@src.test", "test", wait_rcpts, 1, &qf);
    queue_write(&qf, "Subject: w\r\n\r\nbody\r\n", 20);
    TEST_INTEQ(queue_commit(&qf), QUEUE_OK);
    snprintf(wid, sizeof(wid), "%s", qf.id);
    /* the wall clock stands at t0 (a quarter second past a whole second) until moved */
    time_t t0 = time(NULL);
    clock_set_wall((double) t0 + 0.25);
    qmgr_incoming(m, id);
    qmgr_incoming(m, wid);
    settle(base);

    /* the message: ok delivered, perm bounced, temp pending, in deferred/ at +60 s */
    TEST_INTEQ(queue_load(&q, QUEUE_DEFERRED, id, &msg), QUEUE_OK);
    if (msg.nrcpt == 3) {
        TEST_INTEQ(msg.rcpts[0].state, QUEUE_RCPT_DELIVERED);
        TEST_INTEQ(msg.rcpts[1].state, QUEUE_RCPT_PENDING);
        TEST_STREQ(msg.rcpts[1].reason, "450 4.2.0 busy");
        TEST_INTEQ(msg.rcpts[2].state, QUEUE_RCPT_BOUNCED);
        TEST_INTEQ(msg.retry_time - t0, 60); /* minimal_backoff_time after the attempt */
    }
    queue_msg_free(&msg);
    /* etrn-only mail: deferred at arrival, never offered to the transport */
    TEST_INTEQ(queue_load(&q, QUEUE_DEFERRED, wid, &msg), QUEUE_OK);
    if (msg.nrcpt == 1) {
        TEST_STREQ(msg.rcpts[0].reason, "deferred transport");
        TEST_STREQ(msg.rcpts[0].dsn, "4.7.1");
    }
    queue_msg_free(&msg);
    /* transport calls: the message, then the DSN for perm@ from <> */
    TEST_INTEQ(ncalls, 2);
    TEST_STREQ(last_transport_sender, "");
    TEST_INTEQ(count_dir(&q, QUEUE_DEFERRED), 2);
    TEST_INTEQ(count_dir(&q, QUEUE_INCOMING) + count_dir(&q, QUEUE_ACTIVE), 0);
    TEST_INTEQ(hook_added, 1);
    TEST_INTEQ(hook_done, 0);

    qmgr_status_json(m, &js);
    const char *want_js = "\"total\":2,\"incoming\":0,\"active\":0,\"deferred\":2,\"hold\":0,"
                          "\"destinations\":[{\"destination\":\"etrn-only:site.test\",\"waiting\":1,";
    TEST_CHECK(strncmp(buf_cstr(&js), want_js, strlen(want_js)) == 0, "status: %s", buf_cstr(&js));

    /* a flush of site.test delivers the etrn-only message now */
    TEST_INTEQ(qmgr_flush_message(m, wid, "other.test"), 0);
    TEST_INTEQ(qmgr_flush_message(m, wid, "site.test"), 1);
    settle(base);
    TEST_INTEQ(ncalls, 3);
    TEST_INTEQ(queue_stat(&q, QUEUE_DEFERRED, wid, NULL), QUEUE_NOTFOUND); /* flushed, removed */
    TEST_INTEQ(count_dir(&q, QUEUE_DEFERRED), 1);

    /* hold, release, delete */
    TEST_INTEQ(qmgr_hold(m, id), QUEUE_OK);
    TEST_INTEQ(count_dir(&q, QUEUE_HOLD), 1);
    TEST_STREQ(hook_forgot, id); /* a held message leaves the flush index */
    hook_forgot[0] = 0;
    TEST_INTEQ(qmgr_flush_message(m, id, NULL), 0);
    TEST_INTEQ(qmgr_release(m, id), QUEUE_OK);
    TEST_INTEQ(qmgr_release(m, id), QUEUE_NOTFOUND);
    clock_set_wall((double) t0 + 30.25); /* 30 s later */
    settle(base);
    TEST_INTEQ(ncalls, 4); /* released: due now, temp@ tried again */
    TEST_STREQ(hook_forgot, "");
    /* time in queue 30 s, below minimal_backoff_time: the next try 60 s from the new now */
    TEST_INTEQ(queue_load(&q, QUEUE_DEFERRED, id, &msg), QUEUE_OK);
    TEST_INTEQ(msg.retry_time - t0, 90);
    queue_msg_free(&msg);
    buf_reset(&js);
    qmgr_status_json(m, &js);
    snprintf(path, sizeof(path), "\"last_attempt\":%lld,", (long long) t0 + 30);
    TEST_CHECK(strstr(buf_cstr(&js), path) != NULL, "status after the retry: %s", buf_cstr(&js));
    TEST_INTEQ(qmgr_delete(m, id), QUEUE_OK);
    TEST_INTEQ(count_dir(&q, QUEUE_DEFERRED) + count_dir(&q, QUEUE_HOLD)
               + count_dir(&q, QUEUE_INCOMING) + count_dir(&q, QUEUE_ACTIVE), 0);
    TEST_STREQ(hook_forgot, id); /* so does a deleted one */
    TEST_INTEQ(qmgr_delete(m, "ALL"), QUEUE_OK);
    TEST_STREQ(hook_forgot, "ALL");
    TEST_INTEQ(qmgr_delete(m, id), QUEUE_NOTFOUND);
    TEST_INTEQ(qmgr_delete(m, "../etc"), QUEUE_BADID);
    TEST_INTEQ(hook_site_done, 1); /* the flushed site.test message was delivered */
    TEST_INTEQ(hook_added, 2);      /* temp@t.test deferred twice */

    buf_free(&js);
    qmgr_free(m);
    fake_reply_cb(-1, 0, NULL);
    event_free(reply_ev);
    event_base_free(base);
    queue_close(&q);
    server_config_free(&conf);
    clock_set_wall(-1);
}

int main(void)
{
    char cmd[128];

    snprintf(top, sizeof(top), "/tmp/etrnkit-qmgr.XXXXXX");
    if (mkdtemp(top) == NULL)
        return 1;
    test_backoff();
    test_bounce_format();
    test_bounce_headers();
    test_local();
    test_schedule();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
    if (system(cmd) != 0)
        printf("cannot remove %s\n", top);
    return test_summary();
}
