#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "fileio.h"
#include "json.h"
#include "status.h"

struct status_domain {
    char *domain;
    int code;
    char *text;
    const char *meaning;
    enum etrn_verdict verdict;
    long pending;
    time_t when;
};

struct status_host {
    char *provider;
    char *host;
    int port;
    time_t when;
    enum etrn_verdict verdict;
    char *error;
    long relayed;              /* ATRN: messages relayed in the last session; -1: ETRN */
    time_t next;               /* next attempt the daemon planned; 0: none planned */
    char *next_why;            /* "retry", "mail pending", "interval" */
    struct status_domain *domains;
    size_t ndomains;
};

struct status_table {
    struct status_host *hosts;
    size_t count;
};

/* status_new - an empty table */
struct status_table *status_new(void)
{
    return xcalloc(1, sizeof(struct status_table));
}

/* status_find_host - the entry for provider/host/port, created if new */
static struct status_host *status_find_host(struct status_table *st, const char *provider,
                                            const char *host, int port)
{
    struct status_host *h;

    for (size_t i = 0; i < st->count; i++) {
        h = &st->hosts[i];
        if (h->port == port && strcmp(h->provider, provider) == 0 && strcmp(h->host, host) == 0)
            return h;
    }
    st->hosts = xreallocarray(st->hosts, st->count + 1, sizeof(*h));
    h = &st->hosts[st->count++];
    memset(h, 0, sizeof(*h));
    h->provider = xstrdup(provider);
    h->host = xstrdup(host);
    h->port = port;
    h->relayed = -1;
    return h;
}

/* status_set_next - when the daemon will contact a host again (0: not planned) */
void status_set_next(struct status_table *st, const char *provider, const char *host, int port,
                     time_t next, const char *why)
{
    struct status_host *h = status_find_host(st, provider, host, port);

    h->next = next;
    free(h->next_why);
    h->next_why = next ? xstrdup(why) : NULL;
}

/* status_clear_next - no attempt planned for any host (the link went down) */
void status_clear_next(struct status_table *st)
{
    for (size_t i = 0; i < st->count; i++) {
        st->hosts[i].next = 0;
        free(st->hosts[i].next_why);
        st->hosts[i].next_why = NULL;
    }
}

/* status_record - merge one session's outcome */
void status_record(struct status_table *st, const char *provider, const char *host, int port,
                   const struct etrn_session *s, time_t when)
{
    struct status_host *h = status_find_host(st, provider, host, port);

    h->when = when;
    h->verdict = s->verdict;
    free(h->error);
    h->error = xstrdup(s->error);
    h->relayed = s->relayed;
    for (size_t i = 0; i < s->count; i++) {
        const struct etrn_domain_result *r = &s->results[i];
        struct status_domain *d = NULL;

        for (size_t j = 0; j < h->ndomains; j++)
            if (strcmp(h->domains[j].domain, r->domain) == 0)
                d = &h->domains[j];
        if (d == NULL) {
            h->domains = xreallocarray(h->domains, h->ndomains + 1, sizeof(*d));
            d = &h->domains[h->ndomains++];
            memset(d, 0, sizeof(*d));
            d->domain = xstrdup(r->domain);
        }
        free(d->text);
        d->text = xstrdup(r->text ? r->text : "");
        d->code = r->code;
        d->meaning = r->meaning;
        d->verdict = r->verdict;
        d->pending = r->pending;
        d->when = when;
    }
}

static void json_time(struct buf *b, time_t t)
{
    char stamp[32];
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    buf_json_string(b, stamp);
}

/* member - ", \"name\": \"text\"" (text JSON-escaped) */
static void member(struct buf *b, const char *name, const char *text)
{
    buf_printf(b, ", \"%s\": ", name);
    buf_json_string(b, text);
}

/* time_member - ", \"name\": \"2026-01-02T03:04:05Z\"" */
static void time_member(struct buf *b, const char *name, time_t t)
{
    buf_printf(b, ", \"%s\": ", name);
    json_time(b, t);
}

