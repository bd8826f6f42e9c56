/*
 * handoff - hand items from any thread to the event loop's thread.
 *
 * handoff_new(base, fn, ctx) registers an eventfd on base; NULL with a
 * message in err when the eventfd or its event cannot be made.
 * handoff_post(h, item) may be called from any thread: it appends item (the
 * caller embeds a struct handoff_item in its own struct and owns it) and
 * wakes the loop, which calls fn(ctx, item) for each posted item, in the
 * order posted, on the loop's thread. handoff_run(h) does the same at once
 * (loop thread only: e.g. to drain before a shutdown). handoff_free(h)
 * first runs whatever was posted, then closes the eventfd; no thread may
 * post meanwhile. Posting never fails (an eventfd write only refuses when
 * its counter is already non-zero and huge: the loop wakes anyway).
 *
 * For detached threads that may outlive the hand-off's user (a DNS lookup
 * still running at shutdown): handoff_hold(h) (loop thread) counts one more
 * poster before the thread starts; the thread ends with
 * handoff_post_release(h, item), or handoff_release(h) when it has nothing
 * to post. handoff_close(h, drop) replaces handoff_free: it runs what was
 * posted, unregisters and closes the eventfd; an item posted after it goes
 * to drop(item) on the posting thread, and the last release frees h.
 */
#ifndef ETRNKIT_HANDOFF_H
#define ETRNKIT_HANDOFF_H

#include <stddef.h>

struct event_base;
struct handoff;

struct handoff_item {
    struct handoff_item *next;
};

typedef void (*handoff_fn)(void *ctx, struct handoff_item *item);
typedef void (*handoff_drop_fn)(struct handoff_item *item);

struct handoff *handoff_new(struct event_base *base, handoff_fn fn, void *ctx, char *err,
                            size_t errlen);
void handoff_post(struct handoff *h, struct handoff_item *item);
void handoff_run(struct handoff *h);
void handoff_free(struct handoff *h);
void handoff_hold(struct handoff *h);
void handoff_post_release(struct handoff *h, struct handoff_item *item);
void handoff_release(struct handoff *h);
void handoff_close(struct handoff *h, handoff_drop_fn drop);

#endif
