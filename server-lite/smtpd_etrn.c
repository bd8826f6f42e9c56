/*
 * smtpd_etrn.c - ETRN policy: syntax, rate limit, restrictions, #queue,
 * [etrn_users], then the flush service and one switch from its result to
 * the reply, as Postfix's etrn_cmd ends in one switch over flush_send_site.
 */
#define LOG_SERVICE "smtpd" /* its log lines: syslog_name/smtpd[pid] */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "anvil.h"
#include "buf.h"
#include "clock.h"
#include "domain.h"
#include "log.h"
#include "server_config.h"
#include "smtpd_etrn.h"

#define NODE_MAX (DOMAIN_MAX + 4) /* "@", "#" or "[...]" around a domain, and the NUL */

/* reject - the refusal's reply line, logged as Postfix logs a NOQUEUE reject */
static void reject(const struct smtpd_etrn_client *c, struct buf *reply, const char *fmt, ...)
    LOG_PRINTF(3, 4);
static void reject(const struct smtpd_etrn_client *c, struct buf *reply, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(reply, fmt, ap);
    va_end(ap);
    log_info("NOQUEUE: reject: ETRN from %s: %s; proto=%s helo=<%s>%s%s", c->client,
             buf_cstr(reply), c->esmtp ? "ESMTP" : "SMTP", c->helo ? c->helo : "",
             c->user ? " sasl_username=" : "", c->user ? c->user : "");
}

/* syntax - the argument's kind, the node (lower case unless a literal); else replied */
static enum etrn_arg_kind syntax(const struct smtpd_etrn_client *c, const char *arg,
                                 char node[NODE_MAX], struct buf *reply)
{
    enum etrn_arg_kind kind;
    const char *why;

    if (*arg == 0 || strchr(arg, ' ') != NULL) {
        buf_puts(reply, "500 5.5.2 Syntax: ETRN domain");
        return ETRN_ARG_INVALID;
    }
    kind = domain_etrn_arg(arg, &why);
    if (kind == ETRN_ARG_INVALID || strlen(arg) >= NODE_MAX) {
        reject(c, reply, "501 5.5.4 Error: invalid parameter syntax (%s)",
               kind == ETRN_ARG_INVALID && why ? why : "too long");
        return ETRN_ARG_INVALID;
    }
    snprintf(node, NODE_MAX, "%s", arg);
    if (kind != ETRN_ARG_LITERAL)
        domain_lowercase(node);
    return kind;
}

/* rate_exceeded - count one ETRN of this client; 1 when past etrn_rate_limit */
static int rate_exceeded(const struct smtpd_etrn_policy *p, const struct smtpd_etrn_client *c)
{
    if (p->conf->etrn_rate_limit <= 0 || c->exempt)
        return 0;
    return anvil_event(p->anvil, ANVIL_ETRN, c->addr, clock_now_ms())
           > (unsigned long long) p->conf->etrn_rate_limit;
}

/* restrictions - smtpd_etrn_restrictions (implicit permit at the end); 0, or -1 replied */
static int restrictions(const struct smtpd_etrn_policy *p, const struct smtpd_etrn_client *c,
                        const char *node, struct buf *reply)
{
    const struct server_config *conf = p->conf;

    for (size_t i = 0; i < conf->netrn_restrictions; i++) {
        switch (conf->etrn_restrictions[i]) {
        case SERVER_RESTRICT_PERMIT:
            return 0;
        case SERVER_RESTRICT_PERMIT_MYNETWORKS:
            if (c->mynet)
                return 0;
            break;
        case SERVER_RESTRICT_PERMIT_SASL_AUTHENTICATED:
            if (c->user)
                return 0;
            break;
        case SERVER_RESTRICT_REJECT:
            reject(c, reply, "554 5.7.1 <%s>: Etrn command rejected: Access denied", node);
            return -1;
        case SERVER_RESTRICT_DEFER:
            reject(c, reply, "450 4.7.1 <%s>: Etrn command rejected: Try again later", node);
            return -1;
        }
    }
    return 0;
}

/* item_allowed - "host" or "@host" allowed for the user's entry (none: anything) */
static int item_allowed(const struct server_etrn_user *u, const char *item)
{
    if (u == NULL)
        return 1;
    if (item[0] == '[')
        return 0;
    return item[0] == '@' ? server_etrn_user_covers(u, item + 1, 1)
                          : server_etrn_user_covers(u, item, 0);
}

