/*
 * transport_local - Maildir delivery for mydestination domains.
 *
 * A recipient user@domain is delivered to
 * local_maildir_base/DOMAIN/USER/home_mailbox (e.g. .../Maildir/), domain and
 * user folded to lower case. Policy for unknown users: there is no user table;
 * the Maildir (and DOMAIN/USER above it) is created on first delivery, mode 0700.
 * A local part that cannot be a file name (empty, leading '.', '/' or a byte
 * outside [a-z0-9._+=-]) is a permanent failure 5.1.3. Each copy is written to
 * tmp/ with "Return-Path: <sender>" and "Delivered-To: user@domain" prepended
 * and CRLF turned into LF, fsync'ed, linked into new/ under a unique name
 * (time.MusecPpidQn.host), and new/ is fsync'ed: only then is it DELIVERY_OK.
 * I/O errors are DELIVERY_TEMP (4.3.0; disk full 4.3.1; quota 4.2.2).
 * local_transport_deliver_now() does one job synchronously (pure file I/O);
 * local_transport_deliver() does the same and reports through the event loop
 * (done is never called from inside the call), as delivery.h asks.
 * local_transport_free() drops unreported results without calling done.
 */
#ifndef ETRNKIT_TRANSPORT_LOCAL_H
#define ETRNKIT_TRANSPORT_LOCAL_H

#include "delivery.h"

struct event_base;
struct server_config;
struct local_transport;

struct local_transport *local_transport_new(struct event_base *base,
                                            const struct server_config *conf);
void local_transport_set_config(struct local_transport *t, const struct server_config *conf);
/* 0: accepted, done follows; -1: not accepted (done is never called) */
int local_transport_deliver(struct local_transport *t, const struct delivery_job *job,
                            delivery_done_fn done, void *ctx);
/* fill report (delivery_report_init'ed by the caller for job->nrcpt) */
void local_transport_deliver_now(const struct server_config *conf, const struct delivery_job *job,
                                 struct delivery_report *report);
void local_transport_free(struct local_transport *t);

#endif
