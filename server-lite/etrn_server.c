/*
 * etrn-server - the provider side: SMTP server over the durable queue.
 *
 *   etrn-server -c FILE [--check-config] [-v]
 *
 * Loads the configuration (a bad one: message on stderr, exit 78), opens the
 * log, creates and checks the queue directories (as root: no link followed,
 * nothing inside read), binds, switches to mail_owner when started as root,
 * recovers the queue, then starts the transports (smtp, local)
 * and the queue manager, which hears of every accepted message through
 * smtpd's commit hook, listens (the port accepts only once all that is
 * done) and runs one event loop. SIGTERM and SIGINT end the
 * loop (no queue write is ever left half done: writes happen inside one
 * callback) and exit 0: smtpd closes first, then the transports drop their
 * unfinished jobs (those recipients stay pending in the queue), then the
 * qmgr. SIGHUP reopens maillog_file (for logrotate), then reloads the
 * configuration into every module and keeps the old one when the new one is
 * bad; `etrn-queue reopen` reopens maillog_file alone. Prints nothing on
 * success; --version and --help print to stdout and exit 0.
 */
#define LOG_SERVICE "master" /* its log lines: syslog_name/master[pid] */

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "asuser.h"
#include "buf.h"
#include "sasl_users.h"
#include "smtpd_tls.h"
#include "config.h"
#include "control.h"
#include "exitcode.h"
#include "flush.h"
#include "odmr.h"
#include "log.h"
#include "qmgr.h"
#include "queue.h"
#include "queue_fs.h"
#include "server_config.h"
#include "smtpd.h"
#include "transport_local.h"
#include "transport_smtp.h"
#include "version.h"

#define DEFAULT_CONFIG "/etc/etrnkit/server-lite.ini"
#define IDENT "etrn-server"
#define COMMIT_THREADS 8 /* queue files fsynced at the same time (queue_attach) */

struct server {
    const char *config_path;
    struct server_config *conf;
    struct event_base *base;
    struct smtpd *smtpd;
    struct smtp_transport *smtp;
    struct local_transport *local;
    struct qmgr *qmgr;
    struct flush *flush;
    struct odmr *odmr;
    struct control *control;
};

/* usage - the command line: on stdout for --help (exit 0), else on stderr (exit 64) */
static _Noreturn void usage(FILE *fp, int status)
{
    fprintf(fp, "usage: etrn-server [-c FILE] [--check-config] [-v]\n"
                "  -c FILE         configuration (default " DEFAULT_CONFIG ")\n"
                "  --check-config  load and check the configuration, the TLS files and the\n"
                "                  users file, then exit (0 good, 78 bad)\n"
                "  -v              verbose logging\n"
                "  --version       print the version and exit\n"
                "  --help          print this text and exit\n"
                "Runs in the foreground. SIGTERM: finish queue writes and exit; SIGHUP: reopen\n"
                "maillog_file and reload the configuration.\n");
    exit(status);
}

/* load_config - read and check a configuration; NULL with the message in err */
static struct server_config *load_config(const char *path, struct cfg_error *err)
{
    struct server_config *conf = xcalloc(1, sizeof(*conf));
    char host[256];

    if (server_config_load(path, conf, err) != 0) {
        free(conf);
        return NULL;
    }
    if (conf->myhostname == NULL || *conf->myhostname == 0) {
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "localhost");
        host[sizeof(host) - 1] = 0;
        free(conf->myhostname);
        conf->myhostname = xstrdup(host);
    }
    return conf;
}

/* same_str - two optional strings are equal */
static int same_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* same_list - two lists hold the same items in the same order */
static int same_list(const struct cfg_list *a, const struct cfg_list *b)
{
    if (a->count != b->count)
        return 0;
    for (size_t i = 0; i < a->count; i++)
        if (strcmp(a->items[i], b->items[i]) != 0)
            return 0;
    return 1;
}

/* reopen_log - open maillog_file again by name (logrotate renamed it); 1, 0 no file, -1 */
static int reopen_log(const char *why)
{
    char logerr[512];
    int rc = log_reopen(logerr, sizeof(logerr));

    if (rc < 0) {
        log_warn("%s: %s; logging stays in the old file", why, logerr);
        return -1;
    }
    if (rc > 0)
        log_info("%s: log file reopened", why);
    return rc;
}

