#!/bin/sh
# server_peer_text.sh - what a peer sends is bounded and masked before an
# operator sees it (issue 11, item 8).
#
# A client says EHLO with ESC, BEL, DEL and UTF-8 bytes, then sends a message
# for two recipients at a remote site (scripted_smtpd.py) and one recipient
# it may not relay to. The remote site answers one RCPT with ESC sequences
# and non-ASCII bytes, the other with a 450 reply of 100 lines (~9 KB).
# Asserted:
#   - the Received: header of the queued message and the whole mail log hold
#     only printable ASCII; the HELO name appears as evil?[2J????.example in
#     both (Postfix's printable(): every other byte becomes '?');
#   - the remote reply reaches the log, `etrn-queue status --json` and
#     `etrn-queue -p` masked; no output of etrn-queue (the status table too)
#     holds a raw escape character or any byte outside printable ASCII;
#   - the 9 KB reply is cut at 4096 bytes and the log says so; the recipient
#     is still deferred with the reply's code;
#   - etrn-queue -p masks raw bytes in a queue file written before this;
#   - a client that disconnects after STARTTLS is logged as "lost connection
#     after STARTTLS" (it was STARTTL).
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

SCRIPTED=$E2E_TOP/tests/lib/scripted_smtpd.py

# --- the remote site ------------------------------------------------------------
big='450-4.2.0 first line of a long reply'
i=1
while [ $i -le 98 ]; do
    big="$big\\n450-4.2.0 line $i $(printf '%080d' 0 | tr 0 x)"
    i=$((i + 1))
done
big="$big\\n450 4.2.0 last line of a long reply"
start_bg remote "$PY" "$SCRIPTED" --listen 127.0.0.1:0 --log "$T/remote.log" \
    --ready-file "$T/remote.ready" --accept-mail --reply-escapes \
    --rcpt-reply 'esc@remote.test=450 4.7.1 \x1b[31mgo away\x1b[0m caf\xc3\xa9 \x07bell' \
    --rcpt-reply "big@remote.test=$big"
if ! wait_for 10 test -s "$T/remote.ready"; then
    echo "FAIL scripted_smtpd did not start"; cat "$T/remote.out"; exit 1
fi
rport=$(sed 's/.*://' "$T/remote.ready")

# --- etrn-server ------------------------------------------------------------------
port=$(free_port)
srv_conf srv "127.0.0.1:$port" \
    'mynetworks = 192.0.2.0/24' \
    'relay_domains = remote.test' \
    'minimal_backoff_time = 1h' 'maximal_backoff_time = 2h' \
    '[transport]' "remote.test = smtp:[127.0.0.1]:$rport"
srv_start srv || { e2e_done; exit 1; }


smtp_client -g -f "$port" \
    'EHLO evil\x1b[2J\x07\x7f\xc3\xa9.example' \
    'MAIL FROM:<sender@origin.test>' \
    'RCPT TO:<esc@remote.test>' 'RCPT TO:<big@remote.test>' 'RCPT TO:<x@outside.test>' \
    'DATA' 'Subject: peer text' '' 'body' '.' 'QUIT' >"$T/client.out" 2>&1
check "the message was accepted" grep -q '^250 .*queued as' "$T/client.out"
check "relaying to outside.test refused" grep -q '^554 5.7.1 <x@outside.test>' "$T/client.out"

deferred_both() {
    [ "$(srv_log_count srv 'to=<(esc|big)@remote.test>.*status=deferred')" -ge 2 ]
}
check "both remote recipients deferred" wait_for 30 deferred_both

# only_printable FILE... - every byte printable ASCII, TAB in header folds, or a line end
cat >"$T/printable.py" <<'PYEOF'
import sys
bad = 0
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    if not data:
        print("%s: empty" % path)
        bad = 1
    for n, line in enumerate(data.split(b"\n"), 1):
        line = line.rstrip(b"\r")
        if line.startswith(b"\t"):
            line = line[1:]
        if any(b < 0x20 or b > 0x7e for b in line):
            print("%s:%d: %r" % (path, n, line))
            bad = 1
sys.exit(bad)
PYEOF
only_printable() {
    "$PY" "$T/printable.py" "$@"
}

