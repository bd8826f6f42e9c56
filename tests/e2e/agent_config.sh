#!/bin/sh
# agent_config.sh - etrn-agent refuses hostile or broken agent.ini files.
#
# Each bad config must make `etrn-agent -c FILE --once` exit 78 (EX_CONFIG)
# with "FILE:LINE: [section] key: what is wrong" on stderr, before any
# connection: every provider points at a recording scripted_smtpd, which
# must never see a connection until the good config at the end is run.
. "$(dirname "$0")/../lib/e2e.sh"
e2e_init

AGENT=$BIN_DIR/etrn-agent
export ETRN_AGENT_USER= # --check-config as root: no run-user checks here (check_config.sh)
SMTPD=$E2E_TOP/tests/lib/scripted_smtpd.py

if [ ! -x "$AGENT" ]; then
    echo "FAIL no $AGENT"
    E2E_FAIL=1
    e2e_done
    exit 1
fi

start_bg smtpd "$PY" "$SMTPD" --listen 127.0.0.1:0 --log "$T/smtpd.log" --ready-file "$T/smtpd.ready"
wait_for 10 test -s "$T/smtpd.ready" || { echo "scripted_smtpd did not start"; cat "$T/smtpd.out"; exit 1; }
port=$(sed 's/.*://' "$T/smtpd.ready")
: >"$T/smtpd.log"

# cfg NAME - the next config is $T/NAME.ini (created mode 0600: umask 077)
cfg() {
    c=$T/$1.ini
}
umask 077

# head_lines - the [agent] section every case starts with (lines 1-4)
head_lines() {
    printf '[agent]\nlog = stderr\nhelo_name = site.example\nstatus_file = %s/status.json\n' "$T"
}

