#!/bin/sh
# server_control.sh - etrn-queue against a running etrn-server over the control
# socket: hold (-h, '!' in -p) and release (-H), delete one (-d ID) and all
# (-d ALL), flush a site (-s: the mail reaches the site's receiver) and one
# message (-i), status --json ("total" first) and the table, arguments refused
# before they reach the server, other users refused (77), and a stopped server
# (75 with a clear message while -p still works).
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

Q="$BIN_DIR/etrn-queue"
port=$(free_port)
sink=$(free_port)
closed=$(free_port)
SPOOL="$T/relay/queue"
CONF="$T/relay/server.ini"
SOCK="$SPOOL/public/control"

# site.test waits for a flush (etrn_only_domains) and then goes to the sink on
# loopback; everything else (bounces) to a closed loopback port.
srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" "mynetworks = 127.0.0.0/8" \
    "relay_domains = site.test other.test" "fast_flush_domains = site.test" \
    "etrn_only_domains = site.test other.test" "relayhost = [127.0.0.1]:$closed" \
    "minimal_backoff_time = 1h" "maximal_backoff_time = 2h" "[transport]" \
    "site.test = smtp:[127.0.0.1]:$sink" "other.test = smtp:[127.0.0.1]:$closed"

# send RCPT - one message through etrn-server's SMTP port
send() {
    smtp_client -e client.test "$port" 'MAIL FROM:<sender@relay.test>' "RCPT TO:<$1>" \
        DATA 'Subject: control test' '' hello . QUIT >/dev/null
}
# sink_tx RCPT - the transaction the sink must have seen for RCPT's message
sink_tx() {
    cat <<EOF
C: MAIL FROM:<sender@relay.test>
S: 250 2.1.0 Ok
C: RCPT TO:<$1>
S: 250 2.1.5 Ok
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: Received: from client.test (unknown [127.0.0.1])
C: \\tby relay.test (etrn-server) with ESMTP id QID
C: \\tfor <$1>; DATE
C: Subject: control test
C: Message-Id: <QID@relay.test>
C: 
C: hello
C: .
S: 250 2.0.0 Ok: queued as N
EOF
}
nfiles() { ls "$SPOOL/$1" 2>/dev/null | wc -l | tr -d ' '; }
ids() { ls "$SPOOL/$1" 2>/dev/null | sort; }

start_bg sink $PY "$E2E_TOP/tests/lib/scripted_smtpd.py" --listen "127.0.0.1:$sink" \
    --log "$T/sink.log" --accept-mail --no-starttls
sink_pid=$E2E_LAST_PID
check "server and sink listen" srv_start relay || e2e_abort
srv_pid=$SRV_PID
wait_port "$sink" 10

# before the socket exists nothing may slip through
check "control socket made" wait_for 10 test -S "$SOCK"
check_eq "socket mode 0660, owned by mail_owner" "$(stat -c '%a %U' "$SOCK")" "660 nobody"

send a@site.test
send b@site.test
send c@site.test
send d@other.test
check "four messages deferred without an attempt" wait_for 10 sh -c "[ \$(ls $SPOOL/deferred | wc -l) -eq 4 ]"
check "nothing reached the sink" grep_none 'C: MAIL' "$T/sink.log"
set -- $(for id in $(ids deferred); do grep -l 'a@site.test' "$SPOOL/deferred/$id" >/dev/null && echo "$id"; done)
ida=$1
set -- $(for id in $(ids deferred); do grep -q 'b@site.test' "$SPOOL/deferred/$id" && echo "$id"; done)
idb=$1
set -- $(for id in $(ids deferred); do grep -q 'c@site.test' "$SPOOL/deferred/$id" && echo "$id"; done)
idc=$1
set -- $(for id in $(ids deferred); do grep -q 'd@other.test' "$SPOOL/deferred/$id" && echo "$id"; done)
idd=$1
check "four IDs found" test -n "$ida" -a -n "$idb" -a -n "$idc" -a -n "$idd"

