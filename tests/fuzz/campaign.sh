#!/bin/bash
# campaign.sh - a longer fuzzing campaign, one harness at a time, politely:
#   tests/fuzz/campaign.sh OUTDIR SECONDS NAME...
# Each harness runs under nice -n 10 for SECONDS (-max_total_time) with
# run.sh's limits; OUTDIR/summary gets one line per harness: name, exit
# status, CPU seconds, and libFuzzer's final "exec/s", "cov" and "ft".
# Grown corpora and crash inputs stay under OUTDIR (not in git).
# Build first: make fuzz. The binaries are copied to OUTDIR/bin.
set -u
out=$1 seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
bins=$out/bin
mkdir -p "$bins"
for name in "$@"; do
    # a copy: make fuzz may relink the harness while it runs
    cp "$here/../../build/fuzz/fuzzers/fuzz_$name" "$bins/" || continue
    FUZZ_ONLY=$name nice -n 10 /usr/bin/time -f "%U %S" -o "$out/$name.time" \
        "$here/run.sh" "$bins" "$out" "$seconds" >>"$out/run.out" 2>&1
    rc=$?
    cpu=$(awk '{printf "%.0f", $1 + $2}' "$out/$name.time" 2>/dev/null)
    last=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$out/logs/$name.log" | tail -1)
    execs=$(grep -E '^stat::average_exec_per_sec' "$out/logs/$name.log" | awk '{print $2}')
    cov=$(printf '%s\n' "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(printf '%s\n' "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    printf '%s rc=%s cpu_s=%s exec_s=%s cov=%s ft=%s\n' "$name" "$rc" "${cpu:-?}" "${execs:-?}" \
        "${cov:-?}" "${ft:-?}" >>"$out/summary"
done
