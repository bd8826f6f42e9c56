#!/bin/sh
# server_etrn_smtpd.sh - the ETRN command in etrn-server's smtpd: hostile
# arguments (500/501, never 25x, no file made anywhere, server stays up), 503
# before HELO and inside a transaction, smtpd_etrn_restrictions (554 outside
# mynetworks without AUTH), [etrn_users] (user A cannot flush B's domain: 459),
# unknown #queue 459, the per-client rate limit (the 11th of 12 gets 458,
# exempt clients never), and the answer from the flush service: 458 while no
# flush service is wired into etrn-server; once it is, 251 and
# etrn_reply = postfix's "250 Queuing started".
. "$(dirname "$0")/../lib/e2e.sh"
e2e_init

SRV="$BIN_DIR/etrn-server"
port=$(free_port)
SPOOL="$T/spool"
CONF="$T/server.ini"
mkdir -p "$T/out" "$T/cwd"

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
{
    echo "alice:$(openssl passwd -6 pa)"
    echo "bob:$(openssl passwd -6 pb)"
    echo "carol:$(openssl passwd -6 pc)"
} >"$T/users"

# write_conf ETRN_REPLY
write_conf() {
    cat >"$CONF" <<INI
[main]
myhostname = relay.test
inet_interfaces = 127.0.0.1:$port
queue_directory = $SPOOL
mail_owner = nobody
maillog_file = $T/maillog
mynetworks = 127.0.0.2/32
smtpd_client_event_limit_exceptions = 127.0.0.1/32 127.0.0.2/32
relay_domains = a.test b.test
etrn_only_domains = a.test b.test
relayhost = [127.0.0.1]:1
smtpd_timeout = 5s
smtpd_tls_cert_file = $T/cert.pem
smtpd_tls_key_file = $T/key.pem
smtpd_sasl_users_file = $T/users
smtpd_etrn_restrictions = permit_mynetworks, permit_sasl_authenticated, reject
etrn_rate_limit = 10
anvil_rate_time_unit = 60s
etrn_reply = $1
[transport]
a.test = smtp:[127.0.0.1]:1
.a.test = smtp:[127.0.0.1]:1
b.test = smtp:[127.0.0.1]:1
[etrn_queues]
both = a.test b.test
mine = a.test @a.test
[etrn_users]
alice = a.test @a.test
bob = b.test
INI
}
write_conf rfc1985

# sess.py [-s SRC] [-a USER:PASS] [-n] PORT CMD... - EHLO (STARTTLS, EHLO and
# AUTH PLAIN with -a; nothing of that printed; -n: no EHLO at all), then each
# CMD (Python escapes, CRLF added) and the last line of its reply.
cat >"$T/sess.py" <<'PYEOF'
import base64, socket, ssl, sys
args = sys.argv[1:]
src, auth, ehlo = None, None, True
while args[0].startswith("-"):
    if args[0] == "-s":
        src, args = args[1], args[2:]
    elif args[0] == "-a":
        auth, args = args[1], args[2:]
    elif args[0] == "-n":
        ehlo, args = False, args[1:]
s = socket.create_connection(("127.0.0.1", int(args[0])), 10, (src, 0) if src else None)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if not line:
            return "EOF"
        line = line.decode("latin-1").rstrip("\r\n")
        if len(line) < 4 or line[3] != "-":
            return line
def cmd(c):
    s.sendall(c.encode("latin-1").decode("unicode_escape").encode("latin-1") + b"\r\n")
    return reply()
def must(c, code):
    r = cmd(c)
    if not r.startswith(code):
        print("setup failed: %s -> %s" % (c.split(" ")[0], r)); sys.exit(1)
reply()
if ehlo:
    must("EHLO c.test", "250")
if auth:
    must("STARTTLS", "220")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(s, server_hostname="relay.test")
    f = s.makefile("rb")
    must("EHLO c.test", "250")
    user, pw = auth.split(":", 1)
    must("AUTH PLAIN " + base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode(), "235")
