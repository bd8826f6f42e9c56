/*
 * control.c - the control socket: one request line, one response, close.
 * Protocol and contract: control.h.
 */
#define LOG_SERVICE "control" /* its log lines: syslog_name/control[pid] */

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "alloc.h"
#include "buf.h"
#include "control.h"
#include "domain.h"
#include "flush.h"
#include "log.h"
#include "queue.h"

struct control_conn {
    struct control *c;
    struct bufferevent *bev;
    uid_t uid;
    pid_t pid;
    int closing;                  /* response queued: free once it is written */
    LIST_ENTRY(control_conn) link;
};

struct control {
    struct event_base *base;
    struct evconnlistener *listener;
    char *path;
    struct control_ops ops;
    void *ctx;
    LIST_HEAD(, control_conn) conns; /* zeroed: empty */
    size_t nconns;
};

/* conn_free - close one connection */
static void conn_free(struct control_conn *cc)
{
    struct control *c = cc->c;

    LIST_REMOVE(cc, link);
    c->nconns--;
    bufferevent_free(cc->bev);
    free(cc);
}

/* respond - queue the response and close once it is written */
static void respond(struct control_conn *cc, const struct buf *out)
{
    cc->closing = 1;
    bufferevent_disable(cc->bev, EV_READ);
    if (bufferevent_write(cc->bev, out->data ? out->data : "", out->len) != 0
        || bufferevent_enable(cc->bev, EV_WRITE) != 0) {
        log_warn("control: cannot queue a response for uid %ld", (long) cc->uid);
        conn_free(cc);
    }
}

/* id_reply - the status line for an operation on message id (notfound: the NOTFOUND text) */
static void id_reply(struct buf *out, int rc, const char *id, const char *done,
                     const char *notfound)
{
    if (rc == QUEUE_OK && strcmp(id, "ALL") == 0)
        buf_printf(out, "OK every message %s\n", done);
    else if (rc == QUEUE_OK)
        buf_printf(out, "OK %s: %s\n", id, done);
    else if (rc == QUEUE_NOTFOUND)
        buf_printf(out, "NOTFOUND %s: %s\n", id, notfound);
    else if (rc == QUEUE_BADID)
        buf_printf(out, "BADREQ %s: not a queue ID\n", id);
    else
        buf_printf(out, "ERROR %s: failed (status %d; see the mail log)\n", id, rc);
}

/* do_status - the status body (text or JSON) and OK */
static void do_status(struct control *c, int json, struct buf *out)
{
    if (c->ops.status == NULL || c->ops.status(c->ctx, json, out) != QUEUE_OK) {
        buf_reset(out);
        buf_puts(out, "ERROR status: not available\n");
        return;
    }
    if (out->len > 0 && out->data[out->len - 1] != '\n')
        buf_putc(out, '\n');
    buf_puts(out, "OK status\n");
}

/* do_flush_site - flush-site DOMAIN or @DOMAIN */
static void do_flush_site(struct control *c, const char *arg, const char *user, struct buf *out)
{
    int sub = arg[0] == '@';
    const char *domain = arg + sub;
    size_t pending = 0;

    if (!domain_is_hostname(domain, NULL)) {
        buf_puts(out, "BADREQ flush-site: not a domain name\n");
        return;
    }
    switch (c->ops.flush_site(c->ctx, domain, sub, "etrn-queue", user, &pending)) {
    case FLUSH_STARTED:
        buf_printf(out, "OK %zu pending message%s for node %s started\n", pending,
                   pending == 1 ? "" : "s", arg);
        break;
    case FLUSH_NOTHING:
        buf_printf(out, "OK no messages waiting for node %s\n", arg);
        break;
    case FLUSH_NOT_ELIGIBLE:
        buf_printf(out, "NOTELIGIBLE %s: not in fast_flush_domains\n", arg);
        break;
    case FLUSH_ERROR:
        buf_printf(out, "ERROR %s: cannot flush now\n", arg);
        break;
    }
}

/* do_flush_all - flush-all */
static void do_flush_all(struct control *c, struct buf *out)
{
    size_t n = 0;

    if (c->ops.flush_all(c->ctx, &n) != QUEUE_OK)
        buf_puts(out, "ERROR flush-all: failed (see the mail log)\n");
    else
        buf_printf(out, "OK %zu message%s scheduled for delivery\n", n, n == 1 ? "" : "s");
}

/* do_reopen - reopen */
static void do_reopen(struct control *c, struct buf *out)
{
    int reopened = 0;

    if (c->ops.reopen_log(c->ctx, &reopened) != QUEUE_OK)
        buf_puts(out, "ERROR reopen: cannot open the log file again (see the old log)\n");
    else if (!reopened)
        buf_puts(out, "OK nothing to reopen: logging to syslog or standard error\n");
    else
        buf_puts(out, "OK log file reopened\n");
}

