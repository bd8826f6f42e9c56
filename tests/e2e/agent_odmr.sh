#!/bin/sh
# agent_odmr.sh - etrn-agent --once with protocol = atrn against a scripted
# ODMR provider (tests/lib/scripted_smtpd.py --atrn, RFC 2645).
#
# The site's own MTA (local_smtp) is a real etrn-server delivering to Maildir,
# or a scripted receiver when the test needs its exact dialogue. Cases: 20
# messages for two domains over STARTTLS + CRAM-MD5 (each arrives once, dot-
# stuffed lines intact, the dialogue before the turn exact, relayed = 20 in
# log and status file, credentials masked under -v); PLAIN inside TLS; no
# CRAM-MD5 and no TLS (nothing sent); wrong password; the ATRN replies 453,
# 451, 450, 530 and 502 mapped to exit 0/75/69; the site's MTA refusing one
# recipient (not counted); the provider dropping mid-DATA (the cut message
# not delivered, exit 75); a stalled provider against idle_timeout; a site
# MTA that answers slowly but steadily against session_limit (exit 75); a
# multi-line ATRN reply (one line in the log and the status file); an
# unverifiable certificate.
. "$(dirname "$0")/../lib/e2e.sh"
. "$E2E_TOP/tests/lib/etrn_server.sh"
e2e_init

AGENT=$BIN_DIR/etrn-agent
SMTPD=$E2E_TOP/tests/lib/scripted_smtpd.py
HELO=site.example

# smtpd NAME ARGS... - a scripted server; sets $port, the dialogue in $T/NAME.log
smtpd() {
    sname=$1; shift
    rm -f "$T/$sname.ready"
    : >"$T/$sname.log"
    start_bg "smtpd-$sname" "$PY" "$SMTPD" --listen 127.0.0.1:0 --log "$T/$sname.log" \
        --ready-file "$T/$sname.ready" "$@"
    if ! wait_for 10 test -s "$T/$sname.ready"; then
        echo "scripted_smtpd $sname did not start:"; cat "$T/smtpd-$sname.out"
        exit 1
    fi
    port=$(sed 's/.*://' "$T/$sname.ready")
}

# provider NAME ARGS... - an ODMR provider with a certificate and site:secret
provider() {
    pname=$1; shift
    smtpd "$pname" --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" --auth site:secret \
        --atrn --atrn-rcpt user1@a.example --atrn-rcpt user2@b.example "$@"
}

# agent_conf NAME PORT LOCAL [EXTRA...] - one atrn provider on localhost:PORT
agent_conf() {
    cname=$1 cport=$2 clocal=$3; shift 3
    {
        printf '[agent]\nhelo_name = %s\nlog = stderr\nstatus_file = %s\n' "$HELO" "$T/$cname.status.json"
        printf 'local_smtp = %s\nlocal_smtp_wait = 5s\n\n' "$clocal"
        printf '[provider isp]\nhosts = localhost:%s\ndomains = a.example b.example\n' "$cport"
        printf 'protocol = atrn\nusername = site\npassword = secret\ntimeout = 10s\n'
        for line in "$@"; do printf '%s\n' "$line"; done
    } >"$T/$cname.ini"
    chmod 600 "$T/$cname.ini"
    conf=$T/$cname.ini
}

# agent_run NAME ARGS... - $rc, output in $T/NAME.out/.err
agent_run() {
    aname=$1; shift
    timeout 60 "$AGENT" "$@" >"$T/$aname.out" 2>"$T/$aname.err"
    rc=$?
}

expect_rc() {
    check_eq "$1: exit status" "$rc" "$2"
    [ "$rc" = "$2" ] || sed 's/^/    agent: /' "$T/$aname.err" "$T/$aname.out" | tail -n 20
}

# before_turn LOG - the site's lines up to ATRN, credentials included, joined by '|'
before_turn() {
    sed -n '/odmr reversed/q; s/^[0-9.]* C: //p' "$1" | paste -sd'|' -
}

# logline FILE WORDS... - one line holds every word
logline() {
    f=$1; shift
    lines=$(cat "$f")
    for w in "$@"; do
        lines=$(printf '%s\n' "$lines" | grep -iF -- "$w") || return 1
    done
    [ -n "$lines" ]
}

# status_relayed FILE N - the status file records N relayed
status_relayed() {
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["hosts"][0].get("relayed")==int(sys.argv[2]) else 1)' "$1" "$2"
}

