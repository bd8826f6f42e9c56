#!/bin/sh
# server_smtp_transport - etrn-server's outbound smtp transport (its own SMTP client
# on the event loop), driven through the smtp_deliver test tool against real receivers:
#   - Postfix's smtp-sink: sender, recipients and body arrive; lines starting
#     with "." arrive intact (libcurl dot-stuffs, the receiver un-stuffs);
#   - scripted_smtpd.py: 250/450/550 for three recipients of one transaction ->
#     sent/deferred/bounced with their DSN codes and Postfix-style texts; every
#     RCPT refused -> no DATA; MAIL FROM and end-of-DATA refusals; the null
#     sender; STARTTLS when offered; 20 messages over fewer than 20 connections;
#   - a closed port -> deferred 4.4.1 "connect to ...: Connection refused", relay=none;
#   - dnsmasq (dns_resolver): two MX hosts, the preferred one down (127.0.0.2) ->
#     delivered via the other (127.0.0.3); no MX -> the domain's A record;
#     NXDOMAIN -> bounced 5.4.4; a name as a [host] next hop -> its A record;
#   - a receiver that answers the final "." only after 3 s (slow.py): 5 jobs to
#     smtp-sink started with it finish first and the caller's loop never stalls;
#     two such receivers take 3 s, not 6; one that never answers does not keep
#     smtp_transport_free() waiting.
# Only loopback addresses; nothing asks the system's resolver.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/dnsmasq.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

DELIVER=$TOOLS_DIR/smtp_deliver
SCRIPTED=$E2E_TOP/tests/lib/scripted_smtpd.py
if [ ! -x "$DELIVER" ]; then
    echo "missing $DELIVER (make O=... tools)"
    exit 1
fi

# --- configuration and message ---------------------------------------------------
# conf NAME [extra main lines] - $T/NAME/server.ini for smtp_deliver (tests/lib's
# srv_conf: relayhost a closed port, no peer name lookups), one queue for all
conf() {
    c_name=$1; shift
    srv_conf "$c_name" "127.0.0.1:$(free_port)" "myhostname = relay.test" \
        "queue_directory = $T/queue" "relay_domains = site.test" "$@"
}
conf plain

printf 'From: sender@origin.test\nTo: a@site.test\nSubject: transport test\n\nfirst line\n.leading dot\n..two dots\n.\nlast line\n' >"$T/msg.txt"

# deliver OUTFILE args... - run smtp_deliver, output to OUTFILE, print the exit status
deliver() {
    out=$1; shift
    "$DELIVER" -t 30 "$@" >"$out" 2>"$out.err"
    echo $?
}
# field OUTFILE RCPT N - the Nth blank-separated field of RCPT's line (1 = status)
field() {
    awk -v r="$2" -v n="$3" '$1 == r { print $(n + 1); exit }' "$1"
}
# text OUTFILE RCPT - the text of RCPT's line
text() {
    awk -v r="$2" '$1 == r { $1 = ""; $2 = ""; $3 = ""; sub(/^ +/, ""); print; exit }' "$1"
}
relay() {
    sed -n 's/^relay=\([^ ]*\) .*/\1/p' "$1" | head -n 1
}

# --- 1. Postfix's smtp-sink --------------------------------------------------------
if [ -x /usr/sbin/smtp-sink ]; then
    PS=$(free_port)
    mkdir "$T/sink" && chown nobody "$T/sink"
    start_bg sink /usr/sbin/smtp-sink -u nobody -d "$T/sink/msg." "127.0.0.1:$PS" 10
    check "smtp-sink listens" wait_port "$PS" 10
    rc=$(deliver "$T/o1" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -r b@site.test \
        --host 127.0.0.1 --port "$PS" "$T/msg.txt")
    check_eq "sink: smtp_deliver exit" "$rc" 0
    check_eq "sink: a@site.test sent" "$(field "$T/o1" a@site.test 1) $(field "$T/o1" a@site.test 2)" "sent 2.0.0"
    check_eq "sink: b@site.test sent" "$(field "$T/o1" b@site.test 1)" "sent"
    check_eq "sink: relay" "$(relay "$T/o1")" "127.0.0.1[127.0.0.1]:$PS"
    sink_has_1() { [ "$(find "$T/sink" -type f -name 'msg.*' | wc -l)" -eq 1 ]; }
    check "sink: one message dumped" wait_for 5 sink_has_1
    dump=$(find "$T/sink" -type f -name 'msg.*' | head -n 1)
    check_eq "sink: envelope sender" "$(sed -n 's/^X-Mail-Args: \(<[^>]*>\).*/\1/p' "$dump")" "<sender@origin.test>"
    check_eq "sink: recipients" "$(sed -n 's/^X-Rcpt-Args: <\([^>]*\)>.*/\1/p' "$dump" | paste -sd' ' -)" \
        "a@site.test b@site.test"
    check_eq "sink: EHLO name is myhostname" "$(sed -n 's/^X-Helo-Args: //p' "$dump")" "relay.test"
    # the body as received, from the Subject on (smtp-sink writes LF lines)
    check_eq "sink: body lines starting with '.' arrive intact" \
        "$(sed -n '/^Subject: transport test/,$p' "$dump" | sed -n '3,7p' | paste -sd'|' -)" \
        "first line|.leading dot|..two dots|.|last line"
