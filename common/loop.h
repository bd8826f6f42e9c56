/*
 * loop - releasing what a libevent user holds.
 *
 * loop_event_free(&ev) frees the event *ev (a pending one is deleted
 * first) when it is set and leaves *ev NULL; loop_bufferevent_free(&bev)
 * does the same for a bufferevent (which closes its socket when it was
 * made with BEV_OPT_CLOSE_ON_FREE). Both accept a pointer to NULL and do
 * nothing then, so a teardown can release whatever a half-built object
 * got, and a second call frees nothing twice. libevent's own free functions
 * must not be given NULL.
 */
#ifndef ETRNKIT_LOOP_H
#define ETRNKIT_LOOP_H

struct event;
struct bufferevent;

void loop_event_free(struct event **ev);
void loop_bufferevent_free(struct bufferevent **bev);

#endif
