#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
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
    struct status_domain *domains;
    size_t ndomains;
};

static struct {
    struct status_host *hosts;
    size_t count;
} status_table;

/* status_find_host - the entry for provider/host/port, created if new */
static struct status_host *status_find_host(const char *provider, const char *host, int port)
{
    struct status_host *h;

    for (size_t i = 0; i < status_table.count; i++) {
        h = &status_table.hosts[i];
        if (h->port == port && strcmp(h->provider, provider) == 0 && strcmp(h->host, host) == 0)
            return h;
    }
    status_table.hosts = xreallocarray(status_table.hosts, status_table.count + 1, sizeof(*h));
    h = &status_table.hosts[status_table.count++];
    memset(h, 0, sizeof(*h));
    h->provider = xstrdup(provider);
    h->host = xstrdup(host);
    h->port = port;
    return h;
}

/* status_record - merge one session's outcome */
void status_record(const char *provider, const char *host, int port, const struct etrn_session *s,
                   time_t when)
{
    struct status_host *h = status_find_host(provider, host, port);

    h->when = when;
    h->verdict = s->verdict;
    free(h->error);
    h->error = xstrdup(s->error);
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

/* status_render - the table as JSON */
static void status_render(struct buf *b)
{
    buf_puts(b, "{\n  \"updated\": ");
    json_time(b, time(NULL));
    buf_puts(b, ",\n  \"hosts\": [");
    for (size_t i = 0; i < status_table.count; i++) {
        const struct status_host *h = &status_table.hosts[i];

        buf_puts(b, i ? ",\n    {" : "\n    {");
        buf_puts(b, "\"provider\": ");
        buf_json_string(b, h->provider);
        buf_puts(b, ", \"host\": ");
        buf_json_string(b, h->host);
        buf_printf(b, ", \"port\": %d, \"time\": ", h->port);
        json_time(b, h->when);
        buf_puts(b, ", \"result\": ");
        buf_json_string(b, etrn_verdict_name(h->verdict));
        buf_puts(b, ", \"error\": ");
        buf_json_string(b, h->error);
        buf_puts(b, ",\n     \"domains\": [");
        for (size_t j = 0; j < h->ndomains; j++) {
            const struct status_domain *d = &h->domains[j];

            buf_puts(b, j ? ",\n       {" : "\n       {");
            buf_puts(b, "\"domain\": ");
            buf_json_string(b, d->domain);
            buf_printf(b, ", \"code\": %d, \"text\": ", d->code);
            buf_json_string(b, d->text);
            buf_puts(b, ", \"meaning\": ");
            buf_json_string(b, d->meaning);
            buf_puts(b, ", \"result\": ");
            buf_json_string(b, etrn_verdict_name(d->verdict));
            if (d->pending >= 0)
                buf_printf(b, ", \"pending\": %ld", d->pending);
            buf_puts(b, ", \"time\": ");
            json_time(b, d->when);
            buf_puts(b, "}");
        }
        buf_puts(b, "]}");
    }
    buf_puts(b, "\n  ]\n}\n");
}

/* status_write - write the table atomically */
int status_write(const char *path, char *why, size_t whylen)
{
    struct buf json = BUF_INIT;
    struct buf tmp = BUF_INIT;
    char *dircopy = xstrdup(path);
    const char *dir = dirname(dircopy);
    int fd = -1, dfd = -1;
    int rc = -1;

    status_render(&json);
    buf_printf(&tmp, "%s.tmp.%ld", path, (long) getpid());
    fd = open(buf_cstr(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(why, whylen, "cannot create %s: %s", buf_cstr(&tmp), strerror(errno));
        goto out;
    }
    for (size_t off = 0; off < json.len;) {
        ssize_t n = write(fd, json.data + off, json.len - off);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(why, whylen, "write %s: %s", buf_cstr(&tmp), strerror(errno));
            goto out;
        }
        off += (size_t) n;
    }
    if (fsync(fd) != 0) {
        snprintf(why, whylen, "fsync %s: %s", buf_cstr(&tmp), strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        snprintf(why, whylen, "close %s: %s", buf_cstr(&tmp), strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(buf_cstr(&tmp), path) != 0) {
        snprintf(why, whylen, "rename to %s: %s", path, strerror(errno));
        goto out;
    }
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        if (fsync(dfd) != 0) {
            snprintf(why, whylen, "fsync directory %s: %s", dir, strerror(errno));
            close(dfd);
            goto out;
        }
        close(dfd);
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        unlink(buf_cstr(&tmp));
    buf_free(&json);
    buf_free(&tmp);
    free(dircopy);
    return rc;
}

/* status_reset - forget every result */
void status_reset(void)
{
    for (size_t i = 0; i < status_table.count; i++) {
        struct status_host *h = &status_table.hosts[i];

        for (size_t j = 0; j < h->ndomains; j++) {
            free(h->domains[j].domain);
            free(h->domains[j].text);
        }
        free(h->domains);
        free(h->provider);
        free(h->host);
        free(h->error);
    }
    free(status_table.hosts);
    status_table.hosts = NULL;
    status_table.count = 0;
}