else
    skip "smtp-sink missing (Debian package postfix)"
fi

# --- 2. mixed per-recipient replies in one transaction (no PIPELINING: one command at
# a time, so a refused MAIL means no RCPT and no accepted RCPT means no DATA) -------
P2=$(free_port)
start_bg s2 "$PY" "$SCRIPTED" --listen "127.0.0.1:$P2" --log "$T/s2.log" --accept-mail --no-pipelining \
    --rcpt-reply 'b@site.test=450 4.2.0 <b@site.test>: Recipient address rejected: Greylisted' \
    --rcpt-reply 'c@site.test=550 5.1.1 <c@site.test>: Recipient address rejected: User unknown'
check "scripted server (mixed) listens" wait_port "$P2" 10
rc=$(deliver "$T/o2" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -r b@site.test \
    -r c@site.test --host 127.0.0.1 --port "$P2" "$T/msg.txt")
check_eq "mixed: exit" "$rc" 0
check_eq "mixed: 250 -> sent 2.0.0" "$(field "$T/o2" a@site.test 1) $(field "$T/o2" a@site.test 2)" "sent 2.0.0"
check_eq "mixed: 250 text is the final reply" "$(text "$T/o2" a@site.test)" "250 2.0.0 Ok: queued as 1"
check_eq "mixed: 450 -> deferred 4.2.0" "$(field "$T/o2" b@site.test 1) $(field "$T/o2" b@site.test 2)" "deferred 4.2.0"
check_eq "mixed: 450 text" "$(text "$T/o2" b@site.test)" \
    "host 127.0.0.1[127.0.0.1] said: 450 4.2.0 <b@site.test>: Recipient address rejected: Greylisted (in reply to RCPT TO command)"
check_eq "mixed: 550 -> bounced 5.1.1" "$(field "$T/o2" c@site.test 1) $(field "$T/o2" c@site.test 2)" "bounced 5.1.1"
check_eq "mixed: 550 text" "$(text "$T/o2" c@site.test)" \
    "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <c@site.test>: Recipient address rejected: User unknown (in reply to RCPT TO command)"
check_eq "mixed: the server saw three RCPT and one DATA" \
    "$(grep -c ' C: RCPT TO:' "$T/s2.log") $(grep -c ' C: DATA$' "$T/s2.log")" "3 1"
check "mixed: dot-stuffed on the wire" grep -q ' C: \.\.leading dot$' "$T/s2.log"

# every recipient refused: no DATA
: >"$T/s2.log"
rc=$(deliver "$T/o2b" -c "$T/plain/server.ini" -f sender@origin.test -r b@site.test -r c@site.test \
    --host 127.0.0.1 --port "$P2" "$T/msg.txt")
check_eq "all refused: deferred + bounced" \
    "$(field "$T/o2b" b@site.test 1) $(field "$T/o2b" c@site.test 1)" "deferred bounced"
check_eq "all refused: no DATA sent" "$(grep -c ' C: DATA$' "$T/s2.log")" 0

# null sender
: >"$T/s2.log"
rc=$(deliver "$T/o2c" -c "$T/plain/server.ini" -f '' -r a@site.test --host 127.0.0.1 --port "$P2" "$T/msg.txt")
check_eq "null sender: sent" "$(field "$T/o2c" a@site.test 1)" "sent"
check "null sender: MAIL FROM:<>" grep -q ' C: MAIL FROM:<>$' "$T/s2.log"