/* reload - SIGHUP: take a new configuration, keep the old one on error */
static void reload(struct server *sv)
{
    struct cfg_error err;
    struct server_config *conf = load_config(sv->config_path, &err);
    struct server_config *old = sv->conf;
    char logerr[512];

    if (conf == NULL || same_str(conf->maillog_file, old->maillog_file))
        reopen_log("reload");
    if (conf == NULL) {
        log_error("reload: %s; keeping the old configuration", err.msg);
        return;
    }
    if ((!same_str(conf->maillog_file, old->maillog_file)
         || !same_str(conf->syslog_name, old->syslog_name))
        && log_open(conf->syslog_name, conf->maillog_file, logerr, sizeof(logerr)) != 0)
        log_warn("reload: %s; logging stays where it was", logerr);
    if (!same_str(conf->queue_directory, old->queue_directory))
        log_warn("reload: queue_directory changed: takes effect after a restart");
    /* the sockets were bound as root: a listener list can only change with a restart */
    if (!same_list(&conf->inet_interfaces, &old->inet_interfaces))
        log_warn("reload: inet_interfaces changed: takes effect after a restart");
    if (!same_list(&conf->odmr_listen, &old->odmr_listen))
        log_warn("reload: odmr_listen changed: takes effect after a restart");
    smtpd_set_config(sv->smtpd, conf);
    smtp_transport_set_config(sv->smtp, conf);
    local_transport_set_config(sv->local, conf);
    qmgr_set_config(sv->qmgr, conf);
    flush_set_config(sv->flush, conf);
    odmr_set_config(sv->odmr, conf);
    sv->conf = conf;
    server_config_free(old);
    free(old);
    log_info("reload: configuration %s loaded", sv->config_path);
}

/* signal_cb - SIGTERM/SIGINT end the loop, SIGHUP reloads */
static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct server *sv = arg;

    (void) what;
    if (sig == SIGHUP) {
        reload(sv);
        return;
    }
    log_info("terminating on signal %d", (int) sig);
    event_base_loopexit(sv->base, NULL);
}

/* commit_cb - smtpd answered 250 for id: the qmgr schedules it */
static void commit_cb(void *ctx, const char *id)
{
    qmgr_incoming(ctx, id);
}

/* smtp_deliver - the qmgr's seam onto the smtp transport */
static int smtp_deliver(void *ctx, const struct delivery_job *job, delivery_done_fn done,
                        void *done_ctx)
{
    return smtp_transport_deliver(ctx, job, done, done_ctx);
}

/* local_deliver - the qmgr's seam onto the local (Maildir) transport */
static int local_deliver(void *ctx, const struct delivery_job *job, delivery_done_fn done,
                         void *done_ctx)
{
    return local_transport_deliver(ctx, job, done, done_ctx);
}

/* flush_deliver_cb - the flush service's seam onto the qmgr */
static int flush_deliver_cb(void *ctx, const char *id, const char *domain)
{
    return qmgr_flush_message(ctx, id, domain);
}

/* flush_site_cb - ETRN (smtpd hook) and etrn-queue -s: ask the flush service */
static enum flush_result flush_site_cb(void *ctx, const char *domain, int with_subdomains,
                                       const char *client, const char *user, size_t *pending)
{
    return flush_request(((struct server *) ctx)->flush, domain, with_subdomains, client,
                               user, pending);
}

/* ctl_flush_all - etrn-queue -f */
static int ctl_flush_all(void *ctx, size_t *scheduled)
{
    *scheduled = qmgr_flush_all(((struct server *) ctx)->qmgr);
    return QUEUE_OK;
}

/* ctl_flush_id - etrn-queue -i ID: qmgr_flush_message's 1 / 0 / status as the queue returns */
static int ctl_flush_id(void *ctx, const char *id)
{
    int rc = qmgr_flush_message(((struct server *) ctx)->qmgr, id, NULL);

    return rc > 0 ? QUEUE_OK : rc == 0 ? QUEUE_NOTFOUND : rc;
}

