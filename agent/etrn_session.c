#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "agent_config.h"
#include "alloc.h"
#include "buf.h"
#include "clock.h"
#include "domain.h"
#include "etrn_session.h"
#include "log.h"
#include "smtp_reply.h"

/* What the libcurl debug callback learns from the dialogue. */
struct session_trace {
    const char *host;       /* for the log */
    int in_etrn;            /* an ETRN went out; its reply is being read */
    int etrn_code;          /* final reply code to the last ETRN, 0 = none */
    struct buf etrn_text;
    int last_code;          /* last final reply of any command */
    struct buf last_text;
    struct smtp_reply reading; /* the reply being read (common/smtp_reply: 4 KB kept) */
    int auth_sent;          /* an AUTH command went out on this connection */
    int in_auth;            /* an AUTH exchange runs: client lines are credentials */
    int greeted;            /* a 220 greeting arrived during this perform */
};

/* session_trace_line - one reply line from the server */
static void session_trace_line(struct session_trace *tr, const char *line, size_t len)
{
    char text[SMTP_REPLY_MAX + 1];
    int code;

    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    switch (smtp_reply_feed(&tr->reading, line, len)) {
    case SMTP_REPLY_MORE:
        return;
    case SMTP_REPLY_DONE:
        break;
    default:                /* not a reply line: libcurl judges the dialogue */
        smtp_reply_init(&tr->reading);
        return;
    }
    if (tr->reading.truncated)
        log_warn("reply from %s truncated to %d bytes", tr->host, SMTP_REPLY_MAX);
    code = tr->reading.code;
    tr->last_code = code;
    if (code != 334)
        tr->in_auth = 0;
    buf_reset(&tr->last_text);
    buf_puts(&tr->last_text, smtp_reply_oneline(&tr->reading, text, sizeof(text)));
    if (code == 220 && !tr->in_etrn)
        tr->greeted = 1;
    if (tr->in_etrn) {
        tr->in_etrn = 0;
        tr->etrn_code = code;
        buf_reset(&tr->etrn_text);
        buf_puts(&tr->etrn_text, buf_cstr(&tr->last_text));
    }
    smtp_reply_init(&tr->reading);
}

/* auth_mechanism - length of the mechanism name after "AUTH " (at most 20) */
static int auth_mechanism(const char *data, size_t size)
{
    int n = 0;

    while (5 + (size_t) n < size && n < 20
           && (isalnum((unsigned char) data[5 + n]) || data[5 + n] == '-' || data[5 + n] == '_'))
        n++;
    return n;
}

/* shown_len - a line's length without its line end (CR, LF or both), for "%.*s"
   (at most 4096: log lines are cut at 4000 bytes anyway) */
static int shown_len(const char *line, size_t len)
{
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    return len > 4096 ? 4096 : (int) len;
}

/* session_debug - libcurl's view of the wire: replies in, commands out */
static int session_debug(CURL *curl, curl_infotype type, char *data, size_t size, void *ctx)
{
    struct session_trace *tr = ctx;

    (void) curl;
    if (type == CURLINFO_HEADER_IN) {
        const char *p = data, *end = data + size;

        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t) (end - p));
            size_t n = nl ? (size_t) (nl - p + 1) : (size_t) (end - p);

            log_debug("S: %.*s", shown_len(p, n), p);
            session_trace_line(tr, p, n);
            p += n;
        }
    } else if (type == CURLINFO_HEADER_OUT) {
        /* from AUTH to its final reply, every client line is a credential */
        if (size >= 5 && strncasecmp(data, "AUTH ", 5) == 0) {
            tr->auth_sent = 1;
            tr->in_auth = 1;
            log_debug("C: AUTH %.*s (credentials not shown)", auth_mechanism(data, size), data + 5);
        } else if (tr->in_auth) {
            log_debug("C: (credentials not shown)");
        } else {
            log_debug("C: %.*s", shown_len(data, size), data);
        }
        if (size >= 5 && strncasecmp(data, "ETRN ", 5) == 0) {
            tr->in_etrn = 1;
            tr->etrn_code = 0;
        }
    } else if (type == CURLINFO_TEXT && log_verbose()) {
        log_debug("curl: %.*s", shown_len(data, size), data);
    }
    return 0;
}

static size_t session_discard(char *ptr, size_t size, size_t nmemb, void *ctx)
{
    (void) ptr;
    (void) ctx;
    return size * nmemb;
}