# bad WHAT LINE TEXT [ARGS] - the agent exits 78 and stderr holds
# "$c:LINE: TEXT" (LINE empty: "$c: ... TEXT")
bad() {
    what=$1 line=$2 text=$3; shift 3
    [ $# -eq 0 ] && set -- --once
    "$AGENT" -c "$c" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    check_eq "$what: exit status" "$rc" 78
    if [ -n "$line" ]; then
        check "$what: stderr names $(basename "$c"):$line and $text" grep -qF -- "$c:$line: $text" "$T/err"
    else
        check "$what: stderr names $(basename "$c") and $text" sh -c \
            "grep -F -- '$c:' '$T/err' | grep -qF -- '$text'"
    fi
    if [ "$rc" != 78 ] || ! grep -qF -- "$c" "$T/err"; then
        sed 's/^/    agent: /' "$T/err" "$T/out" | tail -n 10
    fi
}

# provider LINES... - a [provider isp] section at line 6 (header), then
# hosts (7), tls (8), then the given lines from 9 on
provider() {
    printf '\n[provider isp]\nhosts = 127.0.0.1:%s\ntls = none\n' "$port"
    for l in "$@"; do printf '%s\n' "$l"; done
}

# --- unknown keys, bad values, missing keys --------------------------------
cfg unknown_key
{ head_lines; printf 'frobnicate = 1\n'; provider 'domains = example.org'; } >"$c"
bad "unknown key in [agent]" 5 "[agent] frobnicate:"

cfg unknown_pkey
{ head_lines; provider 'domains = example.org' 'colour = blue'; } >"$c"
bad "unknown key in [provider]" 10 "[provider isp] colour:"

cfg bad_duration
{ head_lines; printf 'interval = 5x\n'; provider 'domains = example.org'; } >"$c"
bad "interval = 5x" 5 "[agent] interval:"

cfg zero_timeout
{ head_lines; provider 'timeout = 0'  'domains = example.org'; } >"$c"
bad "timeout = 0" 9 "[provider isp] timeout:"

cfg no_domains
{ head_lines; provider; } >"$c"
bad "missing domains" 6 "[provider isp] domains:"

cfg twice
{ head_lines; provider 'domains = example.org' 'domains = example.net'; } >"$c"
bad "domains given twice" 10 "[provider isp] domains:"

cfg no_provider
head_lines >"$c"
bad "no [provider] section" "" "[provider"

cfg unnamed
{ head_lines; printf '\n[provider]\nhosts = 127.0.0.1:%s\ndomains = example.org\n' "$port"; } >"$c"
bad "provider without a name" 7 "[provider"

cfg tls_twice
{ head_lines; provider 'domains = example.org' 'tls = bogus'; } >"$c"
bad "tls given twice" 10 "[provider isp] tls:"

cfg tls_bogus
{ head_lines; printf '\n[provider isp]\nhosts = 127.0.0.1:%s\ntls = bogus\ndomains = example.org\n' "$port"; } >"$c"
bad "tls = bogus" 8 "[provider isp] tls:"
bad "tls = bogus (--check-config)" 8 "[provider isp] tls:" --check-config

cfg port_range
{ head_lines; provider 'port = 99999' 'domains = example.org'; } >"$c"
bad "port = 99999" 9 "[provider isp] port:"

cfg host_port
{ head_lines; printf '\n[provider isp]\nhosts = 127.0.0.1:99999\ndomains = example.org\n'; } >"$c"
bad "hosts = 127.0.0.1:99999" 7 "[provider isp] hosts:"

cfg unknown_section
{ head_lines; provider 'domains = example.org'; printf '\n[frob]\nkey = value\n'; } >"$c"
bad "unknown section" 12 "[frob]"

# --- secrets readable by others -----------------------------------------------
printf 's3cret\n' >"$T/world.secret"; chmod 644 "$T/world.secret"
cfg world_secret
{ head_lines; provider 'domains = example.org' 'username = bob' "password_file = $T/world.secret"; } >"$c"
bad "world-readable password_file" 11 "[provider isp] password_file:"

printf 's3cret\n' >"$T/group.secret"; chmod 640 "$T/group.secret"
cfg group_secret
{ head_lines; provider 'domains = example.org' 'username = bob' "password_file = $T/group.secret"; } >"$c"
bad "group-readable password_file" 11 "[provider isp] password_file:"

cfg inline_pw
{ head_lines; provider 'domains = example.org' 'username = bob' 'password = s3cret'; } >"$c"
chmod 644 "$c"
bad "inline password in a world-readable config" 11 "[provider isp] password:"
chmod 600 "$c"
"$AGENT" -c "$c" --check-config >"$T/out" 2>"$T/err"
check_eq "inline password in a 0600 config: --check-config" "$?" 0

# --- hostile domains never reach the wire -------------------------------------
cfg dom_cr
{ head_lines; provider; printf 'domains = ok.example evil.example\rquit.example\n'; } >"$c"
bad "domain with an embedded CR" 9 "[provider isp] domains:"
cr=$(printf '\r')
check "domain with an embedded CR: no raw CR in the message (log forging)" grep_none "$cr" "$T/err"

cfg dom_space
{ head_lines; provider 'domains = ok.example "evil example.org"'; } >"$c"
bad "domain with a space (quoted)" 9 "[provider isp] domains:"

cfg dom_slash
{ head_lines; provider 'domains = example.org/../../etc'; } >"$c"
bad "domain with /" 9 "[provider isp] domains:"

cfg dom_utf8
{ head_lines; provider 'domains = bücher.example'; } >"$c"
bad "domain with UTF-8" 9 "[provider isp] domains:"

cfg dom_semicolon
{ head_lines; provider 'domains = example.org;QUIT'; } >"$c"
bad "domain with ;" 9 "[provider isp] domains:"

cfg dom_label
{ head_lines; provider "domains = $(printf 'a%.0s' $(seq 64)).example"; } >"$c"
bad "domain with a 64-octet label" 9 "[provider isp] domains:"

cfg dom_cont
{ head_lines; provider 'domains = ok.example' '  evil%example.org'; } >"$c"
bad "bad domain on a continuation line" 10 "[provider isp] domains:"

check_eq "no bad config ever connected" "$(grep -c 'connect from' "$T/smtpd.log")" 0

# --- a good config: --check-config, then a real round (positive control) -------
cfg good
{ head_lines; provider 'domains = example.org @branch.example #q1' 'port = 2525' 'timeout = 10s'; } >"$c"
"$AGENT" -c "$c" --check-config >"$T/out" 2>"$T/err"
rc=$?
check_eq "good config: --check-config" "$rc" 0
[ "$rc" = 0 ] || sed 's/^/    agent: /' "$T/err"
check_eq "good config: --check-config connects nowhere" "$(grep -c 'connect from' "$T/smtpd.log")" 0
"$AGENT" -c "$c" --once >"$T/out" 2>"$T/err"
rc=$?
check_eq "good config: --once" "$rc" 0
[ "$rc" = 0 ] || sed 's/^/    agent: /' "$T/err"
wait_for 5 grep -q 'disconnect' "$T/smtpd.log"
check_eq "good config: the server got every ETRN" \
    "$(sed -n 's/^[0-9.]* C: \(ETRN .*\)/\1/p' "$T/smtpd.log" | paste -sd'|' -)" \
    "ETRN example.org|ETRN @branch.example|ETRN #q1"

e2e_done
