#!/bin/sh
# server_flush.sh - fast ETRN end to end: etrn-server holds etrn-only mail and
# delivers it to the site's receivers (Postfix's smtp-sink with -d) on ETRN.
#   - ETRN_README's three-step test: 253 with a count and the mail arrives;
#     251 for a relay domain with nothing waiting and nothing arrives; 459
#     for a domain that is not a customer
#   - etrn-only mail held through three 1-2 s retries and a 2 s queue_run_delay
#     (a wait for the fourth "deferred transport" pass, no fixed sleep): no
#     connection at the receiver, no delivery lines in the maillog
#   - a message to a@one.test and b@two.test: ETRN one.test delivers a@ only
#     (b@ still pending per etrn-queue -p), ETRN two.test delivers b@
#   - ETRN @parent.test takes sub.parent.test too; ETRN #grp its [etrn_queues]
#   - etrn-queue -s DOMAIN delivers; status --json shows the last ETRN's client
#   - flood: 200 ETRNs from a rate-limited client get 10 x 25x and 190 x 458,
#     each message arrives once, an exempt client is answered in < 1 s
#   - etrn_reply = postfix: exactly "250 Queuing started", and the mail arrives
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

SINK=/usr/sbin/smtp-sink
if [ ! -x "$SINK" ]; then
    skip "$SINK missing (Debian package postfix)"
    e2e_done; exit $?
fi

port=$(free_port)
pa=$(free_port)
pb=$(free_port)
closed=$(free_port)
SPOOL="$T/relay/queue"
LOG="$T/relay/maillog"
mkdir -p "$T/dumpa" "$T/dumpb"
chown nobody "$T/dumpa" "$T/dumpb"

DOMS="one.test two.test held.test empty.test parent.test sub.parent.test g1.test g2.test ops.test fl.test pf.test"

# conf ETRN_REPLY - the relay: every customer etrn-only, all to sink A but
# two.test to sink B; 127.0.0.2 is mynetworks and exempt from the rate limit,
# 127.0.0.1 is neither (but smtpd_etrn_restrictions = permit); the error
# limits are out of the flood's way (the flood against them: server_errors.sh)
conf() {
    reply_mode=$1
    set --
    for d in $DOMS; do
        [ "$d" = two.test ] && p=$pb || p=$pa
        set -- "$@" "$d = smtp:[127.0.0.1]:$p"
    done
    srv_conf relay "127.0.0.1:$port" \
        "mynetworks = 127.0.0.2/32" \
        "smtpd_client_event_limit_exceptions = 127.0.0.2/32" \
        "smtpd_etrn_restrictions = permit" \
        "relay_domains = $DOMS" \
        "etrn_only_domains = $DOMS" \
        "relayhost = [127.0.0.1]:$closed" \
        "etrn_reply = $reply_mode" \
        "etrn_rate_limit = 10" \
        "anvil_rate_time_unit = 60s" \
        "smtpd_soft_error_limit = 1000" \
        "smtpd_hard_error_limit = 1000" \
        "minimal_backoff_time = 1s" \
        "maximal_backoff_time = 2s" \
        "queue_run_delay = 2s" \
        "[etrn_queues]" \
        "grp = g1.test g2.test" \
        "[transport]" \
        "$@"
}

# etrn CMD... - EHLO site.test from 127.0.0.2, then each CMD; prints the last
# line of each reply
etrn() { smtp_client -s 127.0.0.2 -e site.test "$port" "$@"; }