/* ctl_delete - etrn-queue -d ID|ALL (the qmgr's flush hook forgets it too) */
static int ctl_delete(void *ctx, const char *id)
{
    return qmgr_delete(((struct server *) ctx)->qmgr, id);
}

/* ctl_hold - etrn-queue -h ID (out of the flush index until released and deferred again) */
static int ctl_hold(void *ctx, const char *id)
{
    return qmgr_hold(((struct server *) ctx)->qmgr, id);
}

/* ctl_release - etrn-queue -H ID */
static int ctl_release(void *ctx, const char *id)
{
    return qmgr_release(((struct server *) ctx)->qmgr, id);
}

/* ctl_reopen - etrn-queue reopen: maillog_file again by name */
static int ctl_reopen(void *ctx, int *reopened)
{
    int rc = reopen_log("control");

    (void) ctx;
    *reopened = rc > 0;
    return rc < 0 ? QUEUE_ERR : QUEUE_OK;
}

/* ctl_status - etrn-queue status: the qmgr's counts and destinations, then the flush service's */
static int ctl_status(void *ctx, int json, struct buf *out)
{
    struct server *sv = ctx;

    if (json) {
        buf_putc(out, '{');
        qmgr_status_json(sv->qmgr, out);
        buf_putc(out, ',');
        flush_status_json(sv->flush, out);
        buf_putc(out, ',');
        odmr_status_json(sv->odmr, out);
        buf_putc(out, '}');
    } else {
        qmgr_status_text(sv->qmgr, out);
        buf_putc(out, '\n');
        flush_status_text(sv->flush, out);
        if (odmr_turns(sv->odmr) || out->len) {
            struct buf t = BUF_INIT;

            odmr_status_text(sv->odmr, &t);
            if (t.len) {
                buf_putc(out, '\n');
                buf_puts(out, buf_cstr(&t));
            }
            buf_free(&t);
        }
    }
    return QUEUE_OK;
}

/* odmr_busy - ATRN: another turn holds domain or its flush runs (451) */
static int odmr_busy(void *ctx, const char *domain)
{
    struct server *sv = ctx;

    return qmgr_grant_held(sv->qmgr, domain) || flush_running(sv->flush, domain);
}

/* odmr_waiting - ATRN: the flush index's count, else the queue's own (453 when 0) */
static size_t odmr_waiting(void *ctx, const char *domain)
{
    struct server *sv = ctx;
    size_t n = flush_waiting(sv->flush, domain);

    return n ? n : qmgr_domain_waiting(sv->qmgr, domain, 1);
}

/* odmr_grant - route domain to an ODMR turn (a new grant when g is NULL) */
static struct odmr_grant *odmr_grant(void *ctx, struct odmr_grant *g, const char *name,
                                     const char *domain, odmr_deliver_fn fn, void *fctx)
{
    struct qmgr_grant *qg = (struct qmgr_grant *) g;

    if (qg == NULL)
        qg = qmgr_grant_new(((struct server *) ctx)->qmgr, name, fn, fctx);
    qmgr_grant_domain(qg, domain);
    return (struct odmr_grant *) qg;
}

/* odmr_flush - the turn is ready: every queued message of domain goes now */
static size_t odmr_flush(void *ctx, const char *domain)
{
    return qmgr_flush_domain(((struct server *) ctx)->qmgr, domain);
}

/* odmr_pending - the turn's jobs waiting, running or scheduled */
static size_t odmr_pending(void *ctx, struct odmr_grant *g)
{
    (void) ctx;
    return qmgr_grant_busy((struct qmgr_grant *) g);
}

/* odmr_end - the turn is over */
static void odmr_end(void *ctx, struct odmr_grant *g)
{
    (void) ctx;
    qmgr_grant_end((struct qmgr_grant *) g);
}

static const struct odmr_ops odmr_ops = {
    .busy = odmr_busy,
    .waiting = odmr_waiting,
    .grant = odmr_grant,
    .flush = odmr_flush,
    .pending = odmr_pending,
    .end = odmr_end,
};

static const struct control_ops control_ops = {
    .flush_site = flush_site_cb,
    .flush_all = ctl_flush_all,
    .flush_id = ctl_flush_id,
    .delete_id = ctl_delete,
    .hold = ctl_hold,
    .release = ctl_release,
    .reopen_log = ctl_reopen,
    .status = ctl_status,
};

