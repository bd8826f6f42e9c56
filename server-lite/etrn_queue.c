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
 * -h hold, -H release, status per destination (the server's text, or its
 * JSON with --json, printed as they come), reopen maillog_file (logrotate's postrotate). Arguments are checked here before they are sent.
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
#include "queue_fs.h"
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

    if (queue_fs_open(&q, queue_directory, 0) != QUEUE_OK) {
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

/* control_request - one request; print the answer; the exit status */
static int control_request(const char *queue_directory, const char *request, int status)
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
    default: buf_puts(&req, json ? "status json\n" : "status\n"); break;
    }
    rc = control_request(conf.queue_directory, buf_cstr(&req), action == 'S');
    buf_free(&req);
    server_config_free(&conf);
    return rc;
}
