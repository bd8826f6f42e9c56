#!/bin/sh
# server_smtp_client - etrn-server's own SMTP client (server-lite/smtp_client.c) against
# real peers:
#   1. scripted_smtpd.py, through the smtp_deliver tool: the exact dialogue with and
#      without PIPELINING (250/450/550 for three recipients of one transaction); SIZE
#      (refused before MAIL, SIZE= when it fits); BODY=8BITMIME when offered; a 220
#      then close; an endless multi-line reply (connection dropped at 64 KB); a
#      5 KB reply (text kept to 4 KB with a warning, the session goes on); a
#      receiver that closes after each message (dead-connection check before reuse);
#      20 messages over one cached connection and QUIT after
#      smtp_connection_cache_time_limit; STARTTLS levels none / encrypt / verify with
#      a CA the test makes (right CA, wrong CA, wrong name), smtp_tls_policy_maps
#      overriding the level per next hop; a connection that
#      already exists, plain or already TLS, handed to the client (smtp_attach).
#   2. etrn-server itself: a receiver that stalls after the final "." (the
#      smtp_data_done_timeout fires, the message stays queued, another destination
#      keeps flowing meanwhile); one that drops the connection after the "." (the
#      message stays queued and arrives on the next try: at least once, never lost);
#      per-recipient 250/450/550 with PIPELINING: sent, deferred, and a DSN to the sender.
#   3. a private Postfix as the receiving MTA: plain, STARTTLS may and verify (its
#      Received: says ESMTPS), a 5 MB message, 200 messages over a cached connection
#      (Postfix logs one connection).
# Only loopback addresses.
. "$(dirname "$0")/../lib/e2e.sh"
. "$E2E_TOP/tests/lib/dnsmasq.sh"
. "$E2E_TOP/tests/lib/postfix.sh"
. "$E2E_TOP/tests/lib/etrn_server.sh"
e2e_init

DELIVER=$TOOLS_DIR/smtp_deliver
SCRIPTED=$E2E_TOP/tests/lib/scripted_smtpd.py
[ -x "$DELIVER" ] || { echo "missing $DELIVER"; exit 1; }

# conf NAME [extra main lines] - $T/NAME/server.ini for smtp_deliver (tests/lib's
# srv_conf: relayhost a closed port, no peer name lookups), one queue for all
conf() {
    c_name=$1; shift
    srv_conf "$c_name" "127.0.0.1:$(free_port)" "myhostname = relay.test" \
        "queue_directory = $T/queue" "relay_domains = site.test" "$@"
}
conf plain
printf 'From: sender@origin.test\nTo: a@site.test\nSubject: client test\n\nbody line\n.dot line\n' >"$T/msg.txt"

deliver() { # deliver OUTFILE args... - run smtp_deliver, print its exit status
    out=$1; shift
    "$DELIVER" -t 30 "$@" >"$out" 2>"$out.err"
    echo $?
}
result() { # result OUTFILE RCPT - "STATUS DSN"
    awk -v r="$2" '$1 == r { print $2, $3; exit }' "$1"
}
text() { # text OUTFILE RCPT - the text of RCPT's line
    awk -v r="$2" '$1 == r { $1 = ""; $2 = ""; $3 = ""; sub(/^ +/, ""); print; exit }' "$1"
}
relay() { sed -n 's/^relay=\([^ ]*\) .*/\1/p' "$1" | head -n 1; }
# dialogue LOG - the first session in a scripted_smtpd log that gets as far as a
# reply to DATA, without times, from the greeting to its "*: disconnect" (or the
# log's end); wait_port's probe is a session too
dialogue() {
    awk '{ sub(/^[0-9.]* /, "") }
        /^\*: connect from / { if (data) exit; buf = ""; next }
        { buf = buf $0 "\n" }
        /^S: 354 / { data = 1 }
        /^\*: disconnect$/ && data { exit }
        END { if (data) printf "%s", buf }' "$1"
}
scripted() { # scripted NAME PORT args... - start scripted_smtpd.py, wait for it
    n=$1; p=$2; shift 2
    start_bg "$n" "$PY" "$SCRIPTED" --listen "127.0.0.1:$p" --log "$T/$n.log" "$@"
    wait_port "$p" 10
}

