/*
 * etrn-queue - operator CLI for etrn-server's queue.
 *
 *   etrn-queue [-c FILE] -p | -s DOMAIN | -f | -i ID | -d ID|ALL | -h ID | -H ID
 *              | status [--json] | reopen
 *   etrn-queue --version | --help
 *
 * -p reads queue_directory directly (Postfix mailq format), so it works with
 * the server stopped. Everything else is one request over the control socket
 * queue_directory/public/control (protocol: control.h): -s flush a site
 * (DOMAIN or @DOMAIN), -f flush everything, -i flush one message, -d delete,
 * -h hold, -H release, status per destination (a table, or the server's JSON
 * with --json), reopen maillog_file (logrotate's postrotate). Arguments are checked here before they are sent.
 * Exit: 0 done; 64 bad command line or argument; 69 no such message or domain
 * not eligible; 75 server not running or temporary failure; 77 not allowed
 * (only root and mail_owner); 78 bad configuration; 74 queue unreadable (-p).
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "config.h"
#include "control.h"
#include "domain.h"
#include "exitcode.h"
#include "printable.h"
#include "queue.h"
#include "server_config.h"
#include "version.h"

#define DEFAULT_CONFIG "/etc/etrnkit/server-lite.ini"
#define REPLY_TIMEOUT_MS (300 * 1000)   /* delete ALL of a large queue takes a while */
#define REPLY_MAX (64u << 20)

/* usage - the command line: on stdout for --help (exit 0), else on stderr (exit 64) */
static _Noreturn void usage(FILE *fp, int status)
{
    fprintf(fp,
            "usage: etrn-queue [-c FILE] -p | -s DOMAIN | -f | -i ID | -d ID|ALL | -h ID | -H ID\n"
            "       etrn-queue [-c FILE] status [--json] | reopen\n"
            "       etrn-queue --version | --help\n"
            "  -c FILE    server configuration (default " DEFAULT_CONFIG ")\n"
            "  -p         list the queue (mailq format; works with the server stopped)\n"
            "  -s DOMAIN  flush the mail waiting for DOMAIN (@DOMAIN: and its subdomains)\n"
            "  -f         flush every deferred message now\n"
            "  -i ID      flush one message now\n"
            "  -d ID|ALL  delete a message, or every message\n"
            "  -h ID      put a message on hold;  -H ID  release it\n"
            "  status     waiting mail per destination (--json: the server's JSON)\n"
            "  reopen     etrn-server opens maillog_file again (after logrotate renamed it)\n"
            "  --version  print the version;  --help  print this text\n");
    exit(status);
}

/* print_and_free - write out to stdout, peer text masked (printable.h), and free it; the exit status */
static int print_and_free(struct buf *out)
{
    int ok;

    buf_cstr(out);
    for (char *line = out->data, *nl; line < out->data + out->len; line = nl + 1) {
        if ((nl = memchr(line, '\n', out->len - (size_t) (line - out->data))) == NULL)
            nl = out->data + out->len;
        printable_mem(line, (size_t) (nl - line), '?');
    }
    ok = fwrite(out->data, 1, out->len, stdout) == out->len && fflush(stdout) == 0;

    if (!ok)
        perror("etrn-queue: write");
    buf_free(out);
    return ok ? EXIT_OK : EXIT_IOERR;
}

/* list_queue - print the mailq listing of the configured queue */
static int list_queue(const char *queue_directory)
{
    struct queue q;
    struct buf out = BUF_INIT;
    int rc;

    if (queue_open(&q, queue_directory, 0) != QUEUE_OK) {
        fprintf(stderr, "etrn-queue: %s\n", queue_error(&q));
        queue_close(&q);
        return EXIT_IOERR;
    }
    rc = queue_list(&q, &out);
    if (rc != QUEUE_OK) {
        fprintf(stderr, "etrn-queue: %s\n", queue_error(&q));
        queue_close(&q);
        buf_free(&out);
        return EXIT_IOERR;
    }
    queue_close(&q);
    return print_and_free(&out);
}

