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

# check and check_eq return the status, so "check ... || e2e_abort" stops a script
check_eq "check: a failed assertion returns its command's status" \
    "$( (check "x" sh -c 'exit 3'; echo "rc $?") | tail -n 1)" "rc 3"
check_eq "check: a passed one returns 0" "$( (check "x" true; echo "rc $?") | tail -n 1)" "rc 0"
check_eq "check_eq: unequal returns 1" "$( (check_eq "x" a b; echo "rc $?") | tail -n 1)" "rc 1"
check_eq "e2e_abort: a FAIL line and the summary, nothing after it" \
    "$( (E2E_PASS=2 E2E_FAIL=0; e2e_abort "setup"; echo "went on") | tr '\n' '|')" \
    "FAIL setup|stopped: a step the rest of the script needs failed|2 passed, 1 failed, 0 skipped|"
( E2E_PASS=0 E2E_FAIL=0; e2e_abort "setup" ) >/dev/null
check_eq "e2e_abort: exit status" "$?" 1

# alive: a zombie (dead, not yet reaped by its parent) is not alive, although
# kill -0 succeeds on it; the parent here is a python that never reaps
start_bg zparent "$PY" -c 'import os, sys, time
pid = os.fork()
if pid == 0:
    os._exit(0)
print(pid, flush=True)
time.sleep(30)'
check "alive: the unreaped child is a zombie" wait_for 5 sh -c \
    "zpid=\$(head -n 1 '$T/zparent.out'); [ -n \"\$zpid\" ] && grep -q '^[0-9]* ([^)]*) Z' /proc/\$zpid/stat"
zpid=$(head -n 1 "$T/zparent.out")
check "alive: kill -0 succeeds on the zombie" kill -0 "$zpid"
check_eq "alive: the zombie is not alive" "$(alive "$zpid"; echo $?)" 1
stop_pid "$E2E_LAST_PID"
check_eq "alive: a process that is gone is not alive" "$(alive "$zpid"; echo $?)" 1
sleep 30 &
spid=$!
check "alive: a sleeping child is alive" alive "$spid"
stop_pid "$spid"

# owners: a missing file is an error, not one owner fewer
touch "$T/own-a"
check_eq "owners: one file" "$(owners "$T/own-a")" "$(id -un)"
check_eq "owners: a missing file among others fails" \
    "$(owners "$T/own-a" "$T/own-missing" >/dev/null; echo $?)" 1
check "owners: and says so" sh -c 'case "$1" in "stat failed: "*) exit 0 ;; esac; exit 1' sh \
    "$(owners "$T/own-a" "$T/own-missing")"

# expect_dialogue: the transcript in order; a failure names the first differing line
printf '1.5 C: MAIL FROM:<a>\n1.6 S: 250 Ok\n1.7 C: QUIT\n' >"$T/dlg"
check "expect_dialogue: the same lines (times stripped)" expect_dialogue "d" "$T/dlg" <<'EOF'
C: MAIL FROM:<a>
S: 250 Ok
C: QUIT
EOF
dlg() { # dlg FILE WANT... - expect_dialogue's output and status, its counts, in one line
    ( E2E_PASS=0 E2E_FAIL=0; f=$1; shift; printf '%s\n' "$@" >"$T/dlg-want"
      expect_dialogue "d" "$f" <"$T/dlg-want"; echo "rc $? $E2E_PASS $E2E_FAIL" ) | tr '\n' '|'
}
check_eq "expect_dialogue: an order change names the first differing line" \
    "$(dlg "$T/dlg" 'C: MAIL FROM:<a>' 'C: QUIT' 'S: 250 Ok')" \
    "FAIL d: line 2: got [S: 250 Ok], want [C: QUIT]|rc 1 0 1|"
check_eq "expect_dialogue: a transcript that ends early" \
    "$(dlg "$T/dlg" 'C: MAIL FROM:<a>' 'S: 250 Ok' 'C: QUIT' 'S: 221 Bye')" \
    "FAIL d: line 4: got the end of the dialogue, want [S: 221 Bye]|rc 1 0 1|"
check_eq "expect_dialogue: a line more than expected" \
    "$(dlg "$T/dlg" 'C: MAIL FROM:<a>' 'S: 250 Ok')" \
    "FAIL d: line 3: got [C: QUIT], want the end of the dialogue|rc 1 0 1|"
check_eq "expect_dialogue: a missing transcript fails" \
    "$(dlg "$T/nosuch" 'C: QUIT')" "FAIL d: no transcript $T/nosuch|rc 1 0 1|"
: >"$T/dlg-empty"
check_eq "expect_dialogue: an empty transcript fails" \
    "$(dlg "$T/dlg-empty" 'C: QUIT')" \
    "FAIL d: line 1: got the end of the dialogue, want [C: QUIT]|rc 1 0 1|"

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
check "etrn-server for the client tests listens" srv_start h || e2e_abort
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
