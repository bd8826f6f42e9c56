#!/bin/sh
# odmr_queue_state.sh - etrn-server's ATRN decides from the queue, not from the
# flush index alone; refused names leave no trace in the server's tables; a
# reload says that a changed odmr_listen needs a restart.
# - a.test is not in fast_flush_domains (so no flush log ever lists it): a
#   message waits for it, ATRN a.test gets 250 (not 453) and the site gets it;
# - b.test's flush log is removed while the server is down: right after the
#   restart ATRN b.test gets 250 and the site gets the message;
# - 1,000 ATRNs naming random domains, half not the user's (450), half made-up
#   names under its "@b.test" entry (453): the status's ATRN rows and
#   destinations do not grow;
# - SIGHUP with another odmr_listen: "reload: odmr_listen changed: takes
#   effect after a restart", and the old listener still serves;
# - ATRN counts against etrn_rate_limit (451 4.7.0 past it), since each may
#   read the queue.
. "$(dirname "$0")/../lib/e2e.sh"
. "$E2E_TOP/tests/lib/etrn_server.sh"
e2e_init

SITE="$PY $E2E_TOP/tests/lib/odmr_site.py"
PP=$(free_port)
OP=$(free_port)
OP2=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
chmod 644 "$T/key.pem"
echo "tim:$(openssl passwd -6 pw)" >"$T/users"
chown nobody "$T/users" && chmod 600 "$T/users"
# provider_conf ODMR_PORT [MAIN LINES...] - the provider's configuration
provider_conf() {
    pc_port=$1; shift
    srv_conf provider "127.0.0.1:$PP" "odmr_listen = 127.0.0.1:$pc_port" "mynetworks = 127.0.0.0/8" \
        "$@" \
        "relay_domains = a.test b.test" "etrn_only_domains = a.test b.test" \
        "fast_flush_domains = b.test" \
        "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/key.pem" \
        "smtpd_sasl_users_file = $T/users" "smtpd_error_sleep_time = 0s" \
        "smtpd_soft_error_limit = 0" "smtpd_hard_error_limit = 0" \
        "[etrn_users]" "tim = a.test @b.test"
}
provider_conf "$OP"
srv_start provider || { E2E_FAIL=1; e2e_done; exit 1; }
LOG=$T/provider/maillog

# 1. a domain outside fast_flush_domains
smtp-source -m 1 -f s@x.test -t u@a.test "127.0.0.1:$PP" >"$T/src-a.out" 2>&1
check "a message for a.test waits" wait_for 20 grep -q 'to=<u@a.test>.*status=deferred' "$LOG"
$SITE --port "$OP" --user tim --password pw --atrn a.test >"$T/a.out" 2>&1
check_eq "a.test (no flush log): ATRN 250, not 453" "$(sed -n 's/^atrn: //p' "$T/a.out")" \
    "250 OK now reversing the connection"
check_eq "a.test: the site gets the message" "$(sed -n 's/^acked: //p' "$T/a.out")" "<u@a.test>"
check "log: a.test delivered over ODMR" grep -q 'to=<u@a.test>, relay=odmr:tim.*status=sent' "$LOG"

# 2. b.test's flush log lost over a restart
smtp-source -m 1 -f s@x.test -t u@b.test "127.0.0.1:$PP" >"$T/src-b.out" 2>&1
check "a message for b.test waits" wait_for 20 grep -q 'to=<u@b.test>.*status=deferred' "$LOG"
srv_stop provider
rm -f "$T/provider/queue/flush/"*
srv_start provider || { E2E_FAIL=1; e2e_done; exit 1; }
check "the ODMR listener is back" wait_port "$OP" 10
$SITE --port "$OP" --user tim --password pw --atrn b.test >"$T/b.out" 2>&1
check_eq "b.test (flush log gone): ATRN 250, not 453" "$(sed -n 's/^atrn: //p' "$T/b.out")" \
    "250 OK now reversing the connection"
check_eq "b.test: the site gets the message" "$(sed -n 's/^acked: //p' "$T/b.out")" "<u@b.test>"
$SITE --port "$OP" --user tim --password pw --atrn a.test,b.test >"$T/none.out" 2>&1
check_eq "nothing left: 453" "$(sed -n 's/^atrn: //p' "$T/none.out")" "453 You have no mail"

# 3. 1,000 refused ATRNs with made-up names
$PY - "$OP" >"$T/flood.out" 2>&1 <<'PYEOF'
import random, string, sys, time
sys.path.insert(0, "tests/lib")
from smtp_client import Client
port = int(sys.argv[1])
random.seed(14)
codes = {}
c = Client(port)
c.reply()
c.cmd("EHLO s.test"); c.cmd("STARTTLS"); c.starttls("localhost"); c.cmd("EHLO s.test")
c.auth_plain("tim", "pw")
deadline = time.monotonic() + 120
for i in range(1000):
    if time.monotonic() > deadline:
        break
    name = "".join(random.choice(string.ascii_lowercase) for _ in range(12))
    name += ".b.test" if i % 2 else ".test"
    code = c.cmd("ATRN " + name)[-1][:3]
    codes[code] = codes.get(code, 0) + 1
c.cmd("QUIT")
c.close()
for k in sorted(codes):
    print(k, codes[k])
PYEOF
check_eq "1,000 made-up names: 450 for the 500 not owned, 453 for the 500 under @b.test" \
    "$(cat "$T/flood.out" | tr '\n' ' ')" "450 500 453 500 "
srv_queue provider status --json >"$T/status.json" 2>&1
check_eq "status: ATRN rows only for the two owned domains" \
    "$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); n=len(d["atrn"]); print(n, sorted(r["domain"] for r in d["atrn"]) if n < 10 else "...")' "$T/status.json")" \
    "2 ['a.test', 'b.test']"
check_eq "status: one ODMR destination row" \
    "$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len([x for x in d["destinations"] if x["destination"].startswith("odmr")]))' "$T/status.json")" \
    "1"
check "log: each refusal logged" [ "$(grep -c 'reject: ATRN [a-z]*\.test from .*not in its \[etrn_users\] entry' "$LOG")" -eq 500 ]

# 4. reload with another odmr_listen
provider_conf "$OP2"
kill -HUP "$SRV_PID"
check "log: the reload names odmr_listen" wait_for 10 grep -q \
    'reload: odmr_listen changed: takes effect after a restart' "$LOG"
check "the old ODMR listener still answers" sh -c \
    "$SITE --port $OP --user tim --password pw --atrn a.test | grep -q '^atrn: 453'"

# 5. ATRN counts against etrn_rate_limit like ETRN (clients in
#    smtpd_client_event_limit_exceptions, as above, are not counted)
provider_conf "$OP" "etrn_rate_limit = 3" "smtpd_client_event_limit_exceptions ="
kill -HUP "$SRV_PID"
check "the rate-limited configuration is loaded" wait_for 10 sh -c \
    "[ \$(grep -c 'reload: configuration .* loaded' '$LOG') -ge 2 ]"
smtp_table "ATRN past etrn_rate_limit" -e s.test -t -a tim:pw "$OP" <<'TBL'
ATRN a.test               -> 453 You have no mail
ATRN a.test               -> 453 You have no mail
ATRN a.test               -> 453 You have no mail
ATRN a.test               -> 451 4.7.0 Error: too many ATRN requests from 127.0.0.1
QUIT                      -> 221 2.0.0 Bye
TBL
check "log: the limited ATRN is logged" grep -q \
    'reject: ATRN from unknown\[127.0.0.1\], sasl_username=tim: more than etrn_rate_limit (3) requests' "$LOG"
e2e_done
