#!/bin/sh
# agent_session.sh - etrn-agent --once against a scripted SMTP server.
#
# Every case starts tests/lib/scripted_smtpd.py on 127.0.0.1 (free port),
# runs `etrn-agent -c CONF --once` and asserts the exit status (sysexits:
# 0 accepted, 75 temporary, 69 permanent), the agent's log line and the
# exact dialogue the server recorded: ETRN replies 250..501, several
# domains with one refused, STARTTLS (missing, verified, unverifiable),
# implicit TLS, AUTH (not offered, wrong, right), a silent server against
# `timeout`, nothing listening, QUIT at the end, --dry-run, two hosts, a
# 5 KB multi-line reply (kept to 4096 bytes, with a warning).
. "$(dirname "$0")/../lib/e2e.sh"
e2e_init

AGENT=$BIN_DIR/etrn-agent
SMTPD=$E2E_TOP/tests/lib/scripted_smtpd.py
HELO=site.example

if [ ! -x "$AGENT" ]; then
    echo "FAIL no $AGENT"
    E2E_FAIL=1
    e2e_done
    exit 1
fi

# smtpd NAME ARGS... - start a scripted server; sets $port and $SMTPD_PID,
# the dialogue goes to $T/NAME.log
smtpd() {
    sname=$1; shift
    rm -f "$T/$sname.ready"
    : >"$T/$sname.log"
    start_bg "smtpd-$sname" "$PY" "$SMTPD" --listen 127.0.0.1:0 --log "$T/$sname.log" \
        --ready-file "$T/$sname.ready" "$@"
    SMTPD_PID=$E2E_LAST_PID
    if ! wait_for 10 test -s "$T/$sname.ready"; then
        echo "scripted_smtpd $sname did not start:"
        cat "$T/smtpd-$sname.out"
        exit 1
    fi
    port=$(sed 's/.*://' "$T/$sname.ready")
}

# agent_run NAME ARGS... - run the agent; $rc, output in $T/NAME.out/.err
agent_run() {
    aname=$1; shift
    "$AGENT" "$@" >"$T/$aname.out" 2>"$T/$aname.err"
    rc=$?
}

# expect_rc WHAT WANT - check $rc; on failure show the agent's stderr
expect_rc() {
    check_eq "$1: exit status" "$rc" "$2"
    [ "$rc" = "$2" ] || sed 's/^/    agent: /' "$T/$aname.err" "$T/$aname.out" | tail -n 20
}

# settled LOG - every connection the server saw has ended
settled() {
    [ "$(grep -c ' \*: connect from ' "$1")" = "$(grep -c ' \*: disconnect$' "$1")" ]
}

# dialogue LOG [FROM] - client lines from line FROM on, joined by '|'
dialogue() {
    wait_for 5 settled "$1"
    tail -n +"${2:-1}" "$1" | sed -n 's/^[0-9.]* C: //p' | paste -sd'|' -
}

# replies LOG [FROM] - server lines from line FROM on, joined by '|'
replies() {
    tail -n +"${2:-1}" "$1" | sed -n 's/^[0-9.]* S: //p' | paste -sd'|' -
}

# logline ERRFILE WORDS... - one line of the agent log holds every word
logline() {
    f=$1; shift
    lines=$(cat "$f")
    for w in "$@"; do
        lines=$(printf '%s\n' "$lines" | grep -iF -- "$w") || return 1
    done
    [ -n "$lines" ]
}

# no_etrn LOG - the server never received an ETRN
no_etrn() {
    grep_none ' C: ETRN' "$1"
}

# status_pending FILE DOMAIN N - the status file records N pending for DOMAIN
status_pending() {
    "$PY" - "$@" <<'PYEOF'
import json, sys
path, domain, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
doc = json.load(open(path))
hits = [d for h in doc["hosts"] for d in h["domains"]
        if d.get("domain") == domain and d.get("pending") == want and d.get("code") == 253]
sys.exit(0 if hits else 1)
PYEOF
}

# elapsed_between START END LO HI - END-START (seconds) within [LO, HI]
elapsed_between() {
    awk -v s="$1" -v e="$2" -v lo="$3" -v hi="$4" 'BEGIN { d = e - s; exit !(d >= lo && d <= hi) }'
}

