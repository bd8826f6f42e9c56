/* smtpd_driver.c - one SMTP client per input, through a bufferevent_pair into smtpd */
#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "buf.h"
#include "domain.h"
#include "flush.h"
#include "queue.h"
#include "queue_fs.h"
#include "server_config.h"
#include "smtpd.h"
#include "smtpd_driver.h"
#include "support.h"

#define PUMP_MAX 20000   /* event loop turns per phase */
#define IDLE_TURNS 3     /* turns without progress that mean "nothing moves" */
#define CLIENT_POOL 16    /* client addresses used in turn, in and outside mynetworks */
#define COMMIT_WAIT_MS 20000 /* a commit or AUTH check taking longer is a bug (or a dead disk) */

static struct server_config conf;
static struct queue q;
static struct event_base *base;
static struct smtpd *srv;
static SSL_CTX *client_ctx;
static int with_tls;
static unsigned long etrn_calls;
static const char *expect;      /* content the first commit must hold, or NULL */
static size_t expect_len;
static int commits_seen;
static unsigned long run_count;

/* the client side of one run */
struct client {
    struct bufferevent *pair;  /* the client's end of the pair */
    struct bufferevent *bev;   /* what the client writes to: pair, or a TLS filter over it */
    struct evbuffer *got;      /* every byte the server sent (decrypted) */
};

/* stored_content - the content of a queued message, without what smtpd added */
static void stored_content(const char *id, struct buf *out)
{
    struct queue_msg m;
    struct buf all = BUF_INIT, added = BUF_INIT;
    char chunk[8192];
    const char *p, *end;
    ssize_t n;
    int fd;

    if (queue_load(&q, QUEUE_INCOMING, id, &m) != QUEUE_OK || (fd = queue_open_content(&q, &m)) < 0)
        abort();
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        buf_append(&all, chunk, (size_t) n);
    close(fd);
    queue_msg_free(&m);
    /* the Received: header ends with "id ID[CRLF\tfor <rcpt>]; DATE CRLF" */
    buf_printf(&added, " id %s", id);
    p = memmem(all.data, all.len, added.data, added.len);
    if (p == NULL || strncmp(all.data, "Received: from ", 15) != 0)
        abort();
    p = memmem(p, all.len - (size_t) (p - all.data), "; ", 2);
    p = p ? memmem(p, all.len - (size_t) (p - all.data), "\r\n", 2) : NULL;
    if (p == NULL)
        abort();
    p += 2;
    end = all.data + all.len;
    /* and a Message-Id: header when the client sent none */
    buf_reset(&added);
    buf_printf(&added, "Message-Id: <%s@%s>\r\n", id, conf.myhostname);
    {
        const char *m_at = memmem(p, (size_t) (end - p), added.data, added.len);

        if (m_at && (m_at == p || m_at[-1] == '\n')) {
            buf_append(out, p, (size_t) (m_at - p));
            p = m_at + added.len;
        }
    }
    buf_append(out, p, (size_t) (end - p));
    buf_free(&added);
    buf_free(&all);
}

/* commit_hook - a message was answered 250: check it, take it out of the queue again */
static void commit_hook(void *ctx, const char *id)
{
    (void) ctx;
    if (!queue_id_valid(id))
        abort();
    if (commits_seen++ == 0 && expect) {
        struct buf got = BUF_INIT;

        stored_content(id, &got);
        if (got.len != expect_len || memcmp(got.data, expect, expect_len) != 0) {
            fprintf(stderr, "queued content differs from what the client sent:\n"
                    "want %zu: %.*s\ngot %zu: %.*s\n", expect_len, (int) expect_len, expect,
                    got.len, (int) got.len, got.data ? got.data : "");
            abort();
        }
        buf_free(&got);
    }
    if (queue_delete(&q, QUEUE_INCOMING, id, QUEUE_LATER) != QUEUE_OK)
        abort();
}

/* driver_expect - the next run's first message must be queued with this content */
void driver_expect(const char *content, size_t len)
{
    expect = content;
    expect_len = len;
}