for c in args[1:]:
    print(cmd(c))
PYEOF
sess() { $PY "$T/sess.py" "$@" 2>&1; }
codes() { sess "$@" | cut -c1-3 | tr '\n' ' ' | sed 's/ $//'; }

start_bg server sh -c 'cd "$1" && exec "$2" -c "$3"' sh "$T/cwd" "$SRV" "$CONF"
SPID=$E2E_LAST_PID
check "server listens" wait_port "$port" 10

# Is a flush service wired into etrn-server? Without one a permitted ETRN is 458.
probe=$(sess -s 127.0.0.2 "$port" 'ETRN a.test')
if grep -q 'ETRN a.test from unknown\[127.0.0.2\]: no flush service' "$T/maillog"; then
    HOOK=0
    echo "note: etrn-server has no flush service wired: permitted ETRNs answer 458"
    check_eq "no flush service: 458 with RFC 1985's text" "$probe" \
        "458 Unable to queue messages for node a.test"
else
    HOOK=1
    check_eq "flush service: nothing waiting for a.test: 251" "$probe" \
        "251 OK, no messages waiting for node a.test"
    check "log: ETRN a.test from unknown[127.0.0.2]: 0 messages" \
        grep -q ': ETRN a.test from unknown\[127.0.0.2\]: 0 messages$' "$T/maillog"
fi
# permitted NODE - the answer to an ETRN that passed every smtpd check
permitted() {
    if [ $HOOK = 0 ]; then echo "458 Unable to queue messages for node $1"
    else echo "251 OK, no messages waiting for node $1"; fi
}

# hostile arguments: 500 (no/extra argument, NUL, CR) or 501, never 25x
find "$SPOOL" | sort >"$T/out/spool-before"
touch "$T/out/marker"
sleep 1
long=$(printf '%0300d' 0 | tr 0 a)
got=$(codes "$port" 'ETRN ../x' 'ETRN /etc' 'ETRN a/b' 'ETRN' 'ETRN  ' "ETRN $long" 'ETRN a..b' \
    'ETRN a\x00b' 'ETRN a\rb' 'ETRN *' 'ETRN %s' 'ETRN %s%s%n' 'ETRN b\xc3\xbccher.test' \
    'ETRN a.test.' 'ETRN a b' 'ETRN @' 'ETRN #' 'ETRN #../x' 'ETRN @../etc' 'ETRN [999.0.0.1]' \
    'ETRN -a.test' 'ETRN a.test\t' 'ETRN #a/b' 'ETRN ..' 'NOOP')
check_eq "hostile ETRN arguments: 500/501, never 25x" "$got" \
    "501 501 501 500 500 501 501 500 500 501 501 501 501 501 500 501 501 501 501 501 501 501 501 501 250"
check_eq "hostile ETRN: the reply names the syntax" \
    "$(sess "$port" 'ETRN ../x' 'ETRN' | sed 's/ (.*)$/ (why)/')" \
    "501 5.5.4 Error: invalid parameter syntax (why)
500 5.5.2 Syntax: ETRN domain"
check "hostile ETRN: server still running" kill -0 "$SPID"
check_eq "hostile ETRN: server still answers" "$(sess "$port" 'NOOP')" "250 2.0.0 Ok"
check_eq "hostile ETRN: nothing made in the server's working directory" \
    "$(find "$T/cwd" -mindepth 1 | wc -l | tr -d ' ')" 0
