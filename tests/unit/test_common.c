/* Unit tests for common/: durations, domains, ETRN arguments, buffers, config, printable. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "buf.h"
#include "clock.h"
#include "config.h"
#include "domain.h"
#include "duration.h"
#include "json.h"
#include "loop.h"
#include "printable.h"
#include "test.h"

static void test_duration(void)
{
    static const struct {
        const char *text;
        int ok;
        long long want;
    } cases[] = {
        { "900s", 1, 900 }, { "15m", 1, 900 }, { "1h", 1, 3600 }, { "1d", 1, 86400 },
        { "1w", 1, 604800 }, { "42", 1, 42 }, { "0", 1, 0 }, { "2S", 1, 2 },
        { "", 0, 0 }, { "5x", 0, 0 }, { "-1", 0, 0 }, { "1.5h", 0, 0 }, { "h", 0, 0 },
        { "10ss", 0, 0 }, { " 5s", 0, 0 }, { "99999999999999999999", 0, 0 },
        { "9999999999999999w", 0, 0 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long long got = -1;
        const char *why = NULL;
        int rc = duration_parse(cases[i].text, &got, &why);

        TEST_CHECK((rc == 0) == cases[i].ok, "duration_parse(\"%s\"): got rc %d, want %s",
                   cases[i].text, rc, cases[i].ok ? "ok" : "error");
        if (cases[i].ok)
            TEST_INTEQ(got, cases[i].want);
        else
            TEST_CHECK(why != NULL && *why, "duration_parse(\"%s\") gives a reason", cases[i].text);
    }
    char out[32];
    duration_format(900, out, sizeof(out));
    TEST_STREQ(out, "15m");
    duration_format(90, out, sizeof(out));
    TEST_STREQ(out, "90s");
}

static void test_etrn_args(void)
{
    char longlabel[80], longname[300];

    memset(longlabel, 'a', 64);
    strcpy(longlabel + 64, ".org");
    for (int i = 0; i < 299; i++)
        longname[i] = i % 2 ? '.' : 'a';
    longname[299] = 0;
    static const struct {
        const char *arg;
        enum etrn_arg_kind want;
    } cases[] = {
        { "example.org", ETRN_ARG_HOST }, { "EXAMPLE.org", ETRN_ARG_HOST },
        { "a-b.example", ETRN_ARG_HOST }, { "localhost", ETRN_ARG_HOST },
        { "@example.org", ETRN_ARG_SUBDOMAINS }, { "#branch", ETRN_ARG_QUEUE },
        { "#a_b-c.d", ETRN_ARG_QUEUE }, { "[192.0.2.1]", ETRN_ARG_LITERAL },
        { "[IPv6:2001:db8::1]", ETRN_ARG_LITERAL },
        { "", ETRN_ARG_INVALID }, { "../x", ETRN_ARG_INVALID }, { "/etc", ETRN_ARG_INVALID },
        { "a/b", ETRN_ARG_INVALID }, { "a..b", ETRN_ARG_INVALID }, { "a.b.", ETRN_ARG_INVALID },
        { "example.org\r\nRCPT TO:<x>", ETRN_ARG_INVALID }, { "exa mple.org", ETRN_ARG_INVALID },
        { "*", ETRN_ARG_INVALID }, { "%s", ETRN_ARG_INVALID }, { "b\xc3\xbcro.de", ETRN_ARG_INVALID },
        { "@@example.org", ETRN_ARG_INVALID }, { "#", ETRN_ARG_INVALID }, { "#a/b", ETRN_ARG_INVALID },
        { "#..", ETRN_ARG_INVALID }, { "-a.org", ETRN_ARG_INVALID }, { "a-.org", ETRN_ARG_INVALID },
        { "[999.1.1.1]", ETRN_ARG_INVALID }, { "[192.0.2.1", ETRN_ARG_INVALID },
        { "@", ETRN_ARG_INVALID }, { ".org", ETRN_ARG_INVALID },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *why = NULL;
        enum etrn_arg_kind got = domain_etrn_arg(cases[i].arg, &why);

        TEST_CHECK(got == cases[i].want, "domain_etrn_arg(\"%s\"): got %d, want %d (%s)",
                   cases[i].arg, (int) got, (int) cases[i].want, why ? why : "");
    }
    TEST_CHECK(!domain_is_hostname(longlabel, NULL), "64-octet label refused");
    TEST_CHECK(!domain_is_hostname(longname, NULL), "299-octet name refused");
}

static void test_buf(void)
{
    struct buf b = BUF_INIT;

    TEST_STREQ(buf_cstr(&b), "");
    for (int i = 0; i < 1000; i++)
        buf_printf(&b, "%d,", i);
    TEST_INTEQ(b.len, 3890);
    buf_reset(&b);
    buf_json_string(&b, "a\"b\\c\r\n\x01");
    TEST_STREQ(buf_cstr(&b), "\"a\\\"b\\\\c\\r\\n\\u0001\"");
    char *s = buf_steal(&b);
    TEST_CHECK(b.data == NULL && b.len == 0, "buf_steal resets");
    free(s);
    buf_free(&b);
}

static void test_printable(void)
{
    char s[] = "ok \x1b[2J\a\t\x7f\xc3\xa9 ~end";
    char mem[] = { 'a', '\0', '\x1b', '\x80', 'z' };
    char *d;

    TEST_STREQ(printable(s, '?'), "ok ?[2J????? ~end");
    printable_mem(mem, sizeof(mem), '_');
    TEST_CHECK(memcmp(mem, "a___z", 5) == 0, "printable_mem: got %.5s", mem);
    d = printable_dup("\r\nbcc: x", ' ');
    TEST_STREQ(d, "  bcc: x");
    free(d);
    d = printable_dup("", '?');
    TEST_STREQ(d, "");
    free(d);
}

struct sample_conf {
    char *name;
    long long timeout;
    long long count;
    int flag;
    int mode;
    struct cfg_list items;
};

static const char *const sample_modes[] = { "none", "starttls", "tls", NULL };

static const struct cfg_key sample_keys[] = {
    { "name", CFG_STRING, NULL, 0, 0, NULL, offsetof(struct sample_conf, name), CFG_REQUIRED },
    { "timeout", CFG_DURATION, "30s", 1, 3600, NULL, offsetof(struct sample_conf, timeout), 0 },
    { "count", CFG_INT, "5", 0, 100, NULL, offsetof(struct sample_conf, count), 0 },
    { "flag", CFG_BOOL, "yes", 0, 0, NULL, offsetof(struct sample_conf, flag), 0 },
    { "mode", CFG_ENUM, "starttls", 0, 0, sample_modes, offsetof(struct sample_conf, mode), 0 },
    { "items", CFG_LIST, NULL, 0, 0, NULL, offsetof(struct sample_conf, items), 0 },
    { NULL, 0, NULL, 0, 0, NULL, 0, 0 },
};

static int sample_handler(void *ctx, const struct cfg_item *item, char *why, size_t whylen)
{
    struct cfg_section *sec = ctx;

    if (strcmp(item->section, "s") != 0) {
        snprintf(why, whylen, "[%s]: unknown section", item->section);
        return -1;
    }
    return cfg_section_set(sec, item, why, whylen);
}

/* parse_text - write text to a file, parse it, return rc and the message */
static int parse_text(const char *text, struct sample_conf *conf, char *msg, size_t msglen)
{
    char path[] = "/tmp/etrnkit-test-XXXXXX";
    int fd = mkstemp(path);
    struct cfg_section sec;
    struct cfg_error err = { "" };
    int rc;

    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t) strlen(text))
        return -2;
    close(fd);
    memset(conf, 0, sizeof(*conf));
    cfg_section_init(&sec, path, "s", sample_keys, conf);
    rc = cfg_parse(path, sample_handler, &sec, &err);
    if (rc == 0)
        rc = cfg_section_check(&sec, 1, &err);
    cfg_section_done(&sec);
    /* keep only "LINE: text", the path is random */
    const char *colon = strchr(err.msg, ':');
    snprintf(msg, msglen, "%s", colon ? colon + 1 : err.msg);
    unlink(path);
    return rc;
}