# --- the queued message's Received: header ---------------------------------------------
qfile=$(find "$T/srv/queue/deferred" "$T/srv/queue/incoming" "$T/srv/queue/active" -type f | head -n 1)
check "a queued message to read the headers from" test -n "$qfile"
"$PY" - "${qfile:-/nonexistent}" >"$T/headers" <<'PYEOF'
import sys
data = open(sys.argv[1], "rb").read()
content = data.split(b"\ndata\n", 1)[1]
sys.stdout.buffer.write(content.split(b"\r\n\r\n", 1)[0] + b"\r\n")
PYEOF
check "the queued message's header starts with its Received: line" \
    sh -c 'head -n 1 "$1" | grep -q "^Received: from "' sh "$T/headers"
check "Received: holds only printable ASCII" only_printable "$T/headers"
check "Received: names the HELO with '?' for each masked byte" \
    grep -qF 'Received: from evil?[2J????.example (unknown [127.0.0.1])' "$T/headers"

# --- the mail log ------------------------------------------------------------------------
check "the mail log holds only printable ASCII" only_printable "$T/srv/maillog"
check "the log names the HELO masked (helo=<evil?[2J????.example>)" \
    grep -qF 'helo=<evil?[2J????.example>' "$T/srv/maillog"
check "the log has the remote reply masked" \
    grep -qF 'to=<esc@remote.test>' "$T/srv/maillog"
check "the log has the remote reply text with '?' for ESC, BEL and UTF-8" \
    grep -qF '450 4.7.1 ?[31mgo away?[0m caf?? ?bell' "$T/srv/maillog"

# --- 4 KB cap on a remote reply -------------------------------------------------------
check "the over-long reply is logged as cut at 4096 bytes" \
    grep -qE 'reply from .*127\.0\.0\.1.* truncated to 4096 bytes' "$T/srv/maillog"
check "big@remote.test deferred with the reply's code" \
    grep -qE 'to=<big@remote.test>.*dsn=4\.2\.0, status=deferred \(host .* said: 450' "$T/srv/maillog"

# --- etrn-queue ---------------------------------------------------------------------------
srv_queue srv status >"$T/status" 2>&1
srv_queue srv status --json >"$T/status.json" 2>&1
srv_queue srv -p >"$T/mailq" 2>&1
check "etrn-queue status --json has the remote reply masked" \
    grep -qF '450 4.7.1 ?[31mgo away?[0m caf?? ?bell' "$T/status.json"
check "etrn-queue status has the destination's result" \
    grep -qE '^smtp:\[127\.0\.0\.1\]:[0-9]+ .* deferred \(host ' "$T/status"
check "etrn-queue status prints only printable ASCII" only_printable "$T/status"
check "etrn-queue status --json prints only printable ASCII" only_printable "$T/status.json"
check "etrn-queue -p shows the reason masked" \
    grep -qF '450 4.7.1 ?[31mgo away?[0m caf?? ?bell' "$T/mailq"
check "etrn-queue -p prints only printable ASCII" only_printable "$T/mailq"

# --- "lost connection after STARTTLS" -------------------------------------------------------
smtp_client "$port" 'EHLO client.test' 'STARTTLS' >"$T/starttls.out"
lost_starttls() {
    grep -q 'lost connection after STARTTLS from unknown\[127.0.0.1\]' "$T/srv/maillog"
}
check "a client gone after STARTTLS: lost connection after STARTTLS" wait_for 10 lost_starttls

# --- etrn-queue -p on a queue file written with raw bytes (an older version) ----------------
srv_stop srv
"$PY" - "$qfile" <<'PYEOF'
import sys
path = sys.argv[1]
data = open(path, "rb").read()
open(path, "wb").write(data.replace(b"?[31mgo away?[0m caf??", b"\x1b[31mgo away\x1b[0m caf\xc3\xa9", 1))
PYEOF
check "the queue file now holds a raw ESC" grep -q "$(printf '\033')" "$qfile"
srv_queue srv -p >"$T/mailq.raw" 2>&1
check "etrn-queue -p masks it: ?[31mgo away?[0m caf??" \
    grep -qF '450 4.7.1 ?[31mgo away?[0m caf?? ?bell' "$T/mailq.raw"
check "etrn-queue -p prints only printable ASCII" only_printable "$T/mailq.raw"

e2e_done