check_eq "hostile ETRN: no new file outside the queue directory" \
    "$(find "$T" -newer "$T/out/marker" -type f ! -path "$SPOOL/*" ! -path "$T/out/*" \
        ! -name maillog ! -name server.out | wc -l | tr -d ' ')" 0
find "$SPOOL" | sort >"$T/out/spool-after"
check "hostile ETRN: nothing new in the queue directory" cmp -s "$T/out/spool-before" \
    "$T/out/spool-after"
check "log: refusal with the reason" \
    grep -q 'NOQUEUE: reject: ETRN from unknown\[127.0.0.1\]: 501 5.5.4 Error: invalid parameter syntax' \
    "$T/maillog"

# state: before HELO, inside a transaction (from mynetworks: only the state refuses)
check_eq "ETRN before HELO/EHLO: 503" "$(sess -n -s 127.0.0.2 "$port" 'ETRN a.test')" \
    "503 5.5.1 Error: send HELO/EHLO first"
check_eq "ETRN inside a mail transaction: 503; after RSET it is taken" \
    "$(sess -s 127.0.0.2 "$port" 'MAIL FROM:<x@c.test>' 'ETRN a.test' 'RSET' 'ETRN a.test')" \
    "250 2.1.0 Ok
503 5.5.1 Error: MAIL transaction in progress
250 2.0.0 Ok
$(permitted a.test)"
check "log: ETRN in the disconnect command counts" \
    grep -q 'disconnect from unknown\[127.0.0.2\] ehlo=1 etrn=[0-9]/2 mail=1 rset=1 commands=[0-9]/5$' \
    "$T/maillog"

# smtpd_etrn_restrictions: 127.0.0.1 is outside mynetworks
check_eq "outside mynetworks, no AUTH: 554" "$(sess "$port" 'ETRN a.test')" \
    "554 5.7.1 <a.test>: Etrn command rejected: Access denied"
check "log: reject: ETRN ... 554" \
    grep -q 'NOQUEUE: reject: ETRN from unknown\[127.0.0.1\]: 554 5.7.1 <a.test>: Etrn command rejected: Access denied; proto=ESMTP helo=<c.test>$' \
    "$T/maillog"
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
    "$T/maillog"
if [ $HOOK = 0 ]; then
    check_eq "alice: a subdomain of @a.test is hers" "$(sess -a alice:pa "$port" 'ETRN x.a.test')" \
        "$(permitted x.a.test)"
fi
check_eq "bob: b.test yes; @b.test (subdomains) and a.test no" \
    "$(sess -a bob:pb "$port" 'ETRN @b.test' 'ETRN a.test' 'ETRN b.test')" \
    "459 <@b.test>: service unavailable
459 <a.test>: service unavailable
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
    "$T/maillog"
check_eq "rate limit: a new session from the same client is still limited" \
    "$(sess -s 127.0.0.5 -a carol:pc "$port" 'ETRN b.test')" \
    "458 4.7.0 Error: too many ETRN requests from 127.0.0.5"
check_eq "rate limit: per client, another client is served" \
    "$(sess -s 127.0.0.6 -a carol:pc "$port" 'ETRN b.test')" "$(permitted b.test)"
sess -a carol:pc "$port" "$@" >"$T/out/rate1"
check_eq "rate limit: an exempt client (smtpd_client_event_limit_exceptions) never" \
    "$(sort -u "$T/out/rate1")" "$(permitted b.test)"

# etrn_reply: rfc1985 vs postfix (needs the flush service)
if [ $HOOK = 1 ]; then
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
        grep -q ': ETRN b.test from unknown\[127.0.0.1\]: 1 messages$' "$T/maillog"
    write_conf postfix
    kill -HUP "$SPID"
    check "SIGHUP: reload logged" wait_for 5 grep -q 'reload: configuration .* loaded' "$T/maillog"
    check_eq "etrn_reply = postfix: 250 Queuing started" \
        "$(sess -a alice:pa "$port" 'ETRN a.test')" "250 Queuing started"
else
    skip "etrn_reply = postfix vs rfc1985: no flush service wired into etrn-server yet"
fi

kill -TERM "$SPID"
wait "$SPID"
check_eq "SIGTERM: exit 0" "$?" 0
check_eq "nothing on stdout/stderr (no sanitizer report)" "$(cat "$T/server.out")" ""

e2e_done