/* do_id - flush-id, delete, hold or release of one message; 1 when the operation ran */
static int do_id(struct control *c, const char *cmd, const char *id, struct buf *out)
{
    int (*fn)(void *ctx, const char *id);
    const char *done, *notfound = "no such message";

    if (strcmp(cmd, "flush-id") == 0) {
        fn = c->ops.flush_id;
        done = "scheduled for delivery";
        notfound = "no such message waiting";
    } else if (strcmp(cmd, "delete") == 0) {
        fn = c->ops.delete_id;
        done = "removed";
    } else if (strcmp(cmd, "hold") == 0) {
        fn = c->ops.hold;
        done = "placed on hold";
    } else if (strcmp(cmd, "release") == 0) {
        fn = c->ops.release;
        done = "released from hold";
    } else {
        buf_puts(out, "BADREQ unknown request\n");
        return 0;
    }
    if (fn == NULL) {
        buf_printf(out, "ERROR %s: not available\n", cmd);
        return 0;
    }
    id_reply(out, fn(c->ctx, id), id, done, notfound);
    return 1;
}

/* logged - log a request that changed something, with who asked and the answer */
static void logged(const char *user, const char *cmd, const char *arg, const struct buf *out)
{
    log_info("control: %s: %s%s%s: %.*s", user, cmd, arg ? " " : "", arg ? arg : "",
             (int) (out->len ? out->len - 1 : 0), out->data ? out->data : "");
}

/* do_request - parse and run one request line; the response goes to out */
static void do_request(struct control *c, struct control_conn *cc, char *line, struct buf *out)
{
    char *arg = strchr(line, ' ');
    char user[64];
    struct passwd *pw = getpwuid(cc->uid);

    if (pw)
        snprintf(user, sizeof(user), "%s", pw->pw_name);
    else
        snprintf(user, sizeof(user), "uid %ld", (long) cc->uid);
    if (arg)
        *arg++ = 0;
    if (arg && (*arg == 0 || strchr(arg, ' '))) {
        buf_puts(out, "BADREQ one argument expected\n");
        return;
    }
    if (strcmp(line, "status") == 0) {
        if (arg && strcmp(arg, "json") != 0)
            buf_puts(out, "BADREQ status: the only argument is json\n");
        else
            do_status(c, arg != NULL, out);
        return;
    }
    if (strcmp(line, "flush-all") == 0 && arg == NULL) {
        if (c->ops.flush_all == NULL) {
            buf_puts(out, "ERROR flush-all: not available\n");
            return;
        }
        do_flush_all(c, out);
        logged(user, line, NULL, out);
        return;
    }
    if (strcmp(line, "reopen") == 0 && arg == NULL) {
        if (c->ops.reopen_log == NULL)
            buf_puts(out, "ERROR reopen: not available\n");
        else
            do_reopen(c, out);
        logged(user, line, NULL, out);
        return;
    }
    if (arg == NULL) {
        buf_puts(out, "BADREQ unknown request or missing argument\n");
        return;
    }
    if (strcmp(line, "flush-site") == 0) {
        if (c->ops.flush_site == NULL)
            buf_puts(out, "ERROR flush-site: not available\n");
        else
            do_flush_site(c, arg, user, out);
        logged(user, line, arg, out);
        return;
    }
    if (!queue_id_valid(arg) && !(strcmp(line, "delete") == 0 && strcmp(arg, "ALL") == 0)) {
        buf_puts(out, "BADREQ not a queue ID\n");
        return;
    }
    if (do_id(c, line, arg, out))
        logged(user, line, arg, out);
}

/* read_cb - the request line has arrived (or is too long) */
static void read_cb(struct bufferevent *bev, void *arg)
{
    struct control_conn *cc = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct buf out = BUF_INIT;
    size_t n;
    char *line;

    if (cc->closing)
        return;
    line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
    if (line == NULL) {
        if (evbuffer_get_length(in) > CONTROL_LINE_MAX) {
            buf_puts(&out, "BADREQ request line too long\n");
            respond(cc, &out);
        }
        buf_free(&out);
        return;
    }
    if (n && line[n - 1] == '\r')
        line[--n] = 0;
    if (n > CONTROL_LINE_MAX || memchr(line, 0, n) != NULL)
        buf_puts(&out, "BADREQ bad request line\n");
    else
        do_request(cc->c, cc, line, &out);
    free(line);
    respond(cc, &out);
    buf_free(&out);
}

