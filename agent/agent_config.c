#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_config.h"
#include "alloc.h"
#include "atrn_reply.h"
#include "asuser.h"
#include "buf.h"
#include "domain.h"
#include "log.h"
#include "mx.h"

static const char *const tls_modes[] = { "starttls", "tls", "none", NULL };
static const char *const protocols[] = { "etrn", "atrn", NULL };
/* CFG_ENUM fills an int */
_Static_assert(sizeof(enum agent_tls) == sizeof(int), "CFG_ENUM field size");
_Static_assert(sizeof(enum agent_protocol) == sizeof(int), "CFG_ENUM field size");

#define AGENT_KEY(name, type, def, min, max, field) \
    { name, type, def, min, max, NULL, offsetof(struct agent_config, field), 0 }

static const struct cfg_key agent_keys[] = {
    AGENT_KEY("helo_name", CFG_STRING, NULL, 0, 0, helo_name),
    AGENT_KEY("log", CFG_STRING, "syslog", 0, 0, log),
    AGENT_KEY("status_file", CFG_STRING, "/var/lib/etrnkit/agent-status.json", 0, 0, status_file),
    AGENT_KEY("interval", CFG_DURATION, "5m", 0, 0, interval),
    AGENT_KEY("retry_min", CFG_DURATION, "10s", 1, 0, retry_min),
    AGENT_KEY("retry_max", CFG_DURATION, "10m", 1, 0, retry_max),
    AGENT_KEY("settle", CFG_DURATION, "1s", 0, 3600, settle),
    AGENT_KEY("local_smtp", CFG_STRING, NULL, 0, 0, local_smtp),
    AGENT_KEY("local_smtp_wait", CFG_DURATION, "30s", 0, 86400, local_smtp_wait),
    AGENT_KEY("on_link_up", CFG_LIST, NULL, 0, 0, on_link_up),
    AGENT_KEY("resolver", CFG_STRING, NULL, 0, 0, resolver),
    { NULL, 0, NULL, 0, 0, NULL, 0, 0 },
};

static const struct cfg_key link_keys[] = {
    AGENT_KEY("interfaces", CFG_LIST, NULL, 0, 0, interfaces),
    { NULL, 0, NULL, 0, 0, NULL, 0, 0 },
};

#define PROVIDER_KEY(name, type, def, min, max, choices, field, flags) \
    { name, type, def, min, max, choices, offsetof(struct agent_provider, field), flags }

static const struct cfg_key provider_keys[] = {
    PROVIDER_KEY("hosts", CFG_LIST, NULL, 0, 0, NULL, hosts_text, CFG_REQUIRED),
    PROVIDER_KEY("port", CFG_INT, "25", 1, 65535, NULL, port, 0),
    PROVIDER_KEY("domains", CFG_LIST, NULL, 0, 0, NULL, domains, CFG_REQUIRED),
    PROVIDER_KEY("tls", CFG_ENUM, "starttls", 0, 0, tls_modes, tls, 0),
    PROVIDER_KEY("tls_verify", CFG_BOOL, "yes", 0, 0, NULL, tls_verify, 0),
    PROVIDER_KEY("ca_file", CFG_STRING, NULL, 0, 0, NULL, ca_file, 0),
    PROVIDER_KEY("username", CFG_STRING, NULL, 0, 0, NULL, username, 0),
    PROVIDER_KEY("password", CFG_STRING, NULL, 0, 0, NULL, password, 0),
    PROVIDER_KEY("password_file", CFG_STRING, NULL, 0, 0, NULL, password_file, 0),
    PROVIDER_KEY("timeout", CFG_DURATION, "30s", 1, 3600, NULL, timeout, 0),
    PROVIDER_KEY("protocol", CFG_ENUM, "etrn", 0, 0, protocols, protocol, 0),
    PROVIDER_KEY("idle_timeout", CFG_DURATION, "300s", 1, 86400, NULL, idle_timeout, 0),
    PROVIDER_KEY("session_limit", CFG_DURATION, "1h", 1, 7 * 86400, NULL, session_limit, 0),
    { NULL, 0, NULL, 0, 0, NULL, 0, 0 },
};

