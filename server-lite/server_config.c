#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "domain.h"
#include "mx.h"
#include "recipient.h"
#include "server_config.h"
#include "server_route.h"

#define OFF(field) offsetof(struct server_config, field)

/* CFG_ENUM fills an int: the enum fields it fills must have an int's size */
_Static_assert(sizeof(enum server_etrn_reply) == sizeof(int), "CFG_ENUM field size");
_Static_assert(sizeof(enum server_tls_level) == sizeof(int), "CFG_ENUM field size");

static const char *const etrn_reply_choices[] = { "rfc1985", "postfix", NULL };
/* order = enum server_tls_level */
static const char *const tls_level_choices[] = { "none", "may", "encrypt", "verify", "secure",
                                                 NULL };

/* [main]; defaults are DESIGN.md's, else Postfix's. */
static const struct cfg_key main_keys[] = {
    { "myhostname", CFG_STRING, NULL, 0, 0, NULL, OFF(myhostname), 0 },
    { "inet_interfaces", CFG_LIST, "0.0.0.0:25 [::]:25", 0, 0, NULL, OFF(inet_interfaces), 0 },
    { "odmr_listen", CFG_LIST, "", 0, 0, NULL, OFF(odmr_listen), 0 },
    { "odmr_session_time_limit", CFG_DURATION, "3600s", 1, 0, NULL,
      OFF(odmr_session_time_limit), 0 },
    { "queue_directory", CFG_STRING, "/var/spool/etrnkit", 0, 0, NULL, OFF(queue_directory), 0 },
    { "mail_owner", CFG_STRING, "etrnkit", 0, 0, NULL, OFF(mail_owner), 0 },
    { "maillog_file", CFG_STRING, NULL, 0, 0, NULL, OFF(maillog_file), 0 },
    { "syslog_name", CFG_STRING, "etrnkit", 0, 0, NULL, OFF(syslog_name), 0 },
    { "smtpd_peername_lookup", CFG_BOOL, "yes", 0, 0, NULL, OFF(smtpd_peername_lookup), 0 },
    { "mynetworks", CFG_LIST, "127.0.0.0/8 [::1]/128", 0, 0, NULL, OFF(mynetworks), 0 },
    { "relay_domains", CFG_LIST, NULL, 0, 0, NULL, OFF(relay_domains), 0 },
    { "mydestination", CFG_LIST, NULL, 0, 0, NULL, OFF(mydestination), 0 },
    { "home_mailbox", CFG_STRING, "Maildir/", 0, 0, NULL, OFF(home_mailbox), 0 },
    { "local_maildir_base", CFG_STRING, NULL, 0, 0, NULL, OFF(local_maildir_base), 0 },
    { "message_size_limit", CFG_INT, "10240000", 0, 0, NULL, OFF(message_size_limit), 0 },
    { "smtpd_recipient_limit", CFG_INT, "1000", 1, 0, NULL, OFF(smtpd_recipient_limit), 0 },
    { "smtpd_timeout", CFG_DURATION, "300s", 1, 0, NULL, OFF(smtpd_timeout), 0 },
    { "smtpd_client_connection_count_limit", CFG_INT, "50", 0, 0, NULL,
      OFF(smtpd_client_connection_count_limit), 0 },
    { "smtpd_client_connection_rate_limit", CFG_INT, "0", 0, 0, NULL,
      OFF(smtpd_client_connection_rate_limit), 0 },
    { "default_process_limit", CFG_INT, "100", 1, 0, NULL, OFF(default_process_limit), 0 },
    { "smtpd_per_request_deadline", CFG_BOOL, "yes", 0, 0, NULL, OFF(smtpd_per_request_deadline),
      0 },
    { "smtpd_min_data_rate", CFG_INT, "500", 1, 0, NULL, OFF(smtpd_min_data_rate), 0 },
    { "smtpd_client_auth_rate_limit", CFG_INT, "30", 0, 0, NULL,
      OFF(smtpd_client_auth_rate_limit), 0 },
    { "smtpd_error_sleep_time", CFG_DURATION, "1s", 0, 0, NULL, OFF(smtpd_error_sleep_time), 0 },
    { "smtpd_soft_error_limit", CFG_INT, "10", 0, 0, NULL, OFF(smtpd_soft_error_limit), 0 },
    { "smtpd_hard_error_limit", CFG_INT, "20", 0, 0, NULL, OFF(smtpd_hard_error_limit), 0 },
    { "smtpd_junk_command_limit", CFG_INT, "100", 1, 0, NULL, OFF(smtpd_junk_command_limit), 0 },
    { "smtpd_tls_cert_file", CFG_STRING, NULL, 0, 0, NULL, OFF(smtpd_tls_cert_file), 0 },
    { "smtpd_tls_key_file", CFG_STRING, NULL, 0, 0, NULL, OFF(smtpd_tls_key_file), 0 },
    { "smtpd_sasl_users_file", CFG_STRING, NULL, 0, 0, NULL, OFF(smtpd_sasl_users_file), 0 },
    { "smtpd_etrn_restrictions", CFG_LIST, "permit_mynetworks, permit_sasl_authenticated, reject",
      0, 0, NULL, OFF(smtpd_etrn_restrictions), 0 },
    { "etrn_rate_limit", CFG_INT, "10", 0, 0, NULL, OFF(etrn_rate_limit), 0 },
    { "anvil_rate_time_unit", CFG_DURATION, "60s", 1, 0, NULL, OFF(anvil_rate_time_unit), 0 },
    { "smtpd_client_event_limit_exceptions", CFG_LIST, "$mynetworks", 0, 0, NULL,
      OFF(smtpd_client_event_limit_exceptions), 0 },
    { "fast_flush_domains", CFG_LIST, "$relay_domains", 0, 0, NULL, OFF(fast_flush_domains), 0 },
    { "fast_flush_refresh_time", CFG_DURATION, "12h", 1, 0, NULL, OFF(fast_flush_refresh_time), 0 },
    { "fast_flush_purge_time", CFG_DURATION, "7d", 1, 0, NULL, OFF(fast_flush_purge_time), 0 },
    { "etrn_reply", CFG_ENUM, "rfc1985", 0, 0, etrn_reply_choices, OFF(etrn_reply), 0 },
    { "etrn_only_domains", CFG_LIST, NULL, 0, 0, NULL, OFF(etrn_only_domains), 0 },
    { "defer_transports", CFG_LIST, NULL, 0, 0, NULL, OFF(defer_transports), 0 },
    { "transport_maps", CFG_LIST, NULL, 0, 0, NULL, OFF(transport_maps), 0 },
    { "relay_recipient_maps", CFG_LIST, NULL, 0, 0, NULL, OFF(relay_recipient_maps), 0 },
    { "local_recipient_maps", CFG_LIST, NULL, 0, 0, NULL, OFF(local_recipient_maps), 0 },
    { "default_transport", CFG_STRING, "smtp", 0, 0, NULL, OFF(default_transport), 0 },
    { "relayhost", CFG_STRING, NULL, 0, 0, NULL, OFF(relayhost), 0 },
    { "dns_resolver", CFG_STRING, NULL, 0, 0, NULL, OFF(dns_resolver), 0 },
    { "queue_run_delay", CFG_DURATION, "900s", 1, 0, NULL, OFF(queue_run_delay), 0 },
    { "minimal_backoff_time", CFG_DURATION, "900s", 1, 0, NULL, OFF(minimal_backoff_time), 0 },
    { "maximal_backoff_time", CFG_DURATION, "3600s", 1, 0, NULL, OFF(maximal_backoff_time), 0 },
    { "maximal_queue_lifetime", CFG_DURATION, "1d", 0, 0, NULL, OFF(maximal_queue_lifetime), 0 },
    { "bounce_queue_lifetime", CFG_DURATION, "1d", 0, 0, NULL, OFF(bounce_queue_lifetime), 0 },
    { "default_destination_concurrency_limit", CFG_INT, "20", 1, 0, NULL,
      OFF(default_destination_concurrency_limit), 0 },
    /* the smtp client: Postfix's names and defaults */
    { "smtp_connect_timeout", CFG_DURATION, "30s", 1, 0, NULL, OFF(smtp_connect_timeout), 0 },
    { "smtp_helo_timeout", CFG_DURATION, "300s", 1, 0, NULL, OFF(smtp_helo_timeout), 0 },
    { "smtp_starttls_timeout", CFG_DURATION, "300s", 1, 0, NULL, OFF(smtp_starttls_timeout), 0 },
    { "smtp_mail_timeout", CFG_DURATION, "300s", 1, 0, NULL, OFF(smtp_mail_timeout), 0 },
    { "smtp_rcpt_timeout", CFG_DURATION, "300s", 1, 0, NULL, OFF(smtp_rcpt_timeout), 0 },
    { "smtp_data_init_timeout", CFG_DURATION, "120s", 1, 0, NULL, OFF(smtp_data_init_timeout), 0 },
    { "smtp_data_xfer_timeout", CFG_DURATION, "180s", 1, 0, NULL, OFF(smtp_data_xfer_timeout), 0 },
    { "smtp_data_done_timeout", CFG_DURATION, "600s", 1, 0, NULL, OFF(smtp_data_done_timeout), 0 },
    { "smtp_rset_timeout", CFG_DURATION, "20s", 1, 0, NULL, OFF(smtp_rset_timeout), 0 },
    { "smtp_quit_timeout", CFG_DURATION, "300s", 1, 0, NULL, OFF(smtp_quit_timeout), 0 },
    { "smtp_connection_cache_time_limit", CFG_DURATION, "2s", 0, 0, NULL,
      OFF(smtp_connection_cache_time_limit), 0 },
    { "smtp_connection_reuse_time_limit", CFG_DURATION, "300s", 1, 0, NULL,
      OFF(smtp_connection_reuse_time_limit), 0 },
    { "smtp_tls_security_level", CFG_ENUM, "may", 0, 0, tls_level_choices,
      OFF(smtp_tls_security_level), 0 },
    { "smtp_tls_CAfile", CFG_STRING, NULL, 0, 0, NULL, OFF(smtp_tls_CAfile), 0 },
    { "smtp_tls_policy_maps", CFG_LIST, NULL, 0, 0, NULL, OFF(smtp_tls_policy_maps), 0 },
    { NULL, 0, NULL, 0, 0, NULL, 0, 0 },
};

