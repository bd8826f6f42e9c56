#!/bin/sh
# server_etrn_smtpd.sh - the ETRN command in etrn-server's smtpd: hostile
# arguments (500/501 with the reason, one table line per case, never 25x, no
# file made anywhere, server stays up), 503 before HELO and inside a
# transaction, smtpd_etrn_restrictions (554 outside mynetworks without AUTH),
# [etrn_users] (user A cannot flush B's domain: 459), unknown #queue 459, the
# per-client rate limit (the 11th of 12 gets 458, exempt clients never), and
# the answer from the flush service: 251 when nothing waits, 253 with the
# count, and etrn_reply = postfix's "250 Queuing started".
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

port=$(free_port)
SPOOL="$T/relay/queue"
LOG="$T/relay/maillog"
mkdir -p "$T/out" "$T/cwd"

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
{
    echo "alice:$(openssl passwd -6 pa)"
    echo "bob:$(openssl passwd -6 pb)"
    echo "carol:$(openssl passwd -6 pc)"
} >"$T/users"
chown nobody "$T/users" && chmod 600 "$T/users"

# relay_conf ETRN_REPLY
relay_conf() {
    srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" \
        "mynetworks = 127.0.0.2/32" \
        "smtpd_client_event_limit_exceptions = 127.0.0.1/32 127.0.0.2/32" \
        "relay_domains = a.test b.test x.a.test" \
        "etrn_only_domains = a.test b.test x.a.test" \
        "smtpd_timeout = 5s" "smtpd_tls_cert_file = $T/cert.pem" \
        "smtpd_tls_key_file = $T/key.pem" "smtpd_sasl_users_file = $T/users" \
        "smtpd_etrn_restrictions = permit_mynetworks, permit_sasl_authenticated, reject" \
        "etrn_rate_limit = 10" "anvil_rate_time_unit = 60s" "etrn_reply = $1" \
        "[transport]" "a.test = smtp:[127.0.0.1]:1" ".a.test = smtp:[127.0.0.1]:1" \
        "b.test = smtp:[127.0.0.1]:1" \
        "[etrn_queues]" "both = a.test b.test" "mine = a.test @a.test" \
        "[etrn_users]" "alice = a.test @a.test" "bob = b.test"
}
relay_conf rfc1985

# sess [-s SRC] [-a USER:PASS] PORT CMD... - EHLO c.test (then STARTTLS, EHLO
# and AUTH PLAIN with -a; none of it printed), then each CMD and the last line
# of its reply
sess() {
    sess_src= sess_auth=
    if [ "$1" = -s ]; then sess_src="-s $2"; shift 2; fi
    if [ "$1" = -a ]; then sess_auth="-t -a $2"; shift 2; fi
    # shellcheck disable=SC2086
    smtp_client $sess_src -e c.test $sess_auth "$@"
}

check "server listens" srv_start relay "$T/cwd" || e2e_abort
SPID=$SRV_PID

# the flush service answers a permitted ETRN: nothing waits for a.test yet
check_eq "flush service: nothing waiting for a.test: 251" \
    "$(sess -s 127.0.0.2 "$port" 'ETRN a.test')" "251 OK, no messages waiting for node a.test"
check "log: ETRN a.test from unknown[127.0.0.2]: 0 messages" \
    grep -q ': ETRN a.test from unknown\[127.0.0.2\]: 0 messages$' "$LOG"
# permitted NODE - the answer to an ETRN that passed every smtpd check
permitted() { echo "251 OK, no messages waiting for node $1"; }