#define PROVIDER_PREFIX "provider "

/* What the parse handler keeps between calls. */
struct agent_parse {
    struct agent_config *conf;
    struct cfg_section agent_sec;
    struct cfg_section link_sec;
    struct cfg_section *prov_secs; /* one per provider */
    struct cfg_list sec_names;     /* "provider NAME", for messages */
    char *current;                 /* section of the previous key */
    struct cfg_error err;
};

/* agent_parse_hostport - "name", "name:25", "192.0.2.9:25", "[2001:db8::9]:2525" */
int agent_parse_hostport(const char *text, char **host, int *port, const char **why)
{
    unsigned char bin[16];
    const char *port_text = NULL;
    char *name;

    *port = 0;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');

        if (close == NULL || (close[1] != 0 && close[1] != ':')) {
            *why = "bad [address] form (expected [IPv6]:port)";
            return -1;
        }
        name = xstrndup(text + 1, (size_t) (close - text - 1));
        if (inet_pton(AF_INET6, name, bin) != 1 && inet_pton(AF_INET, name, bin) != 1) {
            free(name);
            *why = "not an IP address inside [ ]";
            return -1;
        }
        if (close[1] == ':')
            port_text = close + 2;
    } else if (inet_pton(AF_INET6, text, bin) == 1) {
        name = xstrdup(text);
    } else {
        const char *colon = strchr(text, ':');
        const char *reason;

        name = colon ? xstrndup(text, (size_t) (colon - text)) : xstrdup(text);
        if (colon)
            port_text = colon + 1;
        if (inet_pton(AF_INET, name, bin) != 1 && !domain_is_hostname(name, &reason)) {
            free(name);
            *why = reason;
            return -1;
        }
    }
    if (port_text) {
        char *end;
        long p;

        errno = 0;
        p = strtol(port_text, &end, 10);
        if (*port_text == 0 || *end != 0 || p < 1 || p > 65535) {
            free(name);
            *why = "port must be a number from 1 to 65535";
            return -1;
        }
        *port = (int) p;
    }
    *host = name;
    return 0;
}

/* check_private_file - a regular file that only its owner may read */
static int check_private_file(const char *path, const char *what, char *why, size_t whylen)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        snprintf(why, whylen, "%s %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "%s %s is not a regular file", what, path);
        return -1;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(why, whylen, "%s %s is readable by group or others (mode %04o); chmod 600 it",
                 what, path, (unsigned) (st.st_mode & 07777));
        return -1;
    }
    return 0;
}

/* read_password - first line of a private password file */
static int read_password(const char *path, char **password, char *why, size_t whylen)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    FILE *fp;

    if (check_private_file(path, "password file", why, whylen) != 0)
        return -1;
    if ((fp = fopen(path, "r")) == NULL) {
        snprintf(why, whylen, "password file %s: %s", path, strerror(errno));
        return -1;
    }
    n = getline(&line, &cap, fp);
    fclose(fp);
    if (n <= 0) {
        free(line);
        snprintf(why, whylen, "password file %s is empty", path);
        return -1;
    }
    line[strcspn(line, "\r\n")] = 0;
    if (*line == 0) {
        free(line);
        snprintf(why, whylen, "password file %s starts with an empty line", path);
        return -1;
    }
    *password = line;
    return 0;
}

/* provider_new - open a [provider NAME] section */
static struct agent_provider *provider_new(struct agent_parse *ps, const char *name, int line)
{
    struct agent_config *conf = ps->conf;
    struct agent_provider *p;