# subjects DIR - "odmr N" subjects of every delivered message, sorted, joined by ' '
subjects() {
    find "$1" -path '*/new/*' -type f -exec sed -n 's/^Subject: //p' {} + | sort -t' ' -k2n | paste -sd' ' -
}

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 || { echo "openssl failed"; exit 1; }

# the site's MTA: etrn-server, every user of a.example and b.example is local
SPORT=$(free_port)
printf '@a.example OK\n@b.example OK\n' >"$T/site-users"
srv_conf site "127.0.0.1:$SPORT" "mydestination = a.example b.example" \
    "local_maildir_base = $T/site/mail" "local_recipient_maps = $T/site-users"
srv_start site || { E2E_FAIL=1; e2e_done; exit 1; }

# --- 20 messages over STARTTLS + CRAM-MD5 into the site's Maildir ----------
provider relay20 --auth-mechs 'CRAM-MD5 PLAIN LOGIN' --atrn-messages 20
agent_conf relay20 "$port" "127.0.0.1:$SPORT" "ca_file = $T/cert.pem"
agent_run relay20 -c "$conf" --once -v
expect_rc "ATRN relay of 20" 0
check "20: provider saw every message accepted" grep -q 'odmr delivered 20 of 20' "$T/relay20.log"
check "20: all in the site's Maildir" wait_for 10 sh -c "[ \$(find '$T/site/mail' -path '*/new/*' -type f | wc -l) -eq 20 ]"
check_eq "20: each message once" "$(subjects "$T/site/mail")" \
    "$(seq 1 20 | sed 's/^/odmr /' | paste -sd' ' -)"
check_eq "20: both domains" "$(ls "$T/site/mail" | paste -sd' ' -)" "a.example b.example"
check "20: a dot-stuffed line arrives as written" \
    sh -c "grep -rqx '.line 10 of message 1, filler text for the size' '$T/site/mail/a.example'"
d=$(before_turn "$T/relay20.log")
check_eq "20: dialogue up to ATRN" "$(echo "$d" | sed 's/|C[^|]*==$//; s/|[A-Za-z0-9+\/=]*|ATRN/|(response)|ATRN/')" \
    "EHLO $HELO|STARTTLS|EHLO $HELO|AUTH CRAM-MD5|(response)|ATRN a.example,b.example"
check "20: TLS before AUTH" sh -c "grep -n 'tls established' '$T/relay20.log' | head -1 | cut -d: -f1 | { read t; [ \$t -lt \$(grep -n 'C: AUTH' '$T/relay20.log' | cut -d: -f1) ]; }"
check "20: log says 20 relayed" logline "$T/relay20.err" isp "ATRN relayed 20 messages" "127.0.0.1:$SPORT"
check "20: log has the ATRN reply" logline "$T/relay20.err" "domain a.example" 250 "reversing the connection"
check "20: status file relayed = 20" status_relayed "$T/relay20.status.json" 20
check "-v: the CRAM-MD5 response is not shown" grep_none -F \
    "$(sed -n 's/^[0-9.]* C: \([A-Za-z0-9+/=]\{20,\}\)$/\1/p' "$T/relay20.log" | head -1)" "$T/relay20.err"
check "-v: the password is not shown" grep_none secret "$T/relay20.err"
check "-v: credentials marked" grep -q 'C: (credentials not shown)' "$T/relay20.err"
check "-v: the relayed dialogue, no content" sh -c "grep -q 'provider: MAIL FROM:<sender@provider.test>' '$T/relay20.err' && ! grep -q 'filler text' '$T/relay20.err'"

# --- the status file in words ------------------------------------------------
"$AGENT" -c "$conf" --status >"$T/status.out" 2>&1
check "--status shows relayed" grep -q 'domain a.example: 250 reversing the connection.*20 relayed' "$T/status.out"

# --- PLAIN inside TLS when CRAM-MD5 is not offered -------------------------
provider plain --auth-mechs 'PLAIN LOGIN' --atrn-messages 2
agent_conf plain "$port" "127.0.0.1:$SPORT" "ca_file = $T/cert.pem"
agent_run plain -c "$conf" --once
expect_rc "PLAIN inside TLS" 0
check "PLAIN: AUTH PLAIN after TLS" sh -c "sed -n '/tls established/,\$p' '$T/plain.log' | grep -q 'C: AUTH PLAIN '"
check "PLAIN: 2 delivered" grep -q 'odmr delivered 2 of 2' "$T/plain.log"

