#!/bin/sh
# demo.sh - make demo's script, run as a test: it must exit 0, narrate each
# step and report every message delivered, within 30 seconds.
. "$(dirname "$0")/../lib/e2e.sh"
e2e_init

start=$(date +%s)
BIN_DIR="$BIN_DIR" timeout 60 sh "$E2E_TOP/tests/demo/run.sh" >"$T/demo.out" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
sed 's/^/    /' "$T/demo.out"
check_eq "demo: exit status" "$rc" 0
check_eq "demo: last line" "$(tail -n 1 "$T/demo.out")" "demo: 5 of 5 messages delivered"
check "demo: the messages waited at the provider" grep -q "^ *-- .* in 5 Requests\." "$T/demo.out"
check "demo: the agent's ETRN was answered 253" grep -q "253" "$T/demo.out"
check "demo: alice got mail" grep -q "^    alice: demo message 1 of 5" "$T/demo.out"
check "demo: ran in under 30 s ($secs s)" test "$secs" -lt 30
echo "MEASURE demo wall time: $secs s"
e2e_done