static void test_config(void)
{
    static const struct {
        const char *text;
        const char *want; /* error message after "FILE:", or NULL for success */
    } cases[] = {
        { "[s]\nname = x\n", NULL },
        { "[s]\nname = x ; comment\ntimeout = 2m\nitems = a b,c\n  d e\n", NULL },
        { "[s]\nname = x\nbogus = 1\n", "3: [s] bogus: unknown key" },
        { "[s]\nname = x\ntimeout = 5x\n", "3: [s] timeout: \"5x\": bad time unit (use s, m, h, d or w)" },
        { "[s]\nname = x\ntimeout = 2h\n", "3: [s] timeout: 2h is out of range (1..3600 seconds)" },
        { "[s]\ntimeout = 5s\n", "1: [s] name: required key is missing" },
        { "[s]\nname = x\nname = y\n", "3: [s] name: set twice (first at line 2)" },
        { "[s]\nname = x\nmode = ssl\n", "3: [s] mode: \"ssl\" is not one of: none, starttls, tls" },
        { "[s]\nname = x\nflag = maybe\n", "3: [s] flag: \"maybe\" is not yes or no" },
        { "[s]\nname = x\nthis line has no equals sign\n",
          "3: syntax error: expected \"[section]\" or \"key = value\"" },
        { "[t]\nname = x\n", "2: [t]: unknown section" },
    };
    struct sample_conf conf;
    char msg[1024];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = parse_text(cases[i].text, &conf, msg, sizeof(msg));

        if (cases[i].want == NULL)
            TEST_CHECK(rc == 0, "case %zu: got error \"%s\", want success", i, msg);
        else
            TEST_STREQ(msg, cases[i].want);
        if (i == 1) {
            TEST_INTEQ(conf.timeout, 120);
            TEST_INTEQ(conf.items.count, 5);
            TEST_STREQ(conf.items.count == 5 ? conf.items.items[4] : "", "e");
            TEST_STREQ(conf.name, "x");
            TEST_INTEQ(conf.mode, 1);
        }
        cfg_section_free(sample_keys, &conf);
    }

    /* a line over inih's limit is an error naming the line, never cut */
    char longtext[600];
    snprintf(longtext, sizeof(longtext), "[s]\nname = x\nitems = %0300d\n", 7);
    TEST_CHECK(parse_text(longtext, &conf, msg, sizeof(msg)) != 0, "long line refused");
    TEST_CHECK(strncmp(msg, "3: line longer than", 19) == 0, "long line message: %s", msg);
    cfg_section_free(sample_keys, &conf);
}

