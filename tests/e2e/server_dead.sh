#!/bin/sh
# server_dead.sh - a dead destination: 100 messages to a closed loopback port
# draw one connection attempt per dead window (minimal_backoff_time), not 100;
# the rest are deferred without an attempt ("delivery temporarily suspended").
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

port=$(free_port)
closed=$(free_port)
SPOOL="$T/relay/queue"
LOG="$T/relay/maillog"

srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" "mynetworks = 127.0.0.0/8" \
    "relay_domains = dead.test" "relayhost = [127.0.0.1]:$closed" \
    "minimal_backoff_time = 2s" "maximal_backoff_time = 8s" "queue_run_delay = 60s" \
    "[transport]" "dead.test = smtp:[127.0.0.1]:$closed"
check "etrn-server listens" srv_start relay || { cat "$T/relay.out"; e2e_done; exit 1; }

start=$(date +%s.%N)
/usr/sbin/smtp-source -c -m 100 -s 5 -f a@src.test -t x@dead.test "127.0.0.1:$port" >"$T/source.out" 2>&1
check "smtp-source sent 100 messages" test $? -eq 0
check_eq "100 messages queued" "$(grep -c 'nrcpt=1 (queue active)' "$LOG")" 100
check "every message deferred once" wait_for 10 sh -c "[ \$(grep 'to=<x@dead.test>' '$LOG' | sed 's/.*: \([0-9A-F]*\): to=.*/\1/' | sort -u | wc -l) -eq 100 ]"
sleep 5
end=$(date +%s.%N)
attempts=$(grep -c 'to=<x@dead.test>, .*status=deferred (connect to 127.0.0.1\[127.0.0.1\]:'"$closed"': Connection refused)' "$LOG")
suspended=$(grep -c 'to=<x@dead.test>, relay=none, .*dsn=4.4.1, status=deferred (delivery temporarily suspended: connect to' "$LOG")
windows=$($PY -c "import math,sys; print(math.ceil(($end - $start) / 2) + 1)")
echo "     connection attempts: $attempts in $(printf '%.1f' "$($PY -c "print($end - $start)")") s ($windows dead windows of 2 s), deferred without an attempt: $suspended"
check "at least one real attempt" test "$attempts" -ge 1
check "at most one attempt per dead window ($attempts <= $windows)" test "$attempts" -le "$windows"
check "the others were deferred without an attempt" test "$suspended" -ge 100

stop_pid "$SRV_PID"
check "no error lines in the log" grep_none 'error:\|panic:\|fatal:' "$LOG"
e2e_done