# --- 1a. PIPELINING on and off: the exact dialogue -----------------------------------
P1=$(free_port)
check "pipelining receiver listens" scripted pipe "$P1" \
    --accept-mail --rcpt-reply 'b@site.test=450 4.2.0 <b@site.test>: greylisted' \
    --rcpt-reply 'c@site.test=550 5.1.1 <c@site.test>: no such user'
rc=$(deliver "$T/o1" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -r b@site.test \
    -r c@site.test --host 127.0.0.1 --port "$P1" "$T/msg.txt")
check_eq "pipelining: exit" "$rc" 0
check_eq "pipelining: 250 -> sent" "$(result "$T/o1" a@site.test)" "sent 2.0.0"
check_eq "pipelining: 450 -> deferred" "$(result "$T/o1" b@site.test)" "deferred 4.2.0"
check_eq "pipelining: 550 -> bounced" "$(result "$T/o1" c@site.test)" "bounced 5.1.1"
check_eq "pipelining: 550 text" "$(text "$T/o1" c@site.test)" \
    "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <c@site.test>: no such user (in reply to RCPT TO command)"
dialogue "$T/pipe.log" >"$T/got1"
expect_dialogue "pipelining: MAIL, 3 RCPT and DATA arrive in one write, replies matched in order" \
    "$T/got1" <<'EOF'
S: 220 scripted.test ESMTP scripted_smtpd
C: EHLO relay.test
S: 250-scripted.test
S: 250-ETRN
S: 250 PIPELINING
*: pipelined 5 commands
C: MAIL FROM:<sender@origin.test>
S: 250 2.1.0 Ok
C: RCPT TO:<a@site.test>
S: 250 2.1.5 Ok
C: RCPT TO:<b@site.test>
S: 450 4.2.0 <b@site.test>: greylisted
C: RCPT TO:<c@site.test>
S: 550 5.1.1 <c@site.test>: no such user
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: From: sender@origin.test
C: To: a@site.test
C: Subject: client test
C: 
C: body line
C: ..dot line
C: .
S: 250 2.0.0 Ok: queued as 1
*: disconnect
EOF

P2=$(free_port)
check "non-pipelining receiver listens" scripted nopipe "$P2" --no-pipelining \
    --accept-mail --rcpt-reply 'b@site.test=450 4.2.0 <b@site.test>: greylisted' \
    --rcpt-reply 'c@site.test=550 5.1.1 <c@site.test>: no such user'
rc=$(deliver "$T/o2" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -r b@site.test \
    -r c@site.test --host 127.0.0.1 --port "$P2" "$T/msg.txt")
check_eq "no pipelining: results" \
    "$(result "$T/o2" a@site.test) $(result "$T/o2" b@site.test) $(result "$T/o2" c@site.test)" \
    "sent 2.0.0 deferred 4.2.0 bounced 5.1.1"
dialogue "$T/nopipe.log" >"$T/got2"
expect_dialogue "no pipelining: one command, one reply, in turn" "$T/got2" <<'EOF'
S: 220 scripted.test ESMTP scripted_smtpd
C: EHLO relay.test
S: 250-scripted.test
S: 250 ETRN
C: MAIL FROM:<sender@origin.test>
S: 250 2.1.0 Ok
C: RCPT TO:<a@site.test>
S: 250 2.1.5 Ok
C: RCPT TO:<b@site.test>
S: 450 4.2.0 <b@site.test>: greylisted
C: RCPT TO:<c@site.test>
S: 550 5.1.1 <c@site.test>: no such user
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: From: sender@origin.test
C: To: a@site.test
C: Subject: client test
C: 
C: body line
C: ..dot line
C: .
S: 250 2.0.0 Ok: queued as 1
*: disconnect
EOF

# --- 1b. SIZE and 8BITMIME -----------------------------------------------------------
awk 'BEGIN { for (i = 0; i < 40; i++) printf "line %d of a message that is bigger than 500 bytes\n", i }' \
    >"$T/big.txt"
P3=$(free_port)
check "SIZE 500 receiver listens" scripted size "$P3" --accept-mail --size 500 --8bitmime
rc=$(deliver "$T/o3" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test \
    --host 127.0.0.1 --port "$P3" "$T/big.txt")