/* map_collect - cfg_map_read callback: "key=value|" per line; the key "stop" is refused */
static int map_collect(void *ctx, int line, char *key, char *value, char *why, size_t whylen)
{
    if (strcmp(key, "stop") == 0) {
        snprintf(why, whylen, "line %d: stop here", line);
        return -1;
    }
    buf_printf(ctx, "%s=%s|", key, value);
    return 0;
}

/* test_map_read - lookup table files: keys, values, comments, and what is refused */
static void test_map_read(void)
{
    static const struct {
        const char *text;
        size_t len;       /* of text; 0: strlen */
        const char *want; /* the collected lines, or "LINE: error" */
    } cases[] = {
        { "a.org  smtp:x\n# comment\n\nb.org\tv  w\r\n", 0, "a.org=smtp:x|b.org=v  w|" },
        { "lonely\nlast-without-newline x", 0, "lonely=|last-without-newline=x|" },
        { "   \n\t# an indented comment\na x\n", 0, "a=x|" },
        { "a x\n  b y\n", 0, "2: continuation lines are not supported" },
        { "a x\nb\0c y\n", 10, "2: a NUL byte in the line" },
        { "a x\nstop y\nb z\n", 0, "2: line 2: stop here" },
    };
    char path[] = "/tmp/etrnkit-test-map-XXXXXX";
    int fd = mkstemp(path);
    char why[256];
    int line;

    TEST_CHECK(fd >= 0, "mkstemp");
    if (fd < 0)
        return;
    close(fd);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        FILE *fp = fopen(path, "w");
        struct buf got = BUF_INIT;

        TEST_CHECK(fp && fwrite(cases[i].text, 1, len, fp) == len && fclose(fp) == 0,
                   "case %zu: write %s", i, path);
        if (cfg_map_read(path, map_collect, &got, &line, why, sizeof(why)) != 0) {
            buf_reset(&got);
            buf_printf(&got, "%d: %s", line, why);
        }
        TEST_STREQ(buf_cstr(&got), cases[i].want);
        buf_free(&got);
    }
    unlink(path);
    TEST_CHECK(cfg_map_read(path, map_collect, NULL, &line, why, sizeof(why)) != 0 && line == 0
               && strstr(why, "cannot open /tmp/etrnkit-test-map-") == why,
               "a missing file: line %d, %s", line, why);
}

