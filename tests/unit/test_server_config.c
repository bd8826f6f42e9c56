/* Unit tests for server-lite/server_config: [main], $name, /file lists, CIDR, tables, lookups. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "server_config.h"
#include "test.h"

static char dir[64];

/* subst - replace every "@D@" in text with the test directory */
static char *subst(const char *text)
{
    struct buf b = BUF_INIT;

    for (const char *p = text; *p;) {
        if (strncmp(p, "@D@", 3) == 0) {
            buf_puts(&b, dir);
            p += 3;
        } else {
            buf_putc(&b, *p++);
        }
    }
    return buf_steal(&b);
}

/* unsubst - replace the test directory in a message with "@D@" */
static void unsubst(const char *msg, char *out, size_t outlen)
{
    struct buf b = BUF_INIT;
    size_t dl = strlen(dir);

    for (const char *p = msg; *p;) {
        if (strncmp(p, dir, dl) == 0) {
            buf_puts(&b, "@D@");
            p += dl;
        } else {
            buf_putc(&b, *p++);
        }
    }
    snprintf(out, outlen, "%s", buf_cstr(&b));
    buf_free(&b);
}

/* put_file - write text (after @D@ substitution) to dir/name */
static void put_file(const char *name, const char *text)
{
    char path[128];
    char *body = subst(text);
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    if (fp == NULL || fputs(body, fp) == EOF || fclose(fp) != 0) {
        printf("cannot write %s\n", path);
        exit(1);
    }
    free(body);
}

/* load_text - write s.ini and load it; msg gets the error with the dir as @D@ */
static int load_text(const char *text, struct server_config *conf, char *msg, size_t msglen)
{
    char path[128];
    struct cfg_error err = { "" };
    int rc;

    put_file("s.ini", text);
    snprintf(path, sizeof(path), "%s/s.ini", dir);
    rc = server_config_load(path, conf, &err);
    unsubst(err.msg, msg, msglen);
    return rc;
}

