#!/bin/sh
# agent_postfix.sh - etrn-agent against a real Postfix provider.
#
# The provider is a private Postfix instance set up as in ETRN_README's
# etrn-only recipe (fast_flush_domains, defer_transports = etrn-only, a
# transport map entry "site.test etrn-only:[127.0.0.1]:P2"); the site's mail
# server is Postfix's smtp-sink on 127.0.0.1:P2, which writes every message it
# receives to a file. Three messages for site.test must wait at the provider,
# through several retry passes, until etrn-agent --once sends ETRN; then they
# must reach the sink. ETRN for a domain outside fast_flush_domains gets
# Postfix's 459 and the agent exits 69 (EX_UNAVAILABLE).
#
# What real Postfix 3.7 needs here: no "sendmail -q" before ETRN. ETRN_README's
# "run sendmail -q once" is for mail deferred before fast ETRN was enabled;
# mail for an etrn-only domain is deferred by the queue manager at arrival
# ("deferred transport", via the error(8) agent), and that deferral already
# appends its queue ID to the flush(8) log queue/flush/site_test, so the first
# ETRN finds it. Delivery after ETRN happens because flush(8) moves the listed
# deferred files to incoming and asks qmgr to ignore defer_transports for them.
#
# Needs root (Postfix's master runs as root) and the postfix package
# (postfix, postmap, postqueue, smtp-sink); swaks queues the mail.

. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/postfix.sh"

e2e_init

if ! why=$(postfix_usable); then
    skip "agent against Postfix: $why"
    e2e_done
    exit $?
fi
if ! command -v swaks >/dev/null 2>&1; then
    skip "agent against Postfix: swaks missing (Debian package swaks)"
    e2e_done
    exit $?
fi
check "etrn-agent is built ($BIN_DIR/etrn-agent)" test -x "$BIN_DIR/etrn-agent"
[ -x "$BIN_DIR/etrn-agent" ] || { e2e_done; exit 1; }

PF=$T/provider
P1=$(free_port)
P2=$(free_port)
AGENT=$BIN_DIR/etrn-agent

# --- the site's receiver: smtp-sink, one dump file per message -----------------
mkdir "$T/sink" && chown postfix "$T/sink"
start_bg sink /usr/sbin/smtp-sink -u postfix -d "$T/sink/msg." "127.0.0.1:$P2" 10
SINK_PID=$E2E_LAST_PID
check "smtp-sink listens on 127.0.0.1:$P2" wait_port "$P2" 10 || e2e_abort

# sink_count - messages the sink has received
sink_count() {
    find "$T/sink" -type f -name 'msg.*' | wc -l | tr -d ' '
}

# --- the provider: ETRN_README's etrn-only recipe --------------------------------
postfix_instance "$PF" "$P1" \
    "myhostname = mx.provider.test" \
    "relay_domains = site.test" \
    "fast_flush_domains = \$relay_domains" \
    "mynetworks = 127.0.0.0/8" \
    "smtpd_etrn_restrictions = permit_mynetworks, reject" \
    "defer_transports = etrn-only" \
    "transport_maps = hash:$PF/conf/transport" \
    "queue_run_delay = 1s" \
    "minimal_backoff_time = 1s" \
    "maximal_backoff_time = 2s"
check "provider instance written" test -s "$PF/conf/main.cf"
postfix_service "$PF" "etrn-only unix - - n - - smtp"
printf 'site.test\tetrn-only:[127.0.0.1]:%s\n' "$P2" >"$PF/conf/transport"
check "postmap builds the transport map" \
    postfix_cmd "$PF" postmap "hash:$PF/conf/transport"
check "postfix check has no complaint" \
    sh -c "[ -z \"\$(/usr/sbin/postfix -c '$PF/conf' check 2>&1)\" ]"
check "provider Postfix starts on 127.0.0.1:$P1" postfix_start "$PF" || e2e_abort

# --- three messages for site.test ----------------------------------------------
for i in 1 2 3; do
    check "provider accepts message $i for user$i@site.test" \
        swaks --server "127.0.0.1:$P1" --helo client.test --from sender@example.org \
        --to "user$i@site.test" --header "Subject: etrn test $i" --timeout 10
done

# With 1 s backoff the queue manager keeps moving these messages between the
# deferred and active queues, so nothing below needs all 3 in deferred/ at one
# instant: the log and the recipient list say what happened to each.
deferred_rcpts() {
    sed -n 's/.*: to=<\(user[0-9]@site\.test\)>, relay=none, .*status=deferred (deferred transport)$/\1/p' \
        "$PF/maillog" | sort -u | paste -sd' ' -
}
all_deferred() {
    [ "$(deferred_rcpts)" = "user1@site.test user2@site.test user3@site.test" ]
}
wait_for 10 all_deferred
check_eq "each message is deferred at arrival (\"deferred transport\")" \
    "$(deferred_rcpts)" "user1@site.test user2@site.test user3@site.test"
# (showq can miss a file the queue manager renames during its scan: look again)
mailq_rcpts() {
    postfix_cmd "$PF" postqueue -p 2>/dev/null | grep -o 'user[0-9]@site\.test' | sort -u | paste -sd' ' -
}
mailq_all() {
    [ "$(mailq_rcpts)" = "user1@site.test user2@site.test user3@site.test" ]
}
wait_for 5 mailq_all
check_eq "postqueue -p lists the 3 recipients" "$(mailq_rcpts)" \
    "user1@site.test user2@site.test user3@site.test"
