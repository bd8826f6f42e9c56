/*
 * client_name - an SMTP client's name as Postfix's smtpd finds it: reverse DNS
 * with forward confirmation (mx_lookup_name), off the event loop.
 *
 * client_name_new(base, resolver): resolver as dns_resolver ("IP[:PORT]",
 * "[IPv6]:PORT"; NULL or "": the system's). client_name_lookup(cn, addr, fn,
 * ctx) starts one lookup on a detached thread (at most CLIENT_NAME_MAX at
 * once) and returns a handle; fn(ctx, name) then runs on the loop exactly
 * once: name is the verified host name (lower case), or NULL when there is
 * none, the lookup failed, or no answer came within CLIENT_NAME_TIMEOUT
 * seconds (a late answer is dropped). It returns NULL, and fn never runs,
 * when no lookup could start (too many at once, no thread): the client is
 * "unknown" then. client_name_cancel(handle) before fn ran: fn will not run.
 * client_name_set_resolver() applies to later lookups (SIGHUP).
 * client_name_free(), after every pending query was cancelled (or answered):
 * threads still running finish on their own and free what they hold.
 */
#ifndef ETRNKIT_CLIENT_NAME_H
#define ETRNKIT_CLIENT_NAME_H

#include <event2/event.h>

#define CLIENT_NAME_MAX 64     /* lookups at once; more clients are "unknown" */
#define CLIENT_NAME_TIMEOUT 5  /* seconds the greeting waits for a name */

struct client_names;
struct client_name_query;

typedef void (*client_name_fn)(void *ctx, const char *name);

struct client_names *client_name_new(struct event_base *base, const char *resolver, char *err,
                                     size_t errlen);
void client_name_set_resolver(struct client_names *cn, const char *resolver);
struct client_name_query *client_name_lookup(struct client_names *cn, const char *addr,
                                             client_name_fn fn, void *ctx);
void client_name_cancel(struct client_name_query *q);
void client_name_free(struct client_names *cn);

#endif