static void test_errors(void)
{
    static const struct {
        const char *text;
        const char *want; /* NULL: loads */
    } cases[] = {
        { "[main]\n", NULL },
        { "[main]\nbogus = 1\n", "@D@/s.ini:2: [main] bogus: unknown key" },
        { "[main]\nsmtpd_timeout = 5x\n",
          "@D@/s.ini:2: [main] smtpd_timeout: \"5x\": bad time unit (use s, m, h, d or w)" },
        { "[main]\nsmtpd_recipient_limit = 0\n",
          "@D@/s.ini:2: [main] smtpd_recipient_limit: 0 is below the minimum 1" },
        { "[main]\nsmtpd_per_request_deadline = maybe\n",
          "@D@/s.ini:2: [main] smtpd_per_request_deadline: \"maybe\" is not yes or no" },
        { "[main]\nsmtpd_min_data_rate = 0\n",
          "@D@/s.ini:2: [main] smtpd_min_data_rate: 0 is below the minimum 1" },
        { "[main]\ndefault_process_limit = 0\n",
          "@D@/s.ini:2: [main] default_process_limit: 0 is below the minimum 1" },
        { "[main]\nrelayhost = a.org\nrelayhost = b.org\n",
          "@D@/s.ini:3: [main] relayhost: set twice (first at line 2)" },
        { "[main]\netrn_reply = both\n",
          "@D@/s.ini:2: [main] etrn_reply: \"both\" is not one of: rfc1985, postfix" },
        { "[main]\nrelay_domains = $fast_flush_domains\n",
          "@D@/s.ini:2: [main] relay_domains: parameter expansion loop: $relay_domains -> "
          "$fast_flush_domains -> $relay_domains" },
        { "[main]\nrelay_domains = ${nosuch}\n",
          "@D@/s.ini:2: [main] relay_domains: unknown parameter $nosuch" },
        { "[main]\nrelay_domains = a.org $\n",
          "@D@/s.ini:2: [main] relay_domains: '$' without a parameter name (write $$ for a '$')" },
        { "[main]\nrelay_domains = exa_mple.org\n",
          "@D@/s.ini:2: [main] relay_domains: \"exa_mple.org\": character not allowed in a "
          "hostname (letters, digits, '-' and '.' only)" },
        { "[main]\nrelay_domains = hash:/etc/postfix/relay\n",
          "@D@/s.ini:2: [main] relay_domains: \"hash:/etc/postfix/relay\": lookup tables "
          "(type:name) are not supported; use /path" },
        { "[main]\nmynetworks = 10.0.0.1/8\n",
          "@D@/s.ini:2: [main] mynetworks: \"10.0.0.1/8\": host bits are set (write the network "
          "address, e.g. 192.0.2.0/24)" },
        { "[main]\nmynetworks = /nonexistent-etrnkit\n",
          "@D@/s.ini:2: [main] mynetworks: cannot open /nonexistent-etrnkit: No such file or "
          "directory" },
        { "[main]\nmynetworks = 127.0.0.0/8 @D@/nets\n",
          "@D@/nets:5: [main] mynetworks: \"bogus\": not an IP address or network (a.b.c.d/n, "
          "[v6addr]/n)" },
        { "[main]\nrelay_domains = @D@/nested\n",
          "@D@/nested:2: [main] relay_domains: \"/etc/x\": a list file may not name another file" },
        { "[main]\nmynetworks = 127.0.0.0/8\nsmtpd_client_event_limit_exceptions = $mynetworks 10.0.0.0/33\n",
          "@D@/s.ini:3: [main] smtpd_client_event_limit_exceptions: \"10.0.0.0/33\": prefix "
          "length over 32" },
        { "[main]\ninet_interfaces = ::1:25\n",
          "@D@/s.ini:2: [main] inet_interfaces: \"::1:25\": an IPv6 address needs brackets: "
          "[addr]:port" },
        { "[main]\ninet_interfaces = 127.0.0.1:99999\n",
          "@D@/s.ini:2: [main] inet_interfaces: \"127.0.0.1:99999\": bad port (1..65535 after ':')" },
        { "[main]\ninet_interfaces =\n", "@D@/s.ini:2: [main] inet_interfaces: no address to listen on" },
        { "[main]\nqueue_directory = spool\n",
          "@D@/s.ini:2: [main] queue_directory: \"spool\" is not an absolute path" },
        { "[main]\nsmtpd_sasl_users_file = /etc/etrnkit/users\n",
          "@D@/s.ini:2: [main] smtpd_sasl_users_file: AUTH is offered only after STARTTLS: set "
          "smtpd_tls_cert_file and smtpd_tls_key_file" },
        { "[main]\nsmtpd_tls_cert_file = /c.pem\n",
          "@D@/s.ini:2: [main] smtpd_tls_key_file: required when smtpd_tls_cert_file is set" },
        { "[main]\nsmtpd_etrn_restrictions = permit_mynetworks, check_client_access\n",
          "@D@/s.ini:2: [main] smtpd_etrn_restrictions: unknown restriction \"check_client_access\" "
          "(permit, reject, defer, permit_mynetworks, permit_sasl_authenticated)" },
        { "[main]\nmaximal_backoff_time = 10m\n",
          "@D@/s.ini:2: [main] maximal_backoff_time: 600s is less than minimal_backoff_time (900s)" },
        { "[main]\ndefer_transports = uucp\n",
          "@D@/s.ini:2: [main] defer_transports: unknown transport \"uucp\" (smtp, etrn-only or local)" },
        { "[main]\ndefault_transport = :[x.org]\n",
          "@D@/s.ini:2: [main] default_transport: a transport name is required" },
        { "[main]\nhome_mailbox = Mailbox\n",
          "@D@/s.ini:2: [main] home_mailbox: \"Mailbox\": only Maildir delivery is supported: a "
          "relative path ending in '/'" },
        { "[main]\nrelayhost = 192.0.2.1\n",
          "@D@/s.ini:2: [main] relayhost: \"192.0.2.1\": an address as next hop needs brackets: "
          "[address]:port" },
        { "[main]\n[transport]\nexample.org = uucp:x.org\n",
          "@D@/s.ini:3: [transport] example.org: unknown transport \"uucp\" (smtp, etrn-only or local)" },
        { "[main]\n[transport]\nexample.org = smtp:[x.org]:0\n",
          "@D@/s.ini:3: [transport] example.org: \"smtp:[x.org]:0\": bad port in next hop (1..65535 "
          "after ':')" },
        { "[transport]\na.org = smtp:x.org\nA.org = smtp:y.org\n",
          "@D@/s.ini:3: [transport] a.org: set twice (first at line 2)" },
        { "[main]\ntransport_maps = hash:@D@/tmap-bad\n",
          "@D@/tmap-bad:3: [main] transport_maps: example.com: \"smtp:[::1\": missing ']' in next hop" },
        { "[main]\ntransport_maps = @D@/tmap-short\n",
          "@D@/tmap-short:1: [main] transport_maps: \"lonely.org\": expected \"domain  "
          "transport:nexthop\"" },
        { "[main]\ntransport_maps = btree:/x\n",
          "@D@/s.ini:2: [main] transport_maps: \"btree:/x\": expected /path, texthash:/path or "
          "hash:/path" },
        { "[main]\nrelay_recipient_maps = texthash:@D@/rmap-bad\n",
          "@D@/rmap-bad:3: [main] relay_recipient_maps: \"bob@exa_mple.org\": not a valid address: "
          "bad domain" },
        { "[main]\nrelay_recipient_maps = @D@/rmap-bare\n",
          "@D@/rmap-bare:2: [main] relay_recipient_maps: \"bob\": a relay recipient needs a "
          "domain: \"user@domain\" or \"@domain\"" },
        { "[main]\nlocal_recipient_maps = @D@/rmap-bare\n", NULL },
        { "[main]\nlocal_recipient_maps = @D@/rmap-novalue\n",
          "@D@/rmap-novalue:1: [main] local_recipient_maps: \"ann@a.org\": expected \"address  "
          "value\"" },
        { "[main]\nrelay_recipient_maps = hash:@D@/nonexistent-map\n",
          "@D@/s.ini:2: [main] relay_recipient_maps: cannot open @D@/nonexistent-map: No such "
          "file or directory" },
        { "[main]\nlocal_recipient_maps = unix:passwd.byname\n",
          "@D@/s.ini:2: [main] local_recipient_maps: \"unix:passwd.byname\": expected /path, "
          "texthash:/path or hash:/path" },
        { "[etrn_queues]\nbr/anch = a.org\n",
          "@D@/s.ini:2: [etrn_queues] br/anch: bad queue name: queue name may hold only letters, "
          "digits, '.', '_' and '-'" },
        { "[etrn_users]\nbob = a.org #q\n",
          "@D@/s.ini:2: [etrn_users] bob: \"#q\": expected a domain or @domain" },
        { "[etrn_users]\nbob = a.org\nbob = b.org\n", "@D@/s.ini:3: [etrn_users] bob: set twice" },
        { "[main]\nsmtp_tls_security_level = dane\n",
          "@D@/s.ini:2: [main] smtp_tls_security_level: \"dane\" is not one of: none, may, "
          "encrypt, verify, secure" },
        { "[main]\nsmtp_tls_CAfile = ca.pem\n",
          "@D@/s.ini:2: [main] smtp_tls_CAfile: \"ca.pem\" is not an absolute path" },
        { "[main]\nsmtp_data_done_timeout = 0\n",
          "@D@/s.ini:2: [main] smtp_data_done_timeout: 0 is below the minimum 1" },
        { "[main]\nodmr_session_time_limit = 0s\n",
          "@D@/s.ini:2: [main] odmr_session_time_limit: 0s is below the minimum 1" },
        { "[main]\nsmtp_tls_policy_maps = @D@/pol-bad\n",
          "@D@/pol-bad:3: [main] smtp_tls_policy_maps: [mx.b.org]:25: \"maybe\" is not one of: "
          "none, may, encrypt, verify, secure" },
        { "[main]\nsmtp_tls_policy_maps = @D@/pol-attr\n",
          "@D@/pol-attr:1: [main] smtp_tls_policy_maps: a.org: only the security level is "
          "supported, not \"match=nexthop\"" },
        { "[main]\nsmtp_tls_policy_maps = @D@/pol-key\n",
          "@D@/pol-key:1: [main] smtp_tls_policy_maps: \"[a.org\": expected a domain, [host] or "
          "[host]:port" },
        { "[main]\nsmtp_tls_policy_maps = relative\n",
          "@D@/s.ini:2: [main] smtp_tls_policy_maps: \"relative\": expected /path, "
          "texthash:/path or hash:/path" },
        { "[mian]\nx = 1\n",
          "@D@/s.ini:2: [mian]: unknown section (main, transport, etrn_queues, etrn_users)" },
    };
    struct server_config conf;
    char msg[1200];

    put_file("nets", "# networks\n\n10.0.0.0/8\n  192.168.1.0/24, 172.16.0.0/12\nbogus\n");
    put_file("nested", "a.org\n/etc/x\n");
    put_file("tmap-bad", "# x\nexample.org smtp:[a.org]\nexample.com smtp:[::1\n");
    put_file("tmap-short", "lonely.org\n");
    put_file("rmap-bad", "# relay users\nann@a.org OK\nbob@exa_mple.org OK\n");
    put_file("rmap-bare", "@a.org OK\nbob x\n");
    put_file("rmap-novalue", "ann@a.org\n");
    put_file("pol-bad", "# policies\na.org encrypt\n[mx.b.org]:25 maybe\n");
    put_file("pol-attr", "a.org verify match=nexthop\n");
    put_file("pol-key", "[a.org encrypt\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = load_text(cases[i].text, &conf, msg, sizeof(msg));

        if (cases[i].want == NULL) {
            TEST_CHECK(rc == 0, "case %zu: got error \"%s\", want success", i, msg);
            server_config_free(&conf);
        } else {
            TEST_CHECK(rc != 0, "case %zu: loaded, want error", i);
            TEST_STREQ(msg, cases[i].want);
        }
    }
}