#define MAIN_NKEYS (sizeof(main_keys) / sizeof(main_keys[0]) - 1)

static const char *const transport_names[SERVER_TRANSPORT_COUNT] = { "smtp", "etrn-only", "local" };

static const char *const restriction_names[] = {
    "permit", "reject", "defer", "permit_mynetworks", "permit_sasl_authenticated", NULL,
};

/* What the loader carries while one file is read. */
struct load {
    struct server_config *conf;
    struct cfg_section sec;
    struct cfg_error *err;
    char *raw[MAIN_NKEYS];      /* [main] values as written (continuations joined) */
    int rawline[MAIN_NKEYS];
    char *expanded[MAIN_NKEYS]; /* after $name expansion */
    int state[MAIN_NKEYS];      /* 0 new, 1 expanding, 2 done */
    size_t stack[MAIN_NKEYS + 1];
    size_t depth;
    char hostname[256];
    char *last_table;           /* key of the previous [etrn_*] line */
    size_t order;
    const char *map_file;       /* the transport_maps file being read */
};

/* main_key_index - index of a [main] key, or -1 */
static int main_key_index(const char *name, size_t len)
{
    for (size_t i = 0; i < MAIN_NKEYS; i++)
        if (strlen(main_keys[i].name) == len && strncmp(main_keys[i].name, name, len) == 0)
            return (int) i;
    return -1;
}

/* server_transport_parse - transport name to enum server_transport, SERVER_TRANSPORT_NONE if unknown */
enum server_transport server_transport_parse(const char *name)
{
    for (int i = 0; i < SERVER_TRANSPORT_COUNT; i++)
        if (strcmp(name, transport_names[i]) == 0)
            return (enum server_transport) i;
    return SERVER_TRANSPORT_NONE;
}

/* server_transport_name - enum server_transport to its name */
const char *server_transport_name(enum server_transport transport)
{
    if (transport < 0 || transport >= SERVER_TRANSPORT_COUNT)
        return "?";
    return transport_names[transport];
}

/* parse_port - "1".."65535" */
static int parse_port(const char *text, int *port)
{
    long v = 0;

    if (*text == 0 || strlen(text) > 5)
        return -1;
    for (const char *p = text; *p; p++) {
        if (!isdigit((unsigned char) *p))
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = (int) v;
    return 0;
}

/* is_ip - text is an IPv4 or IPv6 address */
static int is_ip(const char *text, int family)
{
    unsigned char bin[16];

    return inet_pton(family, text, bin) == 1;
}

/* server_hostport_parse - "host[:port]", "[v6addr][:port]" */
int server_hostport_parse(const char *text, int default_port, char **host, int *port,
                          const char **why)
{
    const char *rest;
    char *h;

    *port = default_port;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');

        if (close == NULL) {
            *why = "missing ']'";
            return -1;
        }
        h = xstrndup(text + 1, (size_t) (close - text - 1));
        if (!is_ip(h, AF_INET6) && !is_ip(h, AF_INET)) {
            free(h);
            *why = "not an IP address inside [ ]";
            return -1;
        }
        rest = close + 1;
    } else {
        const char *colon = strchr(text, ':');

        if (colon && strchr(colon + 1, ':')) {
            *why = "an IPv6 address needs brackets: [addr]:port";
            return -1;
        }
        h = colon ? xstrndup(text, (size_t) (colon - text)) : xstrdup(text);
        rest = colon ? colon : "";
        if (!is_ip(h, AF_INET) && !domain_is_hostname(h, why)) {
            free(h);
            return -1;
        }
    }
    if (*rest) {
        if (rest[0] != ':' || parse_port(rest + 1, port) != 0) {
            free(h);
            *why = "bad port (1..65535 after ':')";
            return -1;
        }
    }
    if (*port == 0) {
        free(h);
        *why = "a port is required";
        return -1;
    }
    domain_lowercase(h);
    *host = h;
    return 0;
}

