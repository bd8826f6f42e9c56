#!/bin/sh
# agent_link.sh - etrn-agent's daemon mode against a real link made of a veth pair.
#
# Root only (skips otherwise). A network namespace (the site) and a veth
# pair: one end in the root namespace with 198.18.X.1/30 (the provider side,
# where tests/lib/scripted_smtpd.py listens and answers ETRN with 458), the
# other in the site namespace with 198.18.X.2/30 noprefixroute and no route,
# DOWN. 198.18.0.0/15 is the benchmarking range; these addresses exist only on
# this veth pair, so no packet leaves the machine. The agent runs in the site
# namespace (settle 1s, retry 2s..4s, interval 0) and the test asserts:
# down at start: no round; interface up but no route: no round; default
# route added: one ETRN within settle + 200 ms (measured); retries after
# about 2 s and 4 s (backoff); carrier lost: link down, no round for 5 s
# although a retry was due; 5 flaps in 2 s, then up: exactly one round;
# interface down: link down; SIGHUP with a bad config keeps the old one;
# SIGTERM: exit 0. The namespace and the veth are
# deleted at exit.
. "$(dirname "$0")/../lib/e2e.sh"
e2e_init

AGENT=$BIN_DIR/etrn-agent
SMTPD=$E2E_TOP/tests/lib/scripted_smtpd.py
SETTLE_MS=1000

if [ "$(id -u)" != 0 ]; then
    skip "agent_link needs root (network namespaces)"
    e2e_done
    exit $?
fi
if [ ! -x "$AGENT" ]; then
    echo "FAIL no $AGENT"
    E2E_FAIL=1
    e2e_done
    exit 1
fi

NS=etrnkit-link-$$
VR=etl$$r
VS=etl$$s
E2E_CLEANUP_HOOK='ip netns del "$NS" 2>/dev/null; ip link del "$VR" 2>/dev/null'
if ! ip netns add "$NS" 2>"$T/netns.err"; then
    skip "ip netns does not work here: $(cat "$T/netns.err")"
    e2e_done
    exit $?
fi

# a /30 in 198.18.0.0/16 that no interface uses yet
net=""
i=0
while [ $i -lt 64 ]; do
    cand=198.18.$(( ($$ + i) % 256 ))
    if ! ip -4 -o addr show | grep -qF " $cand."; then net=$cand; break; fi
    i=$((i + 1))
done
[ -n "$net" ] || { echo "FAIL no free 198.18.X.0/30"; E2E_FAIL=1; e2e_done; exit 1; }
PROV=$net.1
SITE=$net.2
PORT=2525

# setup: veth pair, provider end up with its address, site end DOWN without a route
set -e
ip link add "$VR" type veth peer name "$VS"
ip link set "$VS" netns "$NS"
sysctl -qw "net.ipv6.conf.$VR.disable_ipv6=1"
ip netns exec "$NS" sysctl -qw "net.ipv6.conf.$VS.disable_ipv6=1"
ip addr add "$PROV/30" dev "$VR"
ip link set "$VR" up
ip -n "$NS" link set lo up
ip -n "$NS" addr add "$SITE/30" dev "$VS" noprefixroute
set +e

# the provider: every ETRN gets 458, so the agent has a reason to retry
: >"$T/smtpd.log"
start_bg smtpd "$PY" "$SMTPD" --listen "$PROV:$PORT" --log "$T/smtpd.log" \
    --ready-file "$T/smtpd.ready" --no-starttls --default-etrn-reply '458 Unable to queue messages'
if ! wait_for 10 test -s "$T/smtpd.ready"; then
    echo "FAIL scripted_smtpd did not start:"; cat "$T/smtpd.out"
    E2E_FAIL=1; e2e_done; exit 1
fi

write_conf() {
    {
        printf '[agent]\nhelo_name = site.example\nlog = stderr\nstatus_file = %s\n' "$T/status.json"
        printf 'interval = 0\nretry_min = 2s\nretry_max = 4s\nsettle = 1s\n%s\n' "${1:-}"
        printf '[provider isp]\nhosts = %s:%s\ndomains = example.org\ntls = none\ntimeout = 5s\n' \
            "$PROV" "$PORT"
    } >"$T/agent.ini"
    chmod 600 "$T/agent.ini"
}
write_conf

