#!/bin/sh
# server_retry.sh - Postfix's retry schedule, fired by timers: with
# minimal_backoff_time=2s, maximal_backoff_time=8s and queue_run_delay=60s a
# message to a closed loopback port is tried at about 0, 2, 4, 8, 16 and 24 s
# after arrival (the log's delay= field, within 1.5 s) -- far sooner than the
# 60 s queue scan -- and the same when the server is killed (-9) and restarted
# midway: the schedule lives in the queue file.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

port=$(free_port)
closed1=$(free_port)
closed2=$(free_port)
closed3=$(free_port)
SPOOL="$T/relay/queue"
LOG="$T/relay/maillog"
WANT="0 2 4 8 16 24"

srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" "mynetworks = 127.0.0.0/8" \
    "relay_domains = one.test two.test" "relayhost = [127.0.0.1]:$closed3" \
    "queue_run_delay = 60s" "minimal_backoff_time = 2s" "maximal_backoff_time = 8s" \
    "maximal_queue_lifetime = 1d" "[transport]" "one.test = smtp:[127.0.0.1]:$closed1" \
    "two.test = smtp:[127.0.0.1]:$closed2"


# delays RCPT - the delay= of every deferral logged for RCPT, rounded to 0.1
delays() {
    sed -n "s/.* to=<$1>, .* delay=\([0-9.]*\), .*status=deferred.*/\1/p" "$LOG" | paste -sd' ' -
}

# schedule_ok "GOT" - GOT has the 6 tries of WANT, each within 1.5 s
schedule_ok() {
    $PY - "$1" "$WANT" <<'PYEOF'
import sys
got = [float(x) for x in sys.argv[1].split()][:6]
want = [float(x) for x in sys.argv[2].split()]
sys.exit(0 if len(got) == len(want) and all(abs(g - w) <= 1.5 for g, w in zip(got, want)) else 1)
PYEOF
}

ntries() { sed -n "s/.* to=<$1>, .*status=deferred.*/x/p" "$LOG" | wc -l | tr -d ' '; }

check "etrn-server starts" srv_start relay || { cat "$T/relay.out"; e2e_done; exit 1; }

# --- without a restart --------------------------------------------------------------
printf 'Subject: retry one\r\n\r\nbody\r\n' >"$T/m"
swaks --silent 2 --server "127.0.0.1:$port" --from a@src.test --to r@one.test --data "$T/m" >/dev/null 2>&1
check "message 1 accepted" test $? -eq 0
wait_for 28 sh -c "[ \$(sed -n 's/.* to=<r@one.test>, .*status=deferred.*/x/p' '$LOG' | wc -l) -ge 6 ]"
got=$(delays r@one.test)
echo "     tries of message 1 at delay= $got (want about $WANT)"
check "message 1: tried at 0, 2, 4, 8, 16, 24 s (+-1.5 s)" schedule_ok "$got"
check "message 1: the reason is the connect failure" \
    grep -q "to=<r@one.test>, relay=none, delay=[0-9.]*, delays=[0-9./]*, dsn=4.4.1, status=deferred (connect to 127.0.0.1\[127.0.0.1\]:$closed1: Connection refused)" "$LOG"
check "message 1 waits in deferred/" test "$(ls "$SPOOL/deferred" | wc -l)" -eq 1

# --- killed (-9) and restarted midway -----------------------------------------------
swaks --silent 2 --server "127.0.0.1:$port" --from a@src.test --to r@two.test --data "$T/m" >/dev/null 2>&1
check "message 2 accepted" test $? -eq 0
wait_for 10 sh -c "[ \$(sed -n 's/.* to=<r@two.test>, .*status=deferred.*/x/p' '$LOG' | wc -l) -ge 3 ]"
sleep 1.5
kill -9 "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
before=$(ntries r@two.test)
check "message 2: 3 tries before the kill" test "$before" -eq 3
check "etrn-server restarts" srv_start relay || e2e_abort
wait_for 22 sh -c "[ \$(sed -n 's/.* to=<r@two.test>, .*status=deferred.*/x/p' '$LOG' | wc -l) -ge 6 ]"
got=$(delays r@two.test)
echo "     tries of message 2 at delay= $got (want about $WANT; killed after the third)"
check "message 2: same schedule across kill -9 and restart" schedule_ok "$got"

stop_pid "$SRV_PID"
check "no error lines in the log" grep_none 'error:\|panic:\|fatal:' "$LOG"
e2e_done