# hostile arguments: 500 (no/extra argument, NUL, CR) or 501, never 25x
find "$SPOOL" | sort >"$T/out/spool-before"
touch "$T/out/marker"
sleep 1
long=$(printf '%0300d' 0 | tr 0 a)
# one line per case: the command (Python escapes: \x00 is a NUL byte) -> the reply;
# the whole table is one session, a refusal never ends it
smtp_table "hostile ETRN" -e c.test "$port" <<TABLE
ETRN ../x               -> 501 5.5.4 Error: invalid parameter syntax (empty label in domain name)
ETRN /etc               -> 501 5.5.4 Error: invalid parameter syntax (character not allowed in a hostname (letters, digits, '-' and '.' only))
ETRN a/b                -> 501 5.5.4 Error: invalid parameter syntax (character not allowed in a hostname (letters, digits, '-' and '.' only))
ETRN                    -> 500 5.5.2 Syntax: ETRN domain
ETRN \x20               -> 500 5.5.2 Syntax: ETRN domain
ETRN $long              -> 501 5.5.4 Error: invalid parameter syntax (label longer than 63 characters)
ETRN a..b               -> 501 5.5.4 Error: invalid parameter syntax (empty label in domain name)
ETRN a\x00b             -> 500 5.5.2 Error: bad character in command
ETRN a\rb               -> 500 5.5.2 Error: bad character in command
ETRN *                  -> 501 5.5.4 Error: invalid parameter syntax (character not allowed in a hostname (letters, digits, '-' and '.' only))
ETRN %s                 -> 501 5.5.4 Error: invalid parameter syntax (character not allowed in a hostname (letters, digits, '-' and '.' only))
ETRN %s%s%n             -> 501 5.5.4 Error: invalid parameter syntax (character not allowed in a hostname (letters, digits, '-' and '.' only))
ETRN b\xc3\xbccher.test -> 501 5.5.4 Error: invalid parameter syntax (non-ASCII character in domain name)
ETRN a.test.            -> 501 5.5.4 Error: invalid parameter syntax (trailing dot in domain name)
ETRN a b                -> 500 5.5.2 Syntax: ETRN domain
ETRN @                  -> 501 5.5.4 Error: invalid parameter syntax (empty domain name)
ETRN #                  -> 501 5.5.4 Error: invalid parameter syntax (empty queue name after '#')
ETRN #../x              -> 501 5.5.4 Error: invalid parameter syntax (queue name may hold only letters, digits, '.', '_' and '-')
ETRN @../etc            -> 501 5.5.4 Error: invalid parameter syntax (empty label in domain name)
ETRN [999.0.0.1]        -> 501 5.5.4 Error: invalid parameter syntax (bad address literal)
ETRN -a.test            -> 501 5.5.4 Error: invalid parameter syntax (label starts with a hyphen)
ETRN a.test\t           -> 501 5.5.4 Error: invalid parameter syntax (control character in domain name)
ETRN #a/b               -> 501 5.5.4 Error: invalid parameter syntax (queue name may hold only letters, digits, '.', '_' and '-')
ETRN ..                 -> 501 5.5.4 Error: invalid parameter syntax (empty label in domain name)
NOOP                    -> 250 2.0.0 Ok
TABLE
check_eq "hostile ETRN: the reply names the syntax" \
    "$(sess "$port" 'ETRN ../x' 'ETRN' | sed 's/ (.*)$/ (why)/')" \
    "501 5.5.4 Error: invalid parameter syntax (why)
500 5.5.2 Syntax: ETRN domain"
check "hostile ETRN: server still running" alive "$SPID"
check_eq "hostile ETRN: server still answers" "$(sess "$port" 'NOOP')" "250 2.0.0 Ok"
check_eq "hostile ETRN: nothing made in the server's working directory" \
    "$(find "$T/cwd" -mindepth 1 | wc -l | tr -d ' ')" 0