# provider_conf NAME HOSTS DOMAINS [EXTRA...] - a config with one provider
provider_conf() {
    pname=$1 phosts=$2 pdomains=$3; shift 3
    {
        printf '[agent]\nhelo_name = %s\nlog = stderr\nstatus_file = %s\n\n' "$HELO" "$T/$pname.status.json"
        printf '[provider isp]\nhosts = %s\ndomains = %s\ntimeout = 10s\n' "$phosts" "$pdomains"
        for line in "$@"; do printf '%s\n' "$line"; done
    } >"$T/$pname.ini"
    conf=$T/$pname.ini
    chmod 600 "$conf"
}

# --- certificates ---------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 || { echo "openssl failed"; exit 1; }

# --- every ETRN reply code -------------------------------------------------
smtpd codes \
    --etrn-reply 'c250.example=250 Queuing started' \
    --etrn-reply 'c251.example=251 OK, no messages waiting for node c251.example' \
    --etrn-reply 'c252.example=252 OK, pending messages for node c252.example started' \
    --etrn-reply 'c253.example=253 OK, 7 pending messages for node c253.example started' \
    --etrn-reply 'c458.example=458 Unable to queue messages for node c458.example' \
    --etrn-reply 'c459.example=459 Node c459.example not allowed: not a customer' \
    --etrn-reply 'c500.example=500 Syntax Error' \
    --etrn-reply 'c501.example=501 Syntax Error in Parameters' \
    --default-etrn-reply '554 not scripted'
codes_port=$port
for spec in '250:0:queuing started' '251:0:no messages waiting' '252:0:pending messages started' \
            '253:0:pending messages started' '458:75:unable to queue' '459:69:not allowed' \
            '500:69:not recognized' '501:69:syntax error'; do
    code=${spec%%:*}; rest=${spec#*:}; want=${rest%%:*}; meaning=${rest#*:}
    dom=c$code.example
    provider_conf "code$code" "127.0.0.1:$codes_port" "$dom" 'tls = none'
    from=$(( $(wc -l <"$T/codes.log") + 1 ))
    agent_run "code$code" -c "$conf" --once
    expect_rc "ETRN $code" "$want"
    check "ETRN $code: log names provider, host, domain, code, meaning" \
        logline "$T/code$code.err" isp 127.0.0.1 "$dom" "$code" "$meaning"
    d=$(dialogue "$T/codes.log" "$from")
    case $want in
    0)  check_eq "ETRN $code: dialogue" "$d" "EHLO $HELO|NOOP|ETRN $dom|QUIT" ;;
    *)  check_eq "ETRN $code: dialogue, QUIT after the refusal" "$d" \
            "EHLO $HELO|NOOP|ETRN $dom|QUIT"
        check_eq "ETRN $code: ETRN sent once" "$(echo "$d" | tr '|' '\n' | grep -c "^ETRN $dom\$")" 1 ;;
    esac
    if [ "$code" = 253 ]; then
        check "253: status file records 7 pending" status_pending "$T/code253.status.json" "$dom" 7
        check "253: log names the 7 pending" logline "$T/code253.err" isp "$dom" "7 pending"
    fi
done

# --- several domains, one refused: the others still get their ETRN --------
smtpd multi --etrn-reply 'b.example=459 Node b.example not allowed'
provider_conf multi "127.0.0.1:$port" 'a.example b.example c.example' 'tls = none'
agent_run multi -c "$conf" --once
expect_rc "3 domains, b refused" 69
d=$(dialogue "$T/multi.log")
check_eq "3 domains: every ETRN sent, in order" "$(echo "$d" | tr '|' '\n' | grep '^ETRN' | paste -sd'|' -)" \
    "ETRN a.example|ETRN b.example|ETRN c.example"
check_eq "3 domains: replies" "$(replies "$T/multi.log" | tr '|' '\n' | grep -E '^(250 Queuing|459)' | paste -sd'|' -)" \
    "250 Queuing started|459 Node b.example not allowed|250 Queuing started"
check "3 domains: log has c.example accepted after the refusal" \
    logline "$T/multi.err" isp c.example 250
check "3 domains: log has b.example refused" logline "$T/multi.err" isp b.example 459

# --- STARTTLS required, server does not offer it: nothing in clear --------
smtpd notls --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" --no-starttls
provider_conf notls "127.0.0.1:$port" 'example.org' 'tls = starttls' "ca_file = $T/cert.pem"
agent_run notls -c "$conf" --once
expect_rc "starttls not offered" 69
check "starttls not offered: no ETRN sent in clear" no_etrn "$T/notls.log"
check "starttls not offered: logged" logline "$T/notls.err" isp 127.0.0.1 STARTTLS
check_eq "starttls not offered: dialogue" "$(dialogue "$T/notls.log" | sed 's/|QUIT$//')" "EHLO $HELO"

