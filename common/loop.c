/*
 * loop - releasing what a libevent user holds (contract in loop.h).
 */
#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "loop.h"

/* loop_event_free - free *ev if set; *ev is NULL afterwards */
void loop_event_free(struct event **ev)
{
    if (*ev) {
        event_free(*ev);
        *ev = NULL;
    }
}

/* loop_bufferevent_free - free *bev if set; *bev is NULL afterwards */
void loop_bufferevent_free(struct bufferevent **bev)
{
    if (*bev) {
        bufferevent_free(*bev);
        *bev = NULL;
    }
}
