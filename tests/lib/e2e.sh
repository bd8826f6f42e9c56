# e2e.sh - shared helpers for end-to-end tests (POSIX sh, sourced).
#
#   . "$(dirname "$0")/../lib/e2e.sh"
#   e2e_init                      temp dir in $T, cleanup trap, counters
#   port=$(free_port)             a free TCP port on 127.0.0.1
#   start_bg NAME cmd args...     start in background, PID recorded; killed at exit
#   stop_pid PID                  TERM, then KILL after 5 s
#   wait_port PORT [SECS] [ADDR]  wait until a TCP port accepts (bounded)
#   wait_for SECS cmd...          poll cmd every 0.1 s until it succeeds (bounded)
#   check "what" cmd...           one assertion: cmd must succeed; returns cmd's
#                                 status, so "check ... || e2e_abort" stops the script
#   check_eq "what" GOT WANT      one assertion: strings equal; returns 1 when not
#   e2e_abort ["why"]             stop here: print why (a FAIL line), the summary
#                                 line, exit 1 (for a step every later one needs)
#   alive PID                     PID is a running process: not gone and not a
#                                 zombie (kill -0 succeeds on a dead child that the
#                                 shell has not reaped)
#   owners FILE...                the owners (stat %U) of the FILEs, sorted and
#                                 unique; "stat failed: ..." when any FILE is not
#                                 there, so a missing file never looks like an owner
#   expect_dialogue "what" FILE <<EOF
#                                 one assertion: FILE's lines (a leading "SECS.FRAC "
#                                 time stripped) are exactly the here-document's, in
#                                 order; a failure names the first line that differs
#                                 (and says when FILE is missing or ends early)
#   grep_none [OPTS] PATTERN FILE...  true only when grep read every FILE and no line
#                                 matched ("! grep -q" also passes on a missing file)
#   smtp_client ARGS...           tests/lib/smtp_client.py (the one SMTP client; see
#                                 its header), stderr folded into stdout
#   smtp_table "what" ARGS... <<TABLE
#                                 one session of smtp_client ARGS with every CMD of the
#                                 table's "CMD -> REPLY" lines ("#..." and blank lines
#                                 skipped; blanks before "->" are padding: write a
#                                 trailing space as \x20); one assertion per line,
#                                 named by its CMD
#   transaction LOG RCPT          from a scripted_smtpd.py LOG: the mail transaction
#                                 (C: MAIL FROM ... the reply to the final ".") that
#                                 holds RCPT TO:<RCPT>, as C:/S: lines in order; queue
#                                 IDs as QID, the sink's "queued as" number as N, a
#                                 Received: date as DATE
#   skip "why"                    count a skipped assertion
#   e2e_done                      print "N passed, N failed, N skipped"; exit status
#
# $BIN_DIR holds the programs (default: bin/ at the top), $TOOLS_DIR the test
# tools built from tests/tools. Only loopback addresses and namespaces the
# test itself makes are ever used. Every wait is bounded.

E2E_TOP=$(cd "$(dirname "$0")/../.." && pwd)
BIN_DIR=${BIN_DIR:-$E2E_TOP/bin}
TOOLS_DIR=${TOOLS_DIR:-$E2E_TOP/build/plain/tools}
PY=/usr/bin/python3
E2E_PASS=0
E2E_FAIL=0
E2E_SKIP=0
E2E_PIDS=""

e2e_cleanup() {
    for pid in $E2E_PIDS; do
        kill "$pid" 2>/dev/null
    done
    for pid in $E2E_PIDS; do
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$pid" 2>/dev/null
    done
    [ -n "${E2E_CLEANUP_HOOK:-}" ] && eval "$E2E_CLEANUP_HOOK"
    [ -n "${T:-}" ] && [ -z "${E2E_KEEP:-}" ] && rm -rf "$T"
}

e2e_init() {
    T=$(mktemp -d /tmp/etrnkit-e2e.XXXXXX)
    chmod 755 "$T"
    trap e2e_cleanup EXIT
    trap 'exit 130' INT TERM
}

free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_bg() {
    name=$1; shift
    "$@" >"$T/$name.out" 2>&1 &
    E2E_LAST_PID=$!
    E2E_PIDS="$E2E_PIDS $E2E_LAST_PID"
}

stop_pid() {
    kill "$1" 2>/dev/null || return 0
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    return 0
}