/* server_nexthop_parse - "[host]:port", "[host]", "host:port" or "host" */
int server_nexthop_parse(const char *text, struct server_nexthop *hop, const char **why)
{
    const char *rest;
    char *h;

    memset(hop, 0, sizeof(*hop));
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        const char *inner = text + 1;

        if (close == NULL) {
            *why = "missing ']' in next hop";
            return -1;
        }
        if (strncasecmp(inner, "ipv6:", 5) == 0)
            inner += 5;
        h = xstrndup(inner, (size_t) (close - inner));
        if (!is_ip(h, AF_INET) && !is_ip(h, AF_INET6) && !domain_is_hostname(h, why)) {
            free(h);
            return -1;
        }
        rest = close + 1;
    } else {
        const char *colon = strchr(text, ':');

        h = colon ? xstrndup(text, (size_t) (colon - text)) : xstrdup(text);
        rest = colon ? colon : "";
        if (is_ip(h, AF_INET) || strchr(rest + (*rest == ':'), ':')) {
            free(h);
            *why = "an address as next hop needs brackets: [address]:port";
            return -1;
        }
        if (!domain_is_hostname(h, why)) {
            free(h);
            return -1;
        }
        hop->mx = 1;
    }
    if (*rest && (rest[0] != ':' || parse_port(rest + 1, &hop->port) != 0)) {
        free(h);
        *why = "bad port in next hop (1..65535 after ':')";
        return -1;
    }
    domain_lowercase(h);
    hop->host = h;
    return 0;
}

/* cmp_str - qsort order of strings */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* server_etrn_queue_find - [etrn_queues] entry by name (without '#'), or NULL */
const struct server_etrn_queue *server_etrn_queue_find(const struct server_config *conf,
                                                       const char *name)
{
    for (size_t i = 0; i < conf->nqueues; i++)
        if (strcasecmp(conf->queues[i].name, name) == 0)
            return &conf->queues[i];
    return NULL;
}

/* server_etrn_user_find - [etrn_users] entry by user name, or NULL */
const struct server_etrn_user *server_etrn_user_find(const struct server_config *conf,
                                                     const char *user)
{
    for (size_t i = 0; i < conf->nusers; i++)
        if (strcmp(conf->users[i].user, user) == 0)
            return &conf->users[i];
    return NULL;
}

/* server_etrn_user_covers - u lists host, or "@parent" for host or one of its parents
   (subdomains: only the "@parent" entries count) */
int server_etrn_user_covers(const struct server_etrn_user *u, const char *host, int subdomains)
{
    size_t hlen = strlen(host);

    for (size_t i = 0; i < u->domains.count; i++) {
        const char *d = u->domains.items[i];

        if (d[0] == '@') {
            size_t dlen = strlen(++d);

            if (strcmp(host, d) == 0
                || (hlen > dlen && host[hlen - dlen - 1] == '.'
                    && strcmp(host + hlen - dlen, d) == 0))
                return 1;
        } else if (!subdomains && strcmp(host, d) == 0) {
            return 1;
        }
    }
    return 0;
}

/* parse_transport_value - "transport:nexthop", "transport", "transport:", ":nexthop" */
static int parse_transport_value(const char *value, enum server_transport *kind, struct server_nexthop *hop,
                                 char *why, size_t whylen)
{
    const char *colon = strchr(value, ':');
    size_t tlen = colon ? (size_t) (colon - value) : strlen(value);
    const char *reason;

    memset(hop, 0, sizeof(*hop));
    *kind = SERVER_TRANSPORT_NONE;
    if (tlen > 0) {
        char *t = xstrndup(value, tlen);

        *kind = server_transport_parse(t);
        if (*kind == SERVER_TRANSPORT_NONE) {
            snprintf(why, whylen, "unknown transport \"%s\" (smtp, etrn-only or local)", t);
            free(t);
            return -1;
        }
        free(t);
    }
    if (colon && colon[1]) {
        if (*kind == SERVER_TRANSPORT_LOCAL) {
            snprintf(why, whylen, "\"%s\": the local transport takes no next hop", value);
            return -1;
        }
        if (server_nexthop_parse(colon + 1, hop, &reason) != 0) {
            snprintf(why, whylen, "\"%s\": %s", value, reason);
            return -1;
        }
    }
    if (*kind == SERVER_TRANSPORT_NONE && hop->host == NULL) {
        snprintf(why, whylen, "\"%s\": expected transport:nexthop", value);
        return -1;
    }
    return 0;
}

/* check_pattern - a transport table key: "domain", ".domain" or "*", lower-cased in place */
static int check_pattern(char *pattern, char *why, size_t whylen)
{
    const char *reason;

    domain_lowercase(pattern);
    if (strcmp(pattern, "*") == 0)
        return 0;
    if (strchr(pattern, '@')) {
        snprintf(why, whylen, "address patterns (user@domain) are not supported");
        return -1;
    }
    if (!domain_is_hostname(pattern + (pattern[0] == '.'), &reason)) {
        snprintf(why, whylen, "\"%s\": %s", pattern, reason);
        return -1;
    }
    return 0;
}

/* add_transport - append one table entry (validated) */
static int add_transport(struct load *ld, const char *pattern, const char *value, const char *file,
                         int line, char *why, size_t whylen)
{
    struct server_config *conf = ld->conf;
    struct server_transport_entry e;
    char *pat = xstrdup(pattern);

    memset(&e, 0, sizeof(e));
    if (check_pattern(pat, why, whylen) != 0
        || parse_transport_value(value, &e.transport, &e.nexthop, why, whylen) != 0) {
        free(pat);
        return -1;
    }
    e.pattern = pat;
    e.file = file;
    e.line = line;
    e.order = ld->order++;
    conf->transports = xreallocarray(conf->transports, conf->ntransports + 1, sizeof(e));
    conf->transports[conf->ntransports++] = e;
    return 0;
}

/* add_file_name - keep a map file name that table entries point to */
static const char *add_file_name(struct server_config *conf, const char *name)
{
    conf->files = xreallocarray(conf->files, conf->nfiles + 1, sizeof(char *));
    conf->files[conf->nfiles] = xstrdup(name);
    return conf->files[conf->nfiles++];
}

/* check_domain_args - "host" or "@host" for [etrn_queues] and [etrn_users] */
static int check_domain_args(const struct cfg_list *list, char *why, size_t whylen)
{
    for (size_t i = 0; i < list->count; i++) {
        const char *reason = "";
        enum etrn_arg_kind kind = domain_etrn_arg(list->items[i], &reason);

        if (kind != ETRN_ARG_HOST && kind != ETRN_ARG_SUBDOMAINS) {
            snprintf(why, whylen, "\"%s\": %s", list->items[i],
                     kind == ETRN_ARG_INVALID ? reason : "expected a domain or @domain");
            return -1;
        }
        domain_lowercase(list->items[i]);
    }
    return 0;
}