bigsize=$(( $(wc -c <"$T/big.txt") + $(wc -l <"$T/big.txt") ))
check_eq "SIZE: over the peer's limit -> bounced 5.3.4" "$(result "$T/o3" a@site.test)" "bounced 5.3.4"
check_eq "SIZE: text" "$(text "$T/o3" a@site.test)" \
    "message size $bigsize exceeds size limit 500 of server 127.0.0.1[127.0.0.1]"
check_eq "SIZE: refused before MAIL" "$(grep -c ' C: MAIL' "$T/size.log")" 0
rc=$(deliver "$T/o3b" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test \
    --host 127.0.0.1 --port "$P3" "$T/msg.txt")
msgsize=$(( $(wc -c <"$T/msg.txt") + $(wc -l <"$T/msg.txt") ))
check_eq "SIZE: a message that fits is sent" "$(result "$T/o3b" a@site.test)" "sent 2.0.0"
check "SIZE= and BODY=8BITMIME in MAIL FROM when offered" \
    grep -q " C: MAIL FROM:<sender@origin.test> SIZE=$msgsize BODY=8BITMIME$" "$T/size.log"
check "no SIZE=, no BODY= to a receiver that does not offer them" \
    grep -q " C: MAIL FROM:<sender@origin.test>$" "$T/pipe.log"

# --- 1c. a 220 then close; an endless multi-line reply --------------------------------
P4=$(free_port)
check "220-then-close receiver listens" scripted greet "$P4" --greet-then-close
rc=$(deliver "$T/o4" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test \
    --host 127.0.0.1 --port "$P4" "$T/msg.txt")
check_eq "220 then close: deferred 4.4.2" "$(result "$T/o4" a@site.test)" "deferred 4.4.2"
check_eq "220 then close: text" "$(text "$T/o4" a@site.test)" \
    "lost connection with 127.0.0.1[127.0.0.1] while performing the EHLO handshake"
check_eq "220 then close: relay is the host that greeted" "$(relay "$T/o4")" "127.0.0.1[127.0.0.1]:$P4"

P5=$(free_port)
check "endless-reply receiver listens" scripted endless "$P5" --endless-ehlo
t0=$(date +%s%N)
rc=$(deliver "$T/o5" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test \
    --host 127.0.0.1 --port "$P5" "$T/msg.txt")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check_eq "endless reply: deferred 4.4.2" "$(result "$T/o5" a@site.test)" "deferred 4.4.2"
check_eq "endless reply: text" "$(text "$T/o5" a@site.test)" \
    "lost connection with 127.0.0.1[127.0.0.1] while performing the EHLO handshake (reply too long)"
check "endless reply: logged" grep -q "reply longer than 65536 bytes from 127.0.0.1\[127.0.0.1\]; closing" "$T/o5.err"
lines=$(grep -c ' S: 250-' "$T/endless.log")
echo "     endless reply: the receiver got out ${lines:-no} lines before the client hung up (${ms} ms)"
check "endless reply: the receiver's log has the client's EHLO" grep -q ' C: EHLO relay.test$' "$T/endless.log"
check "endless reply: the receiver sent the 64 KB the client read (over 600 lines of 96 bytes)" \
    test "${lines:-0}" -gt 600
check "endless reply: the client hung up (the receiver could not send its 100000 lines)" \
    test "${lines:-100000}" -lt 100000
check "endless reply: no MAIL" grep_none ' C: MAIL' "$T/endless.log"

# a long reply (5 KB) is kept to 4096 bytes with a warning, and the session goes on
P5b=$(free_port)
long=$(awk 'BEGIN { for (i = 0; i < 5000; i++) printf "x" }')
check "long-reply receiver listens" scripted longr "$P5b" --accept-mail \
    --rcpt-reply "b@site.test=550 5.1.1 <b@site.test>: $long"
rc=$(deliver "$T/o5b" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -r b@site.test \
    --host 127.0.0.1 --port "$P5b" "$T/msg.txt")
check_eq "long reply: the session goes on" \
    "$(result "$T/o5b" a@site.test) $(result "$T/o5b" b@site.test)" "sent 2.0.0 bounced 5.1.1"
check "long reply: warning" grep -q "SMTPDELIVER: reply from 127.0.0.1\[127.0.0.1\] truncated to 4096 bytes" "$T/o5b.err"

# --- 1d. connection reuse ---------------------------------------------------------------
P6=$(free_port)
check "receiver that closes after each message listens" scripted closer "$P6" --accept-mail \
    --close-after-message
