#!/bin/sh
# server_deliver_crash.sh - kill -9 in the middle of delivering 1,000 messages,
# restart: every recipient reaches the sink at least once (none lost); the
# number delivered twice (a crash between the peer's 250 and the queue update)
# is printed.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

port=$(free_port)
sinkport=$(free_port)
closed=$(free_port)
SPOOL="$T/relay/queue"
LOG="$T/relay/maillog"
N=1000

srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" "mynetworks = 127.0.0.0/8" \
    "relay_domains = crash.test" "relayhost = [127.0.0.1]:$closed" \
    "minimal_backoff_time = 1s" "maximal_backoff_time = 2s" "queue_run_delay = 60s" \
    "[transport]" "crash.test = smtp:[127.0.0.1]:$sinkport"

sink_count() { find "$T/sink" -type f -name 'msg.*' | wc -l | tr -d ' '; }
queued() { srv_queued relay; }
drained() { [ "$(srv_queued relay)" = 0 ]; }

check "etrn-server starts" srv_start relay || { cat "$T/relay.out"; e2e_done; exit 1; }
# the sink is down while the mail comes in: everything waits in the queue
/usr/sbin/smtp-source -m $N -s 10 -N -f a@src.test -t rcpt@crash.test "127.0.0.1:$port" >"$T/source.out" 2>&1
check "smtp-source sent $N messages" test $? -eq 0
check_eq "$N messages queued" "$(grep -c 'nrcpt=1 (queue active)' "$LOG")" $N

mkdir "$T/sink" && chmod 777 "$T/sink"
start_bg sink /usr/sbin/smtp-sink -u nobody -d "$T/sink/msg." "127.0.0.1:$sinkport" 100
check "smtp-sink listens" wait_port "$sinkport" 10 || e2e_abort
# kill -9 while deliveries run
wait_for 30 sh -c "[ \$(find '$T/sink' -type f -name 'msg.*' | wc -l) -ge 150 ]"
kill -9 "$SRV_PID"
wait "$SRV_PID" 2>/dev/null
at_kill=$(sink_count)
left=$(queued)
echo "     killed with $at_kill delivered and $left messages still queued"
check "killed in the middle of delivery" test "$at_kill" -lt $N -a "$left" -gt 0

check "etrn-server restarts" srv_start relay || e2e_abort
check "the queue drains after the restart" wait_for 60 drained
sleep 0.5
cat "$T"/sink/msg.* 2>/dev/null | sed -n 's/^X-Rcpt-Args: <\([^>]*\)>.*/\1/p' | sort >"$T/rcpts"
total=$(wc -l <"$T/rcpts" | tr -d ' ')
unique=$(sort -u "$T/rcpts" | wc -l | tr -d ' ')
echo "     sink received $total deliveries, $unique distinct recipients, duplicates: $((total - unique))"
check_eq "every recipient delivered at least once" "$unique" $N
# the kill may fall between a message's unlink (and its directory fsync) and its
# "removed" line: one message may lack the line, never more
removed=$(grep -o ': [0-9A-F]*: removed' "$LOG" | sort -u | wc -l | tr -d ' ')
check "log: a 'removed' line for every message but at most the one the kill interrupted ($removed of $N)" \
    test "$removed" -ge $((N - 1)) -a "$removed" -le $N

stop_pid "$SRV_PID"
check "no error lines in the log" grep_none 'error:\|panic:\|fatal:' "$LOG"
e2e_done
