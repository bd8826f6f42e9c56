#!/bin/sh
# server_smtpd.sh - etrn-server's SMTP side: replies, relay control, limits,
# DATA edge cases (bare LF refused, <LF>.<LF> never ends DATA), durable
# queueing across kill -9, SIGHUP reload, SIGTERM, swaks and smtp-source load.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

SRV="$BIN_DIR/etrn-server"
Q="$BIN_DIR/etrn-queue"
port=$(free_port)
SPOOL="$T/relay/queue"
CONF="$T/relay/server.ini"
LOG="$T/relay/maillog"

# write_conf EXTRA_DOMAIN
write_conf() {
    srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" "mynetworks = 127.0.0.2/32" \
        "relay_domains = relay.test $1" "etrn_only_domains = relay.test $1" \
        "message_size_limit = 20000" "smtpd_recipient_limit = 3" "smtpd_timeout = 2s" \
        "smtpd_client_connection_count_limit = 20" \
        "[transport]" "relay.test = etrn-only:[127.0.0.1]:1"
}
write_conf ""

# smtp [-s SRCADDR] PORT 'N:data' ... - print the greeting, then send each data
# chunk (Python escapes, no CRLF added) and print the last line of each of the
# next N replies
smtp() { smtp_client -g -r "$@"; }
codes() { smtp "$@" | cut -c1-3 | tr '\n' ' ' | sed 's/ $//'; }
# the qmgr moves accepted mail on (relay.test is etrn-only: it waits in deferred/)
# nfiles incoming: messages in incoming/, active/ and deferred/; nfiles tmp: files in tmp/
nfiles() {
    if [ "$1" = tmp ]; then srv_queued relay tmp; return; fi
    ls "$SPOOL/incoming" "$SPOOL/active" "$SPOOL/deferred" 2>/dev/null | grep -c '^[0-9A-F]'
}
qfile() { for d in incoming active deferred; do [ -f "$SPOOL/$d/$1" ] && echo "$SPOOL/$d/$1"; done; }

# configuration checks: nothing printed on success, 78 and a message on error
out=$("$SRV" -c "$CONF" --check-config 2>&1); rc=$?
check_eq "--check-config: exit 0" "$rc" 0
check_eq "--check-config: prints nothing" "$out" ""
printf '[main]\nbogus = 1\n' >"$T/bad.ini"
out=$("$SRV" -c "$T/bad.ini" 2>&1); rc=$?
check_eq "bad config: exit 78" "$rc" 78
check_eq "bad config: message" "$out" "etrn-server: $T/bad.ini:2: [main] bogus: unknown key"

if [ "$(id -u)" = 0 ]; then
    sed 's/^mail_owner = nobody/mail_owner = no-such-user-e2e/' "$CONF" >"$T/nouser.ini"
    out=$("$SRV" -c "$T/nouser.ini" 2>&1); rc=$?
    check_eq "root, unknown mail_owner: exit 78" "$rc" 78
    check_eq "root, unknown mail_owner: refuses" "$out" \
        "etrn-server: mail_owner no-such-user-e2e: no such user; refusing to run as root"
    check "root, unknown mail_owner: nothing bound, no queue made" test ! -e "$SPOOL"
fi

start_server() {
    srv_start relay
    SPID=$SRV_PID
}
start_server
check "server listens" wait_port "$port" 1 || e2e_abort
check_eq "server printed nothing" "$(cat "$T/relay.out")" ""
if [ "$(id -u)" = 0 ]; then
    check_eq "runs as mail_owner nobody" \
        "$(awk '/^Uid:/ {print $2}' /proc/$SPID/status)" 65534
else
    skip "not root: mail_owner not used"
fi

# EHLO: the extensions, and nothing that is not implemented
smtp_client -f "$port" 'EHLO c.test' >"$T/ehlo"
check_eq "EHLO lists the extensions" "$(cut -c5- "$T/ehlo" | tr '\n' ' ')" \
    "relay.test PIPELINING SIZE 20000 ETRN ENHANCEDSTATUSCODES 8BITMIME "