/* table_list - find or make the [etrn_queues]/[etrn_users] list for key */
static int table_list(struct load *ld, const struct cfg_item *item, int users, char *why,
                      size_t whylen)
{
    struct server_config *conf = ld->conf;
    struct cfg_list *list = NULL;

    for (size_t i = 0; i < (users ? conf->nusers : conf->nqueues); i++) {
        const char *name = users ? conf->users[i].user : conf->queues[i].name;

        if (strcmp(name, item->key) == 0) {
            if (!item->continued || ld->last_table == NULL || strcmp(ld->last_table, name) != 0) {
                snprintf(why, whylen, "[%s] %s: set twice", item->section, item->key);
                return -1;
            }
            list = users ? &conf->users[i].domains : &conf->queues[i].domains;
        }
    }
    if (list == NULL) {
        const char *reason = "";

        if (users) {
            for (const char *p = item->key; *p; p++) {
                if (*p <= ' ' || *p == 0x7f || *p == ':' || *p == '/') {
                    snprintf(why, whylen, "[%s] %s: bad user name", item->section, item->key);
                    return -1;
                }
            }
            conf->users = xreallocarray(conf->users, conf->nusers + 1, sizeof(*conf->users));
            memset(&conf->users[conf->nusers], 0, sizeof(*conf->users));
            conf->users[conf->nusers].user = xstrdup(item->key);
            list = &conf->users[conf->nusers++].domains;
        } else {
            char hashed[ETRN_QUEUE_NAME_MAX + 3];

            snprintf(hashed, sizeof(hashed), "#%s", item->key);
            if (strlen(item->key) > ETRN_QUEUE_NAME_MAX
                || domain_etrn_arg(hashed, &reason) != ETRN_ARG_QUEUE) {
                snprintf(why, whylen, "[%s] %s: bad queue name: %s", item->section, item->key,
                         *reason ? reason : "too long");
                return -1;
            }
            conf->queues = xreallocarray(conf->queues, conf->nqueues + 1, sizeof(*conf->queues));
            memset(&conf->queues[conf->nqueues], 0, sizeof(*conf->queues));
            conf->queues[conf->nqueues].name = xstrdup(item->key);
            list = &conf->queues[conf->nqueues++].domains;
        }
        free(ld->last_table);
        ld->last_table = xstrdup(item->key);
    }
    struct cfg_list add = { NULL, 0 };
    char reason[512];

    cfg_list_split(&add, item->value);
    if (check_domain_args(&add, reason, sizeof(reason)) != 0) {
        snprintf(why, whylen, "[%s] %s: %s", item->section, item->key, reason);
        cfg_list_free(&add);
        return -1;
    }
    for (size_t i = 0; i < add.count; i++)
        cfg_list_add(list, add.items[i]);
    cfg_list_free(&add);
    return 0;
}

/* load_handler - one key from the file: [main] raw text, or a table row */
static int load_handler(void *ctx, const struct cfg_item *item, char *why, size_t whylen)
{
    struct load *ld = ctx;

    if (strcmp(item->section, "main") == 0) {
        int k = main_key_index(item->key, strlen(item->key));

        if (k < 0) {
            snprintf(why, whylen, "[main] %s: unknown key", item->key);
            return -1;
        }
        if (ld->raw[k] && item->continued) {
            size_t n = strlen(ld->raw[k]) + strlen(item->value) + 2;
            char *joined = xmalloc(n);

            snprintf(joined, n, "%s %s", ld->raw[k], item->value);
            free(ld->raw[k]);
            ld->raw[k] = joined;
            return 0;
        }
        if (ld->raw[k]) {
            snprintf(why, whylen, "[main] %s: set twice (first at line %d)", item->key,
                     ld->rawline[k]);
            return -1;
        }
        ld->raw[k] = xstrdup(item->value);
        ld->rawline[k] = item->line;
        return 0;
    }
    if (main_key_index(item->key, strlen(item->key)) >= 0
        && (strcmp(item->section, "transport") == 0 || strcmp(item->section, "etrn_queues") == 0
            || strcmp(item->section, "etrn_users") == 0)) {
        snprintf(why, whylen, "[%s] %s: a [main] parameter in the [%s] table; move it above the "
                 "first table, into [main]", item->section, item->key, item->section);
        return -1;
    }
    if (strcmp(item->section, "transport") == 0) {
        char reason[512];

        if (item->continued) {
            snprintf(why, whylen, "[transport] %s: continuation lines are not allowed here",
                     item->key);
            return -1;
        }
        if (add_transport(ld, item->key, item->value, ld->conf->files[0], item->line, reason,
                          sizeof(reason)) != 0) {
            snprintf(why, whylen, "[transport] %s: %s", item->key, reason);
            return -1;
        }
        return 0;
    }
    if (strcmp(item->section, "etrn_queues") == 0)
        return table_list(ld, item, 0, why, whylen);
    if (strcmp(item->section, "etrn_users") == 0)
        return table_list(ld, item, 1, why, whylen);
    snprintf(why, whylen, "[%s]: unknown section (main, transport, etrn_queues, etrn_users)",
             item->section);
    return -1;
}

/* default_text - the default of key k as written ("" when none) */
static const char *default_text(struct load *ld, size_t k)
{
    if (strcmp(main_keys[k].name, "myhostname") == 0)
        return ld->hostname;
    return main_keys[k].def ? main_keys[k].def : "";
}

/* expand - $name, ${name}, $(name) expansion of key k, with loop detection */
static int expand(struct load *ld, size_t k, char *why, size_t whylen)
{
    struct buf out = BUF_INIT;
    const char *p;

    if (ld->state[k] == 2)
        return 0;
    if (ld->state[k] == 1) {
        struct buf path = BUF_INIT;
        size_t from = 0;

        while (ld->stack[from] != k)
            from++;
        for (size_t i = from; i < ld->depth; i++)
            buf_printf(&path, "$%s -> ", main_keys[ld->stack[i]].name);
        buf_printf(&path, "$%s", main_keys[k].name);
        snprintf(why, whylen, "parameter expansion loop: %s", buf_cstr(&path));
        buf_free(&path);
        return -1;
    }
    ld->state[k] = 1;
    ld->stack[ld->depth++] = k;
    p = ld->raw[k] ? ld->raw[k] : default_text(ld, k);
    while (*p) {
        const char *name;
        size_t len;

        if (*p != '$') {
            buf_putc(&out, *p++);
            continue;
        }
        p++;
        if (*p == '$') {
            buf_putc(&out, *p++);
            continue;
        }
        if (*p == '{' || *p == '(') {
            const char *close = strchr(p, *p == '{' ? '}' : ')');

            if (close == NULL) {
                snprintf(why, whylen, "unterminated \"$%c\"", *p);
                goto fail;
            }
            name = p + 1;
            len = (size_t) (close - name);
            p = close + 1;
        } else {
            name = p;
            while (isalnum((unsigned char) *p) || *p == '_')
                p++;
            len = (size_t) (p - name);
            if (len == 0) {
                snprintf(why, whylen, "'$' without a parameter name (write $$ for a '$')");
                goto fail;
            }
        }
        int ref = main_key_index(name, len);
        if (ref < 0) {
            snprintf(why, whylen, "unknown parameter $%.*s", (int) len, name);
            goto fail;
        }
        if (expand(ld, (size_t) ref, why, whylen) != 0)
            goto fail;
        buf_puts(&out, ld->expanded[ref]);
    }
    ld->depth--;
    ld->state[k] = 2;
    ld->expanded[k] = xstrdup(buf_cstr(&out));
    buf_free(&out);
    return 0;
fail:
    buf_free(&out);
    return -1;
}

