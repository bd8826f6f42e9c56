#!/bin/sh
# server_deliver.sh - etrn-server delivers what it queued: to Postfix's smtp-sink
# (the dialogue the sink saw: envelope, content, dot-stuffing), Postfix-format
# log lines, the queue emptied; and to a real Postfix instance acting as the
# site's MTA (the message lands in its queue with the right envelope).
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
. "$(dirname "$0")/../lib/postfix.sh"
e2e_init

port=$(free_port)
sinkport=$(free_port)
pfport=$(free_port)
closed=$(free_port)
SPOOL="$T/relay/queue"
LOG="$T/relay/maillog"

srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" "mynetworks = 127.0.0.0/8" \
    "relay_domains = sink.test pf.test" "relayhost = [127.0.0.1]:$closed" \
    "minimal_backoff_time = 60s" "maximal_backoff_time = 120s" "[transport]" \
    "sink.test = smtp:[127.0.0.1]:$sinkport" "pf.test = smtp:[127.0.0.1]:$pfport"

mkdir "$T/sink" && chmod 777 "$T/sink"
if [ "$(id -u)" -eq 0 ]; then
    start_bg sink /usr/sbin/smtp-sink -u nobody -d "$T/sink/msg." "127.0.0.1:$sinkport" 10
else
    start_bg sink /usr/sbin/smtp-sink -d "$T/sink/msg." "127.0.0.1:$sinkport" 10
fi
check "smtp-sink listens" wait_port "$sinkport" 10 || e2e_abort

check "etrn-server listens" srv_start relay || { cat "$T/relay.out"; e2e_done; exit 1; }

printf 'Subject: hello sink\r\nMessage-Id: <m1@src.test>\r\n\r\nline one\r\n.leading dot\r\n..two dots\r\nend\r\n' >"$T/m1"
swaks --silent 2 --server "127.0.0.1:$port" --helo src.test --from alice@src.test \
    --to u1@sink.test,u2@sink.test --data "$T/m1" >"$T/swaks1.out" 2>&1
check "swaks: message accepted" test $? -eq 0

sink_count() { find "$T/sink" -type f -name 'msg.*' | wc -l | tr -d ' '; }
check "the sink got one message" wait_for 15 sh -c "[ \$(find '$T/sink' -type f -name 'msg.*' | wc -l) -ge 1 ]"
check "log: removed" wait_for 10 grep -q ': removed$' "$LOG"
check_eq "sink: messages" "$(sink_count)" 1
got=$(cat "$T"/sink/msg.* 2>/dev/null)
check_eq "sink: envelope sender" "$(echo "$got" | sed -n 's/^X-Mail-Args: <\([^>]*\)>.*/\1/p')" alice@src.test
check_eq "sink: envelope recipients (one transaction)" \
    "$(echo "$got" | sed -n 's/^X-Rcpt-Args: <\([^>]*\)>.*/\1/p' | sort | paste -sd' ' -)" \
    "u1@sink.test u2@sink.test"
check_eq "sink: EHLO name is myhostname" "$(echo "$got" | sed -n 's/^X-Helo-Args: //p' | tr -d '\r')" relay.test
check "sink: subject" sh -c "cat '$T'/sink/msg.* | grep -q '^Subject: hello sink'"
check "sink: a leading dot arrives unstuffed" sh -c "cat '$T'/sink/msg.* | tr -d '\r' | grep -qx '.leading dot'"
check "sink: two leading dots arrive as two" sh -c "cat '$T'/sink/msg.* | tr -d '\r' | grep -qx '..two dots'"

id=$(sed -n 's/.*: \([0-9A-F]*\): to=<u1@sink.test>.*status=sent.*/\1/p' "$LOG" | head -n 1)
check "log: a sent line for u1" test -n "$id"
re="^.* $id: to=<u[12]@sink.test>, relay=127.0.0.1\[127.0.0.1\]:$sinkport, delay=[0-9]+\.[0-9][0-9], delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=2\.0\.0, status=sent \(250 .*\)$"
check_eq "log: two sent lines in Postfix format" "$(grep -cE "$re" "$LOG")" 2
check "log: '$id: removed'" grep -q " $id: removed$" "$LOG"
check_eq "queue is empty" "$(srv_queued relay)" 0
alive "$SRV_PID" || e2e_abort "the server is running"

