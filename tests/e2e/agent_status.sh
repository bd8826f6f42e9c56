#!/bin/sh
# agent_status.sh - etrn-agent --status prints the status file in words (last
# reply per provider host and domain, its age, the pending count of a 253,
# the next attempt; an IPv6 host as [addr]:port), and --once at a terminal
# prints one summary line per host on stderr whatever "log" says (a pty from
# script(1)); without a terminal it prints none.
. "$(dirname "$0")/../lib/e2e.sh"
e2e_init

AGENT=$BIN_DIR/etrn-agent
SMTPD=$E2E_TOP/tests/lib/scripted_smtpd.py

start_bg isp "$PY" "$SMTPD" --listen 127.0.0.1:0 --log "$T/isp.log" --ready-file "$T/isp.ready" \
    --no-starttls --etrn-reply 'a.test=253 OK, 3 pending messages for node a.test started' \
    --etrn-reply 'b.test=459 <b.test>: service unavailable'
start_bg six "$PY" "$SMTPD" --listen '[::1]:0' --log "$T/six.log" --ready-file "$T/six.ready" \
    --no-starttls --default-etrn-reply '251 OK, no messages waiting for node c.test'
wait_for 10 test -s "$T/isp.ready" && wait_for 10 test -s "$T/six.ready"
check "test setup: two scripted providers (127.0.0.1, ::1)" test -s "$T/six.ready"
port=$(sed 's/.*://' "$T/isp.ready")
port6=$(sed 's/.*://' "$T/six.ready")

umask 077
cat >"$T/agent.ini" <<EOF
[agent]
helo_name = site.test
log = $T/agent.log
status_file = $T/status.json
[provider isp]
hosts = 127.0.0.1:$port
domains = a.test b.test
tls = none
[provider six]
hosts = [::1]:$port6
domains = c.test
tls = none
EOF

out=$("$AGENT" -c "$T/agent.ini" --status 2>&1); rc=$?
check_eq "--status before any round: exit 66 (EX_NOINPUT)" "$rc" 66
check_eq "--status before any round: says why" "$out" \
    "etrn-agent: $T/status.json: No such file or directory (no round has run yet)"

"$AGENT" -c "$T/agent.ini" --once 2>"$T/once.err"; rc=$?
check_eq "--once: 459 for b.test: exit 69" "$rc" 69
check_eq "--once without a terminal: nothing on stderr" "$(cat "$T/once.err")" ""
check "log: the IPv6 host in brackets" grep -qF "provider six host [::1]:$port6 domain c.test: 251" \
    "$T/agent.log"

# ages are 0s or 1s on a loaded machine: show them as Ns
"$AGENT" -c "$T/agent.ini" --status >"$T/status.out" 2>&1; rc=$?
check_eq "--status: exit 0" "$rc" 0
check_eq "--status: the file in words" "$(sed 's/ [0-9]s ago/ Ns ago/' "$T/status.out")" \
"$T/status.json: updated Ns ago, 2 host(s)
provider isp host 127.0.0.1:$port domain a.test: 253 pending messages started, Ns ago; 3 pending; next attempt: at the next round (link up, interval, hook or timer)
provider isp host 127.0.0.1:$port domain b.test: 459 node not allowed, Ns ago; next attempt: at the next round (link up, interval, hook or timer)
provider six host [::1]:$port6 domain c.test: 251 no messages waiting, Ns ago; next attempt: at the next round (link up, interval, hook or timer)"

# --once at a terminal: script(1) gives it a pty; log stays a file
if command -v script >/dev/null; then
    script -qec "'$AGENT' -c '$T/agent.ini' --once" /dev/null >"$T/tty.out" 2>&1 </dev/null
    tr -d '\r' <"$T/tty.out" >"$T/tty.txt"
    check_eq "--once at a terminal: one line per host" "$(cat "$T/tty.txt")" \
"etrn-agent: provider isp host 127.0.0.1:$port: permanent: a.test 253 pending messages started (3 pending), b.test 459 node not allowed
etrn-agent: provider six host [::1]:$port6: ok: c.test 251 no messages waiting"
    sed -i "s|^log = .*|log = syslog|" "$T/agent.ini"
    script -qec "'$AGENT' -c '$T/agent.ini' --once" /dev/null >"$T/tty2.out" 2>&1 </dev/null
    check "--once at a terminal with log = syslog: the summary all the same" \
        grep -qF "etrn-agent: provider six host [::1]:$port6: ok: c.test 251" "$T/tty2.out"
else
    skip "script(1) missing: no pty for the --once summary"
fi

# the daemon's plan (next, next_why) as it writes it, read back
now=$(date +%s)
stamp() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
cat >"$T/planned.json" <<EOF
{
  "updated": "$(stamp $((now - 125)))",
  "hosts": [
    {"provider": "isp", "host": "relay.isp.test", "port": 25, "time": "$(stamp $((now - 125)))", "result": "temporary", "error": "connect failed: Connection refused", "next": "$(stamp $((now + 3000)))", "next_why": "retry after a temporary failure",
     "domains": [
       {"domain": "a.test", "code": 0, "text": "", "meaning": "not sent", "result": "temporary", "time": "$(stamp $((now - 125)))"}]},
    {"provider": "isp", "host": "2001:db8::9", "port": 2525, "time": "$(stamp $((now - 7200)))", "result": "ok", "error": "", "next": "$(stamp $((now + 30)))", "next_why": "mail pending, ETRN again until 251",
     "domains": [
       {"domain": "a.test", "code": 253, "text": "OK, 7 pending messages for node a.test started", "meaning": "pending messages started", "result": "ok", "pending": 7, "time": "$(stamp $((now - 7200)))"}]}
  ]
}
EOF
sed -i "s|^status_file = .*|status_file = $T/planned.json|" "$T/agent.ini"
"$AGENT" -c "$T/agent.ini" --status >"$T/planned.out" 2>&1
check_eq "--status: the daemon's next attempts, ages in words" \
    "$(sed -E 's/(updated|failure) 2m0[5-7]s ago/\1 2m05s ago/; s/in (49m5[0-9]s|50m00s)/in 50m00s/; s/in (2[0-9]|30)s/in 30s/' "$T/planned.out")" \
"$T/planned.json: updated 2m05s ago, 2 host(s)
provider isp host relay.isp.test:25: temporary failure 2m05s ago: connect failed: Connection refused; next attempt in 50m00s (retry after a temporary failure)
provider isp host [2001:db8::9]:2525 domain a.test: 253 pending messages started, 2h00m ago; 7 pending; next attempt in 30s (mail pending, ETRN again until 251)"

printf 'not json\n' >"$T/planned.json"
out=$("$AGENT" -c "$T/agent.ini" --status 2>&1); rc=$?
check_eq "--status: a file that is not a status file: 66 and why" "$rc:$out" \
    "66:etrn-agent: $T/planned.json: not an etrn-agent status file"

e2e_done