# --- STARTTLS with the self-signed certificate as ca_file -----------------
smtpd starttls --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
provider_conf starttls "127.0.0.1:$port" 'example.org' 'tls = starttls' "ca_file = $T/cert.pem"
agent_run starttls -c "$conf" --once
expect_rc "starttls with ca_file" 0
check_eq "starttls: dialogue" "$(dialogue "$T/starttls.log")" \
    "EHLO $HELO|STARTTLS|EHLO $HELO|NOOP|ETRN example.org|QUIT"
check "starttls: ETRN only after TLS" sh -c \
    "sed -n '/tls established/,\$p' '$T/starttls.log' | grep -q ' C: ETRN example.org'"

# --- tls_verify = yes, no ca_file: the self-signed certificate fails -------
smtpd badcert --tls-cert "$T/cert.pem" --tls-key "$T/key.pem"
provider_conf badcert "127.0.0.1:$port" 'example.org' 'tls = starttls' 'tls_verify = yes'
agent_run badcert -c "$conf" --once
expect_rc "unverifiable certificate" 69
check "unverifiable certificate: no ETRN" no_etrn "$T/badcert.log"
check "unverifiable certificate: TLS never established" grep_none 'tls established' "$T/badcert.log"
check "unverifiable certificate: logged" logline "$T/badcert.err" isp 127.0.0.1 cert

# --- implicit TLS -----------------------------------------------------------
smtpd smtps --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" --implicit-tls
provider_conf smtps "127.0.0.1:$port" 'example.org' 'tls = tls' "ca_file = $T/cert.pem"
agent_run smtps -c "$conf" --once
expect_rc "implicit tls" 0
check_eq "implicit tls: dialogue" "$(dialogue "$T/smtps.log")" "EHLO $HELO|NOOP|ETRN example.org|QUIT"
check_eq "implicit tls: TLS before the greeting" \
    "$(sed -n 2p "$T/smtps.log" | cut -d' ' -f2-)" "*: tls established"

# --- AUTH --------------------------------------------------------------------
printf 's3cret\n' >"$T/right.secret"; chmod 600 "$T/right.secret"
printf 'wrong\n' >"$T/wrong.secret"; chmod 600 "$T/wrong.secret"
tlsargs="--tls-cert $T/cert.pem --tls-key $T/key.pem"

smtpd noauth $tlsargs
provider_conf noauth "127.0.0.1:$port" 'example.org' "ca_file = $T/cert.pem" \
    'username = bob' "password_file = $T/right.secret"
agent_run noauth -c "$conf" --once
expect_rc "credentials set, no AUTH offered" 69
check "no AUTH offered: no ETRN sent" no_etrn "$T/noauth.log"
check "no AUTH offered: logged" logline "$T/noauth.err" isp auth

smtpd authhidden $tlsargs --auth bob:s3cret --no-auth-advertised
provider_conf authhidden "127.0.0.1:$port" 'example.org' "ca_file = $T/cert.pem" \
    'username = bob' "password_file = $T/right.secret"
agent_run authhidden -c "$conf" --once
expect_rc "credentials set, AUTH not advertised" 69
check "AUTH not advertised: no ETRN sent" no_etrn "$T/authhidden.log"

smtpd wrongpw $tlsargs --auth bob:s3cret
provider_conf wrongpw "127.0.0.1:$port" 'example.org' "ca_file = $T/cert.pem" \
    'username = bob' "password_file = $T/wrong.secret"
agent_run wrongpw -c "$conf" --once
expect_rc "wrong password" 69
check "wrong password: server said 535" sh -c "grep -q ' S: 535 ' '$T/wrongpw.log'"
check "wrong password: no ETRN sent" no_etrn "$T/wrongpw.log"
check "wrong password: logged" logline "$T/wrongpw.err" isp auth

smtpd rightpw $tlsargs --auth bob:s3cret
provider_conf rightpw "127.0.0.1:$port" 'example.org' "ca_file = $T/cert.pem" \
    'username = bob' "password_file = $T/right.secret"
agent_run rightpw -c "$conf" --once
expect_rc "right password" 0
check "right password: server said 235" sh -c "grep -q ' S: 235 ' '$T/rightpw.log'"
d=$(dialogue "$T/rightpw.log" | tr '|' '\n' | sed -n 's/^\(AUTH\|ETRN\|QUIT\).*/\1/p' | paste -sd'|' -)
check_eq "right password: AUTH before ETRN, then QUIT" "$d" "AUTH|ETRN|QUIT"
check_eq "right password: AUTH after TLS" \
    "$(sed -n '/tls established/,$p' "$T/rightpw.log" | grep -c ' C: AUTH ')" 1

