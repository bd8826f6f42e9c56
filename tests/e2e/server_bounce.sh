#!/bin/sh
# server_bounce.sh - bounces: one transaction with 250, 450 and 550 replies per
# recipient (one delivered, one deferred, one bounced with a DSN); a message
# past maximal_queue_lifetime returns to its sender as an RFC 3464 DSN that
# Python's email package parses (multipart/report, Final-Recipient, Action,
# Status, Diagnostic-Code, the original headers); null-sender mail past
# bounce_queue_lifetime is dropped without a DSN.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

port=$(free_port)
sinkport=$(free_port)
closed=$(free_port)
SPOOL="$T/relay/queue"
LOG="$T/relay/maillog"

# sink.py PORT DIR - an ESMTP sink; RCPT replies by local part: later -> 450,
# bad -> 550, anything else 250. Each message: DIR/msg.N with X-Mail-From and
# X-Rcpt-To lines, then the content.
cat >"$T/sink.py" <<'PYEOF'
import os, socketserver, sys
port, out = int(sys.argv[1]), sys.argv[2]
count = [0]
class H(socketserver.StreamRequestHandler):
    timeout = 30
    def reply(self, text):
        self.wfile.write((text + "\r\n").encode())
    def handle(self):
        self.reply("220 mixsink ESMTP")
        mail, rcpts = None, []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line.decode("latin-1").rstrip("\r\n")
            up = cmd.upper()
            if up.startswith("EHLO") or up.startswith("HELO"):
                self.reply("250-mixsink\r\n250 8BITMIME")
            elif up.startswith("MAIL FROM:"):
                mail, rcpts = cmd[10:].strip().split(" ")[0], []
                self.reply("250 2.1.0 Ok")
            elif up.startswith("RCPT TO:"):
                addr = cmd[8:].strip().strip("<>")
                local = addr.split("@")[0]
                if local == "later":
                    self.reply("450 4.2.0 <%s>: mailbox busy, try later" % addr)
                elif local == "bad":
                    self.reply("550 5.1.1 <%s>: no such user" % addr)
                else:
                    rcpts.append(addr)
                    self.reply("250 2.1.5 Ok")
            elif up == "DATA":
                if not rcpts:
                    self.reply("554 5.5.1 no valid recipients")
                    continue
                self.reply("354 go ahead")
                data = []
                while True:
                    l = self.rfile.readline()
                    if not l or l in (b".\r\n", b".\n"):
                        break
                    if l.startswith(b".."):
                        l = l[1:]
                    data.append(l)
                count[0] += 1
                name = os.path.join(out, "msg.%d" % count[0])
                with open(name + ".tmp", "wb") as f:
                    f.write(("X-Mail-From: %s\r\n" % mail).encode())
                    for r in rcpts:
                        f.write(("X-Rcpt-To: %s\r\n" % r).encode())
                    f.write(b"".join(data))
                os.rename(name + ".tmp", name)
                self.reply("250 2.0.0 Ok: queued as S%d" % count[0])
            elif up in ("RSET", "NOOP"):
                self.reply("250 2.0.0 Ok")
            elif up == "QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                self.reply("502 5.5.2 unknown command")
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("127.0.0.1", port), H).serve_forever()
PYEOF
mkdir "$T/sink"
start_bg sink $PY "$T/sink.py" "$sinkport" "$T/sink"
check "sink listens" wait_port "$sinkport" 10 || e2e_abort

srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" "mynetworks = 127.0.0.0/8" \
    "relay_domains = mixed.test dead.test src.test" "relayhost = [127.0.0.1]:$closed" \
    "minimal_backoff_time = 2s" "maximal_backoff_time = 4s" "queue_run_delay = 60s" \
    "maximal_queue_lifetime = 5s" "bounce_queue_lifetime = 5s" "[transport]" \
    "mixed.test = smtp:[127.0.0.1]:$sinkport" "src.test = smtp:[127.0.0.1]:$sinkport" \
    "dead.test = smtp:[127.0.0.1]:$closed"