    conf->providers = xreallocarray(conf->providers, conf->nproviders + 1, sizeof(*conf->providers));
    ps->prov_secs = xreallocarray(ps->prov_secs, conf->nproviders + 1, sizeof(*ps->prov_secs));
    p = &conf->providers[conf->nproviders];
    memset(p, 0, sizeof(*p));
    p->name = xstrdup(name);
    p->line = line;
    /* the section keeps a pointer into conf->providers: fix all after realloc */
    for (size_t i = 0; i < conf->nproviders; i++)
        ps->prov_secs[i].obj = &conf->providers[i];
    cfg_list_add(&ps->sec_names, ps->current);
    cfg_section_init(&ps->prov_secs[conf->nproviders], conf->path,
                     ps->sec_names.items[ps->sec_names.count - 1], provider_keys, p);
    conf->nproviders++;
    return p;
}

/* provider_value - validate what a provider key just received */
static int provider_value(struct agent_parse *ps, struct agent_provider *p, const struct cfg_item *item,
                          size_t before, char *why, size_t whylen)
{
    const char *reason;

    if (strcmp(item->key, "domains") == 0) {
        for (size_t i = before; i < p->domains.count; i++) {
            if (domain_etrn_arg(p->domains.items[i], &reason) == ETRN_ARG_INVALID) {
                snprintf(why, whylen, "[%s] domains: \"%s\" is not a valid ETRN argument: %s",
                         item->section, p->domains.items[i], reason);
                return -1;
            }
        }
        return 0;
    }
    if (strcmp(item->key, "hosts") == 0) {
        for (size_t i = before; i < p->hosts_text.count; i++) {
            const char *text = p->hosts_text.items[i];
            struct agent_host h;

            if (strncmp(text, "mx:", 3) == 0) {
                if (p->hosts_text.count != 1) {
                    snprintf(why, whylen, "[%s] hosts: mx:DOMAIN must stand alone", item->section);
                    return -1;
                }
                if (!domain_is_hostname(text + 3, &reason)) {
                    snprintf(why, whylen, "[%s] hosts: \"%s\": %s", item->section, text, reason);
                    return -1;
                }
                p->mx_domain = xstrdup(text + 3);
                continue;
            }
            if (p->mx_domain) {
                snprintf(why, whylen, "[%s] hosts: mx:DOMAIN must stand alone", item->section);
                return -1;
            }
            if (agent_parse_hostport(text, &h.name, &h.port, &reason) != 0) {
                snprintf(why, whylen, "[%s] hosts: \"%s\": %s", item->section, text, reason);
                return -1;
            }
            p->hosts = xreallocarray(p->hosts, p->nhosts + 1, sizeof(*p->hosts));
            p->hosts[p->nhosts++] = h;
        }
        return 0;
    }
    if (strcmp(item->key, "password_file") == 0) {
        if (p->password) {
            snprintf(why, whylen, "[%s] password_file: password is set too; use one of them",
                     item->section);
            return -1;
        }
        p->password_file_line = item->line;
        if (read_password(p->password_file, &p->password, why, whylen) != 0) {
            char reason_text[512];

            snprintf(reason_text, sizeof(reason_text), "%s", why);
            snprintf(why, whylen, "[%s] password_file: %s", item->section, reason_text);
            return -1;
        }
        return 0;
    }
    if (strcmp(item->key, "password") == 0) {
        if (p->password_file) {
            snprintf(why, whylen, "[%s] password: password_file is set too; use one of them",
                     item->section);
            return -1;
        }
        if (check_private_file(ps->conf->path, "config file holding a password", why, whylen) != 0) {
            char reason_text[512];

            snprintf(reason_text, sizeof(reason_text), "%s", why);
            snprintf(why, whylen, "[%s] password: %s", item->section, reason_text);
            return -1;
        }
        return 0;
    }
    if (strcmp(item->key, "ca_file") == 0 && access(p->ca_file, R_OK) != 0) {
        snprintf(why, whylen, "[%s] ca_file: %s: %s", item->section, p->ca_file, strerror(errno));
        return -1;
    }
    return 0;
}