# a good message through swaks
swaks --server 127.0.0.1 --port "$port" --ehlo c.test --from a@b.test --to user@relay.test \
    --header 'Message-Id: <m1@b.test>' --body 'line one' >"$T/swaks1" 2>&1
check_eq "swaks: good message exit 0" "$?" 0
id1=$(sed -n 's/.*250 2.0.0 Ok: queued as \([0-9A-F]*\).*/\1/p' "$T/swaks1")
check "swaks: 250 queued as ID" test -n "$id1"
check_eq "one message queued" "$(nfiles incoming)" 1
check "queue file is named by the ID" test -n "$(qfile "$id1")"
"$Q" -c "$CONF" -p >"$T/mailq1"
check "mailq: sender" grep -q "^$id1 .* a@b.test\$" "$T/mailq1"
check "mailq: recipient" grep -q '^  *user@relay.test$' "$T/mailq1"
check "queue file: Received header" grep -q '^Received: from c.test (unknown \[127.0.0.1\])' \
    "$(qfile "$id1")"
check "log: connect" grep -q 'etrnkit/smtpd\[[0-9]*\]: connect from unknown\[127.0.0.1\]$' "$LOG"
check "log: client=" grep -q ": $id1: client=unknown\[127.0.0.1\]$" "$LOG"
check "log: message-id=" grep -q ": $id1: message-id=<m1@b.test>$" "$LOG"
check "log: from=, size=, nrcpt=" \
    grep -q ": $id1: from=<a@b.test>, size=[0-9]*, nrcpt=1 (queue active)$" "$LOG"
check "log: disconnect with counters" \
    grep -q ': disconnect from unknown\[127.0.0.1\] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5$' \
    "$LOG"

# relay control: 127.0.0.1 is outside mynetworks (127.0.0.2/32)
got=$(smtp "$port" '1:EHLO c.test\r\n' '1:MAIL FROM:<a@b.test>\r\n' \
    '1:RCPT TO:<x@other.test>\r\n' '1:RCPT TO:<x%other.test@relay.test>\r\n' \
    '1:RCPT TO:<x!other.test@relay.test>\r\n' '1:RCPT TO:<@relay.test:x@other.test>\r\n' \
    '1:RCPT TO:<"x@other.test"@relay.test>\r\n' '1:RCPT TO:<x@relay.test.>\r\n' \
    '1:RCPT TO:<x@[127.0.0.1]>\r\n' '1:RCPT TO:<ok@RELAY.TEST>\r\n' '1:QUIT\r\n' | tail -n +2)
check_eq "relay: outsider to other domain" "$(echo "$got" | sed -n 3p)" \
    "554 5.7.1 <x@other.test>: Relay access denied"
check_eq "relay: tricky forms refused, relay_domains accepted" \
    "$(echo "$got" | cut -c1-3 | tr '\n' ' ')" "250 250 554 554 554 501 501 501 554 250 221 "
check "log: relay reject line" grep -q 'NOQUEUE: reject: RCPT from unknown\[127.0.0.1\]: 554 5.7.1 <x@other.test>: Relay access denied' "$LOG"
# from inside mynetworks any recipient is fine
check_eq "relay: mynetworks client may relay" \
    "$(codes -s 127.0.0.2 "$port" '1:HELO c.test\r\n' '1:MAIL FROM:<a@b.test>\r\n' \
        '1:RCPT TO:<x@other.test>\r\n' '1:QUIT\r\n')" "220 250 250 250 221"

# line limits, NUL, unknown commands, the small commands
long=$(printf '%0600d' 0)
check_eq "600-octet line: 500, next command works" \
    "$(codes "$port" "1:NOOP $long\\r\\n" '1:NOOP\r\n')" "220 500 250"
check_eq "NUL in a command: 500" "$(codes "$port" '1:NO\x00OP\r\n' '1:NOOP\r\n')" "220 500 250"
check_eq "VRFY 252, HELP 214, ETRN before HELO 503, unknown 502, MAIL before HELO 503" \
    "$(codes "$port" '1:VRFY x@relay.test\r\n' '1:HELP\r\n' '1:ETRN relay.test\r\n' \
        '1:XYZZY\r\n' '1:MAIL FROM:<a@b.test>\r\n' '1:RSET\r\n')" "220 252 214 503 502 503 250"