check "etrn-server listens" srv_start relay || { cat "$T/relay.out"; e2e_done; exit 1; }

# --- 250 / 450 / 550 in one transaction --------------------------------------------
printf 'Subject: mixed replies\r\nMessage-Id: <mixed@src.test>\r\n\r\nhello\r\n' >"$T/m1"
swaks --silent 2 --server "127.0.0.1:$port" --from alice@src.test \
    --to ok@mixed.test,later@mixed.test,bad@mixed.test --data "$T/m1" >/dev/null 2>&1
check "mixed: accepted" test $? -eq 0
check "mixed: bounced line" wait_for 10 grep -q "to=<bad@mixed.test>, relay=127.0.0.1\[127.0.0.1\]:$sinkport, .*dsn=5.1.1, status=bounced (host 127.0.0.1\[127.0.0.1\] said: 550 5.1.1" "$LOG"
check "mixed: sent line" grep -q "to=<ok@mixed.test>, relay=127.0.0.1\[127.0.0.1\]:$sinkport, .*dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as" "$LOG"
check "mixed: deferred line" grep -q "to=<later@mixed.test>, relay=127.0.0.1\[127.0.0.1\]:$sinkport, .*dsn=4.2.0, status=deferred (host 127.0.0.1\[127.0.0.1\] said: 450 4.2.0" "$LOG"
mid=$(sed -n 's/.*: \([0-9A-F]*\): to=<bad@mixed.test>.*/\1/p' "$LOG" | head -n 1)
check "mixed: a DSN was queued for the 550" wait_for 10 grep -q "$mid: sender non-delivery notification: " "$LOG"
check "mixed: the sink got the DSN for alice" wait_for 10 sh -c "grep -l '^X-Rcpt-To: alice@src.test' '$T'/sink/msg.* | xargs grep -l 'Final-Recipient: rfc822; bad@mixed.test'"
check_eq "mixed: the sink got ok@ once" "$(cat "$T"/sink/msg.* | grep -c '^X-Rcpt-To: ok@mixed.test')" 1
# the deferred recipient stays pending; the delivered one is not sent again
check "mixed: later@ retried" wait_for 10 sh -c "[ \$(grep -c 'to=<later@mixed.test>.*status=deferred' '$LOG') -ge 2 ]"
check_eq "mixed: ok@ never re-sent" "$(grep -c 'to=<ok@mixed.test>' "$LOG")" 1

# --- lifetime expiry: a DSN that parses -----------------------------------------------
printf 'Subject: will expire\r\nMessage-Id: <expire@src.test>\r\nX-Test: original-header\r\n\r\nbody\r\n' >"$T/m2"
swaks --silent 2 --server "127.0.0.1:$port" --from bob@src.test --to gone@dead.test --data "$T/m2" >/dev/null 2>&1
check "expiry: accepted" test $? -eq 0
eid=$(sed -n 's/.*: \([0-9A-F]*\): message-id=<expire@src.test>.*/\1/p' "$LOG" | head -n 1)
check "expiry: 'status=expired, returned to sender'" wait_for 20 grep -q "$eid: from=<bob@src.test>, status=expired, returned to sender" "$LOG"
check "expiry: the sink got a DSN for bob" wait_for 10 sh -c "grep -l '^X-Rcpt-To: bob@src.test' '$T'/sink/msg.* >/dev/null 2>&1"
dsn=$(grep -l '^X-Rcpt-To: bob@src.test' "$T"/sink/msg.* 2>/dev/null | head -n 1)
check_eq "expiry: DSN envelope sender is <>" "$(sed -n 's/^X-Mail-From: //p' "$dsn" | tr -d '\r')" "<>"
cat >"$T/parse.py" <<'PYEOF'
import email, sys
from email import policy
raw = open(sys.argv[1], "rb").read()
msg = email.message_from_bytes(raw, policy=policy.compat32)
ok = []
def need(cond, what):
    ok.append(cond)
    print(("ok  " if cond else "BAD ") + what)
