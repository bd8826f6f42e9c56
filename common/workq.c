/*
 * workq.c - a FIFO of jobs under a mutex, a condition the threads wait on,
 * and a hand-off back to the loop. pending counts jobs whose done has not
 * run (loop thread only); running counts jobs taken but not yet posted
 * back, so workq_drain knows when everything is on the hand-off.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "handoff.h"
#include "workq.h"

struct job {
    struct handoff_item link; /* first: the hand-off gives it back as a job */
    struct job *next;
    workq_fn work, done;
    void *arg;
};

struct workq {
    struct handoff *back;
    pthread_mutex_t mu;
    pthread_cond_t work;      /* a job was queued, or stop */
    pthread_cond_t idle;      /* a job was posted back */
    struct job *head, *tail;
    size_t inflight;          /* queued or running */
    size_t pending;           /* done not yet called (loop thread) */
    int stop;
    pthread_t *threads;
    int nthreads;
};

/* worker - take jobs until told to stop */
static void *worker(void *p)
{
    struct workq *wq = p;

    pthread_mutex_lock(&wq->mu);
    for (;;) {
        struct job *j;

        while (wq->head == NULL && !wq->stop)
            pthread_cond_wait(&wq->work, &wq->mu);
        if (wq->head == NULL)
            break;
        j = wq->head;
        if ((wq->head = j->next) == NULL)
            wq->tail = NULL;
        pthread_mutex_unlock(&wq->mu);
        j->work(j->arg);
        if (j->done)
            handoff_post(wq->back, &j->link);
        else
            free(j);
        pthread_mutex_lock(&wq->mu);
        wq->inflight--;
        pthread_cond_broadcast(&wq->idle);
    }
    pthread_mutex_unlock(&wq->mu);
    return NULL;
}

/* job_back - (loop thread) a job's work is done: its done function */
static void job_back(void *ctx, struct handoff_item *item)
{
    struct workq *wq = ctx;
    struct job *j = (struct job *) item;

    wq->pending--;
    j->done(j->arg);
    free(j);
}

/* workq_new - start nthreads (at least one) threads; results come back on base */
struct workq *workq_new(struct event_base *base, int nthreads, char *err, size_t errlen)
{
    struct workq *wq = xcalloc(1, sizeof(*wq));
    sigset_t all, old;
    int rc;

    if ((wq->back = handoff_new(base, job_back, wq, err, errlen)) == NULL) {
        free(wq);
        return NULL;
    }
    pthread_mutex_init(&wq->mu, NULL);
    pthread_cond_init(&wq->work, NULL);
    pthread_cond_init(&wq->idle, NULL);
    if (nthreads < 1)
        nthreads = 1;
    wq->threads = xcalloc((size_t) nthreads, sizeof(pthread_t));
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < nthreads; i++) {
        if ((rc = pthread_create(&wq->threads[i], NULL, worker, wq)) != 0) {
            snprintf(err, errlen, "cannot start a worker thread: %s", strerror(rc));
            break;
        }
        wq->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (wq->nthreads < nthreads) {
        workq_free(wq);
        return NULL;
    }
    return wq;
}

/* workq_submit - (loop thread) work(arg) on a thread, then done(arg) on the loop */
void workq_submit(struct workq *wq, workq_fn work, workq_fn done, void *arg)
{
    struct job *j = xcalloc(1, sizeof(*j));

    j->work = work;
    j->done = done;
    j->arg = arg;
    if (done)
        wq->pending++;
    pthread_mutex_lock(&wq->mu);
    if (wq->tail)
        wq->tail->next = j;
    else
        wq->head = j;
    wq->tail = j;
    wq->inflight++;
    pthread_cond_signal(&wq->work);
    pthread_mutex_unlock(&wq->mu);
}

/* workq_pending - jobs whose done has not run yet */
size_t workq_pending(const struct workq *wq)
{
    return wq ? wq->pending : 0;
}

/* workq_drain - (loop thread) wait for every job and call its done; done may submit more */
void workq_drain(struct workq *wq)
{
    if (wq == NULL)
        return;
    do {
        pthread_mutex_lock(&wq->mu);
        while (wq->inflight > 0)
            pthread_cond_wait(&wq->idle, &wq->mu);
        pthread_mutex_unlock(&wq->mu);
        handoff_run(wq->back);
    } while (wq->pending > 0);
}

/* workq_free - drain, stop the threads, unregister from the loop */
void workq_free(struct workq *wq)
{
    if (wq == NULL)
        return;
    workq_drain(wq);
    pthread_mutex_lock(&wq->mu);
    wq->stop = 1;
    pthread_cond_broadcast(&wq->work);
    pthread_mutex_unlock(&wq->mu);
    for (int i = 0; i < wq->nthreads; i++)
        pthread_join(wq->threads[i], NULL);
    free(wq->threads);
    handoff_free(wq->back);
    pthread_cond_destroy(&wq->work);
    pthread_cond_destroy(&wq->idle);
    pthread_mutex_destroy(&wq->mu);
    free(wq);
}