/* key_line - line of a [main] key, 0 if defaulted */
static int key_line(struct load *ld, const char *key)
{
    int k = main_key_index(key, strlen(key));

    return k < 0 ? 0 : ld->rawline[k];
}

typedef int (*elem_fn)(struct load *ld, const char *elem, struct cfg_list *out, char *why,
                       size_t whylen);

/* list_expand - run fn on each element of a list, reading "/file" elements line by line */
static int list_expand(struct load *ld, const char *key, struct cfg_list *list, elem_fn fn)
{
    struct cfg_list out = { NULL, 0 };
    char why[512];
    int line = key_line(ld, key);

    for (size_t i = 0; i < list->count; i++) {
        const char *elem = list->items[i];

        if (elem[0] != '/') {
            if (fn(ld, elem, &out, why, sizeof(why)) != 0) {
                cfg_error_set(ld->err, ld->conf->path, line, "[main] %s: %s", key, why);
                goto fail;
            }
            continue;
        }
        FILE *fp = fopen(elem, "r");
        char *text = NULL;
        size_t cap = 0;
        ssize_t n;
        int fline = 0;

        if (fp == NULL) {
            cfg_error_set(ld->err, ld->conf->path, line, "[main] %s: cannot open %s: %s", key,
                          elem, strerror(errno));
            goto fail;
        }
        while ((n = getline(&text, &cap, fp)) >= 0) {
            struct cfg_list words = { NULL, 0 };
            const char *s = text;

            fline++;
            while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
                text[--n] = 0;
            s += strspn(s, " \t");
            if (*s == 0 || *s == '#')
                continue;
            cfg_list_split(&words, s);
            for (size_t w = 0; w < words.count; w++) {
                int rc;

                if (words.items[w][0] == '/') {
                    snprintf(why, sizeof(why), "\"%s\": a list file may not name another file",
                             words.items[w]);
                    rc = -1;
                } else {
                    rc = fn(ld, words.items[w], &out, why, sizeof(why));
                }
                if (rc != 0) {
                    cfg_error_set(ld->err, elem, fline, "[main] %s: %s", key, why);
                    cfg_list_free(&words);
                    free(text);
                    fclose(fp);
                    goto fail;
                }
            }
            cfg_list_free(&words);
        }
        free(text);
        if (ferror(fp)) {
            cfg_error_set(ld->err, elem, fline, "[main] %s: read error: %s", key, strerror(errno));
            fclose(fp);
            goto fail;
        }
        fclose(fp);
    }
    cfg_list_free(list);
    *list = out;
    return 0;
fail:
    cfg_list_free(&out);
    return -1;
}

/* elem_domain - a domain list element: "host" or ".host", lower-cased */
static int elem_domain(struct load *ld, const char *elem, struct cfg_list *out, char *why,
                       size_t whylen)
{
    const char *reason;
    char *d = xstrdup(elem);

    (void) ld;
    domain_lowercase(d);
    if (strchr(d, ':')) {
        snprintf(why, whylen, "\"%s\": lookup tables (type:name) are not supported; use /path",
                 elem);
        free(d);
        return -1;
    }
    if (!domain_is_hostname(d + (d[0] == '.'), &reason)) {
        snprintf(why, whylen, "\"%s\": %s", elem, reason);
        free(d);
        return -1;
    }
    cfg_list_add(out, d);
    free(d);
    return 0;
}

/* elem_cidr - a network list element */
static int elem_cidr(struct load *ld, const char *elem, struct cfg_list *out, char *why,
                     size_t whylen)
{
    struct server_cidr net;
    const char *reason;

    (void) ld;
    if (server_cidr_parse(elem, &net, &reason) != 0) {
        snprintf(why, whylen, "\"%s\": %s", elem, reason);
        return -1;
    }
    cfg_list_add(out, elem);
    return 0;
}

/* add_listener - a "host[:port]" element onto a listener array */
static int add_listener(const char *elem, int default_port, struct server_listen **list,
                        size_t *n, struct cfg_list *out, char *why, size_t whylen)
{
    const char *reason;
    char *host;
    int port;

    if (server_hostport_parse(elem, default_port, &host, &port, &reason) != 0) {
        snprintf(why, whylen, "\"%s\": %s", elem, reason);
        return -1;
    }
    *list = xreallocarray(*list, *n + 1, sizeof(**list));
    (*list)[*n].host = host;
    (*list)[(*n)++].port = port;
    cfg_list_add(out, elem);
    return 0;
}

/* elem_listen - an inet_interfaces element */
static int elem_listen(struct load *ld, const char *elem, struct cfg_list *out, char *why,
                       size_t whylen)
{
    struct server_config *conf = ld->conf;

    if (strcmp(elem, "all") == 0 || strcmp(elem, "loopback-only") == 0) {
        /* Postfix's words: every address, or the loopback ones, on port 25 */
        int all = elem[0] == 'a';

        if (elem_listen(ld, all ? "0.0.0.0:25" : "127.0.0.1:25", out, why, whylen) != 0)
            return -1;
        return elem_listen(ld, all ? "[::]:25" : "[::1]:25", out, why, whylen);
    }
    return add_listener(elem, 25, &conf->listen, &conf->nlisten, out, why, whylen);
}

/* elem_odmr_listen - an odmr_listen element: host:port (the port defaults to 366, RFC 2645) */
static int elem_odmr_listen(struct load *ld, const char *elem, struct cfg_list *out, char *why,
                            size_t whylen)
{
    return add_listener(elem, 366, &ld->conf->odmr, &ld->conf->nodmr, out, why, whylen);
}

/* elem_transport_name - a defer_transports element */
static int elem_transport_name(struct load *ld, const char *elem, struct cfg_list *out, char *why,
                               size_t whylen)
{
    enum server_transport t = server_transport_parse(elem);

    if (t == SERVER_TRANSPORT_NONE) {
        snprintf(why, whylen, "unknown transport \"%s\" (smtp, etrn-only or local)", elem);
        return -1;
    }
    ld->conf->defer_mask |= 1u << t;
    cfg_list_add(out, elem);
    return 0;
}

/* sort_unique - sort a domain list and drop duplicates */
static void sort_unique(struct cfg_list *list)
{
    size_t j = 0;

    if (list->count == 0)
        return;
    qsort(list->items, list->count, sizeof(char *), cmp_str);
    for (size_t i = 1; i < list->count; i++) {
        if (strcmp(list->items[i], list->items[j]) == 0)
            free(list->items[i]);
        else
            list->items[++j] = list->items[i];
    }
    list->count = j + 1;
}

