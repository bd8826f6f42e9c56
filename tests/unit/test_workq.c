/* Unit tests for common/workq and common/handoff: work off the loop's thread, done on it. */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "handoff.h"
#include "test.h"
#include "workq.h"

#define NJOBS 50

static pthread_t loop_thread;
static struct event_base *base;
static int ndone;

struct item {
    int index;
    int work_off_loop;  /* work ran on another thread */
    int done_on_loop;   /* done ran on the loop's thread */
    int done_calls;
};

static void work(void *arg)
{
    struct item *it = arg;

    it->work_off_loop = !pthread_equal(pthread_self(), loop_thread);
}

static void done(void *arg)
{
    struct item *it = arg;

    it->done_on_loop = pthread_equal(pthread_self(), loop_thread);
    it->done_calls++;
    if (++ndone == NJOBS)
        event_base_loopbreak(base);
}

static void test_workq(void)
{
    static struct item items[NJOBS], late[10];
    struct timeval limit = { 10, 0 };
    char err[256];
    struct workq *wq;
    int ok = 1;

    loop_thread = pthread_self();
    base = event_base_new();
    wq = workq_new(base, 2, err, sizeof(err));
    TEST_CHECK(wq != NULL, "workq_new: %s", err);
    if (wq == NULL)
        return;
    for (int i = 0; i < NJOBS; i++) {
        items[i].index = i;
        workq_submit(wq, work, done, &items[i]);
    }
    TEST_INTEQ(workq_pending(wq), NJOBS);
    event_base_loopexit(base, &limit); /* a bound, should the test be broken */
    event_base_dispatch(base);
    TEST_INTEQ(ndone, NJOBS);
    for (int i = 0; i < NJOBS; i++)
        ok &= items[i].work_off_loop && items[i].done_on_loop && items[i].done_calls == 1;
    TEST_CHECK(ok, "every job: work on a worker thread, done once on the loop's thread");
    TEST_INTEQ(workq_pending(wq), 0);
    /* workq_free calls done for what is still pending */
    for (int i = 0; i < 10; i++)
        workq_submit(wq, work, done, &late[i]);
    workq_free(wq);
    ok = 1;
    for (int i = 0; i < 10; i++)
        ok &= late[i].done_calls == 1 && late[i].work_off_loop;
    TEST_CHECK(ok, "workq_free: every pending job worked and done once");
    event_base_free(base);
}

/* slow_work - a job without done: takes a while, then counts itself */
static int nslow;

static void slow_work(void *arg)
{
    (void) arg;
    usleep(20000);
    __atomic_add_fetch(&nslow, 1, __ATOMIC_SEQ_CST);
}

/* test_workq_no_done - a job without done is not pending, and workq_drain still waits for it */
static void test_workq_no_done(void)
{
    struct event_base *b = event_base_new();
    char err[256];
    struct workq *wq = workq_new(b, 2, err, sizeof(err));

    TEST_CHECK(wq != NULL, "workq_new: %s", err);
    if (wq == NULL)
        return;
    for (int i = 0; i < 4; i++)
        workq_submit(wq, slow_work, NULL, NULL);
    TEST_INTEQ(workq_pending(wq), 0);
    workq_drain(wq);
    TEST_INTEQ(__atomic_load_n(&nslow, __ATOMIC_SEQ_CST), 4);
    workq_free(wq);
    event_base_free(b);
}

struct posted {
    struct handoff_item link;
    int n;
};

static int order_ok = 1, nseen;

static void seen(void *ctx, struct handoff_item *item)
{
    struct posted *p = (struct posted *) item;

    (void) ctx;
    order_ok &= p->n == nseen++;
}

static void *poster(void *arg)
{
    static struct posted p[100];
    struct handoff *h = arg;

    for (int i = 0; i < 100; i++) {
        p[i].n = i;
        handoff_post(h, &p[i].link);
    }
    return NULL;
}

static void test_handoff(void)
{
    struct event_base *b = event_base_new();
    char err[256];
    struct handoff *h = handoff_new(b, seen, NULL, err, sizeof(err));
    pthread_t t;

    TEST_CHECK(h != NULL, "handoff_new: %s", err);
    if (h == NULL)
        return;
    pthread_create(&t, NULL, poster, h);
    pthread_join(t, NULL);
    /* the eventfd is readable: one pass of the loop delivers all, in order */
    event_base_loop(b, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    TEST_INTEQ(nseen, 100);
    TEST_CHECK(order_ok, "items arrive in the order posted");
    handoff_free(h);
    event_base_free(b);
}

/* a holder that outlives its hand-off: posted before the close, its item runs
   in the close; posted after, it is dropped on its own thread */
static int nrun, ndropped;
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;

static void run_fn(void *ctx, struct handoff_item *item)
{
    (void) ctx;
    (void) item;
    nrun++;
}

static void drop_fn(struct handoff_item *item)
{
    (void) item;
    __atomic_add_fetch(&ndropped, 1, __ATOMIC_SEQ_CST);
}

static void *late_poster(void *arg)
{
    static struct posted late;
    struct handoff *h = arg;

    pthread_mutex_lock(&gate_mu);
    while (!gate_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    handoff_post_release(h, &late.link);
    return NULL;
}

static void test_handoff_close(void)
{
    static struct posted early;
    struct event_base *b = event_base_new();
    char err[256];
    struct handoff *h = handoff_new(b, run_fn, NULL, err, sizeof(err));
    pthread_t t;

    TEST_CHECK(h != NULL, "handoff_new: %s", err);
    if (h == NULL)
        return;
    handoff_hold(h);
    handoff_hold(h);
    handoff_hold(h);
    pthread_create(&t, NULL, late_poster, h);
    handoff_post_release(h, &early.link); /* a holder that posts before the close */
    handoff_release(h);                   /* one that had nothing to post */
    handoff_close(h, drop_fn);
    TEST_INTEQ(nrun, 1);
    TEST_INTEQ(ndropped, 0);
    pthread_mutex_lock(&gate_mu);
    gate_open = 1;
    pthread_cond_signal(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    pthread_join(t, NULL); /* its release frees h (ASan: no leak, no use after free) */
    TEST_INTEQ(nrun, 1);
    TEST_INTEQ(ndropped, 1);
    event_base_free(b);
}

int main(void)
{
    test_workq();
    test_workq_no_done();
    test_handoff();
    test_handoff_close();
    return test_summary();
}