# --- no CRAM-MD5 and no TLS: the password is never sent --------------------
smtpd clear --auth site:secret --auth-mechs 'PLAIN LOGIN' --atrn --atrn-messages 1 --atrn-rcpt user1@a.example
agent_conf clear "$port" "127.0.0.1:$SPORT" 'tls = none'
agent_run clear -c "$conf" --once
expect_rc "no CRAM-MD5 in clear" 69
check "clear: no AUTH, no ATRN sent" grep_none -E ' C: (AUTH|ATRN)' "$T/clear.log"
check "clear: log says why" logline "$T/clear.err" isp "not sent in clear"

# --- CRAM-MD5 without TLS is allowed (the secret never crosses) -------------
smtpd cram --auth site:secret --auth-mechs 'CRAM-MD5' --atrn --atrn-messages 1 --atrn-rcpt user1@a.example
agent_conf cram "$port" "127.0.0.1:$SPORT" 'tls = none'
agent_run cram -c "$conf" --once
expect_rc "CRAM-MD5 without TLS" 0
check "cram: delivered" grep -q 'odmr delivered 1 of 1' "$T/cram.log"

# --- wrong password: 535, no ATRN -------------------------------------------
provider wrongpw --auth-mechs 'CRAM-MD5' --atrn-messages 1
agent_conf wrongpw "$port" "127.0.0.1:$SPORT" "ca_file = $T/cert.pem"
sed -i 's/^password = secret/password = wrong/' "$conf"
agent_run wrongpw -c "$conf" --once
expect_rc "wrong password" 69
check "wrong password: no ATRN" grep_none ' C: ATRN' "$T/wrongpw.log"
check "wrong password: logged" logline "$T/wrongpw.err" isp "AUTH CRAM-MD5 as site refused" 535

# --- ATRN replies: 453 0, 451 75, 450 69, 530 69, 502 69 -------------------
for spec in '453:0:no mail waiting:453 You have no mail' \
            '451:75:already running:451 Unable to process ATRN request now' \
            '450:69:not granted:450 Access denied to b.example' \
            '530:69:authentication required:530 5.7.0 Authentication required' \
            '502:69:not supported:'; do
    code=${spec%%:*}; rest=${spec#*:}; want=${rest%%:*}; rest=${rest#*:}
    meaning=${rest%%:*}; reply=${rest#*:}
    if [ "$code" = 502 ]; then
        smtpd "r$code" --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" --auth site:secret \
            --auth-mechs CRAM-MD5
    else
        provider "r$code" --auth-mechs CRAM-MD5 --atrn-reply "$reply"
    fi
    agent_conf "r$code" "$port" "127.0.0.1:$SPORT" "ca_file = $T/cert.pem"
    agent_run "r$code" -c "$conf" --once
    expect_rc "ATRN $code" "$want"
    check "ATRN $code: logged with its meaning" logline "$T/r$code.err" "domain b.example" "$code" "$meaning"
    check "ATRN $code: QUIT after it, no turn" sh -c "tail -n 3 '$T/r$code.log' | grep -q ' C: QUIT' && ! grep -q 'odmr reversed' '$T/r$code.log'"
done

# --- a multi-line ATRN reply: one line in the log and the status file ------
provider ml --auth-mechs CRAM-MD5 --reply-escapes \
    --atrn-reply '450-4.7.1 b.example: not yours\n450 4.7.1 ask the postmaster'
agent_conf ml "$port" "127.0.0.1:$SPORT" "ca_file = $T/cert.pem"
agent_run ml -c "$conf" --once
expect_rc "multi-line 450" 69
check_eq "multi-line 450: status text on one line, without the codes" \
    "$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(repr(d["hosts"][0]["domains"][0]["text"]))' "$T/ml.status.json")" \
    "'4.7.1 b.example: not yours 4.7.1 ask the postmaster'"
check "multi-line 450: one log line holds both parts" \
    logline "$T/ml.err" "domain a.example" 450 "not yours 4.7.1 ask the postmaster"

# --- session_limit: a site MTA that keeps the relay busy but never idle ----
cat >"$T/slowmta.py" <<'PYEOF'
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1])); __import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
s.settimeout(60)
end = time.monotonic() + 90
for _ in range(5):      # local_smtp_wait's probe connects and closes first
    c, _ = s.accept()
    c.settimeout(30)
    f = c.makefile("rb")
    def say(t):
        time.sleep(0.3)  # every reply late, far inside idle_timeout
        c.sendall(t.encode() + b"\r\n")
    try:
        say("220 slowmta ESMTP")
        indata = False
        while time.monotonic() < end:
            line = f.readline()
            if not line:
                break
            if indata:
                if line in (b".\r\n", b".\n"):
                    indata = False
                    say("250 2.0.0 Ok")
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                indata = True
                say("354 go ahead")
            elif verb == b"QUIT":
                say("221 bye")
                break
            else:
                say("250 ok")
    except OSError:
        pass
    c.close()
