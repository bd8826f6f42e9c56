#!/bin/sh
# demo.sh - make demo's script, run as a test: it must exit 0, narrate each
# step and report every message delivered (both acts: ETRN, then ATRN for a
# site behind NAT), within 30 seconds.
. "$(dirname "$0")/../lib/e2e.sh"
e2e_init

start=$(date +%s)
BIN_DIR="$BIN_DIR" timeout 60 sh "$E2E_TOP/tests/demo/run.sh" >"$T/demo.out" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
sed 's/^/    /' "$T/demo.out"
check_eq "demo: exit status" "$rc" 0
check_eq "demo: last line" "$(tail -n 1 "$T/demo.out")" "demo: 8 of 8 messages delivered"
check "demo: the messages waited at the provider" grep -q "^ *-- .* in 5 Requests\." "$T/demo.out"
check "demo: the agent's ETRN was answered 253" grep -q "253" "$T/demo.out"
check "demo: alice got mail" grep -q "^    alice: demo message 1 of 5" "$T/demo.out"
check "demo act two: the NAT site's mail waited" grep -q "^ *-- .* in 3 Requests\." "$T/demo.out"
check "demo act two: the agent relayed 3 with ATRN" grep -q "ATRN relayed 3 messages" "$T/demo.out"
check "demo act two: carol got mail" grep -q "^    carol: NAT message 1 of 3" "$T/demo.out"
check_eq "demo act two: summary" "$(grep '^demo: act two: .* fetched' "$T/demo.out")" \
    "demo: act two: 3 of 3 messages fetched with ATRN"
check "demo: ran in under 30 s ($secs s)" test "$secs" -lt 30
echo "MEASURE demo wall time: $secs s"
e2e_done