/* start_flush_control - the flush service (wired to qmgr and smtpd) and the control socket */
static void start_flush_control(struct server *sv, struct queue *q)
{
    char path[4096], errbuf[512];

    if ((sv->flush = flush_open(sv->base, sv->conf, q, errbuf, sizeof(errbuf))) == NULL)
        log_fatal_code(EXIT_IOERR, "%s", errbuf);
    qmgr_set_flush_hook(sv->qmgr, flush_note, sv->flush);
    flush_set_deliver(sv->flush, flush_deliver_cb, sv->qmgr);
    smtpd_set_etrn_hook(sv->smtpd, flush_site_cb, sv);
    sv->odmr = odmr_new(sv->base, sv->conf, &odmr_ops, sv);
    smtpd_set_odmr(sv->smtpd, sv->odmr);
    if (snprintf(path, sizeof(path), "%s/public/control", sv->conf->queue_directory)
        >= (int) sizeof(path))
        log_fatal_code(EXIT_CONFIG, "queue_directory too long");
    /* made after the switch to mail_owner, so the socket belongs to it */
    sv->control = control_new(sv->base, path, (uid_t) -1, (gid_t) -1, &control_ops, sv, errbuf,
                              sizeof(errbuf));
    if (sv->control == NULL)
        log_fatal_code(EXIT_IOERR, "%s", errbuf);
}

/* startup_fatal - refuse to start: say why on stderr too (a terminal, systemd's journal) */
static _Noreturn void startup_fatal(const struct server_config *c, int status, const char *why)
{
    if (!same_str(c->maillog_file, "/dev/stderr") && !same_str(c->maillog_file, "stderr"))
        fprintf(stderr, "%s: fatal: %s\n", IDENT, why);
    log_fatal_code(status, "%s", why);
}

/* check_files - the TLS certificate and key and the AUTH users file load; 0 or -1 + err */
static int check_files(const struct server_config *c, char *err, size_t errlen)
{
    if (c->smtpd_tls_cert_file && *c->smtpd_tls_cert_file) {
        struct smtpd_tls *tls = smtpd_tls_new(c->smtpd_tls_cert_file, c->smtpd_tls_key_file,
                                              err, errlen);

        if (tls == NULL)
            return -1;
        smtpd_tls_free(tls);
    }
    if (c->smtpd_sasl_users_file && *c->smtpd_sasl_users_file) {
        struct sasl_users *users = sasl_users_load(c->smtpd_sasl_users_file, err, errlen);

        if (users == NULL)
            return -1;
        sasl_users_free(users);
    }
    return 0;
}

/* check_owner_files - can mail_owner read what a reload (SIGHUP) reads again? 0, or -1 + err */
static int check_owner_files(const struct server_config *c, const char *owner, char *err,
                             size_t errlen)
{
    static const char *const keys[] = { "smtpd_tls_cert_file", "smtpd_tls_key_file",
                                        "smtpd_sasl_users_file" };
    const char *paths[] = { c->smtpd_tls_cert_file, c->smtpd_tls_key_file,
                            c->smtpd_sasl_users_file };
    struct asuser_check checks[3];
    const char *key[3];
    size_t n = 0;
    char why[256];

    for (size_t i = 0; i < 3; i++)
        if (paths[i] && *paths[i]) {
            key[n] = keys[i];
            checks[n].path = paths[i];
            checks[n].mode = R_OK;
            checks[n++].err = 0;
        }
    if (n == 0)
        return 0;
    if (asuser_check(owner, checks, n, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "%s:%d: [main] mail_owner: %s", c->path,
                 server_config_line(c, "mail_owner"), why);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (checks[i].err) {
            snprintf(err, errlen, "%s:%d: [main] %s: %s: mail_owner %s cannot read it (%s), so a "
                     "reload (SIGHUP) would fail: make it readable by %s (e.g. root:%s 0640)",
                     c->path, server_config_line(c, key[i]), key[i], checks[i].path, owner,
                     strerror(checks[i].err), owner, owner);
            return -1;
        }
    return 0;
}

/* drop_privileges - become mail_owner */
static void drop_privileges(const struct passwd *pw)
{
    if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0
        || setuid(pw->pw_uid) != 0)
        log_fatal_code(EXIT_OSERR, "cannot switch to user %s: %s", pw->pw_name, strerror(errno));
    if (setuid(0) == 0 || geteuid() == 0)
        log_fatal_code(EXIT_SOFTWARE, "still root after switching to %s", pw->pw_name);
}