/* curl_verdict - how bad a libcurl failure is when no reply code decides */
static enum etrn_verdict curl_verdict(CURLcode rc, int last_code)
{
    switch (rc) {
    case CURLE_USE_SSL_FAILED:        /* STARTTLS required, not offered */
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_LOGIN_DENIED:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return ETRN_PERM;
    case CURLE_WEIRD_SERVER_REPLY:
        return last_code >= 500 && last_code < 600 ? ETRN_PERM : ETRN_TEMP;
    default:
        return ETRN_TEMP;
    }
}

static void worsen(enum etrn_verdict *v, enum etrn_verdict w)
{
    if (w > *v)
        *v = w;
}

/* session_setup - the options every perform of this session shares */
static void session_setup(CURL *curl, const struct etrn_target *t, struct session_trace *tr,
                          struct curl_slist **resolve)
{
    struct buf url = BUF_INIT;
    int v6 = strchr(t->host, ':') != NULL;

    buf_printf(&url, "%s://%s%s%s:%d/%s", t->tls == AGENT_TLS_IMPLICIT ? "smtps" : "smtp",
               v6 ? "[" : "", t->host, v6 ? "]" : "", t->port, t->helo);
    curl_easy_setopt(curl, CURLOPT_URL, buf_cstr(&url));
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(curl, CURLOPT_DEBUGFUNCTION, session_debug);
    curl_easy_setopt(curl, CURLOPT_DEBUGDATA, tr);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, session_discard);
    curl_easy_setopt(curl, CURLOPT_USE_SSL,
                     (long) (t->tls == AGENT_TLS_STARTTLS ? CURLUSESSL_ALL : CURLUSESSL_NONE));
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, t->tls_verify ? 1L : 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, t->tls_verify ? 2L : 0L);
    if (t->ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, t->ca_file);
    if (t->username) {
        curl_easy_setopt(curl, CURLOPT_USERNAME, t->username);
        curl_easy_setopt(curl, CURLOPT_PASSWORD, t->password);
    }
    curl_easy_setopt(curl, CURLOPT_SERVER_RESPONSE_TIMEOUT, (long) t->timeout);
    if (t->pin_addr) {
        struct buf entry = BUF_INIT;

        buf_printf(&entry, "%s:%d:%s", t->host, t->port, t->pin_addr);
        *resolve = curl_slist_append(NULL, buf_cstr(&entry));
        curl_easy_setopt(curl, CURLOPT_RESOLVE, *resolve);
        buf_free(&entry);
    }
    buf_free(&url);
}

/* session_perform - one command (NOOP, or ETRN arg) within the deadline */
static CURLcode session_perform(CURL *curl, const char *command, const char *arg,
                                long long deadline_ms)
{
    struct curl_slist *rcpt = NULL;
    long long left_ms = deadline_ms - clock_now_ms();
    CURLcode rc;

    if (left_ms <= 0)
        return CURLE_OPERATION_TIMEDOUT;
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) left_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long) left_ms);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, command);
    if (arg)
        rcpt = curl_slist_append(NULL, arg);
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, rcpt);
    rc = curl_easy_perform(curl);
    curl_easy_setopt(curl, CURLOPT_MAIL_RCPT, NULL);
    curl_slist_free_all(rcpt);
    return rc;
}

/* session_open - connect, EHLO, TLS, AUTH, then NOOP; 0 when usable */
static int session_open(CURL *curl, const struct etrn_target *t, struct session_trace *tr,
                        long long deadline_ms, struct etrn_session *out, char *errbuf)
{
    CURLcode rc;

    tr->auth_sent = 0;
    tr->in_auth = 0;
    tr->greeted = 0;
    tr->last_code = 0;
    errbuf[0] = 0;
    rc = session_perform(curl, "NOOP", NULL, deadline_ms);
    if (rc != CURLE_OK) {
        const char *what = errbuf[0] ? errbuf : curl_easy_strerror(rc);

        if (rc == CURLE_OPERATION_TIMEDOUT)
            snprintf(out->error, sizeof(out->error), "session timeout after %llds", t->timeout);
        else if (tr->last_code)
            snprintf(out->error, sizeof(out->error), "%s (last reply: %d %s)", what, tr->last_code,
                     buf_cstr(&tr->last_text));
        else
            snprintf(out->error, sizeof(out->error), "%s", what);
        worsen(&out->verdict, curl_verdict(rc, tr->last_code));
        return -1;
    }
    if (t->username && !tr->auth_sent) {
        snprintf(out->error, sizeof(out->error),
                 "credentials are configured but the server offered no AUTH%s; nothing sent",
                 t->tls == AGENT_TLS_NONE ? " (many servers offer AUTH only after STARTTLS)" : "");
        worsen(&out->verdict, ETRN_PERM);
        return -1;
    }
    return 0;
}