static void test_values(void)
{
    struct server_config conf;
    char msg[1200];
    struct buf longline = BUF_INIT;

    /* a list file line far over inih's 200 bytes, never cut */
    for (int i = 0; i < 500; i++)
        buf_printf(&longline, "d%d.example ", i);
    buf_puts(&longline, "\n# comment\n\nlast.example\n");
    put_file("domains", buf_cstr(&longline));
    buf_free(&longline);
    int rc = load_text("[main]\n"
                       "relay_domains = example.org, @D@/domains\n"
                       "  more.example\n"
                       "fast_flush_domains = $relay_domains ${myhostname} extra.example\n"
                       "myhostname = Relay.Test\n"
                       "smtpd_timeout = 5m\n"
                       "mynetworks = 10.0.0.0/8 [2001:db8::]/32 192.0.2.1 ::1\n"
                       "inet_interfaces = 127.0.0.1:2525 [::1]:2526 localhost\n"
                       "etrn_reply = postfix\n"
                       "maillog_file = /dev/stderr\n"
                       "[etrn_queues]\n"
                       "branch = a.example.org\n"
                       "  B.example.org\n"
                       "[etrn_users]\n"
                       "bob = @Example.org x.org\n",
                       &conf, msg, sizeof(msg));
    TEST_CHECK(rc == 0, "values config loads: %s", msg);
    if (rc != 0)
        return;
    TEST_INTEQ(conf.relay_domains.count, 503);
    TEST_INTEQ(conf.fast_flush_domains.count, 505);
    TEST_STREQ(conf.myhostname, "relay.test");
    TEST_INTEQ(conf.smtpd_timeout, 300);
    /* the abuse limits' defaults (issue 11) */
    TEST_INTEQ(conf.smtpd_client_connection_count_limit, 50);
    TEST_INTEQ(conf.smtpd_client_connection_rate_limit, 0);
    TEST_INTEQ(conf.default_process_limit, 100);
    TEST_INTEQ(conf.smtpd_per_request_deadline, 1);
    TEST_INTEQ(conf.smtpd_min_data_rate, 500);
    TEST_INTEQ(conf.smtpd_client_auth_rate_limit, 30);
    TEST_INTEQ(conf.smtpd_error_sleep_time, 1);
    TEST_INTEQ(conf.smtpd_soft_error_limit, 10);
    TEST_INTEQ(conf.smtpd_hard_error_limit, 20);
    TEST_INTEQ(conf.etrn_reply, SERVER_ETRN_REPLY_POSTFIX);
    TEST_INTEQ(conf.maximal_queue_lifetime, 86400);
    TEST_INTEQ(conf.queue_run_delay, 900);
    TEST_INTEQ(conf.message_size_limit, 10240000);
    /* the smtp client's defaults are Postfix's */
    TEST_INTEQ(conf.smtp_connect_timeout, 30);
    TEST_INTEQ(conf.smtp_helo_timeout, 300);
    TEST_INTEQ(conf.smtp_mail_timeout, 300);
    TEST_INTEQ(conf.smtp_rcpt_timeout, 300);
    TEST_INTEQ(conf.smtp_data_init_timeout, 120);
    TEST_INTEQ(conf.smtp_data_xfer_timeout, 180);
    TEST_INTEQ(conf.smtp_data_done_timeout, 600);
    TEST_INTEQ(conf.smtp_quit_timeout, 300);
    TEST_INTEQ(conf.odmr_session_time_limit, 3600);
    TEST_INTEQ(conf.smtp_connection_cache_time_limit, 2);
    TEST_INTEQ(conf.smtp_tls_security_level, SERVER_TLS_MAY);
    TEST_CHECK(conf.smtp_tls_CAfile == NULL, "smtp_tls_CAfile unset by default");
    TEST_INTEQ(conf.netrn_restrictions, 3);
    TEST_INTEQ(conf.etrn_restrictions[2], SERVER_RESTRICT_REJECT);
    TEST_INTEQ(conf.nlisten, 3);
    if (conf.nlisten == 3) {
        TEST_STREQ(conf.listen[1].host, "::1");
        TEST_INTEQ(conf.listen[1].port, 2526);
        TEST_STREQ(conf.listen[2].host, "localhost");
        TEST_INTEQ(conf.listen[2].port, 25);
    }
    TEST_CHECK(server_domain_match(&conf.relay_domains, "D499.example"), "from file, any case");
    TEST_CHECK(server_domain_match(&conf.relay_domains, "last.example"), "file's last line");
    TEST_CHECK(server_domain_match(&conf.relay_domains, "more.example"), "continuation line");
    TEST_CHECK(server_domain_match(&conf.fast_flush_domains, "relay.test"), "$myhostname");
    TEST_CHECK(!server_domain_match(&conf.relay_domains, "x.example.org"), "no implicit subdomains");
    /* the event limit exceptions default to $mynetworks */
    TEST_INTEQ(conf.event_limit_exception_nets.count, 4);
    const struct server_etrn_queue *q = server_etrn_queue_find(&conf, "branch");
    TEST_CHECK(q && q->domains.count == 2 && strcmp(q->domains.items[1], "b.example.org") == 0,
               "etrn queue with continuation");
    TEST_CHECK(server_etrn_queue_find(&conf, "nope") == NULL, "unknown queue");
    const struct server_etrn_user *u = server_etrn_user_find(&conf, "bob");
    TEST_CHECK(u && u->domains.count == 2 && strcmp(u->domains.items[0], "@example.org") == 0,
               "etrn user domains");

    static const struct {
        const char *addr;
        int want;
    } nets[] = {
        { "10.1.2.3", 1 }, { "11.0.0.1", 0 }, { "192.0.2.1", 1 }, { "192.0.2.2", 0 },
        { "2001:db8:ffff::1", 1 }, { "2001:db9::1", 0 }, { "::1", 1 }, { "::2", 0 },
        { "::ffff:10.9.9.9", 1 }, { "::ffff:12.9.9.9", 0 },
    };
    for (size_t i = 0; i < sizeof(nets) / sizeof(nets[0]); i++) {
        unsigned char bin[16];
        int family = strchr(nets[i].addr, ':') ? AF_INET6 : AF_INET;

        inet_pton(family, nets[i].addr, bin);
        TEST_CHECK(server_netlist_match(&conf.mynetworks_nets, family, bin) == nets[i].want,
                   "mynetworks match %s: want %d", nets[i].addr, nets[i].want);
    }
    server_config_free(&conf);
}