# MAIL FROM refused, end of DATA refused
P3=$(free_port)
start_bg s3 "$PY" "$SCRIPTED" --listen "127.0.0.1:$P3" --log "$T/s3.log" --accept-mail --no-pipelining \
    --mail-reply '553 5.7.1 <sender@origin.test>: Sender address rejected: Access denied'
P4=$(free_port)
start_bg s4 "$PY" "$SCRIPTED" --listen "127.0.0.1:$P4" --log "$T/s4.log" --accept-mail \
    --rcpt-reply 'b@site.test=452 4.2.2 <b@site.test>: mailbox full' \
    --data-reply '451 4.3.0 Error: queue file write error'
check "scripted servers (MAIL / DATA refusals) listen" wait_port "$P4" 10
wait_port "$P3" 10
rc=$(deliver "$T/o3" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -r b@site.test \
    --host 127.0.0.1 --port "$P3" "$T/msg.txt")
check_eq "MAIL FROM 553: every recipient bounced 5.7.1" \
    "$(field "$T/o3" a@site.test 1) $(field "$T/o3" a@site.test 2) $(field "$T/o3" b@site.test 1) $(field "$T/o3" b@site.test 2)" \
    "bounced 5.7.1 bounced 5.7.1"
check "MAIL FROM 553: text names the command" grep -q '(in reply to MAIL FROM command)$' "$T/o3"
check_eq "MAIL FROM 553: no RCPT sent" "$(grep -c ' C: RCPT' "$T/s3.log")" 0
rc=$(deliver "$T/o4" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -r b@site.test \
    --host 127.0.0.1 --port "$P4" "$T/msg.txt")
check_eq "end of DATA 451: accepted recipient deferred 4.3.0" \
    "$(field "$T/o4" a@site.test 1) $(field "$T/o4" a@site.test 2)" "deferred 4.3.0"
check_eq "end of DATA 451: text" "$(text "$T/o4" a@site.test)" \
    "host 127.0.0.1[127.0.0.1] said: 451 4.3.0 Error: queue file write error (in reply to end of DATA command)"
check_eq "end of DATA 451: refused RCPT keeps its own reply" \
    "$(field "$T/o4" b@site.test 1) $(field "$T/o4" b@site.test 2)" "deferred 4.2.2"

# --- 3. STARTTLS when offered ----------------------------------------------------
if openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 \
        -subj /CN=scripted.test >/dev/null 2>&1; then
    P5=$(free_port)
    start_bg s5 "$PY" "$SCRIPTED" --listen "127.0.0.1:$P5" --log "$T/s5.log" --accept-mail \
        --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
    check "scripted server (TLS) listens" wait_port "$P5" 10
    rc=$(deliver "$T/o5" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test \
        --host 127.0.0.1 --port "$P5" "$T/msg.txt")
    check_eq "STARTTLS: delivered" "$(field "$T/o5" a@site.test 1)" "sent"
    check "STARTTLS: the client sent STARTTLS" grep -q ' C: STARTTLS$' "$T/s5.log"
    check "STARTTLS: TLS established" grep -q ' \*: tls established$' "$T/s5.log"
    # MAIL FROM comes after the handshake, i.e. encrypted
    check_eq "STARTTLS: MAIL FROM only after TLS" \
        "$(awk '/ \*: tls established$/ { tls = 1 } / C: MAIL FROM:/ { print tls + 0; exit }' "$T/s5.log")" 1
else
    skip "openssl could not make a test certificate"
fi

# a server that offers STARTTLS and then answers the handshake with plaintext: the
# transport tries the same host once more without STARTTLS (opportunistic TLS)
P6=$(free_port)
cat >"$T/broken_tls.py" <<'PYEOF'
import socket, sys, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1])))
srv.listen(5)
srv.settimeout(30)
def session(c):
    c.settimeout(30)
    f = c.makefile("rb")
    c.sendall(b"220 broken-tls.test ESMTP\r\n")
    for line in f:
        print("C: " + line.decode("latin-1").rstrip("\r\n"), flush=True)
        verb = line[:4].upper()
        if verb == b"EHLO":
            c.sendall(b"250-broken-tls.test\r\n250 STARTTLS\r\n")
        elif verb == b"STAR":
            c.sendall(b"220 2.0.0 Ready\r\n" + b"this is no TLS handshake\r\n" * 4)
            break
        elif verb == b"DATA":
            c.sendall(b"354 go ahead\r\n")
            for body in f:
                if body == b".\r\n":
                    break
            c.sendall(b"250 2.0.0 Ok: queued in plaintext\r\n")
        elif verb == b"QUIT":
            c.sendall(b"221 2.0.0 Bye\r\n")
            break
        else:
            c.sendall(b"250 2.0.0 Ok\r\n")
    c.close()
