#!/bin/sh
# demo - etrn-agent against a scripted provider on loopback.
#
# A scripted SMTP server (tests/lib/scripted_smtpd.py) plays the provider:
# it has mail waiting for site.example (253) and none for
# branch.site.example (251). The agent runs one round (--once), and the
# dialogue the provider saw is shown. The paired demo with etrn-server
# replaces the scripted provider once server-lite delivers mail.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BIN_DIR=${BIN_DIR:-$top/bin}
PY=/usr/bin/python3
T=$(mktemp -d /tmp/etrnkit-demo.XXXXXX)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
echo "demo: starting a scripted provider on 127.0.0.1:$port"
$PY "$top/tests/lib/scripted_smtpd.py" --listen "127.0.0.1:$port" --log "$T/provider.log" \
    --ready-file "$T/ready" --no-starttls \
    --etrn-reply 'site.example=253 OK, 3 pending messages for node site.example started' \
    --etrn-reply '@branch.site.example=251 OK, no messages waiting for node branch.site.example' \
    >"$T/provider.out" 2>&1 &
server_pid=$!
i=0
while [ ! -f "$T/ready" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
[ -f "$T/ready" ] || { echo "demo: the scripted provider did not start"; cat "$T/provider.out"; exit 1; }

cat >"$T/agent.ini" <<INI
[agent]
helo_name = mail.site.example
log = stderr
status_file = $T/status.json
[provider isp]
hosts = 127.0.0.1:$port
domains = site.example @branch.site.example
tls = none
timeout = 10s
INI
echo "demo: the link is up; running: etrn-agent -c agent.ini --once"
"$BIN_DIR/etrn-agent" -c "$T/agent.ini" --once
status=$?
echo "demo: etrn-agent exited with status $status"
echo "demo: what the provider saw:"
sed -n 's/^[0-9.]* \([CS]\): /    \1: /p' "$T/provider.log"
total=2
accepted=$(grep -c '"domain": .*"result": "ok"' "$T/status.json" 2>/dev/null)
echo "demo: $accepted of $total domains accepted"
[ "$status" -eq 0 ] && [ "$accepted" -eq "$total" ]
