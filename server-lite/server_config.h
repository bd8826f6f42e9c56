/*
 * server_config - etrn-server's configuration (server-lite.ini).
 *
 * server_config_load() reads [main] (Postfix names and time units, "$name"
 * expansion with loops refused; in list parameters "/path" elements name
 * files of further elements), [transport], [etrn_queues], [etrn_users] and
 * the transport_maps, relay_recipient_maps and local_recipient_maps files
 * (recipient.h). Every error is "FILE:LINE: [section] key: what is
 * wrong" (the list or map file's line when the problem is there); on error
 * nothing stays allocated. The struct owns its memory: server_config_free().
 * server_config_line() tells which line set a [main] key (0: the default).
 * inet_interfaces takes Postfix's "all" and "loopback-only" (port 25); a
 * [main] parameter name used as a table key is refused.
 * Lookups: server_etrn_queue_find/_user_find, server_etrn_user_covers (the
 * one test of a domain against an [etrn_users] entry), server_tls_policy_lookup (the
 * level the smtp_tls_policy_maps entries give a route, -1 when none); routing
 * and the matching of domains and addresses are server_route's. server_hostport_parse and
 * server_nexthop_parse return a host the caller frees.
 */
#ifndef ETRNKIT_SERVER_CONFIG_H
#define ETRNKIT_SERVER_CONFIG_H

#include <stddef.h>

#include "config.h"
#include "domain.h"
#include "server_route.h"

enum server_etrn_reply { SERVER_ETRN_REPLY_RFC1985, SERVER_ETRN_REPLY_POSTFIX };

/* smtp_tls_security_level, as Postfix */
enum server_tls_level {
    SERVER_TLS_NONE,    /* never STARTTLS */
    SERVER_TLS_MAY,     /* STARTTLS when offered, no check; a failed handshake: plaintext once */
    SERVER_TLS_ENCRYPT, /* STARTTLS required, no certificate check */
    SERVER_TLS_VERIFY,  /* required, certificate chain and the MX host name checked */
    SERVER_TLS_SECURE,  /* required, chain and the next-hop domain (or a subdomain) checked */
};

/* smtpd_etrn_restrictions elements, in the order given */
enum server_restriction {
    SERVER_RESTRICT_PERMIT,
    SERVER_RESTRICT_REJECT,
    SERVER_RESTRICT_DEFER,
    SERVER_RESTRICT_PERMIT_MYNETWORKS,
    SERVER_RESTRICT_PERMIT_SASL_AUTHENTICATED,
};

/* inet_interfaces entry: host without brackets, port */
struct server_listen {
    char *host;
    int port;
};

/* "[host]:port" (mx = 0: connect to host) or "host[:port]" (mx = 1: its MX) */
struct server_nexthop {
    char *host; /* NULL: the recipient domain itself, by MX */
    int port;   /* 0: 25 */
    int mx;
};

/* one transport table entry ([transport] or a transport_maps file) */
struct server_transport_entry {
    char *pattern;   /* "example.org", ".example.org" (subdomains) or "*" */
    enum server_transport transport; /* SERVER_TRANSPORT_NONE: the default transport */
    struct server_nexthop nexthop;
    const char *file; /* points into the config's file names */
    int line;
    size_t order;    /* first match wins across tables */
};

struct server_etrn_queue {
    char *name;              /* without '#' */
    struct cfg_list domains; /* "host" or "@host", lower case */
};

/* smtp_tls_policy_maps entry: next hop as Postfix writes it, lower case */
struct server_tls_policy {
    char *nexthop; /* "example.org" (MX next hop), "[host]" or "[host]:port" */
    enum server_tls_level level;
};

struct server_etrn_user {
    char *user;
    struct cfg_list domains; /* "host" or "@host", lower case */
};

struct recipient_map;

