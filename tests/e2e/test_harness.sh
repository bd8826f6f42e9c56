#!/bin/sh
# test_harness.sh - the test harness itself. tests/run.sh: a test that ends
# without its summary line fails whatever its exit status, so a script that
# stops early (an "exit 0" in the middle, a sourced helper that exits) is never
# counted as passed; so does one that ran no assertion at all; a failed
# assertion or a non-zero exit fails; skips are summed. tests/lib: grep_none fails on a file that is not there (where
# "! grep -q" passes), smtp_table names the case that failed, smtp_client
# prints what the server said.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
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
case_sh empty     'echo "0 passed, 0 failed, 0 skipped"'

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
empty.sh|1|check: 0 passed, 1 failed, 0 skipped
TABLE

run nosummary.sh >/dev/null
check "the failure names the script" grep -q '^FAIL nosummary' "$T/out"
check "the log says the summary line is missing" \
    grep -q 'no summary line' "$T/logs/nosummary.log"
check "failed scripts listed" grep -q '^failed: nosummary' "$T/out"

# grep_none: only "read the file, no line matched" is success
printf 'one\ntwo\n' >"$T/two-lines"
check "grep_none: no matching line" grep_none three "$T/two-lines"
check_eq "grep_none: a matching line fails" "$(grep_none two "$T/two-lines"; echo $?)" 1
check_eq "grep_none: a missing file fails" "$(grep_none three "$T/missing"; echo $?)" 1
check_eq "grep_none: -v, every line matches: success" \
    "$(grep_none -v -e one -e two "$T/two-lines"; echo $?)" 0

# smtp_client and smtp_table against a real etrn-server
port=$(free_port)
srv_conf h "127.0.0.1:$port" "myhostname = h.test"
check "etrn-server for the client tests listens" srv_start h
check_eq "smtp_client: greeting and one reply per command" \
    "$(smtp_client -g -e c.test "$port" 'NOOP' 'NOOP x\x00y' 'QUIT' 'NOOP')" \
    "220 h.test ESMTP etrn-server
250 2.0.0 Ok
500 5.5.2 Error: bad character in command
221 2.0.0 Bye
EOF"
check_eq "smtp_client -c: the dialogue as a transcript" \
    "$(smtp_client -c "$port" 'HELO c.test' 'QUIT')" \
    "C: HELO c.test
S: 250 h.test
C: QUIT
S: 221 2.0.0 Bye"
check_eq "smtp_client: a refused setup step is named" \
    "$(smtp_client -e c.test -t "$port" 'NOOP')" "setup failed: STARTTLS -> 454 4.7.0 TLS not available"
# srv_queued: 0 only for a queue that is there
check_eq "srv_queued: the running server's empty queue" "$(srv_queued h)" 0
check_eq "srv_queued: a queue that is not there is not 0" "$(srv_queued nosuch)" \
    "no $T/nosuch/queue/incoming"
# a table with one wrong line: that line's case fails, by name; the others pass
(
    E2E_PASS=0 E2E_FAIL=0
    smtp_table "tbl" -e c.test "$port" <<'TABLE'
# a comment, then cases
NOOP          -> 250 2.0.0 Ok
ETRN          -> 999 not what the server says
RSET          -> 250 2.0.0 Ok
TABLE
    echo "counts $E2E_PASS $E2E_FAIL"
) >"$T/table.out"
check_eq "smtp_table: one assertion per case (and one for the end), the wrong one fails" \
    "$(grep -v '^ok' "$T/table.out")" \
    "FAIL tbl: ETRN: got [500 5.5.2 Syntax: ETRN domain], want [999 not what the server says]
counts 3 1"
e2e_done