/* etrn_hook - a fake flush service that checks what smtpd hands it */
static enum flush_result etrn_hook(void *ctx, const char *domain, int with_subdomains,
                                   const char *client, const char *user, size_t *pending)
{
    (void) ctx;
    (void) with_subdomains;
    (void) user;
    etrn_calls++;
    if (client == NULL || strpbrk(client, "\r\n") != NULL)
        abort();
    if (domain[0] == '[') {
        if (!domain_is_address_literal(domain))
            abort();
        return FLUSH_NOT_ELIGIBLE;
    }
    if (!domain_is_hostname(domain, NULL))
        abort();
    for (const char *p = domain; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            abort();
    if (strcmp(domain, "example.org") == 0) {
        *pending = 3;
        return FLUSH_STARTED;
    }
    if (strcmp(domain, "example.net") == 0)
        return FLUSH_NOTHING;
    if (strcmp(domain, "error.example.org") == 0)
        return FLUSH_ERROR;
    return FLUSH_NOT_ELIGIBLE;
}

/* make_cert - a throwaway self-signed P-256 certificate for STARTTLS */
static void make_cert(const char *cert_path, const char *key_path)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *fp;

    if (key == NULL || x == NULL)
        abort();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *) "fuzz.test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    if (X509_sign(x, key, EVP_sha256()) == 0)
        abort();
    if ((fp = fopen(cert_path, "w")) == NULL || PEM_write_X509(fp, x) != 1 || fclose(fp) != 0)
        abort();
    if ((fp = fopen(key_path, "w")) == NULL
        || PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL) != 1 || fclose(fp) != 0)
        abort();
    X509_free(x);
    EVP_PKEY_free(key);
}

/* make_users - alice:secret, with the cheapest hash sasl_users accepts */
static void make_users(const char *path)
{
    struct crypt_data cd;
    struct buf b = BUF_INIT;
    const char *h;

    memset(&cd, 0, sizeof(cd));
    h = crypt_r("secret", "$5$rounds=1000$fuzzsaltfuzzsalt$", &cd);
    if (h == NULL || h[0] != '$')
        abort();
    buf_printf(&b, "alice:%s\n", h);
    support_write(path, b.data, b.len, 0600);
    buf_free(&b);
}

