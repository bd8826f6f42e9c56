#!/bin/sh
# run.sh - run test programs and e2e scripts, sum their "N passed, N failed"
# lines, and print one closing line. Exit 1 when anything failed.
# A test fails when it exits non-zero, reports a failed assertion, ends
# without its summary line (a script that stopped early ran fewer checks than
# it has, whatever its exit status says), or ran no assertion at all (passed,
# failed and skipped all 0).
# Each test writes its full output to build/test-logs/NAME.log; failures
# are shown in full.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
logs=${TEST_LOGS:-$top/build/test-logs}
mkdir -p "$logs"
[ "${1:-}" = --unit ] && shift
total_pass=0 total_fail=0 total_skip=0 broken=""
for t in "$@"; do
    name=$(basename "$t" .sh)
    log="$logs/$name.log"
    start=$(date +%s)
    case "$t" in
        *.sh) timeout 900 sh "$t" >"$log" 2>&1 ;;
        *) timeout 300 "$t" >"$log" 2>&1 ;;
    esac
    rc=$?
    secs=$(( $(date +%s) - start ))
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p'); p=${p:-0}
    f=$(echo "$line" | sed -n 's/^[0-9]* passed, \([0-9]*\) failed.*/\1/p'); f=${f:-0}
    s=$(echo "$line" | sed -n 's/.*, \([0-9]*\) skipped.*/\1/p'); s=${s:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    if [ -z "$line" ]; then
        f=1
        echo "no summary line (\"N passed, N failed\") in $log" >>"$log"
    elif [ $((p + f + s)) -eq 0 ]; then
        f=1
        echo "no assertion ran (0 passed, 0 failed, 0 skipped)" >>"$log"
    fi
    total_pass=$((total_pass + p)); total_fail=$((total_fail + f)); total_skip=$((total_skip + s))
    if [ "$f" -ne 0 ]; then
        echo "FAIL $name (exit $rc, ${secs}s): $p passed, $f failed"
        sed 's/^/    /' "$log" | tail -n 80
        broken="$broken $name"
    else
        echo "ok   $name (${secs}s): $p passed${s:+, $s skipped}"
        grep -E '^(MEASURE|SKIP)' "$log" | sed 's/^/    /'
    fi
done
[ -n "$broken" ] && echo "failed:$broken"
echo "check: $total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