/* check_only - --check-config: the config loaded; as root, can mail_owner read its files? */
static int check_only(const struct server_config *conf)
{
    struct passwd *p = geteuid() == 0 && conf->mail_owner ? getpwnam(conf->mail_owner) : NULL;
    char errbuf[512];

    if (p && p->pw_uid != 0
        && check_owner_files(conf, conf->mail_owner, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s: %s\n", IDENT, errbuf);
        return EXIT_CONFIG;
    }
    return EXIT_OK;
}

/* run_as - as root: the mail_owner to switch to (its name copied into pw), else EXIT_CONFIG */
static int run_as(const struct server_config *conf, struct passwd *pw)
{
    struct passwd *p = conf->mail_owner ? getpwnam(conf->mail_owner) : NULL;

    if (p == NULL) {
        fprintf(stderr, "%s: mail_owner %s: no such user; refusing to run as root\n", IDENT,
                conf->mail_owner ? conf->mail_owner : "(unset)");
        return EXIT_CONFIG;
    }
    if (p->pw_uid == 0) {
        fprintf(stderr, "%s: mail_owner %s is root; refusing to run as root\n", IDENT,
                conf->mail_owner);
        return EXIT_CONFIG;
    }
    *pw = *p;
    pw->pw_name = xstrdup(p->pw_name);
    return EXIT_OK;
}

/*
 * serve - open the log and the queue, bind, drop privileges, wire the
 * modules, run the loop until a signal ends it, and free them again. An
 * error before the loop is fatal (log_fatal_code exits); the exit status.
 */
static int serve(struct server *sv, struct passwd *pw)
{
    static const int signums[4] = { SIGTERM, SIGINT, SIGHUP, 0 };
    struct event *sigs[4];
    struct queue q;
    char errbuf[512];
    int rc;

    if (pw && log_file_owner(pw->pw_uid, pw->pw_gid, errbuf, sizeof(errbuf)) != 0)
        startup_fatal(sv->conf, EXIT_IOERR, errbuf);
    if (pw && check_owner_files(sv->conf, pw->pw_name, errbuf, sizeof(errbuf)) != 0)
        log_warn("%s", errbuf);
    /* as root: make and check the directories only; nothing in them is read yet */
    rc = pw ? queue_fs_open_owned(&q, sv->conf->queue_directory, pw->pw_uid, pw->pw_gid)
            : queue_fs_open(&q, sv->conf->queue_directory, 1);
    if (rc != QUEUE_OK)
        startup_fatal(sv->conf, EXIT_IOERR, queue_error(&q));
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        log_fatal_code(EXIT_OSERR, "signal: %s", strerror(errno));
    if ((sv->base = event_base_new()) == NULL)
        log_fatal_code(EXIT_OSERR, "cannot create the event loop");
    if (queue_attach(&q, sv->base, COMMIT_THREADS, errbuf, sizeof(errbuf)) != QUEUE_OK)
        log_fatal_code(EXIT_OSERR, "%s", errbuf);
    if ((sv->smtpd = smtpd_new(sv->base, sv->conf, &q, errbuf, sizeof(errbuf))) == NULL) {
        fprintf(stderr, "%s: %s\n", IDENT, errbuf);
        log_fatal_code(EXIT_OSERR, "%s", errbuf);
    }
    if (pw)
        drop_privileges(pw);
    /* reading and removing queue files only ever happens as mail_owner */
    if (queue_recover(&q) != QUEUE_OK)
        log_error("queue recovery: %s", queue_error(&q));
    if ((sv->smtp = smtp_transport_new(sv->base, sv->conf, errbuf, sizeof(errbuf))) == NULL)
        log_fatal_code(EXIT_SOFTWARE, "%s", errbuf);
    if ((sv->local = local_transport_new(sv->base, sv->conf, errbuf, sizeof(errbuf))) == NULL)
        log_fatal_code(EXIT_OSERR, "%s", errbuf);
    if ((sv->qmgr = qmgr_new(sv->base, sv->conf, &q, errbuf, sizeof(errbuf))) == NULL)
        log_fatal_code(EXIT_IOERR, "%s", errbuf);
    qmgr_set_transport(sv->qmgr, SERVER_TRANSPORT_SMTP, smtp_deliver, sv->smtp);
    qmgr_set_transport(sv->qmgr, SERVER_TRANSPORT_ETRN_ONLY, smtp_deliver, sv->smtp);
    qmgr_set_transport(sv->qmgr, SERVER_TRANSPORT_LOCAL, local_deliver, sv->local);
    smtpd_set_commit_hook(sv->smtpd, commit_cb, sv->qmgr);
    start_flush_control(sv, &q);
    for (int i = 0; signums[i]; i++) {
        sigs[i] = evsignal_new(sv->base, signums[i], signal_cb, sv);
        if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) != 0)
            log_fatal_code(EXIT_OSERR, "cannot watch signal %d", signums[i]);
    }
    /* the port opens only now: a client that connects is served at once */
    if (smtpd_listen(sv->smtpd, errbuf, sizeof(errbuf)) != 0)
        startup_fatal(sv->conf, EXIT_OSERR, errbuf);
    log_info("daemon started -- listening on %zu address(es), queue %s", sv->conf->nlisten,
             sv->conf->queue_directory);
    rc = event_base_dispatch(sv->base);
    control_free(sv->control);
    smtpd_free(sv->smtpd);
    odmr_free(sv->odmr);
    smtp_transport_free(sv->smtp);
    local_transport_free(sv->local);
    qmgr_free(sv->qmgr);
    flush_free(sv->flush);
    for (int i = 0; signums[i]; i++)
        event_free(sigs[i]);
    queue_close(&q); /* before the event base: it leaves the loop */
    event_base_free(sv->base);
    if (rc < 0) {
        log_error("event loop failed");
        return EXIT_SOFTWARE;
    }
    log_info("stopped");
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "check-config", no_argument, NULL, 'C' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'H' },
        { NULL, 0, NULL, 0 },
    };
    struct server sv = { .config_path = DEFAULT_CONFIG };
    struct passwd pw = { .pw_name = NULL };
    struct cfg_error err;
    char errbuf[512];
    int opt, check = 0, verbose = 0, rc;

    while ((opt = getopt_long(argc, argv, "c:v", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            sv.config_path = optarg;
            break;
        case 'v':
            verbose = 1;
            break;
        case 'C':
            check = 1;
            break;
        case 'V':
            return version_print(IDENT) == 0 ? EXIT_OK : EXIT_IOERR;
        case 'H':
            usage(stdout, EXIT_OK);
        default:
            usage(stderr, EXIT_USAGE);
        }
    }
    if (optind != argc)
        usage(stderr, EXIT_USAGE);
    if ((sv.conf = load_config(sv.config_path, &err)) == NULL) {
        fprintf(stderr, "%s: %s\n", IDENT, err.msg);
        return EXIT_CONFIG;
    }
    /* from here on every path ends below, where the configuration is freed once */
    if (check_files(sv.conf, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s: %s: %s\n", IDENT, sv.config_path, errbuf);
        rc = EXIT_CONFIG;
    } else if (check) {
        rc = check_only(sv.conf);
    } else if ((rc = geteuid() == 0 ? run_as(sv.conf, &pw) : EXIT_OK) == EXIT_OK) {
        log_set_verbose(verbose);
        if (log_open(sv.conf->syslog_name, sv.conf->maillog_file, errbuf, sizeof(errbuf)) != 0) {
            fprintf(stderr, "%s: %s\n", IDENT, errbuf);
            rc = EXIT_IOERR;
        } else {
            rc = serve(&sv, pw.pw_name ? &pw : NULL);
            log_close();
        }
    }
    free(pw.pw_name);
    server_config_free(sv.conf);
    free(sv.conf);
    return rc;
}
