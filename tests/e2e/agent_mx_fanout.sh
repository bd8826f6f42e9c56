#!/bin/sh
# agent_mx_fanout - hosts = mx:site.test: ETRN goes to every provider MX.
#
# dnsmasq on a loopback port serves three MX records for site.test: the
# site itself (mail.site.test, preference 5, = helo_name) and two provider
# relays on 127.0.0.2 and 127.0.0.3. Both relays are scripted servers on one
# port. Asserts: both relays get the ETRN, the site's own MX is never
# contacted; with one relay down the other still gets it and the exit is 75.
. "$(dirname "$0")/../lib/e2e.sh"
. "$E2E_TOP/tests/lib/dnsmasq.sh"
e2e_init

if ! why=$(dnsmasq_usable); then
    skip "$why"; e2e_done; exit $?
fi

DNS_PORT=$(free_port)
dnsmasq_start "$DNS_PORT" --mx-host=site.test,mail.site.test,5 \
    --mx-host=site.test,mx1.isp.test,10 --mx-host=site.test,mx2.isp.test,20 \
    --host-record=mx1.isp.test,127.0.0.2 --host-record=mx2.isp.test,127.0.0.3 \
    --host-record=mail.site.test,127.0.0.4

P=$(free_port)
start_relay() { # NAME ADDR
    rm -f "$T/$1.ready"
    start_bg "$1" $PY "$E2E_TOP/tests/lib/scripted_smtpd.py" --listen "$2:$P" --log "$T/$1.log" \
        --ready-file "$T/$1.ready" --no-starttls \
        --etrn-reply 'site.test=253 OK, 2 pending messages for node site.test started'
    eval "${1}_pid=\$E2E_LAST_PID"
    wait_for 10 test -f "$T/$1.ready"
}
start_relay mx1 127.0.0.2
start_relay mx2 127.0.0.3
start_relay self 127.0.0.4

cat >"$T/agent.ini" <<EOF
[agent]
helo_name = mail.site.test
log = stderr
status_file = $T/status.json
resolver = 127.0.0.1:$DNS_PORT
[provider isp]
hosts = mx:site.test
port = $P
domains = site.test
tls = none
timeout = 10s
EOF

"$BIN_DIR/etrn-agent" -c "$T/agent.ini" --once >"$T/run1.out" 2>&1
check_eq "both relays up: exit 0" "$?" 0
check "relay mx1 (127.0.0.2) got ETRN site.test" grep -q 'C: ETRN site.test$' "$T/mx1.log"
check "relay mx2 (127.0.0.3) got ETRN site.test" grep -q 'C: ETRN site.test$' "$T/mx2.log"
check "the site's own MX was never contacted" grep_none 'connect from' "$T/self.log"
check "log names the MX host and the 253 count" \
    grep -q 'provider isp host mx1.isp.test:[0-9]* domain site.test: 253 .*2 pending' "$T/run1.out"
l1=$(grep -n 'host mx1.isp.test' "$T/run1.out" | head -1 | cut -d: -f1)
l2=$(grep -n 'host mx2.isp.test' "$T/run1.out" | head -1 | cut -d: -f1)
check "mx1 contacted before mx2 (preference order)" test "${l1:-99}" -lt "${l2:-0}"

# the preferred relay goes down: the other still gets the ETRN; exit 75
stop_pid "$mx1_pid"
: >"$T/mx2.log"
"$BIN_DIR/etrn-agent" -c "$T/agent.ini" --once >"$T/run2.out" 2>&1
check_eq "mx1 down: exit 75 (temporary)" "$?" 75
check "mx2 still got ETRN site.test" grep -q 'C: ETRN site.test$' "$T/mx2.log"
check "the failure names mx1" grep -q 'provider isp host mx1.isp.test:[0-9]*: temporary failure' "$T/run2.out"
check "status file records mx1 as temporary" \
    $PY -c "import json,sys; d=json.load(open('$T/status.json')); h=[x for x in d['hosts'] if x['host']=='mx1.isp.test'][0]; sys.exit(h['result']!='temporary')"

# a domain that does not exist: permanent, clear log line
sed -i 's/^hosts = mx:site.test/hosts = mx:nomx.test/' "$T/agent.ini"
"$BIN_DIR/etrn-agent" -c "$T/agent.ini" --once >"$T/run3.out" 2>&1
check_eq "NXDOMAIN: exit 69" "$?" 69
check "NXDOMAIN is logged" grep -q 'MX lookup for nomx.test: nxdomain' "$T/run3.out"

# resolver not answering: temporary
sed -i "s/^resolver = .*/resolver = 127.0.0.1:$(free_port)/; s/^hosts = .*/hosts = mx:site.test/" "$T/agent.ini"
"$BIN_DIR/etrn-agent" -c "$T/agent.ini" --once >"$T/run4.out" 2>&1
check_eq "resolver not answering: exit 75" "$?" 75
check "tempfail is logged" grep -q 'MX lookup for site.test: tempfail' "$T/run4.out"
e2e_done