/* key_home - the section a key belongs to, or NULL when no section has it */
static const char *key_home(const char *key)
{
    static const struct {
        const struct cfg_key *keys;
        const char *name;
    } tables[] = { { agent_keys, "[agent]" }, { link_keys, "[link]" },
                   { provider_keys, "a [provider NAME] section" } };

    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        for (const struct cfg_key *k = tables[t].keys; k->name; k++)
            if (strcmp(k->name, key) == 0)
                return tables[t].name;
    return NULL;
}

/* set_key - one key into its section; a key of another section says where it belongs */
static int set_key(struct cfg_section *sec, const struct cfg_item *item, char *why, size_t whylen)
{
    const char *home;
    int own = 0;

    if (cfg_section_set(sec, item, why, whylen) == 0)
        return 0;
    for (const struct cfg_key *k = sec->keys; k->name; k++)
        own |= strcmp(k->name, item->key) == 0;
    if (!own && (home = key_home(item->key)) != NULL)
        snprintf(why, whylen, "[%s] %s: not a key of this section; it belongs in %s",
                 item->section, item->key, home);
    return -1;
}

/* agent_handler - one key from agent.ini */
static int agent_handler(void *ctx, const struct cfg_item *item, char *why, size_t whylen)
{
    struct agent_parse *ps = ctx;
    struct agent_config *conf = ps->conf;

    if (strcmp(item->section, "agent") == 0)
        return set_key(&ps->agent_sec, item, why, whylen);
    if (strcmp(item->section, "link") == 0)
        return set_key(&ps->link_sec, item, why, whylen);
    if (strncmp(item->section, PROVIDER_PREFIX, strlen(PROVIDER_PREFIX)) != 0) {
        snprintf(why, whylen, "[%s]: unknown section (expected [agent], [link] or [provider NAME])",
                 item->section);
        return -1;
    }

    const char *name = item->section + strlen(PROVIDER_PREFIX);
    struct agent_provider *p = NULL;
    struct cfg_section *sec;

    name += strspn(name, " \t");
    if (*name == 0 || strpbrk(name, " \t/\\\"") != NULL) {
        snprintf(why, whylen, "[%s]: a provider needs a one-word name, e.g. [provider isp]",
                 item->section);
        return -1;
    }
    if (ps->current == NULL || strcmp(ps->current, item->section) != 0
        || conf->providers[conf->nproviders - 1].line != item->section_line) {
        for (size_t i = 0; i < conf->nproviders; i++) {
            if (strcmp(conf->providers[i].name, name) == 0) {
                snprintf(why, whylen, "[%s]: section given twice (first at line %d)", item->section,
                         conf->providers[i].line);
                return -1;
            }
        }
        free(ps->current);
        ps->current = xstrdup(item->section);
        p = provider_new(ps, name, item->section_line);
    } else {
        p = &conf->providers[conf->nproviders - 1];
    }
    sec = &ps->prov_secs[conf->nproviders - 1];
    size_t before = strcmp(item->key, "domains") == 0 ? p->domains.count
                  : strcmp(item->key, "hosts") == 0 ? p->hosts_text.count : 0;
    if (set_key(sec, item, why, whylen) != 0)
        return -1;
    return provider_value(ps, p, item, before, why, whylen);
}

/* check_parent_dir - the directory a file will be made in (dir) exists; 0 or -1 + why */
static int check_parent_dir(const char *path, char *dir, size_t dirlen, char *why, size_t whylen)
{
    const char *slash = strrchr(path, '/');
    struct stat st;

    if (slash == NULL)
        snprintf(dir, dirlen, ".");
    else if (slash == path)
        snprintf(dir, dirlen, "/");
    else
        snprintf(dir, dirlen, "%.*s", (int) (slash - path), path);
    if (stat(dir, &st) != 0) {
        snprintf(why, whylen, "%s: directory %s: %s", path, dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, whylen, "%s: %s is not a directory", path, dir);
        return -1;
    }
    return 0;
}