wait_port() {
    $PY - "$1" "${2:-10}" "${3:-127.0.0.1}" <<'PYEOF'
import socket, sys, time
port, secs, addr = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
end = time.time() + secs
while time.time() < end:
    try:
        socket.create_connection((addr, port), 0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PYEOF
}

wait_for() {
    secs=$1; shift
    n=$(( secs * 10 ))
    while [ $n -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

check() {
    what=$1; shift
    "$@" >/dev/null 2>&1
    check_rc=$?
    if [ $check_rc -eq 0 ]; then
        E2E_PASS=$((E2E_PASS + 1)); echo "ok   $what"
    else
        E2E_FAIL=$((E2E_FAIL + 1)); echo "FAIL $what"
    fi
    return $check_rc
}

check_eq() {
    if [ "$2" = "$3" ]; then
        E2E_PASS=$((E2E_PASS + 1)); echo "ok   $1"
    else
        E2E_FAIL=$((E2E_FAIL + 1)); echo "FAIL $1: got [$2], want [$3]"
        return 1
    fi
}

e2e_abort() {
    [ $# -gt 0 ] && { E2E_FAIL=$((E2E_FAIL + 1)); echo "FAIL $1"; }
    echo "stopped: a step the rest of the script needs failed"
    e2e_done
    exit 1
}

alive() {
    alive_st=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null)
    [ -n "$alive_st" ] && [ "$alive_st" != Z ] && [ "$alive_st" != X ] && [ "$alive_st" != x ]
}

owners() {
    owners_out=$(stat -c %U "$@" 2>&1) || { echo "stat failed: $owners_out" | tr '\n' ' '; return 1; }
    printf '%s\n' "$owners_out" | sort -u
}

expect_dialogue() {
    ed_what=$1 ed_file=$2
    mkdir -p "$T/.e2e"
    cat >"$T/.e2e/dialogue.want"
    if [ ! -f "$ed_file" ]; then
        E2E_FAIL=$((E2E_FAIL + 1)); echo "FAIL $ed_what: no transcript $ed_file"
        return 1
    fi
    sed 's/^[0-9][0-9]*\.[0-9][0-9]* //' "$ed_file" >"$T/.e2e/dialogue.got"
    ed_diff=$(awk 'NR == FNR { want[FNR] = $0; nw = FNR; next }
        { ng = FNR
          if (FNR > nw) { printf "line %d: got [%s], want the end of the dialogue", FNR, $0; bad = 1; exit }
          if ($0 != want[FNR]) { printf "line %d: got [%s], want [%s]", FNR, $0, want[FNR]; bad = 1; exit } }
        END { if (!bad && ng < nw) printf "line %d: got the end of the dialogue, want [%s]", ng + 1, want[ng + 1] }' \
        "$T/.e2e/dialogue.want" "$T/.e2e/dialogue.got")
    if [ -z "$ed_diff" ]; then
        E2E_PASS=$((E2E_PASS + 1)); echo "ok   $ed_what"
    else
        E2E_FAIL=$((E2E_FAIL + 1)); echo "FAIL $ed_what: $ed_diff"
        return 1
    fi
}

grep_none() {
    grep -q "$@" 2>/dev/null
    [ $? -eq 1 ]
}

smtp_client() {
    $PY "$E2E_TOP/tests/lib/smtp_client.py" "$@" 2>&1
}

smtp_table() {
    tbl_what=$1; shift
    mkdir -p "$T/.e2e"
    grep -v -e '^#' -e '^[[:space:]]*$' | awk -v c="$T/.e2e/cmds" -v w="$T/.e2e/wants" '{
        i = index($0, " -> ")
        if (i == 0) { print "bad table line: " $0 > c; print "" > w; next }
        cmd = substr($0, 1, i - 1); sub(/ +$/, "", cmd)
        print cmd > c; print substr($0, i + 4) > w }'
    while IFS= read -r tbl_line; do
        set -- "$@" "$tbl_line"
    done <"$T/.e2e/cmds"
    smtp_client "$@" >"$T/.e2e/got"
    tbl_i=0
    while IFS= read -r tbl_line; do
        tbl_i=$((tbl_i + 1))
        check_eq "$tbl_what: $tbl_line" "$(sed -n "${tbl_i}p" "$T/.e2e/got")" \
            "$(sed -n "${tbl_i}p" "$T/.e2e/wants")"
    done <"$T/.e2e/cmds"
    check_eq "$tbl_what: nothing after the last reply" \
        "$(sed -n "$((tbl_i + 1)),\$p" "$T/.e2e/got")" ""
}

transaction() {
    sed -n 's/^[0-9.]* \([CS]\): /\1: /p' "$1" | awk -v rcpt="RCPT TO:<$2>" '
        /^C: MAIL FROM:/ && !data { buf = ""; n = 0; hit = 0 }
        { buf = buf $0 "\n"; n++ }
        $0 == "C: " rcpt && !data { hit = 1 }
        $0 ~ /^S: 354 / { data = 1 }
        data && $0 ~ /^S: / && $0 !~ /^S: 354 / {
            data = 0
            if (hit) { printf "%s", buf; exit }
        }' |
        sed -e 's/\b[0-9A-F]\{8,12\}\b/QID/g' -e 's/queued as [0-9][0-9]*$/queued as N/' \
            -e 's/; [A-Z][a-z][a-z], [0-9].* [+-][0-9][0-9][0-9][0-9]$/; DATE/'
}

skip() {
    E2E_SKIP=$((E2E_SKIP + 1)); echo "SKIP $1"
}

e2e_done() {
    echo "$E2E_PASS passed, $E2E_FAIL failed, $E2E_SKIP skipped"
    [ "$E2E_FAIL" -eq 0 ]
}
