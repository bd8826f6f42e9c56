/*
 * workq - run blocking jobs (a slow crypt(3), a file operation) on threads
 * and hand each result back to the event loop's thread (common/handoff).
 *
 * workq_new(base, nthreads) starts the threads with every signal blocked
 * (signals stay with the loop's thread); NULL with a message in err when a
 * thread, the eventfd or its event cannot be made.
 * workq_submit(wq, work, done, arg), from the loop's thread: work(arg) runs
 * on one of the threads, in submission order as threads free up; then
 * done(arg) runs on the loop's thread. arg belongs to the caller
 * throughout; done is always called, exactly once per job. done may be
 * NULL: the job then ends on its thread (work reports back by itself).
 * workq_drain(wq) waits for every submitted job and calls its done.
 * workq_free(wq) drains, stops the threads and unregisters; NULL is fine.
 */
#ifndef ETRNKIT_WORKQ_H
#define ETRNKIT_WORKQ_H

#include <stddef.h>

struct event_base;
struct workq;

typedef void (*workq_fn)(void *arg);

struct workq *workq_new(struct event_base *base, int nthreads, char *err, size_t errlen);
void workq_submit(struct workq *wq, workq_fn work, workq_fn done, void *arg);
size_t workq_pending(const struct workq *wq);
void workq_drain(struct workq *wq);
void workq_free(struct workq *wq);

#endif