rc=$(deliver "$T/o6" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -n 3 \
    --host 127.0.0.1 --port "$P6" "$T/msg.txt")
check_eq "dead cached connection: 3 of 3 sent" "$(grep -c '^a@site.test sent 2.0.0 ' "$T/o6")" 3
check_eq "dead cached connection: 3 sessions, 3 messages" \
    "$(grep -c ' C: EHLO ' "$T/closer.log") $(grep -c ' C: DATA$' "$T/closer.log")" "3 3"

P7=$(free_port)
check "cache receiver listens" scripted cache "$P7" --accept-mail
rc=$(deliver "$T/o7" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -n 20 -w 4 \
    --host 127.0.0.1 --port "$P7" "$T/msg.txt")
check_eq "cache: 20 sent" "$(grep -c '^a@site.test sent 2.0.0 ' "$T/o7")" 20
check_eq "cache: one connection opened" "$(sed -n 's/^connections=//p' "$T/o7")" 1
check_eq "cache: one session, 20 transactions" \
    "$(grep -c ' C: EHLO ' "$T/cache.log") $(grep -c ' C: MAIL FROM' "$T/cache.log")" "1 20"
last=$(grep ' S: 250 2.0.0 Ok: queued as' "$T/cache.log" | tail -n 1 | cut -d' ' -f1)
quit=$(grep ' C: QUIT$' "$T/cache.log" | cut -d' ' -f1)
echo "     cache: last message at $last, QUIT at ${quit:-never}"
check "cache: QUIT after smtp_connection_cache_time_limit (2s) idle, within -w 4" \
    awk -v a="$last" -v b="${quit:-0}" 'BEGIN { d = b - a; exit !(d >= 1.5 && d < 4) }'

conf nocache "smtp_connection_cache_time_limit = 0"
rc=$(deliver "$T/o7b" -c "$T/nocache/server.ini" -f sender@origin.test -r a@site.test -n 3 \
    --host 127.0.0.1 --port "$P7" "$T/msg.txt")
check_eq "no cache (time limit 0): a connection per message" "$(sed -n 's/^connections=//p' "$T/o7b")" 3