/* user_permits - every domain the ETRN names is in the user's [etrn_users] entry */
static int user_permits(const struct smtpd_etrn_policy *p, const struct smtpd_etrn_client *c,
                        const struct server_etrn_queue *queue, const char *node)
{
    const struct server_etrn_user *u = c->user ? server_etrn_user_find(p->conf, c->user) : NULL;

    if (queue == NULL)
        return item_allowed(u, node);
    for (size_t i = 0; i < queue->domains.count; i++)
        if (!item_allowed(u, queue->domains.items[i]))
            return 0;
    return 1;
}

/* ask - one domain ("host", "@host" or "[literal]") to the flush service */
static enum flush_result ask(const struct smtpd_etrn_policy *p, const struct smtpd_etrn_client *c,
                             const char *item, size_t *pending)
{
    int sub = item[0] == '@';

    *pending = 0;
    if (p->flush == NULL)
        return FLUSH_ERROR;
    return p->flush(p->flush_ctx, item + sub, sub, c->client, c->user, pending);
}

/* ask_queue - every domain of a #queue: started if any started, counts summed */
static enum flush_result ask_queue(const struct smtpd_etrn_policy *p,
                                   const struct smtpd_etrn_client *c,
                                   const struct server_etrn_queue *queue, size_t *pending)
{
    int started = 0, nothing = 0, error = 0;

    *pending = 0;
    for (size_t i = 0; i < queue->domains.count; i++) {
        size_t n = 0;

        switch (ask(p, c, queue->domains.items[i], &n)) {
        case FLUSH_STARTED:
            started = 1;
            *pending += n;
            break;
        case FLUSH_NOTHING:
            nothing = 1;
            break;
        case FLUSH_ERROR:
            error = 1;
            break;
        case FLUSH_NOT_ELIGIBLE:
            break;
        }
    }
    return started ? FLUSH_STARTED : nothing ? FLUSH_NOTHING : error ? FLUSH_ERROR
                                                                    : FLUSH_NOT_ELIGIBLE;
}

/* smtpd_etrn - judge one ETRN and ask for the flush; the reply line goes to reply */
void smtpd_etrn(const struct smtpd_etrn_policy *p, const struct smtpd_etrn_client *c,
                const char *arg, struct buf *reply)
{
    const struct server_etrn_queue *queue = NULL;
    enum etrn_arg_kind kind;
    char node[NODE_MAX];
    size_t pending = 0;

    if ((kind = syntax(c, arg, node, reply)) == ETRN_ARG_INVALID)
        return;
    if (rate_exceeded(p, c)) {
        reject(c, reply, "458 4.7.0 Error: too many ETRN requests from %s", c->addr);
        return;
    }
    if (restrictions(p, c, node, reply) != 0)
        return;
    if ((kind == ETRN_ARG_QUEUE && (queue = server_etrn_queue_find(p->conf, node + 1)) == NULL)
        || !user_permits(p, c, queue, node)) {
        reject(c, reply, "459 <%s>: service unavailable", node);
        return;
    }
    switch (queue ? ask_queue(p, c, queue, &pending) : ask(p, c, node, &pending)) {
    case FLUSH_STARTED:
        log_info("ETRN %s from %s: %zu messages", node, c->client, pending);
        if (p->conf->etrn_reply == SERVER_ETRN_REPLY_POSTFIX)
            buf_puts(reply, "250 Queuing started");
        else
            buf_printf(reply, "253 OK, %zu pending messages for node %s started", pending, node);
        break;
    case FLUSH_NOTHING:
        log_info("ETRN %s from %s: 0 messages", node, c->client);
        if (p->conf->etrn_reply == SERVER_ETRN_REPLY_POSTFIX)
            buf_puts(reply, "250 Queuing started");
        else
            buf_printf(reply, "251 OK, no messages waiting for node %s", node);
        break;
    case FLUSH_NOT_ELIGIBLE:
        reject(c, reply, "459 <%s>: service unavailable", node);
        break;
    case FLUSH_ERROR:
        if (p->flush == NULL)
            log_warn("ETRN %s from %s: no flush service in this server", node, c->client);
        reject(c, reply, "458 Unable to queue messages for node %s", node);
        break;
    }
}