check_eq "flush log for site.test lists the 3 queue IDs without a queue run" \
    "$(postfix_flushlog_count "$PF" site.test)" 3

# With 1 s backoff Postfix retries each message about every second; an
# etrn-only message must be deferred again on every retry, never delivered.
retried() {
    [ "$(grep -c 'status=deferred (deferred transport)' "$PF/maillog")" -ge 6 ]
}
check "Postfix retries (at least 6 deferrals logged)" wait_for 15 retried
check_eq "after the retries: nothing at the sink" "$(sink_count)" 0
check_eq "after the retries: still 3 messages at the provider" "$(postfix_queue_count "$PF")" 3

# --- the agent sends ETRN ---------------------------------------------------------
cat >"$T/agent.ini" <<EOF
[agent]
log = stderr
helo_name = site.test
status_file = $T/status.json

[provider isp]
hosts = 127.0.0.1:$P1
domains = site.test
tls = none
timeout = 10s
EOF
chmod 600 "$T/agent.ini"

timeout 30 "$AGENT" -c "$T/agent.ini" --once >"$T/agent.out" 2>"$T/agent.err"
rc=$?
check_eq "etrn-agent --once exit status (all accepted)" "$rc" 0
check "agent log: a line with isp, 127.0.0.1, site.test and 250" \
    sh -c "grep -F site.test '$T/agent.err' | grep -F isp | grep -F 127.0.0.1 | grep -qw 250"
check "provider log: the session had one ETRN" \
    grep -q 'disconnect from .*etrn=1 ' "$PF/maillog"
check "status file records 250 for site.test" "$PY" - "$T/status.json" <<'PYEOF'
import json, sys
def walk(v, inside_site=False):
    if isinstance(v, dict):
        here = inside_site or v.get("domain") == "site.test"
        if here and v.get("code") in (250, "250"):
            return True
        return any(walk(x, here or k == "site.test") for k, x in v.items())
    if isinstance(v, list):
        return any(walk(x, inside_site) for x in v)
    return False
sys.exit(0 if walk(json.load(open(sys.argv[1]))) else 1)
PYEOF

sink_has_3() {
    [ "$(sink_count)" -eq 3 ]
}
check "all 3 messages arrive at the sink within 20 s" wait_for 20 sink_has_3
check_eq "sink: recipients" \
    "$(cat "$T"/sink/msg.* 2>/dev/null | sed -n 's/^X-Rcpt-Args: <\([^>]*\)>.*/\1/p' | sort | paste -sd' ' -)" \
    "user1@site.test user2@site.test user3@site.test"
check_eq "sink: envelope senders" \
    "$(cat "$T"/sink/msg.* 2>/dev/null | grep -c '^X-Mail-Args: <sender@example.org>')" 3
check_eq "sink: subjects" \
    "$(cat "$T"/sink/msg.* 2>/dev/null | sed -n 's/^Subject: //p' | sort | paste -sd'|' -)" \
    "etrn test 1|etrn test 2|etrn test 3"
check "sink: delivered by the provider's Postfix" \
    sh -c "cat '$T'/sink/msg.* | grep -q '^X-Helo-Args: mx.provider.test'"
queue_empty() {
    [ "$(postfix_cmd "$PF" postqueue -p 2>/dev/null)" = "Mail queue is empty" ]
}
check "provider queue is empty (postqueue -p)" wait_for 10 queue_empty
check_eq "provider queue count" "$(postfix_queue_count "$PF")" 0
check_eq "provider log: 3 deliveries to the sink" \
    "$(grep -c "relay=127.0.0.1\[127.0.0.1\]:$P2, .*status=sent" "$PF/maillog")" 3

# --- ETRN for a domain outside fast_flush_domains -------------------------------
sed "s/^domains = site.test$/domains = other.test/" "$T/agent.ini" >"$T/agent459.ini"
chmod 600 "$T/agent459.ini"
timeout 30 "$AGENT" -c "$T/agent459.ini" --once >"$T/agent459.out" 2>"$T/agent459.err"
rc=$?
check_eq "ETRN other.test: exit status 69 (refused)" "$rc" 69
check "ETRN other.test: agent log has 459 for other.test" \
    sh -c "grep -F other.test '$T/agent459.err' | grep -qw 459"
check "ETRN other.test: Postfix refused it" \
    grep -q 'reject: ETRN other.test' "$PF/maillog"
check_eq "ETRN other.test: nothing more at the sink" "$(sink_count)" 3

stop_pid "$SINK_PID"
master=$(postfix_master_pid "$PF")
postfix_stop "$PF"
check "postfix_stop: the provider's master ($master) is gone" \
    sh -c "[ -n '$master' ] && ! kill -0 '$master'"
check "postfix_stop: no process of the provider instance is left" \
    sh -c "[ -z \"\$(grep -lsxzF 'MAIL_CONFIG=$PF/conf' /proc/[0-9]*/environ)\" ]"

if [ "$E2E_FAIL" -ne 0 ]; then
    echo "--- agent stderr"; cat "$T/agent.err" "$T/agent459.err" 2>/dev/null
    echo "--- provider maillog"; tail -n 40 "$PF/maillog" 2>/dev/null
fi
e2e_done