check_eq "hostile ETRN: no new file outside the queue directory" \
    "$(find "$T" -newer "$T/out/marker" -type f ! -path "$SPOOL/*" ! -path "$T/out/*" \
        ! -path "$T/.e2e/*" ! -name maillog ! -name relay.out | wc -l | tr -d ' ')" 0
find "$SPOOL" | sort >"$T/out/spool-after"
check "hostile ETRN: nothing new in the queue directory" cmp -s "$T/out/spool-before" \
    "$T/out/spool-after"
check "log: refusal with the reason" \
    grep -q 'NOQUEUE: reject: ETRN from unknown\[127.0.0.1\]: 501 5.5.4 Error: invalid parameter syntax' \
    "$LOG"

# state: before HELO, inside a transaction (from mynetworks: only the state refuses)
check_eq "ETRN before HELO/EHLO: 503" "$(smtp_client -s 127.0.0.2 "$port" 'ETRN a.test')" \
    "503 5.5.1 Error: send HELO/EHLO first"
check_eq "ETRN inside a mail transaction: 503; after RSET it is taken" \
    "$(sess -s 127.0.0.2 "$port" 'MAIL FROM:<x@c.test>' 'ETRN a.test' 'RSET' 'ETRN a.test')" \
    "250 2.1.0 Ok
503 5.5.1 Error: MAIL transaction in progress
250 2.0.0 Ok
$(permitted a.test)"
check "log: ETRN in the disconnect command counts" \
    grep -q 'disconnect from unknown\[127.0.0.2\] ehlo=1 etrn=[0-9]/2 mail=1 rset=1 commands=[0-9]/5$' \
    "$LOG"

# smtpd_etrn_restrictions: 127.0.0.1 is outside mynetworks
check_eq "outside mynetworks, no AUTH: 554" "$(sess "$port" 'ETRN a.test')" \
    "554 5.7.1 <a.test>: Etrn command rejected: Access denied"
check "log: reject: ETRN ... 554" \
    grep -q 'NOQUEUE: reject: ETRN from unknown\[127.0.0.1\]: 554 5.7.1 <a.test>: Etrn command rejected: Access denied; proto=ESMTP helo=<c.test>$' \
    "$LOG"
check_eq "unknown #queue is refused by the restrictions first: 554" \
    "$(sess "$port" 'ETRN #nosuch')" "554 5.7.1 <#nosuch>: Etrn command rejected: Access denied"
check_eq "inside mynetworks: permitted" "$(sess -s 127.0.0.2 "$port" 'ETRN b.test')" \
    "$(permitted b.test)"

# [etrn_users]: alice = a.test @a.test, bob = b.test, carol has no entry
check_eq "alice: her domains yes, bob's no (459), literals and foreign queues no" \
    "$(sess -a alice:pa "$port" 'ETRN b.test' 'ETRN @b.test' 'ETRN #both' 'ETRN [127.0.0.1]' \
        'ETRN #nosuch' 'ETRN a.test' 'ETRN A.TEST' 'ETRN @a.test' 'ETRN #mine')" \
    "459 <b.test>: service unavailable
459 <@b.test>: service unavailable
459 <#both>: service unavailable
459 <[127.0.0.1]>: service unavailable
459 <#nosuch>: service unavailable
$(permitted a.test)
$(permitted a.test)
$(permitted @a.test)
$(permitted '#mine')"
check "log: reject: ETRN ... 459 with the user" \
    grep -q 'NOQUEUE: reject: ETRN from unknown\[127.0.0.1\]: 459 <b.test>: service unavailable; proto=ESMTP helo=<c.test> sasl_username=alice$' \
    "$LOG"
# x.a.test is a flush domain of its own: what tells alice from bob is [etrn_users]
check_eq "alice: a subdomain of @a.test is hers" "$(sess -a alice:pa "$port" 'ETRN x.a.test')" \
    "$(permitted x.a.test)"
check_eq "bob: b.test yes; @b.test (subdomains), a.test and x.a.test no" \
    "$(sess -a bob:pb "$port" 'ETRN @b.test' 'ETRN a.test' 'ETRN x.a.test' 'ETRN b.test')" \
    "459 <@b.test>: service unavailable
459 <a.test>: service unavailable
459 <x.a.test>: service unavailable
$(permitted b.test)"
check_eq "carol (no [etrn_users] entry): any domain" \
    "$(sess -a carol:pc "$port" 'ETRN a.test' 'ETRN #both')" \
    "$(permitted a.test)
$(permitted '#both')"

# rate limit: 10 per 60s per client; 127.0.0.5 is not exempt, 127.0.0.1 is
set --
for _ in 1 2 3 4 5 6 7 8 9 10 11 12; do set -- "$@" 'ETRN b.test'; done
sess -s 127.0.0.5 -a carol:pc "$port" "$@" >"$T/out/rate5"
check_eq "rate limit: 10 taken" "$(head -n 10 "$T/out/rate5" | sort -u)" "$(permitted b.test)"
check_eq "rate limit: the 11th and 12th get 458" "$(tail -n 2 "$T/out/rate5")" \
    "458 4.7.0 Error: too many ETRN requests from 127.0.0.5
458 4.7.0 Error: too many ETRN requests from 127.0.0.5"
check "log: rate limit refusal" \
    grep -q 'NOQUEUE: reject: ETRN from unknown\[127.0.0.5\]: 458 4.7.0 Error: too many ETRN requests from 127.0.0.5' \
    "$LOG"
check_eq "rate limit: a new session from the same client is still limited" \
    "$(sess -s 127.0.0.5 -a carol:pc "$port" 'ETRN b.test')" \
    "458 4.7.0 Error: too many ETRN requests from 127.0.0.5"
check_eq "rate limit: per client, another client is served" \
    "$(sess -s 127.0.0.6 -a carol:pc "$port" 'ETRN b.test')" "$(permitted b.test)"
sess -a carol:pc "$port" "$@" >"$T/out/rate1"
check_eq "rate limit: an exempt client (smtpd_client_event_limit_exceptions) never" \
    "$(sort -u "$T/out/rate1")" "$(permitted b.test)"

# etrn_reply: rfc1985 vs postfix
# held etrn-only mail for b.test: 253 with the count (the flush log is
# written when the qmgr defers it, just after the 250)
swaks --server 127.0.0.1 --port "$port" --local-interface 127.0.0.2 --ehlo c.test \
    --from x@c.test --to u@b.test >"$T/out/swaks-b" 2>&1
check_eq "etrn-only mail for b.test queued" "$?" 0
etrn253() { [ "$(sess -a bob:pb "$port" 'ETRN b.test')" = \
    "253 OK, 1 pending messages for node b.test started" ]; }
check "ETRN b.test with one held message: 253 OK, 1 pending messages for node b.test started" \
    wait_for 10 etrn253
check "log: ETRN b.test from unknown[127.0.0.1]: 1 messages" \
    grep -q ': ETRN b.test from unknown\[127.0.0.1\]: 1 messages$' "$LOG"
relay_conf postfix
kill -HUP "$SPID"
check "SIGHUP: reload logged" wait_for 5 grep -q 'reload: configuration .* loaded' "$LOG"
check_eq "etrn_reply = postfix: 250 Queuing started" \
    "$(sess -a alice:pa "$port" 'ETRN a.test')" "250 Queuing started"

kill -TERM "$SPID"
wait "$SPID"
check_eq "SIGTERM: exit 0" "$?" 0
check_eq "nothing on stdout/stderr (no sanitizer report)" "$(cat "$T/relay.out")" ""

e2e_done
