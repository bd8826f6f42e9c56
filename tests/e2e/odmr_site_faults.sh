#!/bin/sh
# odmr_site_faults.sh - an ODMR site (tests/lib/odmr_site.py) that misbehaves
# after ATRN's 250, against etrn-server's ODMR listener:
# - it answers every command 0.4 s late (within each smtp_*_timeout) so the
#   turn would run for half a minute: odmr_session_time_limit = 3s cuts it,
#   the log says so, what the site did not acknowledge stays queued, and the
#   next ATRN delivers the rest;
# - it closes the connection in the middle of a message's DATA: the message
#   stays queued, the log says deferred with the lost connection as reason,
#   and the next ATRN delivers it;
# - a message for another destination that hangs in delivery (its receiver
#   never answers the dot), flushed again with `etrn-queue -f` and `-i ID`
#   meanwhile, does not keep the site's turn open: it ends with QUIT after
#   the idle second, not at the time limit.
. "$(dirname "$0")/../lib/e2e.sh"
. "$E2E_TOP/tests/lib/etrn_server.sh"
e2e_init

SITE="$PY $E2E_TOP/tests/lib/odmr_site.py"
PP=$(free_port)
OP=$(free_port)
PS=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
chmod 644 "$T/key.pem"
echo "tim:$(openssl passwd -6 pw)" >"$T/users"
chown nobody "$T/users" && chmod 600 "$T/users"
srv_conf provider "127.0.0.1:$PP" "odmr_listen = 127.0.0.1:$OP" "mynetworks = 127.0.0.0/8" \
    "relay_domains = a.test b.test c.test" "etrn_only_domains = a.test b.test" \
    "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/key.pem" \
    "smtpd_sasl_users_file = $T/users" "odmr_session_time_limit = 3s" \
    "[etrn_users]" "tim = a.test b.test" \
    "[transport]" "c.test = smtp:[127.0.0.1]:$PS" "a.test = smtp:[127.0.0.1]:1" "b.test = smtp:[127.0.0.1]:1"
srv_start provider || { E2E_FAIL=1; e2e_done; exit 1; }
LOG=$T/provider/maillog

# queued - messages in the provider's queue (etrn-queue -p's summary line)
queued() {
    srv_queue provider -p | sed -n 's/.* in \([0-9]*\) Requests\?\.$/\1/p;/^Mail queue is empty/s/.*/0/p'
}

smtp-source -m 20 -s 2 -l 2048 -f s@x.test -t u@a.test "127.0.0.1:$PP" >"$T/src-a.out" 2>&1
check "20 messages for a.test wait" wait_for 20 sh -c \
    "[ \$(grep -c 'to=<u@a.test>.*status=deferred' '$LOG') -ge 20 ]"

# 1. the slow site: cut at odmr_session_time_limit
$SITE --port "$OP" --user tim --password pw --atrn a.test --delay 0.4 --max-secs 60 \
    >"$T/slow.out" 2>&1
check_eq "slow site: ATRN 250" "$(sed -n 's/^atrn: //p' "$T/slow.out")" \
    "250 OK now reversing the connection"
check "slow site: the provider closed the connection" grep -q '^closed by provider' "$T/slow.out"
ACK1=$(sed -n 's/^messages: //p' "$T/slow.out")
check "slow site: fewer than the 20 acknowledged (got ${ACK1:-?})" [ "${ACK1:-20}" -lt 20 ]
check "log: the turn was cut at the limit" grep -q \
    'odmr:tim: unknown\[127.0.0.1\]: odmr_session_time_limit (3s) exceeded after' "$LOG"
check "log: the message in flight is deferred for the time limit" grep -q \
    'to=<u@a.test>, relay=odmr:tim.*status=deferred (ODMR session time limit exceeded)' "$LOG"
# what the site did not acknowledge is still queued (the one in flight may have been acknowledged
# by the site just as the provider closed: at most one more is queued than the site kept)
Q1=$(queued)
check "slow site: what was not acknowledged stays queued (queued ${Q1:-?}, acked ${ACK1:-?})" \
    [ "${Q1:-0}" -ge $((20 - ${ACK1:-0})) ] && [ "${Q1:-0}" -le $((21 - ${ACK1:-0})) ]
$SITE --port "$OP" --user tim --password pw --atrn a.test --max-secs 60 >"$T/fast.out" 2>&1
check_eq "fast site: ATRN 250" "$(sed -n 's/^atrn: //p' "$T/fast.out")" \
    "250 OK now reversing the connection"