/* atrn_check - what protocol = atrn needs: credentials, local_smtp, ATRN domains */
static int atrn_check(struct agent_parse *ps, size_t i)
{
    struct agent_config *conf = ps->conf;
    struct agent_provider *p = &conf->providers[i];
    const char *sec = ps->prov_secs[i].name;
    int proto_line = cfg_section_line(&ps->prov_secs[i], "protocol");
    struct buf cmd = BUF_INIT;
    const char *why;
    size_t bad;

    if (cfg_section_line(&ps->prov_secs[i], "port") == 0)
        p->port = AGENT_ATRN_PORT;
    if (p->username == NULL) {
        cfg_error_set(&ps->err, conf->path, proto_line,
                      "[%s] protocol: atrn needs username and password (or password_file): "
                      "ODMR serves only an authenticated site", sec);
        return -1;
    }
    if (conf->local_smtp == NULL) {
        cfg_error_set(&ps->err, conf->path, proto_line,
                      "[%s] protocol: atrn needs [agent] local_smtp, the site's own SMTP "
                      "listener that receives the relayed mail", sec);
        return -1;
    }
    if (atrn_command(p->domains.items, p->domains.count, &cmd, &bad, &why) != 0) {
        if (bad < p->domains.count)
            cfg_error_set(&ps->err, conf->path, cfg_section_line(&ps->prov_secs[i], "domains"),
                          "[%s] domains: \"%s\" is not an ATRN argument: %s", sec,
                          p->domains.items[bad], why);
        else
            cfg_error_set(&ps->err, conf->path, cfg_section_line(&ps->prov_secs[i], "domains"),
                          "[%s] domains: %s", sec, why);
        buf_free(&cmd);
        return -1;
    }
    buf_free(&cmd);
    return 0;
}

/* agent_check - whole-file rules, after every key was read */
static int agent_check(struct agent_parse *ps)
{
    struct agent_config *conf = ps->conf;
    const char *reason;
    char host[256];

    if (conf->nproviders == 0) {
        cfg_error_set(&ps->err, conf->path, 0, "no [provider NAME] section: at least one is required");
        return -1;
    }
    if (conf->helo_name == NULL) {
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = 0;
        conf->helo_name = xstrdup(host);
    } else if (!domain_is_hostname(conf->helo_name, &reason)) {
        cfg_error_set(&ps->err, conf->path, cfg_section_line(&ps->agent_sec, "helo_name"),
                      "[agent] helo_name: \"%s\": %s", conf->helo_name, reason);
        return -1;
    }
    if (conf->retry_max < conf->retry_min) {
        cfg_error_set(&ps->err, conf->path, cfg_section_line(&ps->agent_sec, "retry_max"),
                      "[agent] retry_max: must not be below retry_min (%llds)", conf->retry_min);
        return -1;
    }
    if (conf->local_smtp) {
        char *h = NULL;
        int port = 0;

        reason = "expected host:port";
        if (agent_parse_hostport(conf->local_smtp, &h, &port, &reason) != 0 || port == 0) {
            free(h);
            cfg_error_set(&ps->err, conf->path, cfg_section_line(&ps->agent_sec, "local_smtp"),
                          "[agent] local_smtp: \"%s\": %s", conf->local_smtp,
                          port == 0 ? "expected host:port" : reason);
            return -1;
        }
        free(h);
    }
    if (conf->resolver) {
        char why[256];
        struct mx_resolver *res = mx_resolver_new(conf->resolver, why, sizeof(why));

        if (res == NULL) {
            cfg_error_set(&ps->err, conf->path, cfg_section_line(&ps->agent_sec, "resolver"),
                          "[agent] resolver: \"%s\": %s", conf->resolver, why);
            return -1;
        }
        mx_resolver_free(res);
    }
    conf->log_line = cfg_section_line(&ps->agent_sec, "log");
    conf->status_file_line = cfg_section_line(&ps->agent_sec, "status_file");
    conf->on_link_up_line = cfg_section_line(&ps->agent_sec, "on_link_up");
    for (size_t i = 0; i < conf->nproviders; i++) {
        struct agent_provider *p = &conf->providers[i];
        const char *sec = ps->prov_secs[i].name;

        if (cfg_section_check(&ps->prov_secs[i], p->line, &ps->err) != 0)
            return -1;
        if (p->domains.count == 0) {
            cfg_error_set(&ps->err, conf->path, cfg_section_line(&ps->prov_secs[i], "domains"),
                          "[%s] domains: empty list", sec);
            return -1;
        }
        if (p->hosts_text.count == 0) {
            cfg_error_set(&ps->err, conf->path, cfg_section_line(&ps->prov_secs[i], "hosts"),
                          "[%s] hosts: empty list", sec);
            return -1;
        }
        if ((p->username == NULL) != (p->password == NULL)) {
            cfg_error_set(&ps->err, conf->path, p->line,
                          p->username ? "[%s] password_file: username is set but no password or password_file"
                                      : "[%s] username: a password is set but no username", sec);
            return -1;
        }
        if (p->protocol == AGENT_PROTO_ATRN && atrn_check(ps, i) != 0)
            return -1;
    }
    return 0;
}