PYEOF
start_bg slowmta "$PY" "$T/slowmta.py" "$T/slowmta.port"
wait_for 10 test -s "$T/slowmta.port"
provider slow --auth-mechs CRAM-MD5 --atrn-messages 200
agent_conf slow "$port" "127.0.0.1:$(cat "$T/slowmta.port")" "ca_file = $T/cert.pem" \
    'session_limit = 3s' 'idle_timeout = 20s'
start=$(date +%s)
agent_run slow -c "$conf" --once
end=$(date +%s)
expect_rc "session_limit reached" 75
check "session_limit: named in the log" logline "$T/slow.err" "session_limit of 3s reached"
check "session_limit: not all 200 relayed" grep_none 'odmr delivered 200 of 200' "$T/slow.log"
check "session_limit: ended within 40s (200 messages would take minutes)" test $((end - start)) -lt 40

# --- the site's MTA refuses one recipient: not counted, and the provider hears it
smtpd sink --accept-mail --rcpt-reply 'user2@b.example=550 5.1.1 <user2@b.example>: no such user'
SINK=$port
provider refuse --auth-mechs CRAM-MD5 --atrn-messages 4
agent_conf refuse "$port" "127.0.0.1:$SINK" "ca_file = $T/cert.pem"
agent_run refuse -c "$conf" --once
expect_rc "one recipient refused by the site" 0
check "refuse: the provider got the site's 550" grep -q ' C: 550 5.1.1 <user2@b.example>: no such user' "$T/refuse.log"
check "refuse: messages 2 and 4 refused" sh -c "[ \"\$(grep -o 'odmr message [0-9]* refused' '$T/refuse.log' | paste -sd' ' -)\" = 'odmr message 2 refused odmr message 4 refused' ]"
check "refuse: 2 relayed" logline "$T/refuse.err" "ATRN relayed 2 messages"
check "refuse: the site's MTA got exactly 2 messages" test "$(grep -c ' C: Subject: odmr' "$T/sink.log")" -eq 2

# --- BDAT (RFC 3030) through the relay: counted at BDAT LAST, content not parsed
smtpd chunksink --accept-mail --chunking
CHUNKSINK=$port
provider bdat --auth-mechs CRAM-MD5 --atrn-messages 3 --atrn-bdat
agent_conf bdat "$port" "127.0.0.1:$CHUNKSINK" "ca_file = $T/cert.pem"
agent_run bdat -c "$conf" --once -v
expect_rc "BDAT relay" 0
check "bdat: the provider used BDAT" grep -q ' S: BDAT [0-9]* LAST' "$T/bdat.log"
check "bdat: 3 delivered" grep -q 'odmr delivered 3 of 3' "$T/bdat.log"
check "bdat: 3 relayed (BDAT LAST replies, not the chunk replies)" logline "$T/bdat.err" "ATRN relayed 3 messages"
check "bdat: a content line QUIT reached the site's MTA as data" grep -q ' C: QUIT$' "$T/chunksink.log"
# the relayed dialogue as the agent saw it, in order: three transactions, each
# MAIL+RCPT pipelined, two chunks, and the provider's own QUIT last (the content
# line QUIT of each message is not taken for a command)
sed -n '/^etrn-agent: relaying between /,/^etrn-agent: local: 221 /{s/^etrn-agent: //;/^relaying between /d;p}' \
    "$T/bdat.err" >"$T/bdat.relay"
{
    printf '%s\n' 'local: 220 scripted.test ESMTP scripted_smtpd' 'provider: EHLO scripted.test' \
        'local: 250-scripted.test' 'local: 250-ETRN' 'local: 250-PIPELINING' 'local: 250 CHUNKING'
    for n in 1 2 3; do
        rcpt=user1@a.example
        [ $n = 2 ] && rcpt=user2@b.example
        printf '%s\n' 'provider: MAIL FROM:<sender@provider.test>' "provider: RCPT TO:<$rcpt>" \
            'local: 250 2.1.0 Ok' 'local: 250 2.1.5 Ok' 'provider: BDAT 523' \
            'local: 250 2.0.0 Ok: 523 octets received' 'provider: BDAT 523 LAST' \
            "local: 250 2.0.0 Ok: queued as $n"
    done
    printf '%s\n' 'provider: QUIT' 'local: 221 2.0.0 Bye'
} >"$T/bdat.want"
expect_dialogue "bdat: the relayed dialogue in order, one QUIT and it comes last" "$T/bdat.relay" \
    <"$T/bdat.want"