/* talk - send one request line, read the whole response; exit status on failure, else 0 */
static int talk(const char *path, const char *request, struct buf *reply)
{
    struct sockaddr_un sun;
    size_t len = strlen(request), off = 0;
    long long deadline = clock_now_ms() + REPLY_TIMEOUT_MS;
    char chunk[8192];
    int fd;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "etrn-queue: control socket path too long: %s\n", path);
        return EXIT_CONFIG;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        fprintf(stderr, "etrn-queue: socket: %s\n", strerror(errno));
        return EXIT_OSERR;
    }
    if (connect(fd, (struct sockaddr *) &sun, sizeof(sun)) != 0) {
        int err = errno;

        close(fd);
        if (err == EACCES || err == EPERM) {
            fprintf(stderr, "etrn-queue: cannot connect to %s: %s (only root and the mail owner "
                            "may use etrn-queue)\n", path, strerror(err));
            return EXIT_NOPERM;
        }
        fprintf(stderr, "etrn-queue: cannot connect to %s: %s (is etrn-server running?)\n", path,
                strerror(err));
        return EXIT_TEMPFAIL;
    }
    while (off < len) {
        ssize_t n = send(fd, request + off, len - off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* the server may have refused us before reading: its answer says why */
            break;
        }
        off += (size_t) n;
    }
    for (;;) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        long long left = deadline - clock_now_ms();
        ssize_t n;
        int pr;

        if (left <= 0) {
            fprintf(stderr, "etrn-queue: no answer from etrn-server within %d s\n",
                    REPLY_TIMEOUT_MS / 1000);
            close(fd);
            return EXIT_TEMPFAIL;
        }
        pr = poll(&pfd, 1, (int) left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0) {
            fprintf(stderr, "etrn-queue: poll: %s\n", strerror(errno));
            close(fd);
            return EXIT_OSERR;
        }
        if (pr == 0)
            continue;
        n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != ECONNRESET) {
            fprintf(stderr, "etrn-queue: read %s: %s\n", path, strerror(errno));
            close(fd);
            return EXIT_TEMPFAIL;
        }
        if (n <= 0)
            break;
        if (reply->len + (size_t) n > REPLY_MAX) {
            fprintf(stderr, "etrn-queue: answer from etrn-server too large\n");
            close(fd);
            return EXIT_SOFTWARE;
        }
        buf_append(reply, chunk, (size_t) n);
    }
    close(fd);
    return 0;
}

/* split_reply - cut the reply into body and status line; NULL when there is no status line */
static char *split_reply(struct buf *reply, const char **body)
{
    char *last;

    buf_cstr(reply);
    if (reply->len == 0 || reply->data[reply->len - 1] != '\n')
        return NULL;
    reply->data[--reply->len] = 0;
    if ((last = strrchr(reply->data, '\n')) == NULL) {
        *body = "";
        return reply->data;
    }
    *last = 0;
    *body = reply->data;
    return last + 1;
}

/* status_exit - the exit status for a status word */
static int status_exit(const char *word)
{
    static const struct {
        const char *word;
        int code;
    } map[] = {
        { "OK", EXIT_OK },           { "NOTFOUND", EXIT_UNAVAILABLE },
        { "NOTELIGIBLE", EXIT_UNAVAILABLE }, { "DENIED", EXIT_NOPERM },
        { "BADREQ", EXIT_USAGE },    { "ERROR", EXIT_TEMPFAIL },
    };

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].word, word) == 0)
            return map[i].code;
    return EXIT_SOFTWARE;
}

/* A small JSON reader for "status": enough for the server's own output. */
enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
    enum jtype type;
    double num;                 /* J_NUM, J_BOOL (0/1) */
    char *str;                  /* J_STR */
    struct jval *items;         /* J_ARR, J_OBJ values */
    char **keys;                /* J_OBJ */
    size_t n;
};

struct jparse {
    const char *p;
    int depth;
};

static int jparse_value(struct jparse *jp, struct jval *v);

