/*
 * agent_config - etrn-agent's configuration (agent.ini).
 *
 * agent_config_load() reads the file with common/config typed tables:
 * [agent], [link] and one or more [provider NAME] sections. Every error
 * (unknown key or section, bad value, missing domains, a domain that is not
 * a valid ETRN argument, a bad host, a password file or config holding a
 * password that group or others can read) is returned as
 * "FILE:LINE: [section] key: what is wrong" and nothing is filled in.
 * The struct owns all its strings; agent_config_free() releases them.
 * A provider's password is read from password_file at load time.
 * With protocol = atrn (ODMR, RFC 2645) the port defaults to 366, username
 * and a password are required, [agent] local_smtp is required (the relayed
 * mail goes there), and domains must be plain domains that fit one ATRN
 * command (atrn_reply's atrn_command()): "@" and "#" are ETRN forms.
 * agent_config_check_paths() is what --check-config adds: the directories
 * of log (a path) and status_file exist, on_link_up names an executable (a
 * path, or a name found in PATH as execvp finds it), and, given run_user
 * (as root only), that user can read the
 * config and password files, make files in those directories and run
 * on_link_up. Errors name the line that set the file.
 */
#ifndef ETRNKIT_AGENT_CONFIG_H
#define ETRNKIT_AGENT_CONFIG_H

#include "config.h"

enum agent_tls { AGENT_TLS_STARTTLS, AGENT_TLS_IMPLICIT, AGENT_TLS_NONE };
enum agent_protocol { AGENT_PROTO_ETRN, AGENT_PROTO_ATRN };

#define AGENT_ATRN_PORT 366 /* the odmr service (RFC 2645) */

/* one entry of "hosts": name or address, optional port (0: the provider's) */
struct agent_host {
    char *name;
    int port;
};

struct agent_provider {
    char *name;                 /* from [provider NAME] */
    int line;                   /* line of the section header */
    struct cfg_list hosts_text; /* "hosts" as written */
    struct agent_host *hosts;   /* parsed fixed hosts (when not mx:) */
    size_t nhosts;
    char *mx_domain;            /* hosts = mx:DOMAIN; NULL for a fixed list */
    long long port;
    struct cfg_list domains;    /* validated ETRN arguments */
    enum agent_tls tls;
    int tls_verify;
    char *ca_file;
    char *username;
    char *password_file;
    int password_file_line;     /* where password_file was set */
    char *password;             /* inline, or read from password_file */
    long long timeout;          /* one whole SMTP session, seconds (ATRN: up to its reply) */
    enum agent_protocol protocol;
    long long idle_timeout;     /* ATRN relay: silence on both connections, seconds */
    long long session_limit;    /* ATRN: the whole session, connect to close, seconds */
};

struct agent_config {
    char *path;
    char *helo_name;            /* default: the host name */
    char *log;
    char *status_file;
    long long interval, retry_min, retry_max, settle, local_smtp_wait;
    char *local_smtp;           /* host:port or NULL */
    struct cfg_list on_link_up; /* argv, run without a shell; empty: none */
    char *resolver;             /* ip[:port] or NULL: the system's */
    struct cfg_list interfaces; /* [link] interfaces; empty: any with a default route */
    struct agent_provider *providers;
    size_t nproviders;
    int log_line, status_file_line, on_link_up_line; /* where they were set; 0: default */
};

int agent_config_load(const char *path, struct agent_config *conf, struct cfg_error *err);
int agent_config_check_paths(const struct agent_config *conf, const char *run_user,
                             struct cfg_error *err);
void agent_config_free(struct agent_config *conf);
int agent_parse_hostport(const char *text, char **host, int *port, const char **why);

#endif