# --- 1e. STARTTLS levels with a CA the test makes ---------------------------------------
mkcert() { # mkcert DIR CN SAN - a CA in DIR and a server certificate it signs
    mkdir -p "$1"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1/ca.key" -out "$1/ca.pem" -days 2 \
        -subj "/CN=etrnkit test CA $2" >/dev/null 2>&1 &&
    openssl req -newkey rsa:2048 -nodes -keyout "$1/key.pem" -out "$1/req.pem" -subj "/CN=$2" \
        >/dev/null 2>&1 &&
    printf 'subjectAltName = %s\n' "$3" >"$1/ext" &&
    openssl x509 -req -in "$1/req.pem" -CA "$1/ca.pem" -CAkey "$1/ca.key" -CAcreateserial \
        -out "$1/cert.pem" -days 2 -extfile "$1/ext" >/dev/null 2>&1
}
if mkcert "$T/ca" mx.site.test "DNS:mx.site.test,IP:127.0.0.1" && mkcert "$T/ca2" other.test "DNS:other.test"; then
    P8=$(free_port)
    check "TLS receiver listens" scripted tls "$P8" --accept-mail --tls-cert "$T/ca/cert.pem" \
        --tls-key "$T/ca/key.pem"
    conf verify "smtp_tls_security_level = verify" "smtp_tls_CAfile = $T/ca/ca.pem"
    rc=$(deliver "$T/o8" -c "$T/verify/server.ini" -f sender@origin.test -r a@site.test \
        --host 127.0.0.1 --port "$P8" "$T/msg.txt")
    check_eq "verify, the right CA: sent" "$(result "$T/o8" a@site.test)" "sent 2.0.0"
    check_eq "verify, the right CA: TLS, then MAIL" \
        "$(awk '/ \*: tls established$/ { t = 1 } / C: MAIL FROM:/ { print t + 0; exit }' "$T/tls.log")" 1
    conf wrongca "smtp_tls_security_level = verify" "smtp_tls_CAfile = $T/ca2/ca.pem"
    : >"$T/tls.log"
    rc=$(deliver "$T/o9" -c "$T/wrongca/server.ini" -f sender@origin.test -r a@site.test \
        --host 127.0.0.1 --port "$P8" "$T/msg.txt")
    check_eq "verify, another CA: deferred 4.7.5" "$(result "$T/o9" a@site.test)" "deferred 4.7.5"
    check "verify, another CA: text" grep -q \
        '^a@site.test deferred 4.7.5 Server certificate not verified: 127.0.0.1\[127.0.0.1\]: ' "$T/o9"
    check_eq "verify, another CA: no plaintext retry, no MAIL" \
        "$(grep -c ' C: STARTTLS$' "$T/tls.log") $(grep -c ' C: MAIL' "$T/tls.log")" "1 0"
    : >"$T/tls.log"
    conf none "smtp_tls_security_level = none"
    rc=$(deliver "$T/o10" -c "$T/none/server.ini" -f sender@origin.test -r a@site.test \
        --host 127.0.0.1 --port "$P8" "$T/msg.txt")
    check_eq "none: sent without STARTTLS" \
        "$(result "$T/o10" a@site.test) $(grep -c ' C: STARTTLS' "$T/tls.log")" "sent 2.0.0 0"
    : >"$T/tls.log"
    rc=$(deliver "$T/o10b" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test \
        --host 127.0.0.1 --port "$P8" "$T/msg.txt")
    check_eq "may (default): STARTTLS without a certificate check" \
        "$(result "$T/o10b" a@site.test) $(grep -c ' \*: tls established' "$T/tls.log")" "sent 2.0.0 1"
    conf encrypt "smtp_tls_security_level = encrypt"
    rc=$(deliver "$T/o11" -c "$T/encrypt/server.ini" -f sender@origin.test -r a@site.test \
        --host 127.0.0.1 --port "$P1" "$T/msg.txt")
    check_eq "encrypt, no STARTTLS offered: deferred 4.7.4" "$(result "$T/o11" a@site.test)" "deferred 4.7.4"
    check_eq "encrypt, no STARTTLS offered: text" "$(text "$T/o11" a@site.test)" \
        "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"
    # smtp_tls_policy_maps: a level per next hop over the default (may)
    printf '# next hop  level\n[127.0.0.1]:%s encrypt\n[127.0.0.1]:%s none\n' "$P1" "$P8" >"$T/tls_policy"
    conf policy "smtp_tls_policy_maps = texthash:$T/tls_policy"
    rc=$(deliver "$T/o11b" -c "$T/policy/server.ini" -f sender@origin.test -r a@site.test \
        --host 127.0.0.1 --port "$P1" "$T/msg.txt")
    check_eq "policy map: encrypt for one next hop, which offers no STARTTLS: deferred 4.7.4" \
        "$(result "$T/o11b" a@site.test)" "deferred 4.7.4"
    : >"$T/tls.log"
    rc=$(deliver "$T/o11c" -c "$T/policy/server.ini" -f sender@origin.test -r a@site.test \
        --host 127.0.0.1 --port "$P8" "$T/msg.txt")
    check_eq "policy map: none for another, which offers STARTTLS: sent in plaintext" \
        "$(result "$T/o11c" a@site.test) $(grep -c ' C: STARTTLS' "$T/tls.log")" "sent 2.0.0 0"
    if why=$(dnsmasq_usable); then
        PD=$(free_port)
        if dnsmasq_start "$PD" --host-record=mx.site.test,127.0.0.1 --host-record=wrong.site.test,127.0.0.1; then
            conf verifyname "smtp_tls_security_level = verify" \
                "smtp_tls_CAfile = $T/ca/ca.pem" "dns_resolver = 127.0.0.1:$PD"
            rc=$(deliver "$T/o12" -c "$T/verifyname/server.ini" -f sender@origin.test -r a@site.test \
                --host mx.site.test --port "$P8" "$T/msg.txt")
            check_eq "verify, name in the certificate: sent" "$(result "$T/o12" a@site.test)" "sent 2.0.0"
            rc=$(deliver "$T/o13" -c "$T/verifyname/server.ini" -f sender@origin.test -r a@site.test \
                --host wrong.site.test --port "$P8" "$T/msg.txt")
            check_eq "verify, a name not in the certificate: deferred 4.7.5" \
                "$(result "$T/o13" a@site.test)" "deferred 4.7.5"
        else
            E2E_FAIL=$((E2E_FAIL + 1)); echo "FAIL dnsmasq did not start"
        fi
    else
        skip "verify by name: $why"
    fi