/* jskip - skip blanks */
static void jskip(struct jparse *jp)
{
    while (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r')
        jp->p++;
}

/* jparse_string - a JSON string into a new C string (\u escapes above 0x7f become '?') */
static int jparse_string(struct jparse *jp, char **out)
{
    struct buf b = BUF_INIT;

    if (*jp->p++ != '"')
        return -1;
    while (*jp->p && *jp->p != '"') {
        char c = *jp->p++;

        if (c == '\\') {
            c = *jp->p++;
            switch (c) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                unsigned u = 0;

                for (int i = 0; i < 4; i++, jp->p++) {
                    char h = *jp->p;

                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F'))) {
                        buf_free(&b);
                        return -1;
                    }
                    u = u * 16 + (unsigned) (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
                }
                c = u < 0x20 || u > 0x7e ? '?' : (char) u;
                break;
            }
            case '"': case '\\': case '/':
                break;
            default:
                buf_free(&b);
                return -1;
            }
        }
        buf_putc(&b, c);
    }
    if (*jp->p++ != '"') {
        buf_free(&b);
        return -1;
    }
    buf_cstr(&b);
    *out = buf_steal(&b);
    return 0;
}

/* jparse_list - the items of an array or object after its opening bracket */
static int jparse_list(struct jparse *jp, struct jval *v, char close)
{
    jskip(jp);
    if (*jp->p == close) {
        jp->p++;
        return 0;
    }
    for (;;) {
        v->items = xreallocarray(v->items, v->n + 1, sizeof(*v->items));
        memset(&v->items[v->n], 0, sizeof(v->items[0]));
        if (close == '}') {
            v->keys = xreallocarray(v->keys, v->n + 1, sizeof(*v->keys));
            v->keys[v->n] = NULL;
            jskip(jp);
            if (jparse_string(jp, &v->keys[v->n]) != 0) {
                v->n++;
                return -1;
            }
            jskip(jp);
            if (*jp->p++ != ':') {
                v->n++;
                return -1;
            }
        }
        if (jparse_value(jp, &v->items[v->n++]) != 0)
            return -1;
        jskip(jp);
        if (*jp->p == ',') {
            jp->p++;
            continue;
        }
        if (*jp->p++ == close)
            return 0;
        return -1;
    }
}

/* jparse_value - one JSON value */
static int jparse_value(struct jparse *jp, struct jval *v)
{
    char *end;

    memset(v, 0, sizeof(*v));
    jskip(jp);
    if (++jp->depth > 32)
        return -1;
    switch (*jp->p) {
    case '{':
        jp->p++;
        v->type = J_OBJ;
        return jparse_list(jp, v, '}');
    case '[':
        jp->p++;
        v->type = J_ARR;
        return jparse_list(jp, v, ']');
    case '"':
        v->type = J_STR;
        return jparse_string(jp, &v->str);
    default:
        break;
    }
    if (strncmp(jp->p, "true", 4) == 0 || strncmp(jp->p, "false", 5) == 0) {
        v->type = J_BOOL;
        v->num = jp->p[0] == 't';
        jp->p += jp->p[0] == 't' ? 4 : 5;
        jp->depth--;
        return 0;
    }
    if (strncmp(jp->p, "null", 4) == 0) {
        v->type = J_NULL;
        jp->p += 4;
        jp->depth--;
        return 0;
    }
    v->type = J_NUM;
    v->num = strtod(jp->p, &end);
    if (end == jp->p)
        return -1;
    jp->p = end;
    jp->depth--;
    return 0;
}

/* jfree - release a parsed value */
static void jfree(struct jval *v)
{
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
}