check_eq "ETRN from outside mynetworks: refused by smtpd_etrn_restrictions" \
    "$(smtp "$port" '1:EHLO c.test\r\n' '1:ETRN relay.test\r\n' | tail -n 1)" \
    "554 5.7.1 <relay.test>: Etrn command rejected: Access denied"

# SIZE at MAIL, oversized data, recipient limit
check_eq "SIZE over the limit: 552 at MAIL" \
    "$(smtp "$port" '1:EHLO c.test\r\n' '1:MAIL FROM:<a@b.test> SIZE=30000\r\n' | tail -n 1)" \
    "552 5.3.4 Message size exceeds fixed limit"
before=$(nfiles incoming)
big=$($PY -c 'print(("x" * 70 + "\\r\\n") * 400, end="")')
check_eq "oversized data: 552 after the data" \
    "$(codes "$port" '1:EHLO c.test\r\n' '1:MAIL FROM:<a@b.test>\r\n' '1:RCPT TO:<u@relay.test>\r\n' \
        '1:DATA\r\n' "1:Subject: big\\r\\n\\r\\n$big.\\r\\n" '1:NOOP\r\n')" "220 250 250 250 354 552 250"
check_eq "oversized data: nothing queued" "$(nfiles incoming)" "$before"
check_eq "oversized data: no temporary file left" "$(nfiles tmp)" 0
check_eq "recipient limit 3: the 4th gets 452" \
    "$(codes "$port" '1:HELO c.test\r\n' '1:MAIL FROM:<a@b.test>\r\n' '1:RCPT TO:<a@relay.test>\r\n' \
        '1:RCPT TO:<b@relay.test>\r\n' '1:RCPT TO:<c@relay.test>\r\n' '1:RCPT TO:<d@relay.test>\r\n')" \
    "220 250 250 250 250 250 452"

# bare LF: <LF>.<LF> does not end DATA; the message is refused with 550 5.5.2
before=$(nfiles incoming)
got=$(smtp "$port" '1:HELO c.test\r\n' '1:MAIL FROM:<a@b.test>\r\n' '1:RCPT TO:<u@relay.test>\r\n' \
    '1:DATA\r\n' '1:Subject: smuggle\r\n\r\nhello\n.\nMAIL FROM:<evil@b.test>\r\n.\r\n' '1:NOOP\r\n' \
    | tail -n 2)
check_eq "bare LF: one 550 after the real end, session in sync" "$got" \
    "550 5.5.2 Error: bare <CR> or <LF> in message data
250 2.0.0 Ok"
check_eq "bare CR: 550" "$(codes "$port" '1:HELO c.test\r\n' '1:MAIL FROM:<a@b.test>\r\n' \
    '1:RCPT TO:<u@relay.test>\r\n' '1:DATA\r\n' '1:a\rb\r\n.\r\n')" "220 250 250 250 354 550"
check_eq "bare LF/CR: nothing queued" "$(nfiles incoming)" "$before"

# PIPELINING: a whole transaction in one write
check_eq "pipelined transaction" "$(codes "$port" \
    '7:EHLO c.test\r\nMAIL FROM:<>\r\nRCPT TO:<p@relay.test>\r\nDATA\r\nSubject: p\r\n\r\n..dot\r\n.\r\nRSET\r\nQUIT\r\n')" \
    "220 250 250 250 354 250 250 221"