# send RCPT... - one message through the relay's SMTP port
send() {
    $PY - "$port" "$@" <<'PYEOF'
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10, source_address=("127.0.0.2", 0))
s.sendmail("sender@isp.test", sys.argv[2:], "Subject: flush test\r\n\r\nhello\r\n")
s.quit()
PYEOF
}
# got DIR RCPT - messages for RCPT in a sink's dump directory ("no DIR" when
# the sink never made it, so a count of 0 is never the sink's absence)
got() {
    [ -d "$1" ] || { echo "no $1"; return; }
    grep -l "^X-Rcpt-Args: <$2>" "$1"/* 2>/dev/null | wc -l | tr -d ' '
}
# gotn DIR RCPT N - exactly N arrived
gotn() { [ "$(got "$1" "$2")" = "$3" ]; }
ndump() { [ -d "$1" ] || { echo "no $1"; return; }; ls "$1" | wc -l | tr -d ' '; }
conns() { grep -c 'connect (AF_INET' "$T/sink$1.out" 2>/dev/null; }
nqueued() { srv_queued relay; }

start_bg sinkA "$SINK" -v -u nobody -d "$T/dumpa/" "127.0.0.1:$pa" 100
start_bg sinkB "$SINK" -v -u nobody -d "$T/dumpb/" "127.0.0.1:$pb" 100
check "sinks listen" wait_port "$pa" 10 || e2e_abort
wait_port "$pb" 10
sleep 0.3
conns_a0=$(conns A)
conns_b0=$(conns B)

conf rfc1985
srv_start relay || { e2e_done; exit 1; }

send a1@held.test
send a2@held.test
send a@one.test b@two.test
send x@parent.test
send y@sub.parent.test
send g@g1.test
send h@g2.test
send o@ops.test
i=0
while [ $i -lt 20 ]; do send "f$i@fl.test"; i=$((i + 1)); done
check "28 messages queued" wait_for 10 sh -c "[ \$(ls '$SPOOL/deferred' | wc -l) -eq 28 ]"
check "flush log for held.test holds its 2 IDs" sh -c \
    "'$BIN_DIR/etrn-queue' -c '$T/relay/server.ini' status --json | $PY -c 'import json,sys; d={e[\"domain\"]: e[\"waiting\"] for e in json.load(sys.stdin)[\"etrn\"]}; sys.exit(d.get(\"held.test\") != 2)'"

# held: 1-2 s retry windows and a 2 s queue scan pass without an attempt. No
# fixed sleep: wait until both held.test messages have been deferred four
# times (at arrival, then three retries, about 4 s), then look for attempts.
# held_passes N - every held.test message logged N or more "deferred transport" passes
held_passes() {
    for r in a1 a2; do
        [ "$(srv_log_count relay "to=<$r@held\.test>, relay=none, .*status=deferred \(deferred transport\)")" -ge "$1" ] \
            || return 1
    done
}
check "held: a1@ and a2@held.test deferred at arrival and at three retries" wait_for 30 held_passes 4
check_eq "held: no connection at sink A" "$(conns A)" "$conns_a0"
check_eq "held: no connection at sink B" "$(conns B)" "$conns_b0"
check_eq "held: nothing in the dumps" "$(ndump "$T/dumpa")$(ndump "$T/dumpb")" 00
check_eq "held: no status=sent in the maillog" "$(srv_log_count relay 'status=sent')" 0
check_eq "held: no delivery attempt to a sink in the maillog" \
    "$(srv_log_count relay "relay=[^,]*127\.0\.0\.1")" 0
check_eq "held: all 28 still queued" "$(nqueued)" 28

# three-step test of ETRN_README
check_eq "step 1: ETRN held.test -> 253 with the count" "$(etrn 'ETRN held.test')" \
    "253 OK, 2 pending messages for node held.test started"
check "step 1: both messages arrive at the site's receiver" wait_for 10 sh -c \
    "[ \$(grep -l 'X-Rcpt-Args: <a[12]@held.test>' '$T/dumpa'/* 2>/dev/null | wc -l) -eq 2 ]"
check "log: ETRN held.test from ...[127.0.0.2]: 2 messages" \
    grep -q 'ETRN held.test from [^ ]*\[127\.0\.0\.2\]: 2 messages' "$LOG"
n0=$(ndump "$T/dumpa")
check_eq "step 2: ETRN empty.test -> 251" "$(etrn 'ETRN empty.test')" \
    "251 OK, no messages waiting for node empty.test"
check_eq "step 3: ETRN example.net (not a customer) -> 459" "$(etrn 'ETRN example.net')" \
    "459 <example.net>: service unavailable"
sleep 1
check_eq "steps 2-3: nothing more delivered" "$(ndump "$T/dumpa")$(ndump "$T/dumpb")" "${n0}0"

# multi-domain message
id=$(grep -l 'b@two.test' "$SPOOL/deferred"/* 2>/dev/null | head -n 1)
id=${id##*/}
check "multi: message found" test -n "$id"
check_eq "multi: ETRN one.test -> 253, 1 message" "$(etrn 'ETRN one.test')" \
    "253 OK, 1 pending messages for node one.test started"