/* build_netlist - parse a validated network list */
static void build_netlist(const struct cfg_list *list, struct server_netlist *nets)
{
    const char *why;

    nets->nets = xcalloc(list->count ? list->count : 1, sizeof(*nets->nets));
    nets->count = list->count;
    for (size_t i = 0; i < list->count; i++)
        if (server_cidr_parse(list->items[i], &nets->nets[i], &why) != 0)
            log_panic("build_netlist: %s: %s", list->items[i], why);
}

/* transport_line - one transport_maps line: "pattern  transport:nexthop" */
static int transport_line(void *ctx, int line, char *key, char *value, char *why, size_t whylen)
{
    struct load *ld = ctx;
    char *end = value + strcspn(value, " \t");
    char reason[400];

    if (*value == 0) {
        snprintf(why, whylen, "\"%s\": expected \"domain  transport:nexthop\"", key);
        return -1;
    }
    if (end[strspn(end, " \t")] != 0) {
        snprintf(why, whylen, "%s: expected one value \"transport:nexthop\"", key);
        return -1;
    }
    *end = 0;
    if (add_transport(ld, key, value, ld->map_file, line, reason, sizeof(reason)) != 0) {
        snprintf(why, whylen, "%s: %s", key, reason);
        return -1;
    }
    return 0;
}

/* transport_file - one transport_maps file */
static int transport_file(void *ctx, const char *path, int *line, char *why, size_t whylen)
{
    struct load *ld = ctx;

    ld->map_file = add_file_name(ld->conf, path);
    return cfg_map_read(path, transport_line, ld, line, why, whylen);
}