# --- a server that never answers: timeout = 2s ----------------------------
smtpd silent --silent
provider_conf silent "127.0.0.1:$port" 'example.org' 'tls = none'
sed -i 's/^timeout = .*/timeout = 2s/' "$conf"
t0=$(date +%s.%N)
agent_run silent -c "$conf" --once
t1=$(date +%s.%N)
expect_rc "silent server" 75
check "silent server: gave up after 2-4 s ($(awk -v s="$t0" -v e="$t1" 'BEGIN{printf "%.2f", e-s}') s)" \
    elapsed_between "$t0" "$t1" 1.5 4.5
check "silent server: logged as a timeout" logline "$T/silent.err" isp 127.0.0.1 timeout

# --- nothing listening ----------------------------------------------------------
dead=$(free_port)
provider_conf dead "127.0.0.1:$dead" 'example.org' 'tls = none'
t0=$(date +%s.%N)
agent_run dead -c "$conf" --once
t1=$(date +%s.%N)
expect_rc "nothing listening" 75
check "nothing listening: fails fast" elapsed_between "$t0" "$t1" 0 5
check "nothing listening: logged" logline "$T/dead.err" isp 127.0.0.1 connect

# --- --dry-run sends nothing -------------------------------------------------
smtpd dry
provider_conf dry "127.0.0.1:$port" 'a.example @b.example #q1' 'tls = none'
agent_run dry -c "$conf" --once --dry-run
expect_rc "dry run" 0
sleep 0.3
check_eq "dry run: server saw no connection" "$(grep -c 'connect from' "$T/dry.log")" 0
check "dry run: prints host and port" grep -qF "127.0.0.1" "$T/dry.out" "$T/dry.err"
check "dry run: prints the port" grep -qF "$port" "$T/dry.out" "$T/dry.err"
for w in a.example @b.example '#q1'; do
    check "dry run: prints $w" grep -qF -- "$w" "$T/dry.out" "$T/dry.err"
done

# --- two hosts in one provider ------------------------------------------------
smtpd hostA; portA=$port
smtpd hostB; portB=$port
provider_conf two "127.0.0.1:$portA 127.0.0.1:$portB" 'example.org example.net' 'tls = none'
agent_run two -c "$conf" --once
expect_rc "two hosts" 0
check_eq "two hosts: first got both ETRNs" "$(dialogue "$T/hostA.log")" \
    "EHLO $HELO|NOOP|ETRN example.org|ETRN example.net|QUIT"
check_eq "two hosts: second got both ETRNs" "$(dialogue "$T/hostB.log")" \
    "EHLO $HELO|NOOP|ETRN example.org|ETRN example.net|QUIT"

# one host refuses: the other still gets its ETRN, exit 69
smtpd refA --default-etrn-reply '459 not allowed'; portA=$port
smtpd refB; portB=$port
provider_conf tworef "127.0.0.1:$portA 127.0.0.1:$portB" 'example.org' 'tls = none'
agent_run tworef -c "$conf" --once
expect_rc "two hosts, first refuses" 69
check "two hosts, first refuses: second still got ETRN" sh -c "grep -q ' C: ETRN example.org' '$T/refB.log'"

# --- a 5 KB multi-line reply: kept to 4096 bytes, and the log says so ------------
long='250-Queuing started'
i=1
while [ $i -le 10 ]; do
    long="$long\\n250-line $i $(printf '%0500d' 0 | tr 0 x)"
    i=$((i + 1))
done
long="$long\\n250 end of a long reply"
smtpd longreply --reply-escapes --etrn-reply "example.org=$long"
provider_conf longreply "127.0.0.1:$port" 'example.org' 'tls = none'
agent_run longreply -c "$conf" --once
expect_rc "5 KB reply" 0
check "5 KB reply: logged as cut at 4096 bytes" \
    logline "$T/longreply.err" 'reply from 127.0.0.1 truncated to 4096 bytes'
check "5 KB reply: the status file keeps at most 4096 bytes of it" "$PY" -c '
import json, sys
doc = json.load(open(sys.argv[1]))
texts = [d["text"] for h in doc["hosts"] for d in h["domains"]]
sys.exit(0 if texts and all(0 < len(t) <= 4096 for t in texts) else 1)' "$T/longreply.status.json"

e2e_done