check "multi: a@one.test arrives at sink A" wait_for 10 gotn "$T/dumpa" a@one.test 1
sleep 1
check_eq "multi: sink B saw nothing" "$(conns B)$(ndump "$T/dumpb")" "${conns_b0}0"
check_eq "multi: b@two.test not in sink A's dump" "$(got "$T/dumpa" b@two.test)" 0
srv_queue relay -p >"$T/mailq1" 2>&1
check "multi: -p lists the message with b@two.test" \
    sh -c "awk '/^$id/{f=1} f' '$T/mailq1' | sed -n 1,4p | grep -q 'b@two.test'"
check "multi: -p no longer lists a@one.test" grep_none 'a@one.test' "$T/mailq1"
check_eq "multi: ETRN two.test -> 253, 1 message" "$(etrn 'ETRN two.test')" \
    "253 OK, 1 pending messages for node two.test started"
check "multi: b@two.test arrives at sink B" wait_for 10 gotn "$T/dumpb" b@two.test 1
check "multi: the message has left the queue" wait_for 10 sh -c \
    "[ -d '$SPOOL/deferred' ] && ! ls '$SPOOL'/incoming/$id '$SPOOL'/active/$id '$SPOOL'/deferred/$id >/dev/null 2>&1"
srv_queue relay -p >"$T/mailq2" 2>&1; rc=$?
check_eq "multi: -p exit" "$rc" 0
check "multi: -p no longer lists it" grep_none "^$id" "$T/mailq2"
check_eq "multi: a@one.test was not delivered twice" "$(got "$T/dumpa" a@one.test)" 1

# @domain and #name
check_eq "ETRN @parent.test -> 253, 2 messages" "$(etrn 'ETRN @parent.test')" \
    "253 OK, 2 pending messages for node @parent.test started"
check "@parent.test: x@parent.test arrives" wait_for 10 gotn "$T/dumpa" x@parent.test 1
check "@parent.test: y@sub.parent.test arrives" wait_for 10 gotn "$T/dumpa" y@sub.parent.test 1
check_eq "ETRN #grp -> 253, 2 messages" "$(etrn 'ETRN #grp')" \
    "253 OK, 2 pending messages for node #grp started"
check "#grp: g@g1.test arrives" wait_for 10 gotn "$T/dumpa" g@g1.test 1
check "#grp: h@g2.test arrives" wait_for 10 gotn "$T/dumpa" h@g2.test 1

# operator flush and status
check_eq "ops.test: not delivered before -s" "$(got "$T/dumpa" o@ops.test)" 0
out=$(srv_queue relay -s ops.test 2>&1); rc=$?
check_eq "etrn-queue -s ops.test: exit 0" "$rc" 0
check "etrn-queue -s ops.test: o@ops.test arrives" wait_for 10 gotn "$T/dumpa" o@ops.test 1
srv_queue relay status --json >"$T/status.json" 2>&1
check_eq "status --json: last ETRN of one.test, with client" "$($PY - "$T/status.json" <<'PYEOF'
import json, sys
d = {e["domain"]: e for e in json.load(open(sys.argv[1]))["etrn"]}
e = d.get("one.test", {})
print(e.get("last_etrn", 0) > 0, "[127.0.0.2]" in e.get("client", ""))
PYEOF
)" "True True"