else
    skip "openssl could not make the test CA"
fi

# --- 1f. a connection that already exists (the ODMR turn): plain and already TLS ------
ATTACH=$TOOLS_DIR/smtp_attach
P9=$(free_port)
check "receiver for attach listens" scripted attach "$P9" --accept-mail
"$ATTACH" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -r b@site.test \
    --port "$P9" "$T/msg.txt" >"$T/a1" 2>"$T/a1.err"
check_eq "attach, plain: exit" "$?" 0
check_eq "attach, plain: both sent" "$(result "$T/a1" a@site.test) $(result "$T/a1" b@site.test)" \
    "sent 2.0.0 sent 2.0.0"
check_eq "attach, plain: one session, from the greeting on" \
    "$(grep -c ' C: EHLO relay.test$' "$T/attach.log") $(grep -c ' C: DATA$' "$T/attach.log")" "1 1"
if [ -f "$T/ca/cert.pem" ]; then
    P10=$(free_port)
    start_bg itls "$PY" "$SCRIPTED" --listen "127.0.0.1:$P10" --log "$T/itls.log" --accept-mail \
        --implicit-tls --tls-cert "$T/ca/cert.pem" --tls-key "$T/ca/key.pem"
    check "implicit-TLS receiver listens" wait_port "$P10" 10
    "$ATTACH" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test --tls \
        --port "$P10" "$T/msg.txt" >"$T/a2" 2>"$T/a2.err"
    check_eq "attach, already TLS: exit" "$?" 0
    check_eq "attach, already TLS: sent" "$(result "$T/a2" a@site.test)" "sent 2.0.0"
    check_eq "attach, already TLS: the client says TLS" "$(sed -n 's/^tls=//p' "$T/a2")" 1
    check_eq "attach, already TLS: no STARTTLS, the dialogue ran inside TLS" \
        "$(grep -c ' C: STARTTLS' "$T/itls.log") $(awk '/ \*: tls established$/ { t = 1 } / C: MAIL FROM:/ { print t + 0; exit }' "$T/itls.log")" "0 1"
fi

# --- 2. etrn-server: stall after the data, drop after the dot, mixed replies ----------
PS=$(free_port); PDROP=$(free_port); PF=$(free_port); PM=$(free_port)
check "stalling receiver listens" scripted stall "$PS" --accept-mail --data-stall
check "dropping receiver listens" scripted drop "$PDROP" --accept-mail --drop-after-dot
check "fast receiver listens" scripted fast "$PF" --accept-mail
check "mixed receiver listens" scripted mixed "$PM" \
    --accept-mail --rcpt-reply 'b@mixed.test=450 4.2.0 <b@mixed.test>: greylisted' \
    --rcpt-reply 'c@mixed.test=550 5.1.1 <c@mixed.test>: no such user'
SP=$(free_port)
srv_conf srv "127.0.0.1:$SP" "myhostname = relay.test" "mynetworks = 127.0.0.0/8" \
    "relay_domains = stall.test drop.test fast.test mixed.test" \
    "smtp_data_done_timeout = 3s" "minimal_backoff_time = 2s" "maximal_backoff_time = 4s" \
    "queue_run_delay = 60s" \
    "[transport]" "stall.test = smtp:[127.0.0.1]:$PS" "drop.test = smtp:[127.0.0.1]:$PDROP" \
    "fast.test = smtp:[127.0.0.1]:$PF" "mixed.test = smtp:[127.0.0.1]:$PM" \
    "origin.test = smtp:[127.0.0.1]:$PF"
check "etrn-server starts" srv_start srv || e2e_abort
LOG=$T/srv/maillog
send() { # send RCPT... - one message through etrn-server
    to=$(echo "$@" | tr ' ' ',')
    swaks --silent 2 --server "127.0.0.1:$SP" --from sender@origin.test --to "$to" \
        --header "Subject: to $to" --body "client test" >>"$T/swaks.out" 2>&1
}
send s@stall.test
t0=$(date +%s%N)
i=0
while [ $i -lt 10 ]; do send "f$i@fast.test"; i=$((i + 1)); done
fast_done() { [ "$(grep -c 'to=<f[0-9]@fast.test>, .*status=sent' "$LOG")" -eq 10 ]; }
check "stall: the other destination's 10 messages are delivered meanwhile" wait_for 10 fast_done
fast_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "     stall: 10 messages to fast.test delivered ${fast_ms} ms after the stalled one started"
check "stall: they were all delivered before the stalled one timed out" \
    [ "$(grep -c 'to=<s@stall.test>' "$LOG")" -eq 0 ]