/* agent_config_load - read and validate agent.ini */
int agent_config_load(const char *path, struct agent_config *conf, struct cfg_error *err)
{
    struct agent_parse ps;
    int rc;

    memset(conf, 0, sizeof(*conf));
    memset(&ps, 0, sizeof(ps));
    conf->path = xstrdup(path);
    ps.conf = conf;
    cfg_section_init(&ps.agent_sec, path, "agent", agent_keys, conf);
    cfg_section_init(&ps.link_sec, path, "link", link_keys, conf);
    rc = cfg_parse(path, agent_handler, &ps, &ps.err);
    if (rc == 0)
        rc = agent_check(&ps);
    cfg_section_done(&ps.agent_sec);
    cfg_section_done(&ps.link_sec);
    for (size_t i = 0; i < conf->nproviders; i++)
        cfg_section_done(&ps.prov_secs[i]);
    free(ps.prov_secs);
    free(ps.current);
    cfg_list_free(&ps.sec_names);
    if (rc != 0) {
        *err = ps.err;
        agent_config_free(conf);
        return -1;
    }
    return 0;
}

/* find_in_path - where execvp() would find prog; 0 or -1 */
static int find_in_path(const char *prog, char *out, size_t outlen)
{
    const char *path = getenv("PATH");

    if (path == NULL)
        path = "/bin:/usr/bin";
    for (const char *p = path; *p;) {
        size_t len = strcspn(p, ":");

        snprintf(out, outlen, "%.*s/%s", (int) len, len ? p : ".", prog);
        if (access(out, X_OK) == 0)
            return 0;
        p += len;
        if (*p == ':')
            p++;
    }
    return -1;
}

/* log_is_file - log names a file (not syslog or stderr) */
static int log_is_file(const struct agent_config *conf)
{
    return conf->log && *conf->log && strcmp(conf->log, "syslog") != 0
           && strcmp(conf->log, "stderr") != 0;
}

/* agent_config_check_paths - what --check-config adds to a load (contract in agent_config.h) */
int agent_config_check_paths(const struct agent_config *conf, const char *run_user,
                             struct cfg_error *err)
{
    char why[512], logdir[4096], statusdir[4096], progpath[4096];

