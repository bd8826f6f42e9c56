/*
 * transport_local - Maildir delivery for mydestination domains.
 *
 * A recipient user@domain is delivered to
 * local_maildir_base/DOMAIN/USER/home_mailbox (e.g. .../Maildir/), domain and
 * user folded to lower case. The Maildir (and DOMAIN/USER above it, mode
 * 0700) is created only for a recipient that a local_recipient_maps entry
 * names; any other recipient must already have one, else it is a permanent
 * failure 5.1.1 (smtpd refuses such recipients at RCPT; this catches mail
 * queued before a change). A local part that cannot be a file name
 * (recipient_local_part_ok) is a permanent failure 5.1.3. Each copy is
 * written to tmp/ with "Return-Path: <sender>" and "Delivered-To:
 * user@domain" prepended and CRLF turned into LF, fsync'ed, linked into new/
 * under a unique name (time.MusecPpidQn.host), and new/ is fsync'ed: only then
 * is it DELIVERY_OK. I/O errors are DELIVERY_TEMP (4.3.0; disk full 4.3.1;
 * quota 4.2.2).
 * local_transport_new() starts LOCAL_TRANSPORT_WORKERS threads (NULL with a
 * message in err when it cannot); local_transport_deliver() copies the job
 * (the content fd is dup()ed), a worker delivers it off the event loop, and
 * done() runs on base's loop afterwards (never from inside the call).
 * local_transport_deliver_now() does one job synchronously on the caller's
 * thread (tests). local_transport_free() lets each worker finish the
 * recipient in progress, joins them and drops unreported results without
 * calling done (the queue keeps those recipients pending).
 */
#ifndef ETRNKIT_TRANSPORT_LOCAL_H
#define ETRNKIT_TRANSPORT_LOCAL_H

#include "delivery.h"

struct event_base;
struct server_config;
struct local_transport;

#define LOCAL_TRANSPORT_WORKERS 2

struct local_transport *local_transport_new(struct event_base *base,
                                            const struct server_config *conf, char *err,
                                            size_t errlen);
void local_transport_set_config(struct local_transport *t, const struct server_config *conf);
/* 0: accepted, done follows; -1: not accepted (done is never called) */
int local_transport_deliver(struct local_transport *t, const struct delivery_job *job,
                            delivery_done_fn done, void *ctx);
/* fill report (delivery_report_init'ed by the caller for job->nrcpt) */
void local_transport_deliver_now(const struct server_config *conf, const struct delivery_job *job,
                                 struct delivery_report *report);
void local_transport_free(struct local_transport *t);

#endif
