#!/bin/bash
# campaign.sh - a longer fuzzing campaign, one harness at a time, politely:
#   tests/fuzz/campaign.sh OUTDIR SECONDS NAME...
# Each harness runs under nice -n 10 in rounds of at most SECONDS
# (-max_total_time, resuming from the corpus grown so far) until it has had
# CAMPAIGN_CPU CPU seconds (default 300) or CAMPAIGN_WALL wall seconds
# (default 900) have passed: on a loaded machine nice'd wall time is not CPU
# time. OUTDIR/summary gets one line per harness: exit status of the last
# round, rounds, CPU seconds, executions, executions per CPU second,
# libFuzzer's last exec/s, and the final "cov" and "ft". Logs of each round:
# OUTDIR/logs/NAME.N.log. Grown corpora and crash inputs stay under OUTDIR
# (not in git). Build first (make fuzz); the harnesses and run.sh are copied
# to OUTDIR/bin, so a rebuild or an edit meanwhile does not disturb the run.
set -u
out=$1 seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
cpu_target=${CAMPAIGN_CPU:-300}
wall_max=${CAMPAIGN_WALL:-900}
bins=$out/bin
mkdir -p "$bins" "$out/logs"
cp "$here/run.sh" "$bins/run.sh" || exit 1
for name in "$@"; do
    cp "$here/../../build/fuzz/fuzzers/fuzz_$name" "$bins/" || continue
    cpu=0 execs=0 round=0 rc=0
    start=$(date +%s)
    while :; do
        left=$((wall_max - ($(date +%s) - start)))
        if [ "$cpu" -ge "$cpu_target" ] || [ "$left" -le 10 ]; then break; fi
        round=$((round + 1))
        t=$seconds
        [ "$left" -lt "$t" ] && t=$left
        FUZZ_ONLY=$name FUZZ_SRC_DIR=$here nice -n 10 /usr/bin/time -f "%U %S" \
            -o "$out/$name.time" "$bins/run.sh" "$bins" "$out" "$t" >>"$out/run.out" 2>&1
        rc=$?
        cp "$out/logs/$name.log" "$out/logs/$name.$round.log"
        cpu=$((cpu + $(awk '{printf "%.0f", $1 + $2}' "$out/$name.time" 2>/dev/null || echo 0)))
        n=$(awk '/^stat::number_of_executed_units/ {print $2}' "$out/logs/$name.log")
        execs=$((execs + ${n:-0}))
        [ "$rc" -eq 0 ] || break
    done
    last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$out/logs/$name.log" | tail -1)
    rate=$(awk '/^stat::average_exec_per_sec/ {print $2}' "$out/logs/$name.log")
    cov=$(printf '%s\n' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    printf '%s rc=%s rounds=%s cpu_s=%s execs=%s execs_per_cpu_s=%s last_exec_s=%s cov=%s ft=%s\n' \
        "$name" "$rc" "$round" "$cpu" "$execs" "$((execs / (cpu > 0 ? cpu : 1)))" "${rate:-?}" \
        "${cov:-?}" "${ft:-?}" >>"$out/summary"
done
