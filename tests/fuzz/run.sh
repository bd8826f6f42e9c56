#!/bin/bash
# run.sh - run every libFuzzer harness of BINDIR.
#   run.sh BINDIR RUNDIR            replay each harness's seed corpus once
#   run.sh BINDIR RUNDIR SECONDS    fuzz each harness for SECONDS
# Seeds are tests/fuzz/corpus/NAME (read only); new inputs go to
# RUNDIR/corpus/NAME, crash/leak/timeout inputs to RUNDIR/artifacts/NAME/,
# the output to RUNDIR/logs/NAME.log. Exits 1 when any harness failed.
# FUZZ_ONLY="a b" limits the run to those harnesses; FUZZ_RSS_MB (default
# 2048) and FUZZ_TIMEOUT (seconds per input, default 10) are passed on;
# FUZZ_SRC_DIR (default: this script's directory) holds corpus/ and *.dict.
set -u
bindir=$1 rundir=$2 seconds=${3:-}
here=${FUZZ_SRC_DIR:-$(cd "$(dirname "$0")" && pwd)}
rss=${FUZZ_RSS_MB:-2048}
per_input=${FUZZ_TIMEOUT:-10}
failed=""

for bin in "$bindir"/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin" | sed 's/^fuzz_//')
    if [ -n "${FUZZ_ONLY:-}" ]; then
        case " $FUZZ_ONLY " in
        *" $name "*) ;;
        *) continue ;;
        esac
    fi
    seeds=$here/corpus/$name
    corpus=$rundir/corpus/$name
    artifacts=$rundir/artifacts/$name/
    log=$rundir/logs/$name.log
    mkdir -p "$corpus" "$artifacts" "$rundir/logs" "$seeds"
    opts=(-rss_limit_mb="$rss" -timeout="$per_input" -artifact_prefix="$artifacts"
          -print_final_stats=1)
    dict=$here/$name.dict
    [ -f "$dict" ] || dict=$here/${name%%_*}.dict   # smtpd_session -> smtpd.dict
    [ -f "$dict" ] && opts+=(-dict="$dict")
    if [ -n "$seconds" ]; then
        "$bin" "${opts[@]}" -max_total_time="$seconds" "$corpus" "$seeds" >"$log" 2>&1
    else
        "$bin" "${opts[@]}" -runs=0 "$seeds" >"$log" 2>&1
    fi
    rc=$?
    status=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED)' "$log" | tail -1)
    if [ $rc -ne 0 ]; then
        failed="$failed $name"
        echo "FAIL fuzz $name (exit $rc): see $log"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$log" | head -5
    else
        echo "ok   fuzz $name ${status:-}"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed"
    exit 1
fi