# flood: 200 pipelined ETRNs from 127.0.0.1 (not exempt), while 127.0.0.2
# (exempt) asks too and must be answered in under a second
$PY - "$port" >"$T/flood.out" 2>&1 <<'PYEOF'
import socket, sys, threading, time
port = int(sys.argv[1])
def session(src):
    s = socket.create_connection(("127.0.0.1", port), 10, (src, 0))
    s.settimeout(20)
    f = s.makefile("rb")
    def reply():
        while True:
            line = f.readline().decode("latin-1").rstrip("\r\n")
            if len(line) < 4 or line[3] != "-":
                return line
    reply()
    s.sendall(b"EHLO site.test\r\n")
    reply()
    return s, reply
codes = []
def flood():
    s, reply = session("127.0.0.1")
    for i in range(4):
        s.sendall(b"ETRN fl.test\r\n" * 50)
        for _ in range(50):
            codes.append(reply()[:3])
        time.sleep(0.2)
t = threading.Thread(target=flood)
t.start()
time.sleep(0.3)
worst = 0.0
for _ in range(3):
    s, reply = session("127.0.0.2")
    t0 = time.time()
    s.sendall(b"ETRN empty.test\r\n")
    r = reply()
    worst = max(worst, time.time() - t0)
    if not r.startswith("251"):
        worst = 99
    s.close()
    time.sleep(0.2)
t.join()
ok = sum(1 for c in codes if c in ("250", "251", "253"))
print("total=%d 25x=%d 458=%d other=%d" % (len(codes), ok, codes.count("458"), len(codes) - ok - codes.count("458")))
print("exempt_fast=%s worst=%.3f" % (worst < 1.0, worst))
PYEOF
check_eq "flood: 200 ETRNs: 10 accepted, 190 refused 458" "$(sed -n 1p "$T/flood.out")" \
    "total=200 25x=10 458=190 other=0"
check "flood: exempt client answered in < 1 s ($(sed -n 2p "$T/flood.out"))" \
    grep -q '^exempt_fast=True' "$T/flood.out"
check "flood: all 20 fl.test messages arrive" wait_for 20 sh -c \
    "[ \$(grep -l 'X-Rcpt-Args: <f[0-9]*@fl.test>' '$T/dumpa'/* 2>/dev/null | wc -l) -eq 20 ]"
sleep 1
dups=$(grep -h '^X-Rcpt-Args: <f[0-9]*@fl.test>' "$T/dumpa"/* | sort | uniq -d | wc -l | tr -d ' ')
check_eq "flood: no message delivered twice" "$dups" 0
check "flood: repeated ETRNs coalesced into the running flush" \
    grep -q 'flush fl.test: already running; request coalesced' "$LOG"
check "flood: rate-limit refusals logged" grep -q '458.*too many ETRN requests from 127.0.0.1' "$LOG"
check "server survived the flood" alive "$SRV_PID"

# etrn_reply = postfix
srv_stop relay
conf postfix
srv_start relay || { e2e_done; exit 1; }
send p@pf.test
check "pf.test message queued" wait_for 10 sh -c "grep -ql 'p@pf.test' '$SPOOL'/deferred/* 2>/dev/null"
check_eq "etrn_reply = postfix: exactly 250 Queuing started" "$(etrn 'ETRN pf.test')" \
    "250 Queuing started"
check "etrn_reply = postfix: the mail arrives" wait_for 10 gotn "$T/dumpa" p@pf.test 1
# the sink has the mail a moment before the server records it and removes the file
queue_empty() { [ "$(nqueued)" -eq 0 ]; }
check "everything delivered: queue empty" wait_for 5 queue_empty

e2e_done