check "stall: smtp_data_done_timeout (3s) fires" wait_for 15 grep -q \
    'to=<s@stall.test>, relay=127.0.0.1\[127.0.0.1\]:'"$PS"', .*dsn=4.4.2, status=deferred (conversation with 127.0.0.1\[127.0.0.1\] timed out while sending end of data -- message may be sent more than once)' "$LOG"
check "stall: the message stays queued" sh -c "'$BIN_DIR/etrn-queue' -c '$T/srv/server.ini' -p | grep -q s@stall.test"

send d@drop.test
check "drop after dot: deferred, may be sent more than once" wait_for 15 grep -q \
    'to=<d@drop.test>, relay=127.0.0.1\[127.0.0.1\]:'"$PDROP"', .*dsn=4.4.2, status=deferred (lost connection with 127.0.0.1\[127.0.0.1\] while sending end of data -- message may be sent more than once)' "$LOG"
check "drop after dot: the message stays queued" sh -c "'$BIN_DIR/etrn-queue' -c '$T/srv/server.ini' -p | grep -q d@drop.test"
twice() { [ "$(grep -c ' \*: dropping the connection after the final dot' "$T/drop.log")" -ge 2 ]; }
check "drop after dot: tried again (delivered at least once, never lost)" wait_for 15 twice

send a@mixed.test b@mixed.test c@mixed.test
check "mixed: 250 -> sent" wait_for 10 grep -q 'to=<a@mixed.test>, .*dsn=2.0.0, status=sent' "$LOG"
check "mixed: 450 -> deferred" wait_for 10 grep -q 'to=<b@mixed.test>, .*dsn=4.2.0, status=deferred (host 127.0.0.1\[127.0.0.1\] said: 450 4.2.0 <b@mixed.test>: greylisted (in reply to RCPT TO command))' "$LOG"
check "mixed: 550 -> bounced" wait_for 10 grep -q 'to=<c@mixed.test>, .*dsn=5.1.1, status=bounced (host 127.0.0.1\[127.0.0.1\] said: 550 5.1.1' "$LOG"
check "mixed: the commands were pipelined" grep -q ' \*: pipelined 5 commands$' "$T/mixed.log"
dsn_arrived() { grep -q ' C: RCPT TO:<sender@origin.test>' "$T/fast.log"; }
check "mixed: the DSN for c@ reached the sender" wait_for 15 dsn_arrived
check "mixed: the DSN names c@mixed.test" wait_for 5 grep -q 'Final-Recipient: rfc822; *c@mixed.test' "$T/fast.log"
# the retry of b@ (minimal_backoff_time 2s) must not send a@ again: the delivered
# state is in the queue file of a message that stays queued
retried() { [ "$(grep -c ' C: RCPT TO:<b@mixed.test>' "$T/mixed.log")" -ge 2 ]; }
check "mixed: b@ is tried again" wait_for 15 retried
check_eq "mixed: a@ was sent once, not again with the retry" \
    "$(grep -c ' C: RCPT TO:<a@mixed.test>' "$T/mixed.log")" 1
srv_stop srv

