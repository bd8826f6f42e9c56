/*
 * fuzz_session_trace - the agent's reading of libcurl's debug callback
 * (agent/etrn_session.c: session_debug, session_trace_line, reply_text):
 * the reply lines libcurl hands over (CURLINFO_HEADER_IN, one or several
 * lines per call, the last one possibly without its line end), the commands
 * it sends (CURLINFO_HEADER_OUT: ETRN, AUTH and its credential lines) and
 * its own text (CURLINFO_TEXT). The callback is static, so this harness
 * compiles etrn_session.c into itself; log_debug formatting runs (verbose on,
 * the log goes to /dev/null).
 *
 * Input: records of [kind byte][2 length bytes, little endian][data]; kind
 * % 3 picks HEADER_IN, HEADER_OUT or TEXT; a length past the end takes what
 * is left. Each record's data is copied to the end of a page that a
 * PROT_NONE page follows (no NUL after it, as in libcurl's buffers), so a
 * read past it faults even inside uninstrumented libc (vsnprintf's "%.*s").
 *
 * Two traces read the same dialogue: one gets each HEADER_IN record in one
 * call, the other line by line (split after every '\n'); both must end in
 * the same state. Checks after every record: reply codes within 0..999, the
 * kept texts at most SMTP_REPLY_MAX bytes, without a line feed or a NUL; an
 * ETRN command line starts waiting for its reply. After every line (of the
 * line-by-line trace): the reply that ended an ETRN is the ETRN's reply (code
 * and text), and a final reply other than 334 ends an AUTH exchange.
 */
#include "../../agent/etrn_session.c"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "support.h"

#define RECORD_MAX 65535

static char *guarded;   /* RECORD_MAX bytes (rounded up to pages), then a PROT_NONE page */
static size_t guarded_len;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    size_t page = (size_t) sysconf(_SC_PAGESIZE);

    (void) argc;
    (void) argv;
    support_init("session_trace");
    log_set_verbose(1);
    guarded_len = (RECORD_MAX + page - 1) / page * page;
    guarded = mmap(NULL, guarded_len + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (guarded == MAP_FAILED || mprotect(guarded + guarded_len, page, PROT_NONE) != 0)
        abort();
    return 0;
}

static void trace_init(struct session_trace *tr)
{
    memset(tr, 0, sizeof(*tr));
    smtp_reply_init(&tr->reading);
    tr->host = "provider.test";
}

static void trace_free(struct session_trace *tr)
{
    buf_free(&tr->etrn_text);
    buf_free(&tr->last_text);
}

/* check_text - a kept reply text: bounded, one line, no NUL */
static void check_text(struct buf *b)
{
    const char *s = buf_cstr(b);

    if (b->len > SMTP_REPLY_MAX || strlen(s) != b->len || memchr(s, '\n', b->len) != NULL)
        abort();
}

/* check_trace - what a trace may hold after any record */
static void check_trace(struct session_trace *tr)
{
    if (tr->etrn_code < 0 || tr->etrn_code > 999 || tr->last_code < 0 || tr->last_code > 999)
        abort();
    check_text(&tr->etrn_text);
    check_text(&tr->last_text);
}

/* same_trace - the two readings agree */
static void same_trace(struct session_trace *a, struct session_trace *b)
{
    if (a->in_etrn != b->in_etrn || a->etrn_code != b->etrn_code || a->last_code != b->last_code
        || a->auth_sent != b->auth_sent || a->in_auth != b->in_auth || a->greeted != b->greeted
        || strcmp(buf_cstr(&a->etrn_text), buf_cstr(&b->etrn_text)) != 0
        || strcmp(buf_cstr(&a->last_text), buf_cstr(&b->last_text)) != 0)
        abort();
}

/* feed_lines - one HEADER_IN call per line of data; after each line, the
   reply that ended an ETRN is the ETRN's reply, and a final reply other than
   334 has ended an AUTH exchange */
static void feed_lines(struct session_trace *tr, char *data, size_t size)
{
    char *p = data, *end = data + size;

    while (p < end) {
        char *nl = memchr(p, '\n', (size_t) (end - p));
        size_t n = nl ? (size_t) (nl - p + 1) : (size_t) (end - p);
        int etrn_waiting = tr->in_etrn, before = tr->last_code;

        tr->last_code = -1;     /* still -1 after the call: no reply ended on this line */
        session_debug(NULL, CURLINFO_HEADER_IN, p, n, tr);
        if (tr->last_code == -1) {
            tr->last_code = before;
        } else if (tr->last_code != 334 && tr->in_auth) {
            abort();
        }
        if (etrn_waiting && !tr->in_etrn
            && (tr->etrn_code != tr->last_code
                || strcmp(buf_cstr(&tr->etrn_text), buf_cstr(&tr->last_text)) != 0))
            abort();
        p += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct session_trace whole, split;
    size_t pos = 0;

    trace_init(&whole);
    trace_init(&split);
    while (pos + 3 <= size) {
        static const curl_infotype kinds[] = { CURLINFO_HEADER_IN, CURLINFO_HEADER_OUT,
                                               CURLINFO_TEXT };
        curl_infotype kind = kinds[data[pos] % 3];
        size_t len = (size_t) data[pos + 1] | (size_t) data[pos + 2] << 8;
        char *copy;

        pos += 3;
        if (len > size - pos)
            len = size - pos;
        copy = guarded + guarded_len - len;
        memcpy(copy, data + pos, len);
        pos += len;
        session_debug(NULL, kind, copy, len, &whole);
        if (kind == CURLINFO_HEADER_IN)
            feed_lines(&split, copy, len);
        else
            session_debug(NULL, kind, copy, len, &split);
        check_trace(&whole);
        same_trace(&whole, &split);
        if (kind == CURLINFO_HEADER_OUT && len >= 5 && strncasecmp((const char *) data + pos - len,
                                                                   "ETRN ", 5) == 0
            && (!whole.in_etrn || whole.etrn_code != 0))
            abort();
    }
    trace_free(&whole);
    trace_free(&split);
    return 0;
}