struct server_config {
    char *path;
    /* [main], as in the file (lists after /file and $name expansion) */
    char *myhostname;
    struct cfg_list inet_interfaces;
    struct cfg_list odmr_listen;   /* ODMR (RFC 2645) listeners; empty: none */
    long long odmr_session_time_limit; /* seconds from ATRN's 250 to the turn's end, at most */
    char *queue_directory;
    char *mail_owner;
    char *maillog_file;            /* NULL or "": syslog */
    char *syslog_name;             /* log tag: syslog_name/service[pid], default "etrnkit" */
    int *main_lines;               /* server_config_line(): where each [main] key was set */
    int smtpd_peername_lookup;     /* name clients by reverse + forward DNS */
    struct cfg_list mynetworks;
    struct cfg_list relay_domains; /* domain lists: lower case, sorted, unique */
    struct cfg_list mydestination;
    char *home_mailbox;
    char *local_maildir_base;
    long long message_size_limit;  /* 0: no limit */
    long long smtpd_recipient_limit;
    long long smtpd_timeout;
    long long smtpd_client_connection_count_limit; /* per client address; 0: no limit */
    long long smtpd_client_connection_rate_limit;  /* per anvil_rate_time_unit; 0: off */
    long long default_process_limit;  /* simultaneous sessions in all */
    int smtpd_per_request_deadline;   /* smtpd_timeout bounds a whole command line */
    long long smtpd_min_data_rate;    /* bytes/s that extend the DATA deadline */
    long long smtpd_client_auth_rate_limit; /* per anvil_rate_time_unit; 0: off */
    long long smtpd_error_sleep_time; /* delay step after each AUTH failure of an address;
                                         the delay of every reply past the soft error limit */
    long long smtpd_soft_error_limit; /* errors in a session before replies slow down */
    long long smtpd_hard_error_limit; /* errors in a session that end it (421); 0: off */
    long long smtpd_junk_command_limit; /* NOOP, VRFY, ETRN, RSET before each counts as an error */
    char *smtpd_tls_cert_file;
    char *smtpd_tls_key_file;
    char *smtpd_sasl_users_file;
    struct cfg_list smtpd_etrn_restrictions;
    long long etrn_rate_limit;     /* 0: off */
    long long anvil_rate_time_unit;
    struct cfg_list smtpd_client_event_limit_exceptions;
    struct cfg_list fast_flush_domains;
    long long fast_flush_refresh_time;
    long long fast_flush_purge_time;
    enum server_etrn_reply etrn_reply;
    struct cfg_list etrn_only_domains;
    struct cfg_list defer_transports;
    struct cfg_list transport_maps;
    struct cfg_list relay_recipient_maps; /* empty: every relay_domains address is valid */
    struct cfg_list local_recipient_maps; /* empty: users with a Maildir are valid */
    char *default_transport;
    char *relayhost;
    char *dns_resolver;            /* "IP", "IP:PORT", "[IPv6]:PORT"; NULL or "": the system's */
    long long queue_run_delay;
    long long minimal_backoff_time;
    long long maximal_backoff_time;
    long long maximal_queue_lifetime;
    long long bounce_queue_lifetime;
    long long default_destination_concurrency_limit;
    long long smtp_connect_timeout;   /* smtp client, seconds */
    long long smtp_helo_timeout;
    long long smtp_starttls_timeout;
    long long smtp_mail_timeout;
    long long smtp_rcpt_timeout;
    long long smtp_data_init_timeout;
    long long smtp_data_xfer_timeout;
    long long smtp_data_done_timeout;
    long long smtp_rset_timeout;
    long long smtp_quit_timeout;
    long long smtp_connection_cache_time_limit; /* 0: no connection cache */
    long long smtp_connection_reuse_time_limit;
    enum server_tls_level smtp_tls_security_level;
    char *smtp_tls_CAfile;         /* NULL: the system's CA store */
    struct cfg_list smtp_tls_policy_maps; /* files of "nexthop level" lines */

    /* derived from the above */
    struct server_listen *listen;
    size_t nlisten;
    struct server_listen *odmr;    /* from odmr_listen */
    size_t nodmr;
    struct server_netlist mynetworks_nets;
    struct server_netlist event_limit_exception_nets;
    enum server_restriction *etrn_restrictions;
    size_t netrn_restrictions;
    unsigned defer_mask;           /* bit (1u << enum server_transport) */
    enum server_transport default_transport_kind;
    struct server_nexthop default_nexthop; /* from "smtp:nexthop"; host NULL if none */
    struct server_nexthop relayhost_nexthop; /* host NULL: no relayhost */

    /* tables */
    struct server_transport_entry *transports; /* sorted by pattern, unique */
    size_t ntransports;
    char **files;                  /* map file names the entries point to */
    size_t nfiles;
    struct server_etrn_queue *queues;
    size_t nqueues;
    struct server_etrn_user *users;
    size_t nusers;
    struct recipient_map *relay_recipients; /* NULL when relay_recipient_maps is empty */
    struct recipient_map *local_recipients; /* NULL when local_recipient_maps is empty */
    struct server_tls_policy *tls_policies; /* from smtp_tls_policy_maps, in file order */
    size_t ntls_policies;
};

int server_config_load(const char *path, struct server_config *conf, struct cfg_error *err);
int server_config_line(const struct server_config *conf, const char *key);
void server_config_free(struct server_config *conf);

int server_hostport_parse(const char *text, int default_port, char **host, int *port,
                          const char **why);
int server_nexthop_parse(const char *text, struct server_nexthop *hop, const char **why);
enum server_transport server_transport_parse(const char *name);
const char *server_transport_name(enum server_transport transport);
struct server_route;
int server_tls_policy_lookup(const struct server_tls_policy *list, size_t n,
                             const struct server_route *route);
const struct server_etrn_queue *server_etrn_queue_find(const struct server_config *conf,
                                                       const char *name);
int server_etrn_user_covers(const struct server_etrn_user *u, const char *host, int subdomains);
const struct server_etrn_user *server_etrn_user_find(const struct server_config *conf,
                                                     const char *user);

#endif