/* jget - member key of an object, or NULL */
static const struct jval *jget(const struct jval *obj, const char *key)
{
    if (obj == NULL || obj->type != J_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (obj->keys[i] && strcmp(obj->keys[i], key) == 0)
            return &obj->items[i];
    return NULL;
}

/* jnum - a numeric member, or def */
static long long jnum(const struct jval *obj, const char *key, long long def)
{
    const struct jval *v = jget(obj, key);

    return v && (v->type == J_NUM || v->type == J_BOOL) ? (long long) v->num : def;
}

/* jstr - a string member, or def */
static const char *jstr(const struct jval *obj, const char *key, const char *def)
{
    const struct jval *v = jget(obj, key);

    return v && v->type == J_STR ? v->str : def;
}

/* fmt_time - local time, "-" for 0 */
static void fmt_time(long long t, char *out, size_t outlen)
{
    time_t tt = (time_t) t;
    struct tm tm;

    if (t <= 0 || localtime_r(&tt, &tm) == NULL || strftime(out, outlen, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, outlen, "-");
}

/* status_row - one table line */
static void status_row(struct buf *out, int width, const char *name, const struct jval *dest,
                       const struct jval *etrn)
{
    char oldest[32], last[32], etrn_at[32], waiting[24], result[41];
    const char *res = dest ? jstr(dest, "last_result", "") : "";
    const char *client = etrn ? jstr(etrn, "client", "") : "";
    const char *user = etrn ? jstr(etrn, "user", "") : "";
    long long w = dest ? jnum(dest, "waiting", 0) : 0;

    if (etrn && jnum(etrn, "waiting", 0) > w)
        w = jnum(etrn, "waiting", 0);
    snprintf(waiting, sizeof(waiting), "%lld", w);
    fmt_time(dest ? jnum(dest, "oldest", 0) : 0, oldest, sizeof(oldest));
    fmt_time(dest ? jnum(dest, "last_attempt", 0) : 0, last, sizeof(last));
    fmt_time(etrn ? jnum(etrn, "last_etrn", 0) : 0, etrn_at, sizeof(etrn_at));
    snprintf(result, sizeof(result), "%s", *res ? res : "-");
    buf_printf(out, "%-*s %7s  %-19s  %-19s  %-40s  %-4s  %s", width, name, waiting, oldest, last,
               result, dest ? (jnum(dest, "dead", 0) ? "yes" : "no") : "-", etrn_at);
    if (etrn && jnum(etrn, "last_etrn", 0) > 0) {
        buf_printf(out, " from %s", *client ? client : "?");
        if (*user)
            buf_printf(out, " (%s)", user);
    }
    buf_puts(out, "\n");
}

/* print_status_table - the readable form of the status JSON */
static int print_status_table(const char *json)
{
    struct jparse jp = { json, 0 };
    struct jval root;
    const struct jval *dests, *etrn;
    struct buf out = BUF_INIT;
    int width = 11;

    if (jparse_value(&jp, &root) != 0 || root.type != J_OBJ) {
        fprintf(stderr, "etrn-queue: cannot read the status from etrn-server\n");
        jfree(&root);
        return EXIT_SOFTWARE;
    }
    dests = jget(&root, "destinations");
    etrn = jget(&root, "etrn");
    for (int k = 0; k < 2; k++) {
        const struct jval *l = k ? etrn : dests;

        for (size_t i = 0; l && l->type == J_ARR && i < l->n; i++) {
            int len = (int) strlen(jstr(&l->items[i], k ? "domain" : "destination", ""));

            if (len > width)
                width = len > 60 ? 60 : len;
        }
    }
    buf_printf(&out, "total %lld: incoming %lld, active %lld, deferred %lld, hold %lld\n",
               jnum(&root, "total", 0), jnum(&root, "incoming", 0), jnum(&root, "active", 0),
               jnum(&root, "deferred", 0), jnum(&root, "hold", 0));
    buf_printf(&out, "%-*s %7s  %-19s  %-19s  %-40s  %-4s  %s\n", width, "DESTINATION", "WAITING",
               "OLDEST", "LAST ATTEMPT", "RESULT", "DEAD", "LAST ETRN");
    for (size_t i = 0; dests && dests->type == J_ARR && i < dests->n; i++) {
        const char *name = jstr(&dests->items[i], "destination", "?");
        const struct jval *match = NULL;

        for (size_t j = 0; etrn && etrn->type == J_ARR && j < etrn->n; j++)
            if (strcmp(jstr(&etrn->items[j], "domain", ""), name) == 0)
                match = &etrn->items[j];
        status_row(&out, width, name, &dests->items[i], match);
    }
    for (size_t j = 0; etrn && etrn->type == J_ARR && j < etrn->n; j++) {
        const char *name = jstr(&etrn->items[j], "domain", "?");
        int seen = 0;

        for (size_t i = 0; dests && dests->type == J_ARR && i < dests->n; i++)
            seen |= strcmp(jstr(&dests->items[i], "destination", ""), name) == 0;
        if (!seen)
            status_row(&out, width, name, NULL, &etrn->items[j]);
    }
    jfree(&root);
    return print_and_free(&out);
}

/* control_request - one request; print the answer; the exit status */
static int control_request(const char *queue_directory, const char *request, int status, int json)
{
    struct buf path = BUF_INIT, reply = BUF_INIT;
    const char *body = "";
    char *line, *text;
    int rc;

    buf_printf(&path, "%s/public/control", queue_directory);
    rc = talk(buf_cstr(&path), request, &reply);
    if (rc != 0) {
        buf_free(&path);
        buf_free(&reply);
        return rc;
    }
    if ((line = split_reply(&reply, &body)) == NULL) {
        fprintf(stderr, "etrn-queue: no complete answer from etrn-server at %s\n", buf_cstr(&path));
        buf_free(&path);
        buf_free(&reply);
        return EXIT_TEMPFAIL;
    }
    text = strchr(line, ' ');
    if (text)
        *text++ = 0;
    else
        text = line + strlen(line);
    rc = status_exit(line);
    if (rc != EXIT_OK) {
        fprintf(stderr, "etrn-queue: %s\n", rc == EXIT_SOFTWARE ? "unexpected answer from etrn-server"
                                                                : printable(text, '?'));
    } else if (status && !json) {
        rc = print_status_table(body);
    } else {
        struct buf out = BUF_INIT;

        buf_printf(&out, "%s\n", status ? body : text);
        rc = print_and_free(&out);
    }
    buf_free(&path);
    buf_free(&reply);
    return rc;
}

/* check_arg - refuse a bad ID or domain before it reaches the server */
static void check_arg(int opt, const char *arg)
{
    const char *why = NULL;

    if (opt == 's') {
        if (domain_is_hostname(arg[0] == '@' ? arg + 1 : arg, &why))
            return;
        fprintf(stderr, "etrn-queue: -s: bad domain: %s\n", why);
        exit(EXIT_USAGE);
    }
    if (opt == 'd' && strcmp(arg, "ALL") == 0)
        return;
    if (!queue_id_valid(arg)) {
        fprintf(stderr, "etrn-queue: -%c: not a queue ID (1-%d upper-case hex digits)\n", opt,
                QUEUE_ID_MAX);
        exit(EXIT_USAGE);
    }
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'J' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'E' },
        { NULL, 0, NULL, 0 },
    };
    const char *config = DEFAULT_CONFIG, *arg = NULL;
    struct server_config conf;
    struct cfg_error err;
    struct buf req = BUF_INIT;
    int opt, action = 0, nactions = 0, json = 0, rc;

    while ((opt = getopt_long(argc, argv, "c:ps:fi:d:h:H:", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'J':
            json = 1;
            break;
        case 'p': case 'f':
            action = opt;
            nactions++;
            break;
        case 's': case 'i': case 'd': case 'h': case 'H':
            action = opt;
            arg = optarg;
            nactions++;
            break;
        case 'V':
            return version_print("etrn-queue") == 0 ? EXIT_OK : EXIT_IOERR;
        case 'E':
            usage(stdout, EXIT_OK);
        default:
            usage(stderr, EXIT_USAGE);
        }
    }
    if (optind < argc && strcmp(argv[optind], "status") == 0) {
        action = 'S';
        nactions++;
        optind++;
    } else if (optind < argc && strcmp(argv[optind], "reopen") == 0) {
        action = 'R';
        nactions++;
        optind++;
    }
    if (nactions != 1 || optind != argc || (json && action != 'S'))
        usage(stderr, EXIT_USAGE);
    if (arg)
        check_arg(action, arg);
    if (server_config_load(config, &conf, &err) != 0) {
        fprintf(stderr, "etrn-queue: %s\n", err.msg);
        return EXIT_CONFIG;
    }
    switch (action) {
    case 'p':
        rc = list_queue(conf.queue_directory);
        server_config_free(&conf);
        return rc;
    case 's': buf_printf(&req, "flush-site %s\n", arg); break;
    case 'f': buf_puts(&req, "flush-all\n"); break;
    case 'i': buf_printf(&req, "flush-id %s\n", arg); break;
    case 'd': buf_printf(&req, "delete %s\n", arg); break;
    case 'h': buf_printf(&req, "hold %s\n", arg); break;
    case 'H': buf_printf(&req, "release %s\n", arg); break;
    case 'R': buf_puts(&req, "reopen\n"); break;
    default: buf_puts(&req, "status\n"); break;
    }
    rc = control_request(conf.queue_directory, buf_cstr(&req), action == 'S', json);
    buf_free(&req);
    server_config_free(&conf);
    return rc;
}