/* test_ip_parse - domain_ip_parse: which family, and the bytes */
static void test_ip_parse(void)
{
    static const struct {
        const char *text;
        int family;
        unsigned char first, last; /* addr[0], and the last byte of the family's length */
    } cases[] = {
        { "192.0.2.1", AF_INET, 192, 1 },
        { "2001:db8::7", AF_INET6, 0x20, 7 },
        { "::ffff:192.0.2.9", AF_INET6, 0, 9 },
        { "[::1]", 0, 0, 0 },
        { "192.0.2.256", 0, 0, 0 },
        { "a.org", 0, 0, 0 },
        { "", 0, 0, 0 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char addr[16] = { 0 };
        int family = domain_ip_parse(cases[i].text, addr);

        TEST_CHECK(family == cases[i].family, "%s: got family %d, want %d", cases[i].text, family,
                   cases[i].family);
        if (family != 0 && family == cases[i].family)
            TEST_CHECK(addr[0] == cases[i].first
                       && addr[family == AF_INET ? 3 : 15] == cases[i].last,
                       "%s: bytes %u..%u", cases[i].text, addr[0],
                       addr[family == AF_INET ? 3 : 15]);
    }
}

/* test_timeval - clock_timeval splits milliseconds into seconds and microseconds */
static void test_timeval(void)
{
    static const struct {
        long long ms;
        long sec, usec;
    } cases[] = {
        { 0, 0, 0 }, { 1, 0, 1000 }, { 999, 0, 999000 }, { 1500, 1, 500000 },
        { 86400123, 86400, 123000 },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct timeval tv = clock_timeval(cases[i].ms);

        TEST_CHECK(tv.tv_sec == cases[i].sec && tv.tv_usec == cases[i].usec,
                   "%lld ms: got %ld s %ld us, want %ld s %ld us", cases[i].ms, (long) tv.tv_sec,
                   (long) tv.tv_usec, cases[i].sec, cases[i].usec);
    }
}

/* test_json - the reader of our own JSON: members, escapes, limits, garbage */
static void test_json(void)
{
    static const struct {
        const char *text;
        int ok;
    } cases[] = {
        { "{\"a\": 1, \"b\": [true, false, null], \"c\": \"x\\\"y\\u0041\\u00e9\"}", 1 },
        { "  [1, -2.5e3, \"s\"]  \n", 1 },
        { "{\"a\": 1} x", 0 },
        { "{\"a\" 1}", 0 },
        { "[1, 2", 0 },
        { "\"unterminated", 0 },
        { "\"bad \\q escape\"", 0 },
        { "\"raw\ncontrol\"", 0 },
        { "[01x]", 0 },
        { "nul", 0 },
        { "", 0 },
    };
    struct json_val v;
    struct buf b = BUF_INIT;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = json_parse(cases[i].text, &v);

        TEST_CHECK((rc == 0) == cases[i].ok, "json %zu \"%s\": got %d", i, cases[i].text, rc);
        json_free(&v);
    }
    TEST_INTEQ(json_parse("{\"a\": 1, \"c\": \"x\\\"y\\u0041\\u00e9\", \"t\": true}", &v), 0);
    TEST_INTEQ(json_num(&v, "a", -1), 1);
    TEST_INTEQ(json_num(&v, "t", -1), 1);
    TEST_INTEQ(json_num(&v, "missing", -1), -1);
    TEST_STREQ(json_str(&v, "c", "?"), "x\"yA?");
    TEST_STREQ(json_str(&v, "a", "not a string"), "not a string");
    json_free(&v);

    /* many objects side by side are not nesting: 100 destinations parse */
    buf_puts(&b, "[");
    for (int i = 0; i < 100; i++)
        buf_printf(&b, "%s{\"d\": {\"n\": %d}}", i ? "," : "", i);
    buf_puts(&b, "]");
    TEST_INTEQ(json_parse(buf_cstr(&b), &v), 0);
    TEST_INTEQ(v.n, 100);
    json_free(&v);
    buf_free(&b);
    /* nesting beyond JSON_DEPTH_MAX is refused */
    for (int i = 0; i < JSON_DEPTH_MAX + 1; i++)
        buf_puts(&b, "[");
    for (int i = 0; i < JSON_DEPTH_MAX + 1; i++)
        buf_puts(&b, "]");
    TEST_INTEQ(json_parse(buf_cstr(&b), &v), -1);
    json_free(&v);
    buf_free(&b);
}