/* status_render - the table as JSON */
static void status_render(const struct status_table *st, struct buf *b)
{
    buf_puts(b, "{\n  \"updated\": ");
    json_time(b, time(NULL));
    buf_puts(b, ",\n  \"hosts\": [");
    for (size_t i = 0; i < st->count; i++) {
        const struct status_host *h = &st->hosts[i];

        buf_puts(b, i ? ",\n    {\"provider\": " : "\n    {\"provider\": ");
        buf_json_string(b, h->provider);
        member(b, "host", h->host);
        buf_printf(b, ", \"port\": %d", h->port);
        time_member(b, "time", h->when);
        member(b, "result", etrn_verdict_name(h->verdict));
        member(b, "error", h->error);
        if (h->relayed >= 0)
            buf_printf(b, ", \"relayed\": %ld", h->relayed);
        if (h->next) {
            time_member(b, "next", h->next);
            member(b, "next_why", h->next_why);
        }
        buf_puts(b, ",\n     \"domains\": [");
        for (size_t j = 0; j < h->ndomains; j++) {
            const struct status_domain *d = &h->domains[j];

            buf_puts(b, j ? ",\n       {\"domain\": " : "\n       {\"domain\": ");
            buf_json_string(b, d->domain);
            buf_printf(b, ", \"code\": %d", d->code);
            member(b, "text", d->text);
            member(b, "meaning", d->meaning);
            member(b, "result", etrn_verdict_name(d->verdict));
            if (d->pending >= 0)
                buf_printf(b, ", \"pending\": %ld", d->pending);
            time_member(b, "time", d->when);
            buf_puts(b, "}");
        }
        buf_puts(b, "]}");
    }
    buf_puts(b, "\n  ]\n}\n");
}

/* status_write - write the table atomically */
int status_write(const struct status_table *st, const char *path, char *why, size_t whylen)
{
    struct buf json = BUF_INIT;
    struct buf tmp = BUF_INIT;
    char *dircopy = xstrdup(path);
    char *basecopy = xstrdup(path);
    const char *dir = dirname(dircopy);
    const char *base = basename(basecopy);
    const char *step;
    int dfd, rc = -1;

    status_render(st, &json);
    buf_printf(&tmp, "%s.tmp.%ld", base, (long) getpid());
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        snprintf(why, whylen, "cannot open directory %s: %s", dir, strerror(errno));
    else if (fileio_replace(dfd, buf_cstr(&tmp), dfd, base, json.data ? json.data : "", json.len,
                            0644, FILEIO_SYNC_DIR, &step) != 0)
        snprintf(why, whylen, "%s %s/%s: %s", step, dir, buf_cstr(&tmp), strerror(errno));
    else
        rc = 0;
    if (dfd >= 0)
        close(dfd);
    buf_free(&json);
    buf_free(&tmp);
    free(dircopy);
    free(basecopy);
    return rc;
}

/* status_free - release the table and everything in it */
void status_free(struct status_table *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->count; i++) {
        struct status_host *h = &st->hosts[i];

        for (size_t j = 0; j < h->ndomains; j++) {
            free(h->domains[j].domain);
            free(h->domains[j].text);
        }
        free(h->domains);
        free(h->provider);
        free(h->host);
        free(h->error);
        free(h->next_why);
    }
    free(st->hosts);
    free(st);
}

/* ---- reading the file back (etrn-agent --status) ---- */

/* jtime - "YYYY-MM-DDTHH:MM:SSZ" as written by json_time; 0 when absent or bad */
static time_t jtime(const struct json_val *obj, const char *key)
{
    const char *s = json_str(obj, key, "");
    struct tm tm;
    char *end;

    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return end && *end == 0 ? timegm(&tm) : 0;
}

/* fmt_age - "42s", "5m03s", "3h12m", "2d04h" */
static void fmt_age(char *out, size_t len, long long secs)
{
    if (secs < 0)
        secs = 0;
    if (secs < 60)
        snprintf(out, len, "%llds", secs);
    else if (secs < 3600)
        snprintf(out, len, "%lldm%02llds", secs / 60, secs % 60);
    else if (secs < 86400)
        snprintf(out, len, "%lldh%02lldm", secs / 3600, secs % 3600 / 60);
    else
        snprintf(out, len, "%lldd%02lldh", secs / 86400, secs % 86400 / 3600);
}

