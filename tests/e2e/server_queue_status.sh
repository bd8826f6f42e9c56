#!/bin/sh
# server_queue_status.sh - etrn-queue status: the totals, then the destinations
# and the ETRN domains as two tables; a result too long for its column ends in
# "..." (never cut silently) and --json keeps it whole.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

SMTPD=$E2E_TOP/tests/lib/scripted_smtpd.py
WHY="4.7.1 <a@slow.test>: Recipient address rejected: this receiver greylists every new sender for a while, so please try again in five minutes from now"
start_bg slow "$PY" "$SMTPD" --listen 127.0.0.1:0 --log "$T/slow.log" --ready-file "$T/slow.ready" \
    --no-starttls --accept-mail --default-rcpt-reply "450 $WHY"
wait_for 10 test -s "$T/slow.ready"
sport=$(sed 's/.*://' "$T/slow.ready")

port=$(free_port)
srv_conf relay "127.0.0.1:$port" "relay_domains = slow.test site.test" \
    "etrn_only_domains = site.test" \
    "[transport]" "slow.test = smtp:[127.0.0.1]:$sport" "site.test = smtp:[127.0.0.1]:1"
srv_start relay || { check "etrn-server relay starts" false; e2e_done; exit 1; }
swaks --server 127.0.0.1 --port "$port" --from s@site.test --to a@slow.test >/dev/null 2>&1
swaks --server 127.0.0.1 --port "$port" --from s@slow.test --to b@site.test >/dev/null 2>&1
check "the greylisted recipient is deferred" wait_for 15 sh -c \
    "grep -q 'to=<a@slow.test>.*status=deferred' '$T/relay/maillog'"

srv_queue relay status >"$T/status.txt" 2>&1; rc=$?
check_eq "status: exit 0" "$rc" 0
check_eq "status: totals, a blank line, then the destinations table" \
    "$(sed -n '1,3p' "$T/status.txt" | sed 's/  */ /g')" \
    "total 2: incoming 0, active 0, deferred 2, hold 0

DESTINATION WAITING RUNNING OLDEST LAST ATTEMPT DEAD LAST RESULT"
row=$(grep "^smtp:\[127.0.0.1\]:$sport " "$T/status.txt")
check "status: the slow destination's row" test -n "$row"
check "status: its long result ends in ... (cut at 100 characters, marked)" sh -c \
    "echo '$row' | grep -Eq ' deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 450 4\.7\.1 .{20,}\.\.\.$'"
result=$(echo "$row" | sed "s/.* no  *//")
check_eq "status: the cut result is 100 characters with the marker" "${#result}" 100
check "status: the ETRN table follows, after a blank line" sh -c \
    "grep -B1 '^ETRN DOMAIN  *WAITING  FLUSHING  LAST ETRN  *FROM$' '$T/status.txt' | head -1 | grep -q '^\$'"
check "status: site.test waits 1 for ETRN, never flushed" \
    grep -Eq '^site\.test +1  no  +-  +-$' "$T/status.txt"
srv_queue relay status --json >"$T/status.json"
check "status --json: the whole reason" grep -qF "try again in five minutes from now" "$T/status.json"

e2e_done