# status --json: valid JSON, "total" first, the flush index knows site.test's 3
"$Q" -c "$CONF" status --json >"$T/status.json"; rc=$?
check_eq "status --json: exit" "$rc" 0
check_eq "status --json: first key total, total, etrn waiting" "$($PY - "$T/status.json" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]), object_pairs_hook=lambda kv: kv)
keys = [k for k, _ in d]
m = dict(d)
etrn = {dict(e)["domain"]: dict(e)["waiting"] for e in m["etrn"]}
print(keys[0], m["total"], m["deferred"], etrn.get("site.test"), "other.test" in etrn)
PYEOF
)" "total 4 4 3 False"
"$Q" -c "$CONF" status >"$T/status.txt"; rc=$?
check_eq "status table: exit" "$rc" 0
check "status: the destinations table" grep -q '^DESTINATION  *WAITING RUNNING  OLDEST  *LAST ATTEMPT  *DEAD  LAST RESULT$' "$T/status.txt"
check "status: the ETRN table" grep -q '^ETRN DOMAIN  *WAITING  FLUSHING  LAST ETRN  *FROM$' "$T/status.txt"
check "status table: totals" grep -q '^total 4: incoming 0, active 0, deferred 4, hold 0' "$T/status.txt"
check "status table: site.test waits 3 for ETRN" grep -Eq '^site\.test +3  no  ' "$T/status.txt"
# the server sends the text etrn-queue prints (the CLI has no JSON parser): the
# socket's "status" body is the table byte for byte, "status json" the JSON
raw() {
    printf '%s\n' "$1" | $PY -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read())
sys.stdout.write(s.makefile().read())' "$SOCK"
}
raw status >"$T/raw-status.txt"
check_eq "socket status: last line OK status" "$(tail -n 1 "$T/raw-status.txt")" "OK status"
check "socket status: the body is what etrn-queue status printed" \
    sh -c "sed '\$d' '$T/raw-status.txt' | cmp -s - '$T/status.txt'"
check_eq "socket status json: one JSON line, then OK status" \
    "$(raw 'status json' | $PY -c 'import json,sys; l=sys.stdin.read().split("\n"); print(json.loads(l[0])["total"], l[1], len(l))')" \
    "4 OK status 3"
check_eq "socket status with another argument: BADREQ" "$(raw 'status xml')" \
    "BADREQ status: the only argument is json"

# hold: -p marks the message with '!' as Postfix's mailq does; release takes it back
out=$("$Q" -c "$CONF" -h "$ida" 2>&1); rc=$?
check_eq "-h: exit" "$rc" 0
check_eq "-h: message" "$out" "$ida: placed on hold"
check "-h: file in hold/" test -f "$SPOOL/hold/$ida"
check "-p shows $ida!" sh -c "'$Q' -c '$CONF' -p | grep -q '^$ida! '"
etrn_waiting() {
    "$Q" -c "$CONF" status --json | $PY -c 'import json,sys; print({e["domain"]: e["waiting"] for e in json.load(sys.stdin)["etrn"]}.get("site.test"))'
}
check_eq "held mail is not counted as waiting for a flush" "$(etrn_waiting)" 2
out=$("$Q" -c "$CONF" -h FFFFFFFFFF 2>&1); rc=$?
check_eq "-h unknown ID: exit 69" "$rc" 69
check_eq "-h unknown ID: message" "$out" "etrn-queue: FFFFFFFFFF: no such message"
out=$("$Q" -c "$CONF" -H "$ida" 2>&1); rc=$?
check_eq "-H: exit" "$rc" 0
check "-H: back in deferred (etrn-only waits again)" wait_for 10 test -f "$SPOOL/deferred/$ida"
check "-p shows $ida without '!'" sh -c "'$Q' -c '$CONF' -p | grep -q '^$ida  *[0-9]'"
check_eq "released mail waits for a flush again" "$(etrn_waiting)" 3
check "released mail did not go out" grep_none 'C: MAIL' "$T/sink.log"