/* driver_init - configuration, queue and an smtpd without listeners */
void driver_init(const char *name, const char *extra_main, const char *sections, int tls)
{
    struct buf main_lines = BUF_INIT;
    char err[512];

    support_init(name);
    with_tls = tls;
    /*
     * smtpd_error_sleep_time = 0: a failed AUTH is answered without the
     * tarpit's delay; rates per 1 s and high enough that a client of the
     * pool is sometimes under the ETRN and AUTH limits, sometimes over
     */
    buf_puts(&main_lines, "message_size_limit = 20000\nsmtpd_recipient_limit = 5\n"
                          "smtpd_error_sleep_time = 0\nanvil_rate_time_unit = 1s\n"
                          "smtpd_client_auth_rate_limit = 200\n"
                          "smtpd_etrn_restrictions = permit_mynetworks, permit_sasl_authenticated, reject\n");
    if (tls) {
        char cert[512], key[512], users[512];

        snprintf(cert, sizeof(cert), "%s", support_path("cert.pem"));
        snprintf(key, sizeof(key), "%s", support_path("key.pem"));
        snprintf(users, sizeof(users), "%s", support_path("users"));
        make_cert(cert, key);
        make_users(users);
        buf_printf(&main_lines, "smtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n"
                   "smtpd_sasl_users_file = %s\n", cert, key, users);
        if ((client_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
            abort();
        SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    }
    if (extra_main)
        buf_puts(&main_lines, extra_main);
    support_server_config(buf_cstr(&main_lines), sections, &conf);
    buf_free(&main_lines);
    if (queue_fs_open(&q, conf.queue_directory, 1) != QUEUE_OK)
        abort();
    if ((base = event_base_new()) == NULL)
        abort();
    if (queue_attach(&q, base, 2, err, sizeof(err)) != QUEUE_OK) {
        fprintf(stderr, "queue: %s\n", err);
        abort();
    }
    if ((srv = smtpd_new_unbound(base, &conf, &q, err, sizeof(err))) == NULL) {
        fprintf(stderr, "smtpd: %s\n", err);
        abort();
    }
    smtpd_set_commit_hook(srv, commit_hook, NULL);
    smtpd_set_etrn_hook(srv, etrn_hook, NULL);
}

/* client_read - keep everything the server says */
static void client_read(struct bufferevent *bev, void *arg)
{
    struct client *c = arg;

    evbuffer_add_buffer(c->got, bufferevent_get_input(bev));
}

/* client_event - nothing to do: the run looks at the session count */
static void client_event(struct bufferevent *bev, short what, void *arg)
{
    (void) bev;
    (void) what;
    (void) arg;
}

/* progress - a number that changes whenever anything moved */
static size_t progress(const struct client *c)
{
    struct bufferevent *server_end = bufferevent_pair_get_partner(c->pair);
    size_t n = evbuffer_get_length(c->got) * 7 + evbuffer_get_length(bufferevent_get_output(c->bev))
               + smtpd_sessions(srv) * 131;

    if (server_end)
        n += evbuffer_get_length(bufferevent_get_input(server_end)) * 3
             + evbuffer_get_length(bufferevent_get_output(server_end)) * 5;
    if (c->bev != c->pair)
        n += evbuffer_get_length(bufferevent_get_output(c->pair)) * 11
             + evbuffer_get_length(bufferevent_get_input(c->pair)) * 13;
    return n;
}

/* noop_cb - a timer that only bounds a blocking loop turn */
static void noop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;
}

/* wait_pending - block in the loop until the commit and AUTH threads answered (at most COMMIT_WAIT_MS) */
static void wait_pending(void)
{
    struct timeval tick = { 0, 20 * 1000 };
    struct event *ev = evtimer_new(base, noop_cb, NULL);
    int waited = 0;

    while (smtpd_pending(srv) > 0 && waited < COMMIT_WAIT_MS) {
        evtimer_add(ev, &tick);
        event_base_loop(base, EVLOOP_ONCE);
        waited += 20;
    }
    event_free(ev);
    if (smtpd_pending(srv) > 0) {
        fprintf(stderr, "a commit or an AUTH check did not answer within %d ms\n", COMMIT_WAIT_MS);
        abort();
    }
}

/* pump - run the loop until nothing moves (or stop() says so) and no commit is pending */
static void pump(struct client *c, int (*stop)(const struct client *))
{
    size_t last = (size_t) -1;
    int idle = 0;

    for (int turn = 0; turn < PUMP_MAX; turn++) {
        size_t now;

        event_base_loop(base, EVLOOP_NONBLOCK);
        if (stop && stop(c))
            return;
        if (smtpd_pending(srv) > 0) {
            wait_pending();
            idle = 0;
            continue;
        }
        now = progress(c);
        idle = now == last ? idle + 1 : 0;
        last = now;
        if (idle >= IDLE_TURNS)
            return;
    }
}

/* ready_for_tls - the server answered STARTTLS (or refused it) */
static int ready_for_tls(const struct client *c)
{
    struct evbuffer_ptr p = evbuffer_search(c->got, "\r\n220 2.0.0", 11, NULL);

    return p.pos >= 0;
}

/* session_gone - the server freed its session */
static int session_gone(const struct client *c)
{
    (void) c;
    return smtpd_sessions(srv) == 0 && smtpd_pending(srv) == 0;
}

/* check_replies - every reply line is well formed */
static void check_replies(struct evbuffer *got)
{
    size_t len = evbuffer_get_length(got);
    const char *p = (const char *) evbuffer_pullup(got, -1), *end = p + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        size_t n;

        if (nl == NULL || nl == p || nl[-1] != '\r') {
            fprintf(stderr, "reply without CRLF: %.*s\n", (int) (end - p), p);
            abort();
        }
        n = (size_t) (nl - p) - 1;
        if (n + 2 > SMTPD_LINE_MAX || n < 3 || p[0] < '2' || p[0] > '5' || p[1] < '0'
            || p[1] > '9' || p[2] < '0' || p[2] > '9' || (n > 3 && p[3] != ' ' && p[3] != '-')
            || memchr(p, '\r', n) != NULL) {
            fprintf(stderr, "bad reply line: %.*s\n", (int) n, p);
            abort();
        }
        p = nl + 1;
    }
}

