/*
 * fuzz_control - the control socket's request reader (control.c), over a
 * real UNIX socket in a private directory (no network), with fake
 * operations that check what they are handed. Input: the bytes etrn-queue
 * would send; the client then shuts down its writing side and reads until
 * the server closes. Checks: the server always closes; a response ends in
 * one status line starting with OK, NOTFOUND, NOTELIGIBLE, DENIED, BADREQ or
 * ERROR; flush-site only ever gets a hostname, the ID operations only valid
 * queue IDs (or "ALL" for delete).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "buf.h"
#include "control.h"
#include "domain.h"
#include "flush.h"
#include "queue.h"
#include "support.h"

static struct event_base *base;
static struct control *ctl;
static struct sockaddr_un sun;

static enum flush_result op_flush_site(void *ctx, const char *domain, int with_subdomains,
                                       const char *client, const char *user, size_t *pending)
{
    (void) ctx;
    (void) with_subdomains;
    if (!domain_is_hostname(domain, NULL) || client == NULL || user == NULL)
        abort();
    if (strcmp(domain, "example.org") == 0) {
        *pending = 2;
        return FLUSH_STARTED;
    }
    return strcmp(domain, "example.net") == 0 ? FLUSH_NOTHING : FLUSH_NOT_ELIGIBLE;
}

static int op_flush_all(void *ctx, size_t *scheduled)
{
    (void) ctx;
    *scheduled = 1;
    return QUEUE_OK;
}

/* check_id - every ID operation gets a queue ID */
static int check_id(const char *id, int all_ok)
{
    if (!queue_id_valid(id) && !(all_ok && strcmp(id, "ALL") == 0))
        abort();
    return id[0] == '0' ? QUEUE_OK : QUEUE_NOTFOUND;
}

static int op_flush_id(void *ctx, const char *id)
{
    (void) ctx;
    return check_id(id, 0);
}

static int op_delete(void *ctx, const char *id)
{
    (void) ctx;
    return check_id(id, 1);
}

static int op_hold(void *ctx, const char *id)
{
    (void) ctx;
    return check_id(id, 0);
}

static int op_status(void *ctx, int json, struct buf *out)
{
    (void) ctx;
    buf_puts(out, json ? "{\"total\":0,\"etrn\":[]}" : "total 0\n");
    return QUEUE_OK;
}

static int op_reopen(void *ctx, int *reopened)
{
    (void) ctx;
    *reopened = 0;
    return QUEUE_OK;
}

static const struct control_ops ops = {
    .flush_site = op_flush_site, .flush_all = op_flush_all, .flush_id = op_flush_id,
    .delete_id = op_delete, .hold = op_hold, .release = op_hold, .status = op_status,
    .reopen_log = op_reopen,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[512];

    (void) argc;
    (void) argv;
    support_init("control");
    if ((base = event_base_new()) == NULL)
        abort();
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", support_path("control"));
    sun.sun_family = AF_UNIX;
    ctl = control_new(base, sun.sun_path, (uid_t) -1, (gid_t) -1, &ops, NULL, err, sizeof(err));
    if (ctl == NULL) {
        fprintf(stderr, "control_new: %s\n", err);
        abort();
    }
    return 0;
}

/* check_response - body lines, then one status line */
static void check_response(const struct buf *r)
{
    static const char *const words[] = { "OK ", "NOTFOUND ", "NOTELIGIBLE ", "DENIED ",
                                         "BADREQ ", "ERROR " };
    const char *last;

    if (r->len == 0)
        return;
    if (r->data[r->len - 1] != '\n')
        abort();
    last = r->data + r->len - 1;
    while (last > r->data && last[-1] != '\n')
        last--;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strncmp(last, words[i], strlen(words[i])) == 0)
            return;
    fprintf(stderr, "bad status line: %s\n", last);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf resp = BUF_INIT;
    int fd, closed = 0;

    if (size > 4096)
        return 0;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *) &sun, sizeof(sun)) != 0)
        abort();
    if (size > 0 && write(fd, data, size) != (ssize_t) size)
        abort();
    shutdown(fd, SHUT_WR);
    for (int turn = 0; turn < 10000 && !closed; turn++) {
        char chunk[4096];
        ssize_t n;

        event_base_loop(base, EVLOOP_NONBLOCK);
        while ((n = read(fd, chunk, sizeof(chunk))) > 0)
            buf_append(&resp, chunk, (size_t) n);
        if (n == 0)
            closed = 1;
        else if (errno != EAGAIN)
            abort();
    }
    if (!closed) {
        fprintf(stderr, "the control socket never closed the connection\n");
        abort();
    }
    close(fd);
    check_response(&resp);
    buf_free(&resp);
    return 0;
}