/* write_cb - the response is written: close */
static void write_cb(struct bufferevent *bev, void *arg)
{
    struct control_conn *cc = arg;

    if (cc->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_free(cc);
}

/* event_cb - EOF, error or timeout: close */
static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct control_conn *cc = arg;

    (void) bev;
    if (what & BEV_EVENT_TIMEOUT)
        log_warn("control: uid %ld: timeout", (long) cc->uid);
    conn_free(cc);
}

/* accept_cb - a new client: check who it is */
static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    struct control *c = arg;
    struct control_conn *cc;
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    struct timeval tv = { CONTROL_TIMEOUT, 0 };
    struct buf out = BUF_INIT;

    (void) l;
    (void) sa;
    (void) len;
    if (c->nconns >= CONTROL_CLIENTS_MAX) {
        static const char busy[] = "ERROR too many control connections; try again\n";

        if (send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            log_debug("control: send: %s", strerror(errno));
        log_warn("control: too many connections; one refused");
        evutil_closesocket(fd);
        return;
    }
    cc = xcalloc(1, sizeof(*cc));
    cc->c = c;
    cc->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (cc->bev == NULL) {
        log_warn("control: cannot set up a connection");
        evutil_closesocket(fd);
        free(cc);
        return;
    }
    LIST_INSERT_HEAD(&c->conns, cc, link);
    c->nconns++;
    bufferevent_setcb(cc->bev, read_cb, write_cb, event_cb, cc);
    bufferevent_set_timeouts(cc->bev, &tv, &tv);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
        log_warn("control: SO_PEERCRED: %s", strerror(errno));
        buf_puts(&out, "ERROR cannot identify the client\n");
        respond(cc, &out);
    } else if (cred.uid != 0 && cred.uid != geteuid()) {
        cc->uid = cred.uid;
        log_warn("control: refused uid %ld pid %ld: only root and the mail owner may use it",
                 (long) cred.uid, (long) cred.pid);
        buf_puts(&out, "DENIED permission denied: only root and the mail owner may use etrn-queue\n");
        respond(cc, &out);
    } else {
        cc->uid = cred.uid;
        cc->pid = cred.pid;
        if (bufferevent_enable(cc->bev, EV_READ) != 0) {
            log_warn("control: cannot read from a connection");
            conn_free(cc);
        }
    }
    buf_free(&out);
}

/* replace_stale - remove an old socket at path unless a server answers there */
static int replace_stale(const char *path, const struct sockaddr_un *sun, char *err, size_t errlen)
{
    struct stat st;
    int fd;

    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1);
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket; refusing to replace it", path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (const struct sockaddr *) sun, sizeof(*sun)) == 0) {
        close(fd);
        snprintf(err, errlen, "%s: another etrn-server is running on this queue", path);
        return -1;
    }
    if (fd >= 0)
        close(fd);
    if (unlink(path) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "remove stale %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* control_new - make the control socket and serve it on base */
struct control *control_new(struct event_base *base, const char *path, uid_t owner, gid_t group,
                            const struct control_ops *ops, void *ctx, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct control *c;
    int fd;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "control socket path too long (%zu bytes, at most %zu): %s",
                 strlen(path), sizeof(sun.sun_path) - 1, path);
        return NULL;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if (replace_stale(path, &sun, err, errlen) != 0)
        return NULL;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "control socket: %s", strerror(errno));
        return NULL;
    }
    if (bind(fd, (struct sockaddr *) &sun, sizeof(sun)) != 0) {
        snprintf(err, errlen, "bind %s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (chmod(path, 0660) != 0
        || ((owner != (uid_t) -1 || group != (gid_t) -1) && chown(path, owner, group) != 0)
        || listen(fd, CONTROL_CLIENTS_MAX) != 0) {
        snprintf(err, errlen, "set up %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return NULL;
    }
    c = xcalloc(1, sizeof(*c));
    c->base = base;
    c->path = xstrdup(path);
    c->ops = *ops;
    c->ctx = ctx;
    c->listener = evconnlistener_new(base, accept_cb, c, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                     0, fd);
    if (c->listener == NULL) {
        snprintf(err, errlen, "listen %s: cannot register with the event loop", path);
        close(fd);
        unlink(path);
        free(c->path);
        free(c);
        return NULL;
    }
    return c;
}

/* control_free - close the listener and every connection (the socket file stays) */
void control_free(struct control *c)
{
    if (c == NULL)
        return;
    while (!LIST_EMPTY(&c->conns))
        conn_free(LIST_FIRST(&c->conns));
    evconnlistener_free(c->listener);
    free(c->path);
    free(c);
}