/* status_hostport - "host:port", an IPv6 address in brackets */
void status_hostport(char *out, size_t len, const char *host, int port)
{
    int v6 = strchr(host, ':') != NULL && host[0] != '[';

    snprintf(out, len, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

/* print_next - "; next attempt ..." for one host */
static void print_next(FILE *out, const struct json_val *h, time_t now)
{
    time_t next = jtime(h, "next");
    char age[32];

    if (next == 0) {
        fprintf(out, "; next attempt: at the next round (link up, interval, hook or timer)\n");
        return;
    }
    fmt_age(age, sizeof(age), (long long) (next - now));
    if (next <= now)
        fprintf(out, "; next attempt: due now (%s)\n", json_str(h, "next_why", ""));
    else
        fprintf(out, "; next attempt in %s (%s)\n", age, json_str(h, "next_why", ""));
}

/* status_print - the status file in words (contract in status.h) */
int status_print(const char *path, time_t now, FILE *out, char *why, size_t whylen)
{
    struct buf text = BUF_INIT;
    struct json_val root;
    const struct json_val *hosts;
    char chunk[4096], age[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        snprintf(why, whylen, "%s: %s%s", path, strerror(errno),
                 errno == ENOENT ? " (no round has run yet)" : "");
        return -1;
    }
    while ((n = read(fd, chunk, sizeof(chunk))) > 0 && text.len < (1u << 24))
        buf_append(&text, chunk, (size_t) n);
    close(fd);
    if (n < 0) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        buf_free(&text);
        return -1;
    }
    if (json_parse(buf_cstr(&text), &root) != 0 || (hosts = json_get(&root, "hosts")) == NULL
        || hosts->type != JSON_ARR) {
        snprintf(why, whylen, "%s: not an etrn-agent status file", path);
        json_free(&root);
        buf_free(&text);
        return -1;
    }
    fmt_age(age, sizeof(age), (long long) (now - jtime(&root, "updated")));
    fprintf(out, "%s: updated %s ago, %zu host(s)\n", path, age, hosts->n);
    for (size_t i = 0; i < hosts->n; i++) {
        const struct json_val *h = &hosts->items[i];
        const struct json_val *doms = json_get(h, "domains");
        char hp[300];
        size_t shown = 0;

        status_hostport(hp, sizeof(hp), json_str(h, "host", ""), (int) json_num(h, "port", 0));
        fmt_age(age, sizeof(age), (long long) (now - jtime(h, "time")));
        if (*json_str(h, "error", "")) {
            fprintf(out, "provider %s host %s: %s failure %s ago: %s", json_str(h, "provider", ""), hp,
                    json_str(h, "result", ""), age, json_str(h, "error", ""));
            print_next(out, h, now);
        }
        for (size_t k = 0; doms && doms->type == JSON_ARR && k < doms->n; k++) {
            const struct json_val *d = &doms->items[k];
            long long code = json_num(d, "code", 0), pending = json_num(d, "pending", -1);

            if (code == 0)
                continue; /* not sent: the session error above says why */
            fmt_age(age, sizeof(age), (long long) (now - jtime(d, "time")));
            fprintf(out, "provider %s host %s domain %s: %d %s, %s ago", json_str(h, "provider", ""), hp,
                    json_str(d, "domain", ""), (int) code, json_str(d, "meaning", ""), age);
            if (pending >= 0)
                fprintf(out, "; %lld pending", pending);
            if (json_num(h, "relayed", -1) >= 0)
                fprintf(out, "; %lld relayed", json_num(h, "relayed", -1));
            print_next(out, h, now);
            shown++;
        }
        if (shown == 0 && !*json_str(h, "error", "")) {
            fprintf(out, "provider %s host %s: %s, %s ago", json_str(h, "provider", ""), hp,
                    json_str(h, "result", ""), age);
            print_next(out, h, now);
        }
    }
    json_free(&root);
    buf_free(&text);
    return 0;
}