check "fast site: the turn ends with QUIT" grep -q '^quit' "$T/fast.out"
check_eq "fast site: gets the rest" "$(sed -n 's/^messages: //p' "$T/fast.out")" "$Q1"
check_eq "the queue is empty" "$(queued)" 0

# 2. the site that leaves in the middle of DATA
smtp-source -m 1 -l 4096 -f s@x.test -t v@b.test "127.0.0.1:$PP" >"$T/src-b.out" 2>&1
check "a message for b.test waits" wait_for 20 grep -q 'to=<v@b.test>.*status=deferred' "$LOG"
ID=$(sed -n 's/.*: \([0-9A-Za-z]*\): to=<v@b.test>.*status=deferred.*/\1/p' "$LOG" | head -1)
$SITE --port "$OP" --user tim --password pw --atrn b.test --drop-in-data 3 --max-secs 60 \
    >"$T/drop.out" 2>&1
check "drop: the site closed in DATA" grep -q '^dropped in data' "$T/drop.out"
check "log: deferred with the lost connection as reason" wait_for 10 grep -q \
    "$ID: to=<v@b.test>, relay=odmr:tim.*status=deferred (lost connection with odmr:tim.* while sending " "$LOG"
check "drop: the message stays queued" sh -c "srv_queue() { \"$BIN_DIR/etrn-queue\" -c '$T/provider/server.ini' \"\$@\"; }; srv_queue -p | grep -q '^$ID'"
$SITE --port "$OP" --user tim --password pw --atrn b.test --max-secs 60 >"$T/again.out" 2>&1
check_eq "next ATRN: 250" "$(sed -n 's/^atrn: //p' "$T/again.out")" \
    "250 OK now reversing the connection"
check_eq "next ATRN: the message arrives" "$(sed -n 's/^acked: //p' "$T/again.out")" "<v@b.test>"
check "log: delivered over ODMR" grep -q "$ID: to=<v@b.test>, relay=odmr:tim.*status=sent" "$LOG"
check_eq "the queue is empty" "$(queued)" 0
# 3. a flush of everything while a message hangs at another destination
start_bg stall "$PY" "$E2E_TOP/tests/lib/scripted_smtpd.py" --listen "127.0.0.1:$PS" \
    --log "$T/stall.log" --accept-mail --data-stall
check "stalling receiver for c.test listens" wait_port "$PS" 10 || e2e_abort "no receiver"
smtp-source -m 1 -l 1024 -f s@x.test -t w@c.test "127.0.0.1:$PP" >"$T/src-c.out" 2>&1
# two turns: the first with nothing else going on, the second after a flush
# of everything and a flush of the hanging message itself
turn() { # turn NAME WHAT - 2 messages for a.test wait; one ATRN fetches them
    N0=$(grep -c 'to=<u@a.test>.*status=deferred' "$LOG")
    smtp-source -m 2 -l 1024 -f s@x.test -t u@a.test "127.0.0.1:$PP" >"$T/src-$1.out" 2>&1
    check "$2: 2 messages for a.test wait" wait_for 20 sh -c \
        "[ \$(grep -c 'to=<u@a.test>.*status=deferred' '$LOG') -ge $((N0 + 2)) ]"
    [ "$1" = flushed ] && {
        srv_queue provider -f >"$T/flush-all.out" 2>&1
        check "$2: etrn-queue -f accepted" grep -q . "$T/flush-all.out"
        srv_queue provider -i "$CID" >"$T/flush-one.out" 2>&1
        check "$2: etrn-queue -i of the hanging message accepted" grep -q . "$T/flush-one.out"
    }
    $SITE --port "$OP" --user tim --password pw --atrn a.test --max-secs 60 >"$T/$1.out" 2>&1
    check_eq "$2: the site gets the 2 messages" "$(sed -n 's/^messages: //p' "$T/$1.out")" 2
    check "$2: the turn ends with QUIT" grep -q '^quit' "$T/$1.out"
    SECS=$(sed -n 's/^seconds: //p' "$T/$1.out")
    check "$2: the turn ended after the idle second, not at the 3 s limit (${SECS:-?} s)" \
        awk -v s="${SECS:-99}" 'BEGIN { exit !(s < 2.5) }'
}
check "the c.test message hangs after its dot" wait_for 20 grep -q 'C: \.$' "$T/stall.log"
CID=$(srv_queue provider -p | awk '/^[0-9A-Za-z]+[*!]? /{ id = $1 } / w@c.test$/{ print id }' | tr -d '*!')
check "the hanging message is listed active" [ -n "$CID" ]
turn plain "a delivery hangs elsewhere"
turn flushed "-f and -i meanwhile"
e2e_done