for _ in range(4):  # bounded: the probe, the TLS try, the plaintext retry, spare
    try:
        conn, _ = srv.accept()
    except OSError:
        break
    threading.Thread(target=session, args=(conn,), daemon=True).start()
PYEOF
start_bg s6 "$PY" "$T/broken_tls.py" "$P6"
check "broken-TLS server listens" wait_port "$P6" 10
rc=$(deliver "$T/o6t" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test \
    --host 127.0.0.1 --port "$P6" "$T/msg.txt")
check_eq "TLS handshake fails: delivered in plaintext on a second connection" \
    "$(text "$T/o6t" a@site.test)" "250 2.0.0 Ok: queued in plaintext"
check_eq "TLS handshake fails: STARTTLS tried once, then not" \
    "$(grep -c '^C: STARTTLS$' "$T/s6.out") $(grep -c '^C: EHLO relay.test$' "$T/s6.out")" "1 2"

# --- 4. a closed port ---------------------------------------------------------------
PC=$(free_port)
rc=$(deliver "$T/o6" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -r b@site.test \
    --host 127.0.0.1 --port "$PC" "$T/msg.txt")
check_eq "closed port: exit" "$rc" 0
check_eq "closed port: deferred 4.4.1" "$(field "$T/o6" a@site.test 1) $(field "$T/o6" a@site.test 2)" "deferred 4.4.1"
check_eq "closed port: text" "$(text "$T/o6" b@site.test)" "connect to 127.0.0.1[127.0.0.1]:$PC: Connection refused"
check_eq "closed port: relay=none" "$(relay "$T/o6")" "none"

# --- 5. MX through dnsmasq -----------------------------------------------------------
if why=$(dnsmasq_usable); then
    PD=$(free_port)
    PM=$(free_port)
    start_bg s7 "$PY" "$SCRIPTED" --listen "127.0.0.3:$PM" --log "$T/s7.log" --accept-mail
    check "scripted server on 127.0.0.3 listens" wait_port "$PM" 10 127.0.0.3
    if dnsmasq_start "$PD" \
            --mx-host=site.test,mx1.site.test,10 --mx-host=site.test,mx2.site.test,20 \
            --host-record=mx1.site.test,127.0.0.2 --host-record=mx2.site.test,127.0.0.3 \
            --host-record=amx.test,127.0.0.3; then
        conf dns "dns_resolver = 127.0.0.1:$PD"
        rc=$(deliver "$T/o7" -c "$T/dns/server.ini" -f sender@origin.test -r a@site.test \
            --mx site.test --port "$PM" "$T/msg.txt")
        check_eq "MX: delivered via the second MX" "$(field "$T/o7" a@site.test 1)" "sent"
        check_eq "MX: relay is mx2" "$(relay "$T/o7")" "mx2.site.test[127.0.0.3]:$PM"
        check "MX: the resolver was asked for site.test's MX" grep -q 'query\[MX\] site.test' "$T/dnsmasq-$PD.out"
        check_eq "MX: one session on 127.0.0.3" "$(grep -c ' C: EHLO ' "$T/s7.log")" 1

        rc=$(deliver "$T/o8" -c "$T/dns/server.ini" -f sender@origin.test -r u@amx.test \
            --mx amx.test --port "$PM" "$T/msg.txt")
        check_eq "no MX: delivered to the A record" "$(field "$T/o8" u@amx.test 1) $(relay "$T/o8")" \
            "sent amx.test[127.0.0.3]:$PM"

        rc=$(deliver "$T/o9" -c "$T/dns/server.ini" -f sender@origin.test -r u@nowhere.test \
            --mx nowhere.test --port "$PM" "$T/msg.txt")
        check_eq "NXDOMAIN: bounced 5.4.4" "$(field "$T/o9" u@nowhere.test 1) $(field "$T/o9" u@nowhere.test 2)" \
            "bounced 5.4.4"

        rc=$(deliver "$T/o10" -c "$T/dns/server.ini" -f sender@origin.test -r u@site.test \
            --host mx2.site.test --port "$PM" "$T/msg.txt")
        check_eq "[name] next hop: its A record, no MX" "$(field "$T/o10" u@site.test 1) $(relay "$T/o10")" \
            "sent mx2.site.test[127.0.0.3]:$PM"

        # only the preferred MX up: every MX down -> the last connect error, deferred
        rc=$(deliver "$T/o11" -c "$T/dns/server.ini" -f sender@origin.test -r a@site.test \
            --mx site.test --port "$PC" "$T/msg.txt")
        check_eq "every MX down: deferred 4.4.1 naming the last one" "$(text "$T/o11" a@site.test)" \
            "connect to mx2.site.test[127.0.0.3]:$PC: Connection refused"
    else
        E2E_FAIL=$((E2E_FAIL + 1)); echo "FAIL dnsmasq did not start"
    fi