static void test_cidr(void)
{
    static const struct {
        const char *text;
        int ok;
        unsigned prefix;
    } cases[] = {
        { "127.0.0.0/8", 1, 8 }, { "192.0.2.1", 1, 32 }, { "[::1]/128", 1, 128 }, { "[::1]", 1, 128 },
        { "2001:db8::/32", 1, 32 }, { "0.0.0.0/0", 1, 0 }, { "[2001:db8::]/129", 0, 0 },
        { "1.2.3.4/", 0, 0 }, { "1.2.3.4/x", 0, 0 }, { "1.2.3/24", 0, 0 }, { "[::1", 0, 0 },
        { "[::1]x", 0, 0 }, { "example.org", 0, 0 }, { "", 0, 0 }, { "10.0.0.0/-1", 0, 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct server_cidr net;
        const char *why = NULL;
        int rc = server_cidr_parse(cases[i].text, &net, &why);

        TEST_CHECK((rc == 0) == cases[i].ok, "server_cidr_parse(\"%s\"): rc %d (%s)", cases[i].text,
                   rc, why ? why : "");
        if (rc == 0 && cases[i].ok)
            TEST_INTEQ(net.prefix, cases[i].prefix);
    }
}

static void test_transport(void)
{
    struct server_config conf;
    char msg[1200];

    put_file("tmap", "# Postfix transport(5) syntax\n"
                     "example.com\tsmtp:mx.example.com:2526\n"
                     ".example.com    :[10.1.1.1]\n"
                     "\n"
                     "example.org     smtp:[ignored.example]\n"
                     "v6.test         smtp:[ipv6:2001:db8::1]:25\n");
    int rc = load_text("[main]\n"
                       "myhostname = relay.test\n"
                       "relay_domains = example.org example.net .sub.example.com site.test\n"
                       "mydestination = $myhostname\n"
                       "etrn_only_domains = site.test .hold.test example.net\n"
                       "transport_maps = texthash:@D@/tmap\n"
                       "[transport]\n"
                       "example.org = etrn-only:[mail.example.org]\n"
                       "example.net = smtp:[192.0.2.7]:2525\n",
                       &conf, msg, sizeof(msg));
    TEST_CHECK(rc == 0, "transport config loads: %s", msg);
    if (rc != 0)
        return;
    static const struct {
        const char *domain;
        int rc;
        enum server_transport transport;
        const char *host;
        int port, mx, defer;
        enum server_route_source source;
    } cases[] = {
        { "example.org", 0, SERVER_TRANSPORT_ETRN_ONLY, "mail.example.org", 25, 0, 1, SERVER_ROUTE_TABLE },
        /* etrn_only_domains wins the transport, the table keeps the next hop */
        { "EXAMPLE.NET", 0, SERVER_TRANSPORT_ETRN_ONLY, "192.0.2.7", 2525, 0, 1, SERVER_ROUTE_TABLE },
        { "example.com", 0, SERVER_TRANSPORT_SMTP, "mx.example.com", 2526, 1, 0, SERVER_ROUTE_TABLE },
        { "a.b.example.com", 0, SERVER_TRANSPORT_SMTP, "10.1.1.1", 25, 0, 0, SERVER_ROUTE_TABLE },
        { "v6.test", 0, SERVER_TRANSPORT_SMTP, "2001:db8::1", 25, 0, 0, SERVER_ROUTE_TABLE },
        { "site.test", 0, SERVER_TRANSPORT_ETRN_ONLY, "site.test", 25, 1, 1, SERVER_ROUTE_ETRN_ONLY },
        { "x.hold.test", 0, SERVER_TRANSPORT_ETRN_ONLY, "x.hold.test", 25, 1, 1, SERVER_ROUTE_ETRN_ONLY },
        { "hold.test", 0, SERVER_TRANSPORT_SMTP, "hold.test", 25, 1, 0, SERVER_ROUTE_DEFAULT },
        { "relay.test", 0, SERVER_TRANSPORT_LOCAL, "relay.test", 25, 0, 0, SERVER_ROUTE_LOCAL },
        { "other.test", 0, SERVER_TRANSPORT_SMTP, "other.test", 25, 1, 0, SERVER_ROUTE_DEFAULT },
        { "[192.0.2.5]", 0, SERVER_TRANSPORT_SMTP, "192.0.2.5", 25, 0, 0, SERVER_ROUTE_DEFAULT },
        { "[IPv6:2001:db8::5]", 0, SERVER_TRANSPORT_SMTP, "2001:db8::5", 25, 0, 0, SERVER_ROUTE_DEFAULT },
        { "bad domain", -1, 0, "", 0, 0, 0, 0 },
        { "../etc", -1, 0, "", 0, 0, 0, 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct server_route r;
        int got = server_transport_lookup(&conf, cases[i].domain, &r);

        TEST_CHECK(got == cases[i].rc, "lookup %s: rc %d, want %d", cases[i].domain, got,
                   cases[i].rc);
        if (got != 0 || cases[i].rc != 0)
            continue;
        TEST_CHECK(r.transport == cases[i].transport && strcmp(r.host, cases[i].host) == 0
                   && r.port == cases[i].port && r.mx == cases[i].mx && r.defer == cases[i].defer
                   && r.source == cases[i].source,
                   "lookup %s: got %s:%s port %d mx %d defer %d source %d, want %s:%s port %d mx %d "
                   "defer %d source %d", cases[i].domain, server_transport_name((int) r.transport),
                   r.host, r.port, r.mx, r.defer, (int) r.source,
                   server_transport_name((int) cases[i].transport), cases[i].host, cases[i].port,
                   cases[i].mx, cases[i].defer, (int) cases[i].source);
    }
    TEST_CHECK(server_domain_match(&conf.relay_domains, "a.sub.example.com"), ".sub matches below");
    TEST_CHECK(!server_domain_match(&conf.relay_domains, "sub.example.com"), ".sub is not sub itself");
    server_config_free(&conf);

    /* relayhost and defer_transports */
    rc = load_text("[main]\nrelayhost = [smarthost.test]:587\ndefer_transports = smtp\n"
                   "[transport]\n* = smtp:fallback.test\n",
                   &conf, msg, sizeof(msg));
    TEST_CHECK(rc == 0, "relayhost config loads: %s", msg);
    if (rc == 0) {
        struct server_route r;

        server_transport_lookup(&conf, "any.test", &r);
        TEST_STREQ(r.host, "fallback.test");
        TEST_INTEQ(r.defer, 1);
        server_config_free(&conf);
    }
    rc = load_text("[main]\nrelayhost = [smarthost.test]:587\n", &conf, msg, sizeof(msg));
    if (rc == 0) {
        struct server_route r;

        server_transport_lookup(&conf, "any.test", &r);
        TEST_STREQ(r.host, "smarthost.test");
        TEST_INTEQ(r.port, 587);
        TEST_INTEQ(r.mx, 0);
        TEST_INTEQ(r.source, SERVER_ROUTE_RELAYHOST);
        TEST_INTEQ(r.defer, 0);
        server_config_free(&conf);
    }
}

/* test_shipped - conf/server-lite.ini loads as-is */
/* test_tls_policy - smtp_tls_policy_maps keys as Postfix writes next hops */
static void test_tls_policy(void)
{
    struct server_config conf;
    char msg[1200];
    struct server_route r;

    put_file("pol", "# next hop   level\nExample.org  secure\n[mx.example.net] verify\n"
             "[192.0.2.7]:2525 none\n\n");
    int rc = load_text("[main]\nsmtp_tls_policy_maps = hash:@D@/pol\n", &conf, msg, sizeof(msg));
    TEST_CHECK(rc == 0, "policy map loads: %s", msg);
    if (rc != 0)
        return;
    TEST_INTEQ(conf.ntls_policies, 3);
    memset(&r, 0, sizeof(r));
    snprintf(r.host, sizeof(r.host), "example.org");
    r.mx = 1;
    TEST_INTEQ(server_tls_policy_lookup(conf.tls_policies, conf.ntls_policies, &r), SERVER_TLS_SECURE);
    r.mx = 0; /* [example.org] is another next hop */
    TEST_INTEQ(server_tls_policy_lookup(conf.tls_policies, conf.ntls_policies, &r), -1);
    snprintf(r.host, sizeof(r.host), "MX.example.net");
    r.port = 25;
    TEST_INTEQ(server_tls_policy_lookup(conf.tls_policies, conf.ntls_policies, &r), SERVER_TLS_VERIFY);
    snprintf(r.host, sizeof(r.host), "192.0.2.7");
    r.port = 2525;
    TEST_INTEQ(server_tls_policy_lookup(conf.tls_policies, conf.ntls_policies, &r), SERVER_TLS_NONE);
    r.port = 25;
    TEST_INTEQ(server_tls_policy_lookup(conf.tls_policies, conf.ntls_policies, &r), -1);
    server_config_free(&conf);
}

static void test_shipped(void)
{
    struct server_config conf;
    struct cfg_error err = { "" };
    int rc = server_config_load("conf/server-lite.ini", &conf, &err);

    TEST_CHECK(rc == 0, "conf/server-lite.ini: %s", err.msg);
    if (rc != 0)
        return;
    struct server_route r;
    TEST_STREQ(conf.myhostname, "relay.isp.example");
    TEST_INTEQ(conf.fast_flush_domains.count, 2);
    TEST_INTEQ(conf.event_limit_exception_nets.count, 2);
    TEST_INTEQ(conf.ntransports, 2);
    TEST_INTEQ(server_transport_lookup(&conf, "example.org", &r), 0);
    TEST_INTEQ(r.transport, SERVER_TRANSPORT_ETRN_ONLY);
    TEST_STREQ(r.host, "mail.example.org");
    TEST_CHECK(server_etrn_queue_find(&conf, "branch") != NULL, "#branch");
    server_config_free(&conf);
}

/* test_user_covers - which domains an [etrn_users] entry "a.org @b.org" covers */
static void test_user_covers(void)
{
    static const struct {
        const char *host;
        int subdomains; /* asked as "@host" (ETRN) */
        int want;
    } cases[] = {
        { "a.org", 0, 1 }, { "x.a.org", 0, 0 }, { "a.org", 1, 0 },
        { "b.org", 0, 1 }, { "x.b.org", 0, 1 }, { "y.x.b.org", 1, 1 }, { "b.org", 1, 1 },
        { "xb.org", 0, 0 }, { "org", 0, 0 }, { "c.org", 0, 0 },
    };
    char d1[] = "a.org", d2[] = "@b.org", name[] = "u";
    char *items[] = { d1, d2 };
    const struct server_etrn_user u = { name, { items, 2 } };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        TEST_CHECK(server_etrn_user_covers(&u, cases[i].host, cases[i].subdomains) == cases[i].want,
                   "%s%s: want %d", cases[i].subdomains ? "@" : "", cases[i].host, cases[i].want);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/etrnkit-sc-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_errors();
    test_values();
    test_cidr();
    test_transport();
    test_tls_policy();
    test_shipped();
    test_user_covers();
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        printf("warning: could not remove %s\n", dir);
    return test_summary();
}