static int cmp_transport(const void *a, const void *b)
{
    const struct server_transport_entry *x = a, *y = b;
    int c = strcmp(x->pattern, y->pattern);

    if (c)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* finish_transports - sort the table; the first entry for a pattern wins across files */
static int finish_transports(struct load *ld)
{
    struct server_config *conf = ld->conf;
    size_t j = 0;

    if (conf->ntransports == 0)
        return 0;
    qsort(conf->transports, conf->ntransports, sizeof(*conf->transports), cmp_transport);
    for (size_t i = 1; i < conf->ntransports; i++) {
        struct server_transport_entry *e = &conf->transports[i], *keep = &conf->transports[j];

        if (strcmp(e->pattern, keep->pattern) != 0) {
            conf->transports[++j] = *e;
            continue;
        }
        if (e->file == keep->file) {
            if (e->file == conf->files[0])
                cfg_error_set(ld->err, e->file, e->line, "[transport] %s: set twice (first at line %d)",
                              e->pattern, keep->line);
            else
                cfg_error_set(ld->err, e->file, e->line,
                              "[main] transport_maps: %s: duplicate entry (first at line %d)",
                              e->pattern, keep->line);
            conf->ntransports = j + 1 + (conf->ntransports - i);
            memmove(&conf->transports[j + 1], e, (conf->ntransports - j - 1) * sizeof(*e));
            return -1;
        }
        free(e->pattern);
        free(e->nexthop.host);
    }
    conf->ntransports = j + 1;
    return 0;
}

/* check_path_key - an absolute path, or unset/empty when allowed */
static int check_path_key(struct load *ld, const char *key, const char *value, int required)
{
    if ((value == NULL || *value == 0) && !required)
        return 0;
    if (value == NULL || value[0] != '/') {
        cfg_error_set(ld->err, ld->conf->path, key_line(ld, key), "[main] %s: \"%s\" is not an absolute path",
                      key, value ? value : "");
        return -1;
    }
    return 0;
}

/* main_error - "FILE:LINE: [main] key: ..." for a [main] key */
#define main_error(ld, key, ...) \
    cfg_error_set((ld)->err, (ld)->conf->path, key_line((ld), (key)), "[main] " key ": " __VA_ARGS__)

/* map_path - the file of a "/path", "texthash:/path" or "hash:/path" map, or NULL */
static const char *map_path(const char *map)
{
    if (strncmp(map, "texthash:", 9) == 0)
        map += 9;
    else if (strncmp(map, "hash:", 5) == 0)
        map += 5;
    return map[0] == '/' ? map : NULL;
}

/* reads one map file: 0, or -1 with why and *line (0: the file itself) */
typedef int (*map_reader)(void *ctx, const char *path, int *line, char *why, size_t whylen);

/* read_maps - every file of a lookup table key; errors as "[main] key: ..." at the key's
   line, or at the map file's line when the problem is there */
static int read_maps(struct load *ld, const char *key, const struct cfg_list *maps,
                     map_reader read, void *ctx)
{
    char why[600];
    int line;

    for (size_t i = 0; i < maps->count; i++) {
        const char *path = map_path(maps->items[i]);

        if (path == NULL) {
            snprintf(why, sizeof(why), "\"%s\": expected /path, texthash:/path or hash:/path",
                     maps->items[i]);
            line = 0;
        } else if (read(ctx, path, &line, why, sizeof(why)) == 0) {
            continue;
        }
        if (line == 0)
            cfg_error_set(ld->err, ld->conf->path, key_line(ld, key), "[main] %s: %s", key, why);
        else
            cfg_error_set(ld->err, path, line, "[main] %s: %s", key, why);
        return -1;
    }
    return 0;
}

/* What recipient_file adds a file to. */
struct recipient_load {
    struct recipient_map *map;
    int allow_bare;
};

/* recipient_file - one relay_ or local_recipient_maps file */
static int recipient_file(void *ctx, const char *path, int *line, char *why, size_t whylen)
{
    const struct recipient_load *rl = ctx;

    return recipient_map_load(rl->map, path, rl->allow_bare, line, why, whylen);
}

/* load_recipient_maps - every file of a *_recipient_maps key into one map; NULL map if none */
static int load_recipient_maps(struct load *ld, const char *key, const struct cfg_list *maps,
                               int allow_bare, struct recipient_map **out)
{
    struct recipient_load rl = { NULL, allow_bare };

    *out = NULL;
    if (maps->count == 0)
        return 0;
    rl.map = *out = recipient_map_new();
    return read_maps(ld, key, maps, recipient_file, &rl);
}

static int tls_policy_file(void *ctx, const char *path, int *line, char *why, size_t whylen);

/* finish_main - validate [main] and derive the parsed forms */
static int finish_main(struct load *ld)
{
    struct server_config *c = ld->conf;
    const char *why;

    if (!domain_is_hostname(c->myhostname, &why)) {
        main_error(ld, "myhostname", "\"%s\": %s%s", c->myhostname, why,
                   key_line(ld, "myhostname") ? "" : " (the system's host name; set myhostname)");
        return -1;
    }
    domain_lowercase(c->myhostname);
    if (list_expand(ld, "inet_interfaces", &c->inet_interfaces, elem_listen) != 0)
        return -1;
    if (c->nlisten == 0) {
        main_error(ld, "inet_interfaces", "no address to listen on");
        return -1;
    }
    if (list_expand(ld, "odmr_listen", &c->odmr_listen, elem_odmr_listen) != 0)
        return -1;
    if (check_path_key(ld, "queue_directory", c->queue_directory, 1) != 0)
        return -1;
    if (c->mail_owner == NULL || *c->mail_owner == 0
        || strpbrk(c->mail_owner, " \t:/") != NULL) {
        main_error(ld, "mail_owner", "\"%s\" is not a user name", c->mail_owner ? c->mail_owner : "");
        return -1;
    }
    if (list_expand(ld, "mynetworks", &c->mynetworks, elem_cidr) != 0
        || list_expand(ld, "smtpd_client_event_limit_exceptions",
                       &c->smtpd_client_event_limit_exceptions, elem_cidr) != 0)
        return -1;
    build_netlist(&c->mynetworks, &c->mynetworks_nets);
    build_netlist(&c->smtpd_client_event_limit_exceptions, &c->event_limit_exception_nets);

    static const struct {
        const char *key;
        size_t offset;
    } domain_lists[] = {
        { "relay_domains", OFF(relay_domains) },
        { "mydestination", OFF(mydestination) },
        { "fast_flush_domains", OFF(fast_flush_domains) },
        { "etrn_only_domains", OFF(etrn_only_domains) },
    };
    for (size_t i = 0; i < sizeof(domain_lists) / sizeof(domain_lists[0]); i++) {
        struct cfg_list *list = (struct cfg_list *) ((char *) c + domain_lists[i].offset);

        if (list_expand(ld, domain_lists[i].key, list, elem_domain) != 0)
            return -1;
        sort_unique(list);
    }
    if (c->home_mailbox == NULL || *c->home_mailbox == 0 || c->home_mailbox[0] == '/'
        || c->home_mailbox[strlen(c->home_mailbox) - 1] != '/' || strstr(c->home_mailbox, "..")) {
        main_error(ld, "home_mailbox",
                   "\"%s\": only Maildir delivery is supported: a relative path ending in '/'",
                   c->home_mailbox ? c->home_mailbox : "");
        return -1;
    }
    if (check_path_key(ld, "local_maildir_base", c->local_maildir_base, 0) != 0
        || check_path_key(ld, "smtpd_tls_cert_file", c->smtpd_tls_cert_file, 0) != 0
        || check_path_key(ld, "smtpd_tls_key_file", c->smtpd_tls_key_file, 0) != 0
        || check_path_key(ld, "smtpd_sasl_users_file", c->smtpd_sasl_users_file, 0) != 0
        || check_path_key(ld, "smtp_tls_CAfile", c->smtp_tls_CAfile, 0) != 0
        || check_path_key(ld, "maillog_file", c->maillog_file, 0) != 0)
        return -1;
    if (c->syslog_name == NULL || *c->syslog_name == 0 || strlen(c->syslog_name) > 48
        || strspn(c->syslog_name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
               != strlen(c->syslog_name)) {
        main_error(ld, "syslog_name", "\"%s\": letters, digits, '.', '_' and '-' only, at most 48",
                   c->syslog_name ? c->syslog_name : "");
        return -1;
    }
    int has_cert = c->smtpd_tls_cert_file && *c->smtpd_tls_cert_file;
    int has_key = c->smtpd_tls_key_file && *c->smtpd_tls_key_file;
    if (has_cert != has_key) {
        if (has_cert)
            cfg_error_set(ld->err, c->path, key_line(ld, "smtpd_tls_cert_file"),
                          "[main] smtpd_tls_key_file: required when smtpd_tls_cert_file is set");
        else
            cfg_error_set(ld->err, c->path, key_line(ld, "smtpd_tls_key_file"),
                          "[main] smtpd_tls_cert_file: required when smtpd_tls_key_file is set");
        return -1;
    }
    if (c->smtpd_sasl_users_file && *c->smtpd_sasl_users_file && !has_cert) {
        main_error(ld, "smtpd_sasl_users_file",
                   "AUTH is offered only after STARTTLS: set smtpd_tls_cert_file and smtpd_tls_key_file");
        return -1;
    }
    c->etrn_restrictions = xcalloc(c->smtpd_etrn_restrictions.count + 1, sizeof(*c->etrn_restrictions));
    for (size_t i = 0; i < c->smtpd_etrn_restrictions.count; i++) {
        const char *r = c->smtpd_etrn_restrictions.items[i];
        int found = -1;

        for (int j = 0; restriction_names[j]; j++)
            if (strcmp(r, restriction_names[j]) == 0)
                found = j;
        if (found < 0) {
            main_error(ld, "smtpd_etrn_restrictions", "unknown restriction \"%s\" (permit, reject, "
                       "defer, permit_mynetworks, permit_sasl_authenticated)", r);
            return -1;
        }
        c->etrn_restrictions[c->netrn_restrictions++] = (enum server_restriction) found;
    }
    if (list_expand(ld, "defer_transports", &c->defer_transports, elem_transport_name) != 0)
        return -1;

    char reason[512] = "";
    if (parse_transport_value(c->default_transport ? c->default_transport : "", &c->default_transport_kind,
                              &c->default_nexthop, reason, sizeof(reason)) != 0
        || c->default_transport_kind == SERVER_TRANSPORT_NONE) {
        main_error(ld, "default_transport", "%s", c->default_transport_kind == SERVER_TRANSPORT_NONE && !*reason
                   ? "a transport name is required" : reason);
        return -1;
    }
    if (c->relayhost && *c->relayhost
        && server_nexthop_parse(c->relayhost, &c->relayhost_nexthop, &why) != 0) {
        main_error(ld, "relayhost", "\"%s\": %s", c->relayhost, why);
        return -1;
    }
    if (c->dns_resolver && *c->dns_resolver) {
        char rwhy[256];
        struct mx_resolver *res = mx_resolver_new(c->dns_resolver, rwhy, sizeof(rwhy));

        if (res == NULL) {
            main_error(ld, "dns_resolver", "%s", rwhy);
            return -1;
        }
        mx_resolver_free(res);
    }
    if (c->maximal_backoff_time < c->minimal_backoff_time) {
        main_error(ld, "maximal_backoff_time", "%llds is less than minimal_backoff_time (%llds)",
                   c->maximal_backoff_time, c->minimal_backoff_time);
        return -1;
    }
    if (load_recipient_maps(ld, "relay_recipient_maps", &c->relay_recipient_maps, 0,
                            &c->relay_recipients) != 0
        || load_recipient_maps(ld, "local_recipient_maps", &c->local_recipient_maps, 1,
                               &c->local_recipients) != 0)
        return -1;
    if (read_maps(ld, "transport_maps", &c->transport_maps, transport_file, ld) != 0
        || read_maps(ld, "smtp_tls_policy_maps", &c->smtp_tls_policy_maps, tls_policy_file,
                     c) != 0)
        return -1;
    return finish_transports(ld);
}

/* policy_key_ok - "domain", "[host]" or "[host]:port" (host a name or an address) */
static int policy_key_ok(const char *key)
{
    char host[DOMAIN_MAX + 2];
    const char *why;
    unsigned char bin[16];

    if (key[0] != '[')
        return domain_is_hostname(key, &why);
    const char *end = strchr(key, ']');

    if (end == NULL || end == key + 1 || (size_t) (end - key - 1) >= sizeof(host))
        return 0;
    snprintf(host, sizeof(host), "%.*s", (int) (end - key - 1), key + 1);
    if (end[1] == ':') {
        char *e;
        long port = strtol(end + 2, &e, 10);

        if (*e != 0 || e == end + 2 || port < 1 || port > 65535)
            return 0;
    } else if (end[1] != 0) {
        return 0;
    }
    return inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1
           || domain_is_hostname(host, &why);
}

/* tls_policy_line - one smtp_tls_policy_maps line: "nexthop  level" */
static int tls_policy_line(void *ctx, int line, char *key, char *value, char *why,
                           size_t whylen)
{
    struct server_config *c = ctx;
    char *rest = value + strcspn(value, " \t");
    int level = -1;

    (void) line;
    if (*rest)
        *rest++ = 0;
    domain_lowercase(key);
    if (!policy_key_ok(key)) {
        snprintf(why, whylen, "\"%s\": expected a domain, [host] or [host]:port", key);
        return -1;
    }
    for (int i = 0; tls_level_choices[i]; i++)
        if (strcmp(value, tls_level_choices[i]) == 0)
            level = i;
    if (level < 0) {
        snprintf(why, whylen, "%s: \"%s\" is not one of: none, may, encrypt, verify, secure",
                 key, value);
        return -1;
    }
    rest += strspn(rest, " \t");
    if (*rest != 0) {
        snprintf(why, whylen, "%s: only the security level is supported, not \"%s\"", key, rest);
        return -1;
    }
    for (size_t i = 0; i < c->ntls_policies; i++)
        if (strcmp(c->tls_policies[i].nexthop, key) == 0) {
            snprintf(why, whylen, "%s: duplicate entry", key);
            return -1;
        }
    c->tls_policies = xreallocarray(c->tls_policies, c->ntls_policies + 1,
                                    sizeof(*c->tls_policies));
    c->tls_policies[c->ntls_policies].nexthop = xstrdup(key);
    c->tls_policies[c->ntls_policies++].level = level;
    return 0;
}

/* tls_policy_file - one smtp_tls_policy_maps file */
static int tls_policy_file(void *ctx, const char *path, int *line, char *why, size_t whylen)
{
    return cfg_map_read(path, tls_policy_line, ctx, line, why, whylen);
}

/* server_tls_policy_lookup - the smtp_tls_policy_maps level for a route's next hop
   ("domain" for an MX next hop, "[host]" or "[host]:port" otherwise); -1: none */
int server_tls_policy_lookup(const struct server_tls_policy *list, size_t n,
                             const struct server_route *route)
{
    char key[DOMAIN_MAX + 16];

    if (route->mx)
        snprintf(key, sizeof(key), "%s", route->host);
    else if (route->port == 0 || route->port == 25)
        snprintf(key, sizeof(key), "[%s]", route->host);
    else
        snprintf(key, sizeof(key), "[%s]:%d", route->host, route->port);
    for (char *p = key; *p; p++)
        *p = (char) tolower((unsigned char) *p);
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].nexthop, key) == 0)
            return list[i].level;
    return -1;
}