/* etrn_session_run - one host, every domain */
void etrn_session_run(const struct etrn_target *t, char *const *domains, size_t ndomains,
                      struct etrn_session *out)
{
    struct session_trace tr;
    struct curl_slist *resolve = NULL;
    char errbuf[CURL_ERROR_SIZE];
    long long deadline_ms = clock_now_ms() + t->timeout * 1000;
    int connected = 0;
    int failed_open = 0;
    CURL *curl;

    memset(out, 0, sizeof(*out));
    memset(&tr, 0, sizeof(tr));
    smtp_reply_init(&tr.reading);
    tr.host = t->host;
    out->verdict = ETRN_OK;
    out->relayed = -1;
    out->results = xcalloc(ndomains, sizeof(*out->results));
    out->count = ndomains;
    for (size_t i = 0; i < ndomains; i++) {
        out->results[i].domain = xstrdup(domains[i]);
        out->results[i].pending = -1;
        out->results[i].verdict = ETRN_TEMP;
        out->results[i].meaning = "not sent";
    }
    if ((curl = curl_easy_init()) == NULL) {
        snprintf(out->error, sizeof(out->error), "libcurl initialisation failed");
        out->verdict = ETRN_TEMP;
        return;
    }
    session_setup(curl, t, &tr, &resolve);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);

    for (size_t i = 0; i < ndomains && !failed_open; i++) {
        struct etrn_domain_result *r = &out->results[i];
        const char *why;
        CURLcode rc;

        if (domain_etrn_arg(domains[i], &why) == ETRN_ARG_INVALID) {
            r->verdict = ETRN_PERM;
            r->meaning = "invalid ETRN argument, not sent";
            r->text = xstrdup(why);
            worsen(&out->verdict, ETRN_PERM);
            continue;
        }
        if (!connected) {
            if (session_open(curl, t, &tr, deadline_ms, out, errbuf) != 0) {
                failed_open = 1;
                break;
            }
            connected = 1;
        }
        errbuf[0] = 0;
        rc = session_perform(curl, "ETRN", domains[i], deadline_ms);
        if (tr.etrn_code) {
            r->code = tr.etrn_code;
            r->text = xstrdup(buf_cstr(&tr.etrn_text));
            r->verdict = etrn_reply_classify(r->code, &r->meaning);
            if (r->code == 253)
                r->pending = etrn_reply_pending(r->text);
        } else {
            r->verdict = curl_verdict(rc, tr.last_code);
            r->meaning = rc == CURLE_OPERATION_TIMEDOUT ? "timeout" : "no reply";
            r->text = xstrdup(errbuf[0] ? errbuf : curl_easy_strerror(rc));
        }
        worsen(&out->verdict, r->verdict);
        /* libcurl closes the connection after a failed command */
        if (rc != CURLE_OK)
            connected = 0;
    }
    if (failed_open) {
        for (size_t i = 0; i < ndomains; i++) {
            if (out->results[i].code == 0 && out->results[i].text == NULL) {
                out->results[i].verdict = out->verdict;
                out->results[i].meaning = "not sent";
                out->results[i].text = xstrdup(out->error);
            }
        }
    }
    /* QUIT, on a live connection, within what is left of the session */
    long long left_s = (deadline_ms - clock_now_ms()) / 1000;
    curl_easy_setopt(curl, CURLOPT_SERVER_RESPONSE_TIMEOUT, left_s > 1 ? (long) left_s : 1L);
    curl_easy_cleanup(curl);
    curl_slist_free_all(resolve);
    buf_free(&tr.etrn_text);
    buf_free(&tr.last_text);
}

/* etrn_session_free - release a session result */
void etrn_session_free(struct etrn_session *s)
{
    for (size_t i = 0; i < s->count; i++) {
        free(s->results[i].domain);
        free(s->results[i].text);
    }
    free(s->results);
    memset(s, 0, sizeof(*s));
}
