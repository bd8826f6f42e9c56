/*
 * smtpd_etrn - what smtpd answers to ETRN (RFC 1985), apart from the session.
 *
 * smtpd_etrn(policy, client, arg, reply): one ETRN argument from one client
 *   whose session state allows ETRN; the one reply line (without CRLF) goes
 *   to reply. In order: syntax (500 no or two arguments, 501 not a domain,
 *   "@domain", "#queue" or "[address]"), etrn_rate_limit per client
 *   address (458; not for exempt clients), smtpd_etrn_restrictions (554 or
 *   450), an unknown #queue (459), the [etrn_users] entry of the SASL user
 *   (459 for a domain it does not list), then the flush hook, once per
 *   domain of a #queue: FLUSH_STARTED 253 with the count, FLUSH_NOTHING 251
 *   (both "250 Queuing started" with etrn_reply = postfix),
 *   FLUSH_NOT_ELIGIBLE 459, FLUSH_ERROR 458; no hook: 458. Every refusal is
 *   logged as Postfix logs it ("NOQUEUE: reject: ETRN from ..."), every
 *   accepted ETRN as "ETRN node from client: N messages".
 * The hook gets the domain in lower case without its '@' (with_subdomains
 *   = 1 for "@domain"), or an "[address]" literal as given; client is
 *   "name[addr]", user the SASL user or NULL.
 * Nothing is kept between calls; the policy's pointers belong to the caller.
 */
#ifndef ETRNKIT_SMTPD_ETRN_H
#define ETRNKIT_SMTPD_ETRN_H

#include <stddef.h>

#include "flush.h"

struct anvil;
struct buf;
struct server_config;

typedef enum flush_result (*smtpd_etrn_fn)(void *ctx, const char *domain, int with_subdomains,
                                           const char *client, const char *user,
                                           size_t *pending);

struct smtpd_etrn_policy {
    const struct server_config *conf;
    struct anvil *anvil;        /* counts ETRN per client address */
    smtpd_etrn_fn flush;        /* NULL: a permitted ETRN answers 458 */
    void *flush_ctx;
};

struct smtpd_etrn_client {
    const char *addr;           /* the address text, e.g. "192.0.2.1" */
    const char *client;         /* "name[addr]" */
    const char *helo;           /* or NULL */
    const char *user;           /* the SASL user, or NULL */
    int esmtp, mynet, exempt;   /* EHLO; in mynetworks; in the event limit exceptions */
};

void smtpd_etrn(const struct smtpd_etrn_policy *p, const struct smtpd_etrn_client *c,
                const char *arg, struct buf *reply);

#endif