else
    skip "MX tests: $why"
fi

# bad dns_resolver: a startup error naming file and line
conf bad "dns_resolver = 127.0.0.1:notaport"
"$DELIVER" -c "$T/bad/server.ini" -f s@origin.test -r a@site.test --host 127.0.0.1 "$T/msg.txt" >/dev/null 2>"$T/bad.err"
check_eq "bad dns_resolver: exit 1" "$?" 1
check "bad dns_resolver: FILE:LINE: [main] dns_resolver" grep -qF "$T/bad/server.ini:8: [main] dns_resolver:" "$T/bad.err"

# --- 6. connection reuse: 20 messages, 4 at a time -----------------------------------
P12=$(free_port)
start_bg s12 "$PY" "$SCRIPTED" --listen "127.0.0.1:$P12" --log "$T/s12.log" --accept-mail
check "scripted server (reuse) listens" wait_port "$P12" 10
rc=$(deliver "$T/o12" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -n 20 -j 4 \
    --host 127.0.0.1 --port "$P12" "$T/msg.txt")
check_eq "reuse: exit" "$rc" 0
check_eq "reuse: 20 messages sent" "$(grep -c '^a@site.test sent 2.0.0 ' "$T/o12")" 20
check_eq "reuse: the server took 20 messages" "$(grep -c ' C: MAIL FROM:<sender@origin.test>' "$T/s12.log")" 20
# sessions, not "connect from" lines: wait_port's probe connects too
conns=$(grep -c ' C: EHLO ' "$T/s12.log")
echo "     reuse: 20 messages over $conns connections"
check "reuse: fewer connections than messages (at most 4)" [ "$conns" -ge 1 -a "$conns" -le 4 ]

# --- 7. a receiver that stalls after the data holds up nobody else --------------------
cat >"$T/slow.py" <<'PYEOF'
import socket, sys, threading, time
port, delay = int(sys.argv[1]), float(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(16)
srv.settimeout(60)
def session(c):
    c.settimeout(60)
    f = c.makefile("rb")
    c.sendall(b"220 slow.test ESMTP\r\n")
    for line in f:
        verb = line[:4].upper()
        if verb in (b"EHLO", b"HELO"):
            c.sendall(b"250-slow.test\r\n250 8BITMIME\r\n")
        elif verb == b"DATA":
            c.sendall(b"354 go ahead\r\n")
            for body in f:
                if body == b".\r\n":
                    break
            print("got a message, answering in %g s" % delay, flush=True)
            time.sleep(delay)
            c.sendall(b"250 2.0.0 Ok: queued slowly\r\n")
        elif verb == b"QUIT":
            c.sendall(b"221 2.0.0 Bye\r\n")
            break
        else:
            c.sendall(b"250 2.0.0 Ok\r\n")
    c.close()
for _ in range(20):  # bounded: probes and a few sessions
    try:
        conn, _ = srv.accept()
    except OSError:
        break
    threading.Thread(target=session, args=(conn,), daemon=True).start()
PYEOF
# at_of OUTFILE DEST - the at= seconds of the jobs that went to DEST, one per line
at_of() {
    awk -v d="dest=$2" '$0 ~ /^relay=/ { for (i = 1; i <= NF; i++) if ($i == d) hit = 1;
        if (hit) for (i = 1; i <= NF; i++) if ($i ~ /^at=/) print substr($i, 4); hit = 0 }' "$1"
}
gap() { sed -n 's/^loop_max_gap=//p' "$1"; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }

PSL=$(free_port)
start_bg slow1 "$PY" "$T/slow.py" "$PSL" 3
PSK=$(free_port)
if [ -x /usr/sbin/smtp-sink ]; then
    mkdir -p "$T/sink2" && chown nobody "$T/sink2"
    start_bg sink2 /usr/sbin/smtp-sink -u nobody "127.0.0.1:$PSK" 10