# --- 3. a private Postfix as the receiving MTA -------------------------------------------
if why=$(postfix_usable) && [ -f "$T/ca/cert.pem" ]; then
    PFD=$T/pf
    PFP=$(free_port)
    mkdir -p "$T/vmail" && chown nobody:nogroup "$T/vmail"
    cp "$T/ca/cert.pem" "$T/ca/key.pem" "$T/" && chmod 600 "$T/key.pem"
    postfix_instance "$PFD" "$PFP" "myhostname = mx.site.test" \
        "virtual_mailbox_domains = site.test" "virtual_mailbox_base = $T/vmail" \
        "virtual_mailbox_maps = static:site.test/user/" "virtual_minimum_uid = 100" \
        "virtual_uid_maps = static:65534" "virtual_gid_maps = static:65534" \
        "smtpd_tls_security_level = may" "smtpd_tls_cert_file = $T/cert.pem" \
        "smtpd_tls_key_file = $T/key.pem" "message_size_limit = 20000000"
    postfix_service "$PFD" "virtual unix - n n - - virtual"
    postfix_service "$PFD" "tlsmgr unix - - n 1000? 1 tlsmgr"
    if check "Postfix starts" postfix_start "$PFD"; then
        PFLOG=$PFD/maillog
        conns() { grep -c 'postfix/smtpd\[[0-9]*\]: connect from' "$PFLOG"; }
        newest() { find "$T/vmail" -path '*/new/*' -type f -newer "$1" | head -n 1; }
        arrived() { [ "$(maildir_count "$T/vmail")" -ge "$1" ]; }

        touch "$T/mark1"
        rc=$(deliver "$T/p1" -c "$T/none/server.ini" -f sender@origin.test -r user@site.test \
            --host 127.0.0.1 --port "$PFP" "$T/msg.txt")
        check_eq "Postfix, plain: sent" "$(result "$T/p1" user@site.test)" "sent 2.0.0"
        check "Postfix, plain: in the Maildir" wait_for 10 arrived 1
        check "Postfix, plain: Received: with ESMTP" sh -c "grep -q 'with ESMTP id' \"\$(find '$T/vmail' -path '*/new/*' -type f | head -n 1)\""

        touch "$T/mark2"; sleep 1
        rc=$(deliver "$T/p2" -c "$T/plain/server.ini" -f sender@origin.test -r user@site.test \
            --host 127.0.0.1 --port "$PFP" "$T/msg.txt")
        check_eq "Postfix, STARTTLS may: sent" "$(result "$T/p2" user@site.test)" "sent 2.0.0"
        check "Postfix, STARTTLS may: in the Maildir" wait_for 10 arrived 2
        f=$(newest "$T/mark2")
        check "Postfix, STARTTLS may: Received: with ESMTPS" grep -q 'with ESMTPS id' "$f"

        touch "$T/mark3"; sleep 1
        rc=$(deliver "$T/p3" -c "$T/verify/server.ini" -f sender@origin.test -r user@site.test \
            --host 127.0.0.1 --port "$PFP" "$T/msg.txt")
        check_eq "Postfix, STARTTLS verify (test CA): sent" "$(result "$T/p3" user@site.test)" "sent 2.0.0"
        check "Postfix, STARTTLS verify: in the Maildir" wait_for 10 arrived 3
        f=$(newest "$T/mark3")
        check "Postfix, STARTTLS verify: Received: with ESMTPS" grep -q 'with ESMTPS id' "$f"

        # 5 MB: 65536 lines of 80 bytes
        awk 'BEGIN { print "Subject: five megabytes\n"; for (i = 0; i < 65536; i++) printf "%07d %071d\n", i, 0; print "the end" }' >"$T/5mb.txt"
        rc=$(deliver "$T/p4" -c "$T/plain/server.ini" -f sender@origin.test -r user@site.test \
            --host 127.0.0.1 --port "$PFP" "$T/5mb.txt")
        check_eq "Postfix, 5 MB: sent" "$(result "$T/p4" user@site.test)" "sent 2.0.0"
        check "Postfix, 5 MB: in the Maildir" wait_for 20 arrived 4
        big=$(find "$T/vmail" -path '*/new/*' -type f -size +5000k | head -n 1)
        check "Postfix, 5 MB: complete (last line there, 65536 body lines)" \
            sh -c "[ -n '$big' ] && tail -n 1 '$big' | grep -q '^the end' && [ \$(grep -c '^[0-9]\{7\} 0' '$big') -eq 65536 ]"

        before=$(conns)
        rc=$(deliver "$T/p5" -c "$T/plain/server.ini" -f sender@origin.test -r user@site.test -n 200 \
            -t 120 --host 127.0.0.1 --port "$PFP" "$T/msg.txt")
        check_eq "Postfix, 200 messages: all sent" "$(grep -c '^user@site.test sent 2.0.0 ' "$T/p5")" 200
        check "Postfix, 200 messages: in the Maildir" wait_for 60 arrived 204
        after=$(conns)
        echo "     Postfix logged $((after - before)) connection(s) for 200 messages"
        check_eq "Postfix, 200 messages over one cached connection" "$((after - before))" 1
    fi
else
    skip "Postfix: ${why:-no test CA}"
fi

e2e_done