check_eq "null sender queued" "$(nfiles incoming)" $((before + 1))
idp=$(grep -l '^Subject: p' "$SPOOL"/incoming/* "$SPOOL"/active/* "$SPOOL"/deferred/* 2>/dev/null | head -n 1)
check_eq "dot-unstuffing: ..dot stored as .dot" "$(tail -c 6 "$idp" | od -An -c | tr -s ' ')" " . d o t \r \n"
check "Message-Id added when missing" grep -q '^Message-Id: <[0-9A-F]*@relay.test>' "$idp"

# timeout: 2 s of silence -> 421 and close
start=$(date +%s)
check_eq "timeout: 421 4.4.2" "$(smtp "$port" '1:HELO c.test\r\n' '1:' | tail -n 1)" \
    "421 4.4.2 relay.test Error: timeout exceeded"
check "timeout: about smtpd_timeout" test $(( $(date +%s) - start )) -le 5

# connection limit: 20 open sessions from outside mynetworks, the 21st gets 421
got=$($PY - "$port" <<'PYEOF'
import socket, sys
port = int(sys.argv[1])
held = []
for _ in range(20):
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.makefile("rb").readline()
    held.append(s)
s = socket.create_connection(("127.0.0.1", port), 5)
print(s.makefile("rb").readline().decode().split(" ")[0])
PYEOF
)
check_eq "connection limit: 421" "$got" 421

# kill -9 after a 250: the message is there once after a restart
got=$(smtp "$port" '1:HELO c.test\r\n' '1:MAIL FROM:<k@b.test>\r\n' '1:RCPT TO:<k@relay.test>\r\n' \
    '1:DATA\r\n' '1:Subject: k\r\n\r\nkill me\r\n.\r\n' | tail -n 1)
idk=$(echo "$got" | sed -n 's/^250 2.0.0 Ok: queued as \([0-9A-F]*\)$/\1/p')
check "kill -9: 250 before the kill" test -n "$idk"
kill -9 "$SPID"; wait "$SPID" 2>/dev/null
start_server
check "restart after kill -9" wait_port "$port" 1
"$Q" -c "$CONF" -p >"$T/mailq2"
check_eq "kill -9: message listed exactly once" "$(grep -c "^$idk " "$T/mailq2")" 1
check_eq "kill -9: k@relay.test listed once" "$(grep -c '^  *k@relay.test$' "$T/mailq2")" 1

# SIGHUP: a good new config is used, a bad one is refused and the old kept
write_conf "other.test"
kill -HUP "$SPID"
check "SIGHUP: reload logged" wait_for 5 grep -q 'reload: configuration .* loaded' "$LOG"
check_eq "SIGHUP: new relay_domains used" "$(codes "$port" '1:HELO c.test\r\n' \
    '1:MAIL FROM:<a@b.test>\r\n' '1:RCPT TO:<x@other.test>\r\n')" "220 250 250 250"
cp "$T/bad.ini" "$CONF"
kill -HUP "$SPID"
check "SIGHUP bad config: kept the old" wait_for 5 grep -q 'keeping the old configuration' "$LOG"
check_eq "SIGHUP bad config: still serving the old" "$(codes "$port" '1:HELO c.test\r\n' \
    '1:MAIL FROM:<a@b.test>\r\n' '1:RCPT TO:<x@other.test>\r\n')" "220 250 250 250"
write_conf ""

# load: Postfix's smtp-source, 10 sessions, 500 messages
before=$(nfiles incoming)
t0=$($PY -c 'import time; print(time.time())')
/usr/sbin/smtp-source -s 10 -m 500 -f a@b.test -t x@relay.test "127.0.0.1:$port" >"$T/load" 2>&1
rc=$?
t1=$($PY -c 'import time; print(time.time())')
check_eq "smtp-source: exit 0" "$rc" 0
check_eq "smtp-source: 500 messages queued" "$(nfiles incoming)" $((before + 500))
echo "load: 500 messages over 10 sessions in $($PY -c "print('%.2f' % ($t1 - $t0))") s"
check "smtp-source: no queue errors logged" sh -c "grep -v reload '$LOG' >'$T/maillog-noreload' && ! grep -q 'error:' '$T/maillog-noreload'"

# SIGTERM: exit 0
kill -TERM "$SPID"
wait "$SPID"; rc=$?
check_eq "SIGTERM: exit 0" "$rc" 0
check "SIGTERM: logged" grep -q 'terminating on signal 15' "$LOG"
check_eq "nothing on stdout/stderr (no sanitizer report)" "$(cat "$T/relay.out")" ""
check_eq "no temporary files left" "$(nfiles tmp)" 0

e2e_done
