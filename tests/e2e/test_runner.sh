#!/bin/sh
# test_runner.sh - tests/run.sh itself: a test that ends without its summary
# line fails whatever its exit status, so a script that stops early (an
# "exit 0" in the middle, a sourced helper that exits) is never counted as
# passed; a failed assertion or a non-zero exit fails; skips are summed.
. "$(dirname "$0")/../lib/e2e.sh"
e2e_init

mkdir -p "$T/cases" "$T/logs"
case_sh() { printf '#!/bin/sh\n%s\n' "$2" >"$T/cases/$1.sh"; }
case_sh good      'echo "ok   a"; echo "1 passed, 0 failed, 0 skipped"'
case_sh skipped   'echo "SKIP no ipv6"; echo "0 passed, 0 failed, 1 skipped"'
case_sh nosummary 'echo "ok   a"; exit 0'
case_sh silent    'exit 0'
case_sh failed    'echo "FAIL a"; echo "0 passed, 1 failed, 0 skipped"; exit 1'
case_sh lying     'echo "FAIL a"; echo "3 passed, 2 failed, 0 skipped"; exit 0'
case_sh crashed   'echo "2 passed, 0 failed, 0 skipped"; exit 3'

# run NAME... -> "EXIT|closing line"
run() {
    ( cd "$T/cases" && TEST_LOGS="$T/logs" sh "$E2E_TOP/tests/run.sh" "$@" ) >"$T/out" 2>&1
    echo "$?|$(tail -n 1 "$T/out")"
}

# One line per case: scripts -> exit status and closing line.
while IFS='|' read -r scripts want; do
    [ -n "$scripts" ] || continue
    # shellcheck disable=SC2086
    check_eq "run.sh $scripts" "$(run $scripts)" "$want"
done <<'TABLE'
good.sh|0|check: 1 passed, 0 failed, 0 skipped
skipped.sh|0|check: 0 passed, 0 failed, 1 skipped
good.sh skipped.sh|0|check: 1 passed, 0 failed, 1 skipped
nosummary.sh|1|check: 0 passed, 1 failed, 0 skipped
silent.sh|1|check: 0 passed, 1 failed, 0 skipped
good.sh nosummary.sh|1|check: 1 passed, 1 failed, 0 skipped
failed.sh|1|check: 0 passed, 1 failed, 0 skipped
lying.sh|1|check: 3 passed, 2 failed, 0 skipped
crashed.sh|1|check: 2 passed, 1 failed, 0 skipped
TABLE

run nosummary.sh >/dev/null
check "the failure names the script" grep -q '^FAIL nosummary' "$T/out"
check "the log says the summary line is missing" \
    grep -q 'no summary line' "$T/logs/nosummary.log"
check "failed scripts listed" grep -q '^failed: nosummary' "$T/out"
e2e_done