/* write_chunks - send data, chunk bytes at a time with loop turns between */
static void write_chunks(struct client *c, const uint8_t *data, size_t size, size_t chunk)
{
    if (chunk == 0)
        chunk = size ? size : 1;
    for (size_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;

        bufferevent_write(c->bev, data + off, n);
        for (int i = 0; i < 2; i++)
            event_base_loop(base, EVLOOP_NONBLOCK);
    }
}

/* driver_run - one client, one session */
void driver_run(int in_mynetworks, const void *prefix, size_t plen, const uint8_t *data,
                size_t size, size_t chunk)
{
    struct bufferevent *pair[2];
    struct sockaddr_in sin;
    struct client c;
    static const char hello[] = "EHLO client.example\r\nSTARTTLS\r\n";

    if (bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, pair) != 0)
        abort();
    /*
     * One of CLIENT_POOL addresses: anvil keeps a record per address, and a
     * new address each run would grow it every run (libFuzzer then runs a
     * leak check after every input, 15 times slower); a small pool reaches
     * a steady state at once.
     */
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    run_count++;
    sin.sin_addr.s_addr = htonl((in_mynetworks ? 0x7f000001u : 0xc6120001u)
                                + (uint32_t) (run_count % CLIENT_POOL));
    commits_seen = 0;
    c.pair = c.bev = pair[1];
    c.got = evbuffer_new();
    bufferevent_setcb(pair[1], client_read, NULL, client_event, &c);
    bufferevent_enable(pair[1], EV_READ | EV_WRITE);
    smtpd_attach(srv, pair[0], (struct sockaddr *) &sin);
    if (with_tls) {
        SSL *ssl;

        bufferevent_write(c.bev, hello, sizeof(hello) - 1);
        pump(&c, ready_for_tls);
        if (!ready_for_tls(&c))
            abort();
        if ((ssl = SSL_new(client_ctx)) == NULL)
            abort();
        c.bev = bufferevent_openssl_filter_new(base, pair[1], ssl, BUFFEREVENT_SSL_CONNECTING,
                                               BEV_OPT_DEFER_CALLBACKS);
        if (c.bev == NULL)
            abort();
        bufferevent_setcb(c.bev, client_read, NULL, client_event, &c);
        bufferevent_enable(c.bev, EV_READ | EV_WRITE);
    }
    if (plen)
        bufferevent_write(c.bev, prefix, plen);
    write_chunks(&c, data, size, chunk);
    pump(&c, NULL);
    /* the client hangs up */
    bufferevent_flush(pair[1], EV_WRITE, BEV_FINISHED);
    pump(&c, session_gone);
    if (!session_gone(&c)) {
        fprintf(stderr, "session still open after the client's EOF\n");
        abort();
    }
    if (c.bev != pair[1]) {
        SSL *ssl = bufferevent_openssl_get_ssl(c.bev);

        bufferevent_free(c.bev); /* without BEV_OPT_CLOSE_ON_FREE: the SSL is ours */
        SSL_free(ssl);
    }
    bufferevent_free(pair[1]);
    check_replies(c.got);
    if (expect && commits_seen == 0) {
        fprintf(stderr, "a well-formed message was not queued\n");
        abort();
    }
    expect = NULL;
    if (getenv("FUZZ_TRACE"))
        fprintf(stderr, "%.*s", (int) evbuffer_get_length(c.got),
                (const char *) evbuffer_pullup(c.got, -1));
    evbuffer_free(c.got);
}

/* driver_etrn_calls - how often the ETRN hook was asked */
unsigned long driver_etrn_calls(void)
{
    return etrn_calls;
}