# --- --check-config names what atrn needs ------------------------------------
agent_conf chk 366 "127.0.0.1:$SPORT"
sed -i '/^username = /d; /^password = /d' "$conf"
agent_run chk -c "$conf" --check-config
expect_rc "--check-config: atrn without credentials" 78
check "--check-config: says username and password are needed" \
    grep -q 'protocol: atrn needs username and password' "$T/chk.err"

# --- provider drops mid-DATA: the cut message is not delivered, exit 75 -----
before=$(find "$T/site/mail" -path '*/new/*' -type f | wc -l)
provider drop --auth-mechs CRAM-MD5 --atrn-messages 5 --atrn-drop-in-data 3
agent_conf drop "$port" "127.0.0.1:$SPORT" "ca_file = $T/cert.pem"
agent_run drop -c "$conf" --once
expect_rc "provider drops mid-DATA" 75
check "drop: log says the provider closed during a message" logline "$T/drop.err" "during a message"
sleep 1
check_eq "drop: only the 2 finished messages reached the site" \
    "$(( $(find "$T/site/mail" -path '*/new/*' -type f | wc -l) - before ))" 2
check "drop: status file relayed = 2" status_relayed "$T/drop.status.json" 2

# --- the site's MTA goes away mid-session: 75, nothing counted --------------
cat >"$T/quitter.py" <<'PYEOF'
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1])); __import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])
s.settimeout(60)
for _ in range(5):     # local_smtp_wait's probe connects and closes first
    c, _ = s.accept()
    try:
        c.sendall(b"220 quitter ESMTP\r\n")
        got = c.recv(4096)   # EHLO
    except OSError:
        got = b""
    c.close()
    if got:
        break
PYEOF
start_bg quitter "$PY" "$T/quitter.py" "$T/quitter.port"
wait_for 10 test -s "$T/quitter.port"
provider gone --auth-mechs CRAM-MD5 --atrn-messages 3
agent_conf gone "$port" "127.0.0.1:$(cat "$T/quitter.port")" "ca_file = $T/cert.pem"
agent_run gone -c "$conf" --once
expect_rc "the site's MTA closes mid-session" 75
check "gone: logged" logline "$T/gone.err" "site's MTA" "closed the connection before the provider's QUIT"
check "gone: the provider had nothing accepted" grep_none 'odmr message .* accepted' "$T/gone.log"

# --- the provider closes right after its 250: 75, said as it is ------------
provider atturn --auth-mechs CRAM-MD5 --atrn-messages 3 --atrn-close-at-turn
agent_conf atturn "$port" "127.0.0.1:$SPORT" "ca_file = $T/cert.pem"
agent_run atturn -c "$conf" --once
expect_rc "provider closes at the turn" 75
check "atturn: logged as a close before any delivery" sh -c "grep -q \"after ATRN's 250, before delivering anything\\|without QUIT after 0 messages\" '$T/atturn.err'"

# --- a stalled provider: idle_timeout ends the session ----------------------
provider stall --auth-mechs CRAM-MD5 --atrn-messages 5 --atrn-stall-after 1
agent_conf stall "$port" "127.0.0.1:$SPORT" "ca_file = $T/cert.pem" 'idle_timeout = 2s'
start=$(date +%s)
agent_run stall -c "$conf" --once
end=$(date +%s)
expect_rc "stalled provider" 75
check "stall: idle_timeout named" logline "$T/stall.err" "idle for 2s"
check "stall: ended within 30s" test $((end - start)) -lt 30

# --- certificate not verifiable: nothing sent after STARTTLS ----------------
provider badcert --auth-mechs CRAM-MD5 --atrn-messages 1
agent_conf badcert "$port" "127.0.0.1:$SPORT"
agent_run badcert -c "$conf" --once
expect_rc "unverifiable certificate" 69
check "badcert: no AUTH" grep_none ' C: AUTH' "$T/badcert.log"
check "badcert: logged" logline "$T/badcert.err" isp certificate

# --- --dry-run -----------------------------------------------------------------
agent_conf dry 366 "127.0.0.1:$SPORT"
agent_run dry -c "$conf" --dry-run
check "dry-run names ATRN and the relay" grep -q 'ATRN a.example,b.example, then relay to local_smtp 127.0.0.1:' "$T/dry.out"

e2e_done
