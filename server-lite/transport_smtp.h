/*
 * transport_smtp - outbound SMTP delivery for the qmgr: libcurl multi, off the caller's loop.
 *
 * smtp_transport_new() starts SMTP_TRANSPORT_WORKERS threads (own event_base and curl
 * multi each; it calls curl_global_init, so create it before other threads use libcurl);
 * base is the caller's loop. smtp_transport_deliver() copies the job (dups content_fd;
 * conf values are copied too) and hands it to worker smtp_transport_shard(&job->route):
 * 0 = done(ctx, report) follows exactly once, on base's thread, never inside deliver;
 * -1 = refused, no done. The next hop: mx = 0 connects to route.host:route.port, mx = 1
 * to the MX hosts of route.host in preference order (common/mx.h, conf->dns_resolver or
 * the system's), next MX on connect failure, the host's A/AAAA when it has no MX.
 * STARTTLS when offered (opportunistic, no verification); one reply per recipient;
 * idle connections are reused (a destination always uses the same worker).
 * Connect failures: DELIVERY_TEMP "connect to host[addr]:port: reason", dsn 4.4.1;
 * report->relay says who answered. Addresses with controls or <> are not sent (PERM
 * 5.1.3/5.1.7). Blocking: libcurl waits for the reply to the final "." (and QUIT)
 * with a blocking poll; that blocks one worker, so a receiver that stalls after the
 * data delays the other deliveries of its shard for up to the reply timeout (300 s),
 * never the caller's loop. set_config copies what it needs (conf may go after it).
 * active = accepted jobs whose done has not run. free stops the workers within about
 * 2 s (a stuck worker's connections are cut), drops unfinished jobs without done (the
 * queue keeps them pending); done must not free the transport; ignore SIGPIPE.
 */
#ifndef ETRNKIT_TRANSPORT_SMTP_H
#define ETRNKIT_TRANSPORT_SMTP_H

#include <stddef.h>

#include "delivery.h"

/* worker threads: a stalled receiver holds up about 1/K of the destinations */
#define SMTP_TRANSPORT_WORKERS 4

struct event_base;
struct server_config;
struct server_route;
struct smtp_transport;

struct smtp_transport *smtp_transport_new(struct event_base *base,
                                          const struct server_config *conf, char *err,
                                          size_t errlen);
void smtp_transport_set_config(struct smtp_transport *t, const struct server_config *conf);
int smtp_transport_deliver(struct smtp_transport *t, const struct delivery_job *job,
                           delivery_done_fn done, void *ctx);
size_t smtp_transport_active(const struct smtp_transport *t);
void smtp_transport_free(struct smtp_transport *t);
/* the worker (0 .. SMTP_TRANSPORT_WORKERS - 1) a route's jobs run on */
unsigned smtp_transport_shard(const struct server_route *route);

#endif