# counters over the server log and the agent log
etrns() { grep -c ' C: ETRN ' "$T/smtpd.log"; }
connects() { grep -c ' \*: connect from ' "$T/smtpd.log"; }
rounds() { grep -c 'round: ' "$T/agent.out"; }
sessions() { grep -c 'provider isp host ' "$T/agent.out"; }
agent_says() { grep -qF -- "$1" "$T/agent.out"; }
etrns_at_least() { [ "$(etrns)" -ge "$1" ]; }
# etrn_time N - the server's timestamp of the Nth ETRN
etrn_time() { grep ' C: ETRN ' "$T/smtpd.log" | sed -n "${1}p" | cut -d' ' -f1; }
now() { date +%s.%N; }
ms_between() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%d", (e - s) * 1000 }'; }
within() { [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }

start_bg agent ip netns exec "$NS" "$AGENT" -c "$T/agent.ini"
AGENT_PID=$E2E_LAST_PID

# 1. link down at start: no round, no connection
check "agent reports the link down at start" wait_for 5 agent_says "link down at start"
sleep 1.5
check_eq "down at start: connections at the provider" "$(connects)" 0
check_eq "down at start: rounds" "$(rounds)" 0

# 2. interface up, but no route to the provider: still down
ip -n "$NS" link set "$VS" up
sleep 1.8
check_eq "interface up without a route: connections" "$(connects)" 0
check_eq "interface up without a route: rounds" "$(rounds)" 0

# 3. default route: one ETRN after settle
t0=$(now)
ip -n "$NS" route add default dev "$VS"
check "default route: an ETRN arrives" wait_for 5 etrns_at_least 1
lat=$(ms_between "$t0" "$(etrn_time 1)")
echo "MEASURE link-up to ETRN: $lat ms (target < settle + 200 ms)"
check "link-up to ETRN $lat ms within [settle, settle + 200 ms]" \
    within "$lat" $((SETTLE_MS - 20)) $((SETTLE_MS + 200))
check "agent logs the link transition with the interface" agent_says "link up: $VS (route to $PROV)"
check_eq "link-up round: one connection" "$(connects)" 1

# 4. 458: retries after about retry_min (2 s) and then 4 s, each +-10%
check "first retry arrives" wait_for 4 etrns_at_least 2
check "second retry arrives" wait_for 6 etrns_at_least 3
gap1=$(ms_between "$(etrn_time 1)" "$(etrn_time 2)")
gap2=$(ms_between "$(etrn_time 2)" "$(etrn_time 3)")
echo "MEASURE retry gaps after 458: $gap1 ms, $gap2 ms (schedule 2000 and 4000 ms +-10%)"
check "first retry after $gap1 ms (2 s +-10%)" within "$gap1" 1750 2300
check "second retry after $gap2 ms (4 s +-10%)" within "$gap2" 3550 4500
check "agent logs the scheduled retry with host and delay" \
    agent_says "retry: provider isp host $PROV:$PORT in "
check "status file: the planned retry (etrn-agent --status reads it)" \
    grep -q '"next_why": "retry after a temporary failure"' "$T/status.json"

# 5. carrier lost right after a failure (provider end down; the route stays):
#    the retry due in ~4 s must not happen
r_before=$(rounds); s_before=$(sessions); c_before=$(connects)
ip link set "$VR" down
check "carrier lost: agent logs the link going down" \
    wait_for 4 agent_says "link down: $VS (route to $PROV: interface not running)"
check "link down: the status file plans no attempt" grep_none '"next"' "$T/status.json"
sleep 4.5
check_eq "link down: no new round" "$(rounds)" "$r_before"
check_eq "link down: no new session" "$(sessions)" "$s_before"
check_eq "link down: no new connection" "$(connects)" "$c_before"

# provider end back while the site interface is down (no route): still no round
ip -n "$NS" link set "$VS" down
ip link set "$VR" up
sleep 1.5
check_eq "site interface down: no round" "$(rounds)" "$r_before"

# 6. five flaps within 2 s, then up for good: exactly one round
r_before=$(rounds); e_before=$(etrns); up_before=$(grep -c 'link up: ' "$T/agent.out")
f0=$(now)
n=0
while [ $n -lt 5 ]; do
    ip -n "$NS" link set "$VS" up
    ip -n "$NS" route add default dev "$VS"
    sleep 0.2
    ip -n "$NS" link set "$VS" down
    sleep 0.15
    n=$((n + 1))
done
t1=$(now)
ip -n "$NS" link set "$VS" up
ip -n "$NS" route add default dev "$VS"
echo "MEASURE flapping took $(ms_between "$f0" "$t1") ms for 5 flaps"
check "after flapping: an ETRN arrives" wait_for 5 etrns_at_least $((e_before + 1))
lat2=$(ms_between "$t1" "$(etrn_time $((e_before + 1)))")
echo "MEASURE flapping, last link-up to ETRN: $lat2 ms (target < settle + 200 ms)"
check "after flapping: ETRN $lat2 ms after the last up, not before settle" \
    within "$lat2" $((SETTLE_MS - 20)) $((SETTLE_MS + 200))
sleep 1
check_eq "flapping: exactly one new ETRN" "$(etrns)" $((e_before + 1))
check_eq "flapping: exactly one new round" "$(rounds)" $((r_before + 1))
check_eq "flapping: one link-up logged" "$(grep -c 'link up: ' "$T/agent.out")" $((up_before + 1))

# 7. interface down: the route goes with it
ip -n "$NS" link set "$VS" down
check "interface down: agent logs the link going down" \
    wait_for 3 agent_says "link down: $VS (no route to $PROV)"

# 8. SIGHUP with a broken config keeps the old one; a good one is read
write_conf 'no_such_key = 1'
kill -HUP "$AGENT_PID"
check "SIGHUP with a bad config: logged, old config kept" \
    wait_for 3 agent_says "keeping the previous configuration"
write_conf
kill -HUP "$AGENT_PID"
check "SIGHUP with a good config: reloaded" wait_for 3 agent_says "reload: configuration read from"
check "agent still running after the reloads" alive "$AGENT_PID"

# 9. SIGTERM: clean exit 0
kill -TERM "$AGENT_PID"
i=0
while kill -0 "$AGENT_PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
wait "$AGENT_PID"
check_eq "SIGTERM: exit status" "$?" 0
check "no sanitizer report" grep_none -E 'AddressSanitizer|runtime error|LeakSanitizer' "$T/agent.out"

if [ "$E2E_FAIL" -ne 0 ]; then
    echo "--- agent log"; sed 's/^/    /' "$T/agent.out" | tail -n 60
    echo "--- server log"; sed 's/^/    /' "$T/smtpd.log" | tail -n 40
fi
e2e_done
