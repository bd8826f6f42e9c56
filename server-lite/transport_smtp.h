/*
 * transport_smtp - outbound SMTP delivery for the qmgr, on the caller's event loop.
 *
 * smtp_transport_new() sets up the transport on base (the server's one loop; no
 * threads but one short-lived resolver thread per DNS lookup, whose result comes
 * back through an eventfd). smtp_transport_deliver() copies the job (dups
 * content_fd): 0 = done(ctx, report) follows exactly once, from the loop, never
 * inside deliver; -1 = refused, no done. The next hop: mx = 0 connects to
 * route.host:route.port (a name is resolved to its A/AAAA records), mx = 1 to
 * the MX hosts of route.host in preference order (common/mx.h, conf->dns_resolver
 * or the system's), the host's A/AAAA when it has no MX. A failure before MAIL
 * FROM (connect, greeting, EHLO, TLS) moves on to the next address, as Postfix;
 * with smtp_tls_security_level = may a failed TLS handshake is retried once on
 * the same address in plaintext. The session itself is server-lite/smtp_client.
 * Connection cache: after a message, the connection waits up to
 * smtp_connection_cache_time_limit for the next job to the same next hop (no DNS
 * for a cache hit; a dead-connection check before reuse; idle + busy connections
 * per next hop at most default_destination_concurrency_limit; none older than
 * smtp_connection_reuse_time_limit). Connect failures: DELIVERY_TEMP "connect to
 * host[addr]:port: reason", dsn 4.4.1; report->relay says who answered ("none").
 * Addresses with controls or <> are not sent (PERM 5.1.3/5.1.7).
 * set_config applies a new configuration to jobs started from then on. active =
 * accepted jobs whose done has not run. free closes every connection and drops
 * unfinished jobs without done (the queue keeps them pending); done must not free
 * the transport; ignore SIGPIPE.
 */
#ifndef ETRNKIT_TRANSPORT_SMTP_H
#define ETRNKIT_TRANSPORT_SMTP_H

#include <stddef.h>

#include "delivery.h"

struct event_base;
struct server_config;
struct smtp_transport;

/* NULL with err set: smtp_tls_CAfile cannot be loaded, or no eventfd */
struct smtp_transport *smtp_transport_new(struct event_base *base,
                                          const struct server_config *conf, char *err,
                                          size_t errlen);
void smtp_transport_set_config(struct smtp_transport *t, const struct server_config *conf);
int smtp_transport_deliver(struct smtp_transport *t, const struct delivery_job *job,
                           delivery_done_fn done, void *ctx);
size_t smtp_transport_active(const struct smtp_transport *t);
/* connections open now (busy, cached or quitting) and opened since the start */
size_t smtp_transport_connections(const struct smtp_transport *t, size_t *opened);
void smtp_transport_free(struct smtp_transport *t);

#endif
