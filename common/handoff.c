/*
 * handoff.c - a mutex-protected FIFO and an eventfd: a poster appends and
 * adds one to the counter; the loop reads the counter to zero, takes the
 * whole list under the mutex and calls fn without holding it, so fn may
 * post again or take other locks.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "handoff.h"
#include "log.h"
#include "loop.h"

struct handoff {
    struct event *ev;
    int efd;
    pthread_mutex_t mu;
    struct handoff_item *head, *tail;
    handoff_fn fn;
    void *ctx;
    int holds;               /* posters that may still post (handoff_hold) */
    int closed;              /* handoff_close ran: posts go to drop */
    handoff_drop_fn drop;
};

/* wake_cb - event: something was posted */
static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    handoff_run(arg);
}

/* handoff_new - an empty hand-off whose items fn gets on base's thread */
struct handoff *handoff_new(struct event_base *base, handoff_fn fn, void *ctx, char *err,
                            size_t errlen)
{
    struct handoff *h = xcalloc(1, sizeof(*h));

    h->fn = fn;
    h->ctx = ctx;
    if ((h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        free(h);
        return NULL;
    }
    h->ev = event_new(base, h->efd, EV_READ | EV_PERSIST, wake_cb, h);
    if (h->ev == NULL || event_add(h->ev, NULL) != 0) {
        snprintf(err, errlen, "cannot watch an eventfd with libevent");
        loop_event_free(&h->ev);
        close(h->efd);
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    return h;
}

/* append_locked - add item to the list (mutex held) */
static void append_locked(struct handoff *h, struct handoff_item *item)
{
    item->next = NULL;
    if (h->tail)
        h->tail->next = item;
    else
        h->head = item;
    h->tail = item;
}

/* wake - add one to the eventfd; EAGAIN: the counter is already non-zero, the loop looks anyway */
static void wake(struct handoff *h)
{
    uint64_t one = 1;

    while (write(h->efd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
}

/* handoff_post - (any thread) queue item for the loop and wake it */
void handoff_post(struct handoff *h, struct handoff_item *item)
{
    pthread_mutex_lock(&h->mu);
    append_locked(h, item);
    pthread_mutex_unlock(&h->mu);
    wake(h);
}

/* handoff_run - (loop thread) fn for every item posted so far */
void handoff_run(struct handoff *h)
{
    struct handoff_item *item;
    uint64_t n;

    if (read(h->efd, &n, sizeof(n)) < 0 && errno != EAGAIN && errno != EINTR)
        log_warn("hand-off eventfd: %s", strerror(errno));
    pthread_mutex_lock(&h->mu);
    item = h->head;
    h->head = h->tail = NULL;
    pthread_mutex_unlock(&h->mu);
    while (item) {
        struct handoff_item *next = item->next;

        h->fn(h->ctx, item);
        item = next;
    }
}

/* unregister - run what is left, leave the loop, close the eventfd */
static void unregister(struct handoff *h)
{
    handoff_run(h);
    event_free(h->ev);
    if (close(h->efd) != 0)
        log_warn("close hand-off eventfd: %s", strerror(errno));
}

/* handoff_free - run what is left, unregister, close */
void handoff_free(struct handoff *h)
{
    if (h == NULL)
        return;
    unregister(h);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* handoff_hold - (loop thread) one more poster, released by handoff_post_release */
void handoff_hold(struct handoff *h)
{
    pthread_mutex_lock(&h->mu);
    h->holds++;
    pthread_mutex_unlock(&h->mu);
}

/* release_locked - drop one hold (mutex held on entry, released); the last one after a close frees h */
static void release_locked(struct handoff *h)
{
    int last = --h->holds == 0 && h->closed;

    pthread_mutex_unlock(&h->mu);
    if (last) {
        pthread_mutex_destroy(&h->mu);
        free(h);
    }
}

/* handoff_post_release - (a holder's thread) post item, or drop it after a close; release */
void handoff_post_release(struct handoff *h, struct handoff_item *item)
{
    pthread_mutex_lock(&h->mu);
    if (h->closed) {
        h->drop(item);
    } else {
        append_locked(h, item);
        wake(h); /* under the mutex: handoff_close cannot close the eventfd meanwhile */
    }
    release_locked(h);
}

/* handoff_release - (a holder's thread) release without posting */
void handoff_release(struct handoff *h)
{
    pthread_mutex_lock(&h->mu);
    release_locked(h);
}

/* handoff_close - (loop thread) run what was posted, unregister; later posts are dropped */
void handoff_close(struct handoff *h, handoff_drop_fn drop)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    h->closed = 1;
    h->drop = drop;
    pthread_mutex_unlock(&h->mu);
    unregister(h);
    pthread_mutex_lock(&h->mu);
    h->holds++; /* the loop's own part, released at once */
    release_locked(h);
}