# delete one
out=$("$Q" -c "$CONF" -d "$idb" 2>&1); rc=$?
check_eq "-d ID: exit" "$rc" 0
check "-d ID: file gone" sh -c "[ -d '$SPOOL/deferred' ] && ! ls '$SPOOL'/*/$idb 2>/dev/null | grep -q ."
"$Q" -c "$CONF" -p >"$T/mailq-d" 2>&1; rc=$?
check_eq "-d ID: -p exit" "$rc" 0
check "-d ID: not listed" grep_none "^$idb" "$T/mailq-d"
out=$("$Q" -c "$CONF" -d "$idb" 2>&1); rc=$?
check_eq "-d the same ID again: exit 69" "$rc" 69
check_eq "deleted mail is not counted" "$(etrn_waiting)" 2

# bad arguments never reach the server
lines_before=$(grep -c 'control:' "$T/relay/maillog")
check "control requests are logged (the count below means something)" test "${lines_before:-0}" -gt 0
for bad in '../x' 'abc' '0123456789ABCDEF0123456789ABCDEF0' 'A B' ''; do
    "$Q" -c "$CONF" -i "$bad" >/dev/null 2>&1; rc=$?
    check_eq "-i '$bad' refused: exit 64" "$rc" 64
done
"$Q" -c "$CONF" -s '../etc' >/dev/null 2>&1; rc=$?
check_eq "-s ../etc refused: exit 64" "$rc" 64
"$Q" -c "$CONF" -d 'all' >/dev/null 2>&1; rc=$?
check_eq "-d all (lower case) refused: exit 64" "$rc" 64
check_eq "no control request logged for them" "$(grep -c 'control:' "$T/relay/maillog")" "$lines_before"

# a raw client sending junk to the socket gets BADREQ, the server lives on
check_eq "raw junk request: BADREQ" "$(printf 'delete ../../etc/passwd\n' | $PY -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.stdin.buffer.read())
print(s.makefile().read().strip())' "$SOCK")" "BADREQ not a queue ID"

# flush a site: only site.test's mail goes, to the site's receiver
out=$("$Q" -c "$CONF" -s other.test 2>&1); rc=$?
check_eq "-s not in fast_flush_domains: exit 69" "$rc" 69
check_eq "-s not in fast_flush_domains: message" "$out" "etrn-queue: other.test: not in fast_flush_domains"
out=$("$Q" -c "$CONF" -s site.test 2>&1); rc=$?
check_eq "-s site.test: exit" "$rc" 0
check_eq "-s site.test: count" "$out" "2 pending messages for node site.test started"
check "-s: both messages at the sink" wait_for 15 sh -c "[ \$(grep -c 'C: RCPT TO:<[ac]@site.test>' $T/sink.log) -eq 2 ]"
for r in a@site.test c@site.test; do
    check_eq "-s: the sink's transaction for $r, in order" \
        "$(transaction "$T/sink.log" "$r")" "$(sink_tx "$r")"
done
check "-s: other.test not flushed" test -f "$SPOOL/deferred/$idd"
check "-s: delivered messages left the queue" wait_for 10 sh -c "[ \$(ls $SPOOL/deferred | wc -l) -eq 1 ]"
out=$("$Q" -c "$CONF" -s site.test 2>&1); rc=$?
check_eq "-s again: nothing waiting" "$out" "no messages waiting for node site.test"
check "status records the last ETRN from etrn-queue (root)" sh -c \
    "'$Q' -c '$CONF' status | grep -Eq '^site\.test .* etrn-queue \(root\)$'"

# flush one message (other.test's next hop is closed: it is tried now and deferred again)
out=$("$Q" -c "$CONF" -i "$idd" 2>&1); rc=$?
check_eq "-i ID: exit" "$rc" 0
check "-i ID: an attempt is logged" wait_for 10 grep -q "$idd: to=<d@other.test>.*status=deferred" "$T/relay/maillog"
out=$("$Q" -c "$CONF" -i "$idb" 2>&1); rc=$?
check_eq "-i deleted ID: exit 69" "$rc" 69

