/*
 * transport_smtp - outbound SMTP delivery for the qmgr, libcurl multi on libevent.
 *
 * smtp_transport_new() attaches a curl multi handle to base. smtp_transport_deliver()
 * starts one job (delivery.h) and returns at once; done(ctx, report) follows from the
 * event loop exactly once. The next hop comes from job->route: mx = 0 means connect
 * to route.host:route.port; mx = 1 means the MX hosts of route.host in preference
 * order (common/mx.h, resolver conf->dns_resolver or the system's; the lookup runs
 * off the event loop), falling back to the next MX on connect failure and to the
 * host's A/AAAA when it has no MX. STARTTLS when the server offers it (opportunistic,
 * no verification). One reply per recipient (CURLOPT_MAIL_RCPT_ALLOWFAILS and the
 * replies read from the debug callback), libcurl dot-stuffs the content, and idle
 * connections are reused for the next job to the same host (connection cache).
 * Connection failures are DELIVERY_TEMP with "connect to host[addr]:port: reason"
 * and dsn 4.4.1; report->relay says who answered. smtp_transport_free() cancels
 * unfinished jobs without calling done (the queue keeps them pending).
 */
#ifndef ETRNKIT_TRANSPORT_SMTP_H
#define ETRNKIT_TRANSPORT_SMTP_H

#include <stddef.h>

#include "delivery.h"

struct event_base;
struct server_config;
struct smtp_transport;

struct smtp_transport *smtp_transport_new(struct event_base *base,
                                          const struct server_config *conf, char *err,
                                          size_t errlen);
void smtp_transport_set_config(struct smtp_transport *t, const struct server_config *conf);
int smtp_transport_deliver(struct smtp_transport *t, const struct delivery_job *job,
                           delivery_done_fn done, void *ctx);
size_t smtp_transport_active(const struct smtp_transport *t);
void smtp_transport_free(struct smtp_transport *t);

#endif