    if (log_is_file(conf) && check_parent_dir(conf->log, logdir, sizeof(logdir), why,
                                              sizeof(why)) != 0) {
        cfg_error_set(err, conf->path, conf->log_line, "[agent] log: %s", why);
        return -1;
    }
    if (check_parent_dir(conf->status_file, statusdir, sizeof(statusdir), why, sizeof(why)) != 0) {
        cfg_error_set(err, conf->path, conf->status_file_line, "[agent] status_file: %s", why);
        return -1;
    }
    if (conf->on_link_up.count > 0) {
        const char *prog = conf->on_link_up.items[0];

        if (strchr(prog, '/') == NULL && find_in_path(prog, progpath, sizeof(progpath)) != 0) {
            cfg_error_set(err, conf->path, conf->on_link_up_line,
                          "[agent] on_link_up: %s: no such program in PATH (%s)", prog,
                          getenv("PATH") ? getenv("PATH") : "unset");
            return -1;
        }
        if (strchr(prog, '/'))
            snprintf(progpath, sizeof(progpath), "%s", prog);
        if (access(progpath, X_OK) != 0) {
            cfg_error_set(err, conf->path, conf->on_link_up_line, "[agent] on_link_up: %s: %s",
                          progpath, strerror(errno));
            return -1;
        }
    }
    if (run_user == NULL)
        return 0;

    /* as the user the units and hooks run it as: what it reads, writes and runs */
    size_t max = conf->nproviders + 4, n = 0;
    struct asuser_check *checks = xcalloc(max, sizeof(*checks));
    struct label {
        char text[300]; /* "" for the config file itself */
        int line;
    } *label = xcalloc(max, sizeof(*label));
    int rc = 0;

    checks[n++] = (struct asuser_check) { conf->path, R_OK, 0 };
    snprintf(label[n].text, sizeof(label[n].text), "[agent] status_file");
    label[n].line = conf->status_file_line;
    checks[n++] = (struct asuser_check) { statusdir, W_OK, 0 };
    if (log_is_file(conf)) {
        snprintf(label[n].text, sizeof(label[n].text), "[agent] log");
        label[n].line = conf->log_line;
        checks[n++] = (struct asuser_check) { logdir, W_OK, 0 };
    }
    if (conf->on_link_up.count > 0) {
        snprintf(label[n].text, sizeof(label[n].text), "[agent] on_link_up");
        label[n].line = conf->on_link_up_line;
        checks[n++] = (struct asuser_check) { progpath, X_OK, 0 };
    }
    for (size_t i = 0; i < conf->nproviders; i++)
        if (conf->providers[i].password_file) {
            snprintf(label[n].text, sizeof(label[n].text), "[provider %s] password_file",
                     conf->providers[i].name);
            label[n].line = conf->providers[i].password_file_line;
            checks[n++] = (struct asuser_check) { conf->providers[i].password_file, R_OK, 0 };
        }
    if (asuser_check(run_user, checks, n, why, sizeof(why)) != 0) {
        cfg_error_set(err, conf->path, 0, "%s", why);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *verb = checks[i].mode == R_OK ? "cannot read it"
                         : checks[i].mode == W_OK ? "cannot make files in it" : "cannot run it";

        if (checks[i].err == 0)
            continue;
        rc = -1;
        if (label[i].text[0] == 0)
            cfg_error_set(err, conf->path, 0, "user %s %s (%s)", run_user, verb,
                          strerror(checks[i].err));
        else
            cfg_error_set(err, conf->path, label[i].line, "%s: %s: user %s %s (%s)",
                          label[i].text, checks[i].path, run_user, verb, strerror(checks[i].err));
    }
    free(checks);
    free(label);
    return rc;
}

/* agent_config_free - release everything the config owns */
void agent_config_free(struct agent_config *conf)
{
    for (size_t i = 0; i < conf->nproviders; i++) {
        struct agent_provider *p = &conf->providers[i];

        if (p->password)
            explicit_bzero(p->password, strlen(p->password));
        cfg_section_free(provider_keys, p);
        for (size_t j = 0; j < p->nhosts; j++)
            free(p->hosts[j].name);
        free(p->hosts);
        free(p->mx_domain);
        free(p->name);
    }
    free(conf->providers);
    cfg_section_free(agent_keys, conf);
    cfg_section_free(link_keys, conf);
    free(conf->path);
    memset(conf, 0, sizeof(*conf));
}