# who may use it: the mail owner yes, another user no
check "mail owner (nobody) may ask for status" \
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$Q" -c "$CONF" status --json
out=$(setpriv --reuid=daemon --regid=daemon --clear-groups "$Q" -c "$CONF" status 2>&1); rc=$?
check_eq "other user: exit 77" "$rc" 77
check "other user: says permission denied" sh -c "echo '$out' | grep -q 'Permission denied'"
# past the directory permissions the server itself refuses (SO_PEERCRED)
chmod 0711 "$SPOOL" "$SPOOL/public"
chmod 0666 "$SOCK"
out=$(setpriv --reuid=daemon --regid=daemon --clear-groups "$Q" -c "$CONF" -d ALL 2>&1); rc=$?
chmod 0700 "$SPOOL" "$SPOOL/public"
chmod 0660 "$SOCK"
check_eq "other user past the file modes: exit 77" "$rc" 77
check_eq "other user past the file modes: refused by the server" "$out" \
    "etrn-queue: permission denied: only root and the mail owner may use etrn-queue"
check "refusal logged" grep -q 'control: refused uid 1 ' "$T/relay/maillog"
check "refused delete did nothing" test -f "$SPOOL/deferred/$idd"

# delete ALL
send e@site.test
check "a new message waits" wait_for 10 sh -c "[ \$(ls $SPOOL/deferred | wc -l) -eq 2 ]"
out=$("$Q" -c "$CONF" -d ALL 2>&1); rc=$?
check_eq "-d ALL: exit" "$rc" 0
check "-d ALL: queue empty" wait_for 10 sh -c "[ \"\$('$Q' -c '$CONF' -p)\" = 'Mail queue is empty' ]"
check_eq "status after -d ALL: total 0" "$("$Q" -c "$CONF" status --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["total"])')" 0

# server stopped: 75 with a clear message; -p still reads the queue
send f@site.test
check "one more waits" wait_for 10 sh -c "[ \$(ls $SPOOL/deferred | wc -l) -eq 1 ]"
stop_pid "$srv_pid"
out=$("$Q" -c "$CONF" status 2>&1); rc=$?
check_eq "server stopped: exit 75" "$rc" 75
check_eq "server stopped: message" "$out" \
    "etrn-queue: cannot connect to $SOCK: Connection refused (is etrn-server running?)"
out=$("$Q" -c "$CONF" -f 2>&1); rc=$?
check_eq "server stopped: -f exit 75" "$rc" 75
"$Q" -c "$CONF" -p >"$T/p.out"; rc=$?
check_eq "server stopped: -p exit 0" "$rc" 0
check "server stopped: -p lists the waiting message" grep -q 'f@site.test' "$T/p.out"

# restart on the stale socket: the server replaces it and -f works
check "restart: listens" srv_start relay || e2e_abort
check "restart: control answers" wait_for 10 "$Q" -c "$CONF" status --json
# ETRN through smtpd reaches the flush service; the flush log written before the
# restart still knows f@site.test's message
send g@site.test
check "g waits" wait_for 10 sh -c "[ \$(ls $SPOOL/deferred | wc -l) -eq 2 ]"
check_eq "ETRN site.test: 253 with both (one from before the restart)" \
    "$(smtp_client -e client.test "$port" 'ETRN site.test' 'QUIT')" \
    "253 OK, 2 pending messages for node site.test started
221 2.0.0 Bye"
check "ETRN: both reached the sink" wait_for 15 sh -c \
    "grep -q 'C: RCPT TO:<f@site.test>' $T/sink.log && grep -q 'C: RCPT TO:<g@site.test>' $T/sink.log"
for r in f@site.test g@site.test; do
    check_eq "ETRN: the sink's transaction for $r, in order" \
        "$(transaction "$T/sink.log" "$r")" "$(sink_tx "$r")"
done
send h@site.test
check "h waits" wait_for 10 sh -c "[ \$(grep -l 'h@site.test' $SPOOL/deferred/* 2>/dev/null | wc -l) -eq 1 ]"
out=$("$Q" -c "$CONF" -f 2>&1); rc=$?
check_eq "-f: exit" "$rc" 0
check "-f: the waiting message reached the sink" wait_for 15 grep -q 'C: RCPT TO:<h@site.test>' "$T/sink.log"
check_eq "-f: the sink's transaction for h@site.test, in order" \
    "$(transaction "$T/sink.log" h@site.test)" "$(sink_tx h@site.test)"
srv_stop relay
stop_pid "$sink_pid"

e2e_done