/* server_config_load - read and validate server-lite.ini */
int server_config_load(const char *path, struct server_config *conf, struct cfg_error *err)
{
    struct load *ld = xcalloc(1, sizeof(*ld));
    int rc = -1;

    memset(conf, 0, sizeof(*conf));
    conf->path = xstrdup(path);
    add_file_name(conf, path);
    ld->conf = conf;
    ld->err = err;
    if (gethostname(ld->hostname, sizeof(ld->hostname) - 1) != 0)
        ld->hostname[0] = 0;
    cfg_section_init(&ld->sec, path, "main", main_keys, conf);
    if (cfg_parse(path, load_handler, ld, err) != 0)
        goto out;
    for (size_t k = 0; k < MAIN_NKEYS; k++) {
        char why[512];
        const char *def = default_text(ld, k);

        if (ld->raw[k] == NULL && strchr(def, '$') == NULL && def != ld->hostname)
            continue;
        ld->depth = 0;
        if (expand(ld, k, why, sizeof(why)) != 0) {
            cfg_error_set(err, path, ld->rawline[k], "[main] %s: %s", main_keys[k].name, why);
            goto out;
        }
        struct cfg_item item = { .file = path, .section = "main", .key = main_keys[k].name,
                                 .value = ld->expanded[k], .line = ld->rawline[k] };
        if (cfg_section_set(&ld->sec, &item, why, sizeof(why)) != 0) {
            cfg_error_set(err, path, ld->rawline[k], "%s", why);
            goto out;
        }
    }
    rc = finish_main(ld);
    if (rc == 0) {
        conf->main_lines = xcalloc(MAIN_NKEYS, sizeof(*conf->main_lines));
        memcpy(conf->main_lines, ld->rawline, sizeof(ld->rawline));
    }
out:
    cfg_section_done(&ld->sec);
    for (size_t k = 0; k < MAIN_NKEYS; k++) {
        free(ld->raw[k]);
        free(ld->expanded[k]);
    }
    free(ld->last_table);
    free(ld);
    if (rc != 0)
        server_config_free(conf);
    return rc;
}

/* server_config_line - the line that set a [main] key; 0 when defaulted or unknown */
int server_config_line(const struct server_config *conf, const char *key)
{
    int k = main_key_index(key, strlen(key));

    return k < 0 || conf->main_lines == NULL ? 0 : conf->main_lines[k];
}

/* server_config_free - release everything the config owns */
void server_config_free(struct server_config *conf)
{
    cfg_section_free(main_keys, conf);
    for (size_t i = 0; i < conf->nlisten; i++)
        free(conf->listen[i].host);
    free(conf->listen);
    for (size_t i = 0; i < conf->nodmr; i++)
        free(conf->odmr[i].host);
    free(conf->odmr);
    free(conf->mynetworks_nets.nets);
    free(conf->event_limit_exception_nets.nets);
    free(conf->etrn_restrictions);
    free(conf->default_nexthop.host);
    free(conf->relayhost_nexthop.host);
    for (size_t i = 0; i < conf->ntransports; i++) {
        free(conf->transports[i].pattern);
        free(conf->transports[i].nexthop.host);
    }
    free(conf->transports);
    for (size_t i = 0; i < conf->ntls_policies; i++)
        free(conf->tls_policies[i].nexthop);
    free(conf->tls_policies);
    for (size_t i = 0; i < conf->nfiles; i++)
        free(conf->files[i]);
    free(conf->files);
    for (size_t i = 0; i < conf->nqueues; i++) {
        free(conf->queues[i].name);
        cfg_list_free(&conf->queues[i].domains);
    }
    free(conf->queues);
    for (size_t i = 0; i < conf->nusers; i++) {
        free(conf->users[i].user);
        cfg_list_free(&conf->users[i].domains);
    }
    free(conf->users);
    recipient_map_free(conf->relay_recipients);
    recipient_map_free(conf->local_recipients);
    free(conf->main_lines);
    free(conf->path);
    memset(conf, 0, sizeof(*conf));
}