need(msg.get_content_type() == "multipart/report", "multipart/report")
need(msg.get_param("report-type") == "delivery-status", "report-type=delivery-status")
need(msg["From"].startswith("MAILER-DAEMON@relay.test"), "From MAILER-DAEMON@relay.test")
parts = msg.get_payload()
types = [p.get_content_type() for p in parts]
need(types == ["text/plain", "message/delivery-status", "text/rfc822-headers"], "parts " + " ".join(types))
ds = parts[1].get_payload()
need(ds[0]["Reporting-MTA"] == "dns; relay.test", "Reporting-MTA")
need(ds[0]["Arrival-Date"] is not None, "Arrival-Date")
r = ds[1]
need(r["Final-Recipient"] == "rfc822; gone@dead.test", "Final-Recipient")
need(r["Action"] == "failed", "Action: failed")
need(r["Status"] is not None and r["Status"].startswith("5."), "Status 5.x.y: %s" % r["Status"])
need(r["Diagnostic-Code"] is not None and r["Diagnostic-Code"].startswith("smtp; connect to 127.0.0.1"), "Diagnostic-Code")
hdrs = parts[2].get_payload()
need("X-Test: original-header" in hdrs and "Subject: will expire" in hdrs, "original headers")
sys.exit(0 if all(ok) else 1)
PYEOF
$PY "$T/parse.py" "$dsn" >"$T/parse.out" 2>&1
rc=$?
sed 's/^/     /' "$T/parse.out"
check "expiry: Python's email package parses the DSN with every field" test "$rc" -eq 0
check "expiry: the expired message is removed" wait_for 5 grep -q "$eid: removed" "$LOG"

# --- null sender: expires silently ------------------------------------------------------
printf 'Subject: a bounce itself\r\n\r\nbody\r\n' >"$T/m3"
swaks --silent 2 --server "127.0.0.1:$port" --from '<>' --to nobody@dead.test --data "$T/m3" >/dev/null 2>&1
check "null sender: accepted" test $? -eq 0
check "null sender: expired and removed" wait_for 20 sh -c "grep -q ': to=<nobody@dead.test>' '$LOG' && grep -q \"\$(sed -n 's/.*: \([0-9A-F]*\): to=<nobody@dead.test>.*/\1/p' '$LOG' | head -n 1): removed\" '$LOG'"
nid=$(sed -n 's/.*: \([0-9A-F]*\): to=<nobody@dead.test>.*/\1/p' "$LOG" | head -n 1)
check "null sender: logged as discarded" grep -q "$nid: from=<>, status=expired, discarded" "$LOG"
check "null sender: no DSN queued" grep_none "$nid: sender non-delivery notification" "$LOG"
check_eq "null sender: its sender is <>" "$(grep -c "$nid: from=<>, size=" "$LOG")" 1
# alice: one DSN for the 550, one when later@ (450 every time) expired; bob: one
check_eq "sink: what the sink got in all" "$(grep -h '^X-Rcpt-To: ' "$T"/sink/msg.* | tr -d '\r' | sort | paste -sd' ' -)" \
    "X-Rcpt-To: alice@src.test X-Rcpt-To: alice@src.test X-Rcpt-To: bob@src.test X-Rcpt-To: ok@mixed.test"
check "mixed: later@ expired into alice's second DSN" sh -c "grep -l '^X-Rcpt-To: alice@src.test' '$T'/sink/msg.* | xargs grep -l 'Final-Recipient: rfc822; later@mixed.test' | xargs grep -q 'Diagnostic-Code: smtp; host 127.0.0.1\[127.0.0.1\] said: 450 4.2.0'"

stop_pid "$SRV_PID"
check "no error lines in the log" grep_none 'error:\|panic:\|fatal:' "$LOG"
e2e_done