else
    start_bg sink2 "$PY" "$SCRIPTED" --listen "127.0.0.1:$PSK" --log "$T/sink2.log" --accept-mail
fi
check "slow receiver listens" wait_port "$PSL" 10
check "sink listens" wait_port "$PSK" 10
rc=$(deliver "$T/o13" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -j 10 \
    --host 127.0.0.1 --port "$PSL" --dest "127.0.0.1:$PSK:5" "$T/msg.txt")
check_eq "stall: exit" "$rc" 0
check_eq "stall: six jobs, all sent" "$(grep -c '^a@site.test sent 2.0.0 ' "$T/o13")" 6
check_eq "stall: the slow receiver's reply" "$(grep -c 'Ok: queued slowly$' "$T/o13")" 1
slow_at=$(at_of "$T/o13" "127.0.0.1:$PSL")
sink_last=$(at_of "$T/o13" "127.0.0.1:$PSK" | sort -n | tail -n 1)
echo "     stall: slow job done at ${slow_at}s, the 5 sink jobs by ${sink_last}s, loop gap $(gap "$T/o13")s"
check "stall: the slow receiver really took 3 s" lt 2.9 "$slow_at"
check_eq "stall: 5 jobs to the sink" "$(at_of "$T/o13" "127.0.0.1:$PSK" | wc -l)" 5
check "stall: the 5 sink jobs finished within 1.5 s, while the slow one waited" lt "$sink_last" 1.5
check_eq "stall: the slow job reported last" \
    "$(grep '^relay=' "$T/o13" | tail -n 1 | grep -o 'dest=[^ ]*')" "dest=127.0.0.1:$PSL"
check "stall: the caller's event loop never stopped for 0.5 s" lt "$(gap "$T/o13")" 0.5

# two stalled receivers: in parallel, 3 s in all, not 6
PSL2=$(free_port)
start_bg slow2 "$PY" "$T/slow.py" "$PSL2" 3
check "second slow receiver listens" wait_port "$PSL2" 10
rc=$(deliver "$T/o14" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -j 2 -v \
    --dest "127.0.0.1:$PSL:1" --dest "127.0.0.1:$PSL2:1" "$T/msg.txt")
check_eq "two stalls: both sent slowly" "$(grep -c 'Ok: queued slowly$' "$T/o14")" 2
a1=$(at_of "$T/o14" "127.0.0.1:$PSL"); a2=$(at_of "$T/o14" "127.0.0.1:$PSL2")
echo "     two stalls: done at ${a1}s and ${a2}s"
check "two stalls: each waited its 3 s" sh -c "awk 'BEGIN { exit !($a1 >= 2.9 && $a2 >= 2.9) }'"
check "two stalls: 5 s at most in all" lt "$(printf '%s\n%s\n' "$a1" "$a2" | sort -n | tail -n 1)" 5
check "two stalls: the caller's event loop never stopped for 0.5 s" lt "$(gap "$T/o14")" 0.5
# -v: the session's dialogue is in the log
check "two stalls: the log names the address tried" \
    grep -q "trying 127.0.0.1\[127.0.0.1\]:$PSL$" "$T/o14.err"
check "two stalls: the end-of-data reply is in the log" grep -q ": < 250 2.0.0 Ok: queued slowly$" "$T/o14.err"

# a receiver that never answers ".": -t 1 ends the run and the transport closes the
# connection at once; the tool is gone long before the 600 s smtp_data_done_timeout
PSL3=$(free_port)
start_bg slow3 "$PY" "$T/slow.py" "$PSL3" 30
check "silent receiver listens" wait_port "$PSL3" 10
t0=$(date +%s%N)
rc=$(deliver "$T/o15" -c "$T/plain/server.ini" -f sender@origin.test -r a@site.test -t 1 \
    --host 127.0.0.1 --port "$PSL3" "$T/msg.txt")
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "     silent receiver: smtp_deliver took $ms ms"
check_eq "silent receiver: -t 1 timed out (75)" "$rc" 75
check "silent receiver: the message reached the receiver" grep -q "got a message" "$T/slow3.out"
check "silent receiver: done within 4 s (1 s run)" [ "$ms" -lt 4000 ]
check_eq "silent receiver: no report for the unfinished job" "$(grep -c '^relay=' "$T/o15")" 0

e2e_done