/* fired - a timer that must not run once loop_event_free had it */
static void fired(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (*(int *) arg)++;
}

/* test_loop - loop_event_free and loop_bufferevent_free release, clear, and take NULL */
static void test_loop(void)
{
    static const struct timeval now = { 0, 0 };
    struct event_base *base = event_base_new();
    struct event *ev = NULL;
    struct bufferevent *bev = NULL;
    int runs = 0, sv[2];
    char c;

    TEST_CHECK(base != NULL, "event_base_new");
    loop_event_free(&ev); /* NULL: nothing */
    loop_bufferevent_free(&bev);
    ev = evtimer_new(base, fired, &runs);
    TEST_CHECK(ev != NULL && evtimer_add(ev, &now) == 0, "a due timer");
    loop_event_free(&ev);
    TEST_CHECK(ev == NULL, "loop_event_free leaves the pointer NULL");
    loop_event_free(&ev); /* a second call frees nothing twice */
    event_base_loop(base, EVLOOP_NONBLOCK);
    TEST_INTEQ(runs, 0); /* the pending timer was deleted with it */

    TEST_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
    bev = bufferevent_socket_new(base, sv[0], BEV_OPT_CLOSE_ON_FREE);
    TEST_CHECK(bev != NULL, "bufferevent_socket_new");
    loop_bufferevent_free(&bev);
    TEST_CHECK(bev == NULL, "loop_bufferevent_free leaves the pointer NULL");
    loop_bufferevent_free(&bev);
    event_base_loop(base, EVLOOP_NONBLOCK); /* libevent may finish the free on the loop */
    TEST_CHECK(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0, "fcntl");
    TEST_INTEQ(read(sv[1], &c, 1), 0); /* the peer sees the socket closed */
    close(sv[1]);
    event_base_free(base);
}

int main(void)
{
    test_duration();
    test_etrn_args();
    test_buf();
    test_config();
    test_map_read();
    test_ip_parse();
    test_timeval();
    test_printable();
    test_json();
    test_loop();
    return test_summary();
}