# --- SIGHUP: the qmgr and the transports take the new configuration ---------------
sed "s/^sink.test = .*/sink.test = smtp:[127.0.0.1]:$closed\nsink2.test = smtp:[127.0.0.1]:$sinkport/; s/^relay_domains = .*/relay_domains = sink.test sink2.test pf.test/" \
    "$T/relay/server.ini" >"$T/server.new" && mv "$T/server.new" "$T/relay/server.ini"
kill -HUP "$SRV_PID"
check "SIGHUP: reloaded" wait_for 5 grep -q 'reload: configuration .* loaded' "$LOG"
swaks --silent 2 --server "127.0.0.1:$port" --from alice@src.test --to u3@sink2.test --data "$T/m1" >/dev/null 2>&1
check "SIGHUP: a domain from the new [transport] is delivered" wait_for 10 sh -c "[ \$(find '$T/sink' -type f -name 'msg.*' | wc -l) -eq 2 ]"
swaks --silent 2 --server "127.0.0.1:$port" --from alice@src.test --to u4@sink.test --data "$T/m1" >/dev/null 2>&1
check "SIGHUP: the changed next hop is used" wait_for 10 grep -q "to=<u4@sink.test>, relay=none, .*status=deferred (connect to 127.0.0.1\[127.0.0.1\]:$closed: " "$LOG"

# --- a real Postfix as the site's MTA --------------------------------------------
if why=$(postfix_usable); then
    PF="$T/pf"
    # the site's MTA accepts for pf.test and keeps the mail (its own link is "down")
    postfix_instance "$PF" "$pfport" "myhostname = site.pf.test" "relay_domains = pf.test" \
        "relay_transport = relay" "defer_transports = relay" "mynetworks = 127.0.0.0/8"
    if postfix_start "$PF"; then
        printf 'Subject: to the site\r\n\r\nbody for postfix\r\n' >"$T/m2"
        swaks --silent 2 --server "127.0.0.1:$port" --helo src.test --from bob@src.test \
            --to carol@pf.test --data "$T/m2" >"$T/swaks2.out" 2>&1
        check "swaks: message for pf.test accepted" test $? -eq 0
        check "log: sent to Postfix" wait_for 15 grep -q "to=<carol@pf.test>, relay=127.0.0.1\[127.0.0.1\]:$pfport, .*status=sent (250 2.0.0 Ok: queued as" "$LOG"
        check "Postfix queued one message" wait_for 10 sh -c "[ \"\$(postfix_queue_count '$PF')\" = 1 ] || [ \$(find '$PF/queue/deferred' '$PF/queue/active' '$PF/queue/incoming' -type f | wc -l) -ge 1 ]"
        pfid=$(sed -n 's/.*status=sent (250 2.0.0 Ok: queued as \([0-9A-Za-z]*\)).*/\1/p' "$LOG" | head -n 1)
        check "Postfix maillog: from=<bob@src.test> for $pfid" wait_for 10 grep -q "$pfid: from=<bob@src.test>" "$PF/maillog"
        pc=$(postfix_cmd "$PF" postcat -q "$pfid" 2>/dev/null)
        check "postcat: envelope recipient carol@pf.test" sh -c "echo '$pc' | grep -q 'recipient: carol@pf.test'"
        check "postcat: body" sh -c "echo '$pc' | grep -q 'body for postfix'"
        postfix_stop "$PF"
    else
        check "Postfix instance started" false
    fi
else
    skip "real Postfix: $why"
fi

stop_pid "$SRV_PID"
check "server log has no error lines" grep_none 'error:\|panic:\|fatal:' "$LOG"
e2e_done
