#!/bin/sh
# odmr_agent.sh - the real pair: etrn-agent (protocol = atrn) against
# etrn-server's ODMR listener (odmr_listen, RFC 2645).
#
# The provider's etrn-server holds 20 messages for a.example and b.example
# (granted to the user "site" in [etrn_users]) and 5 for c.example (another
# user's), all etrn-only; STARTTLS with a test certificate, and the site's
# login as a Dovecot {CRAM-MD5} verifier. The site's own etrn-server delivers
# into Maildirs. `etrn-agent --once` fetches exactly the 20, each once; the
# other user's 5 stay queued; a second run gets 453 and exits 0; asking for
# c.example gets 450 and exits 69.
. "$(dirname "$0")/../lib/e2e.sh"
. "$E2E_TOP/tests/lib/etrn_server.sh"
e2e_init

AGENT=$BIN_DIR/etrn-agent

# RFC 2195's password "tanstaaftanstaaf" as doveadm pw -s CRAM-MD5 prints it
VERIFIER=d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 || { echo "openssl failed"; exit 1; }
chown nobody "$T/key.pem" 2>/dev/null
printf 'site:{CRAM-MD5}%s\nother:{CRAM-MD5}%s\n' "$VERIFIER" "$VERIFIER" >"$T/users"
chmod 600 "$T/users"
chown nobody "$T/users" 2>/dev/null

PP=$(free_port)
OP=$(free_port)
SPORT=$(free_port)
srv_conf provider "127.0.0.1:$PP" "odmr_listen = 127.0.0.1:$OP" "mynetworks = 127.0.0.0/8" \
    "relay_domains = a.example b.example c.example" \
    "etrn_only_domains = a.example b.example c.example" \
    "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/key.pem" \
    "smtpd_sasl_users_file = $T/users" \
    "[transport]" "a.example = etrn-only:[127.0.0.1]:1" "b.example = etrn-only:[127.0.0.1]:1" \
    "c.example = etrn-only:[127.0.0.1]:1" \
    "[etrn_users]" "site = a.example b.example" "other = c.example"
srv_start provider || { E2E_FAIL=1; e2e_done; exit 1; }
check "the ODMR listener accepts" wait_port "$OP" 10 || e2e_abort

smtp-source -m 10 -s 2 -l 512 -f sender@world.test -t user1@a.example "127.0.0.1:$PP" >"$T/src-a.out" 2>&1
smtp-source -m 10 -s 2 -l 512 -f sender@world.test -t user2@b.example "127.0.0.1:$PP" >"$T/src-b.out" 2>&1
smtp-source -m 5 -s 1 -l 512 -f sender@world.test -t user3@c.example "127.0.0.1:$PP" >"$T/src-c.out" 2>&1
check "the provider holds 25 messages" wait_for 10 sh -c \
    "\"$BIN_DIR/etrn-queue\" -c '$T/provider/server.ini' -p | grep -q 'in 25 Requests'"

printf '@a.example OK\n@b.example OK\n@c.example OK\n' >"$T/site-users"
srv_conf site "127.0.0.1:$SPORT" "mydestination = a.example b.example c.example" \
    "local_maildir_base = $T/site/mail" "local_recipient_maps = $T/site-users"
srv_start site || { E2E_FAIL=1; e2e_done; exit 1; }

# agent_conf NAME DOMAINS - the site's agent, ATRN to the provider's ODMR port
agent_conf() {
    cat >"$T/$1.ini" <<INI
[agent]
helo_name = mail.site.example
log = stderr
status_file = $T/$1.status.json
local_smtp = 127.0.0.1:$SPORT
local_smtp_wait = 5s
[provider isp]
hosts = localhost:$OP
protocol = atrn
domains = $2
ca_file = $T/cert.pem
username = site
password = tanstaaftanstaaf
timeout = 10s
idle_timeout = 20s
INI
    chmod 600 "$T/$1.ini"
}

agent_conf first 'a.example b.example'
timeout 120 "$AGENT" -c "$T/first.ini" --once -v >"$T/first.out" 2>"$T/first.err"
rc=$?
check_eq "first ATRN: exit status" "$rc" 0
[ "$rc" = 0 ] || tail -n 30 "$T/first.err" | sed 's/^/    agent: /'
check "first ATRN: 20 messages in the site's Maildirs" wait_for 20 sh -c \
    "[ \$(find '$T/site/mail' -path '*/new/*' -type f | wc -l) -ge 20 ]"
sleep 1
check_eq "first ATRN: exactly 20" "$(maildir_count "$T/site/mail")" 20
check_eq "first ATRN: each once" "$(find "$T/site/mail" -path '*/new/*' -type f -exec grep -h '^Message-Id:\|^Message-ID:' {} + | sort -u | wc -l)" 20
check_eq "first ATRN: none for c.example" "$(maildir_count "$T/site/mail/c.example")" 0
check "first ATRN: the agent counted 20" grep -q "ATRN relayed 20 messages" "$T/first.err"
check "first ATRN: STARTTLS before AUTH CRAM-MD5" sh -c \
    "grep -n 'C: STARTTLS\|C: AUTH CRAM-MD5' '$T/first.err' | cut -d: -f3- | paste -sd'|' - | grep -q 'STARTTLS|.*AUTH CRAM-MD5'"
check "first ATRN: the password is not in the log" sh -c "! grep -q tanstaaf '$T/first.err'"
check "the other user's 5 stay at the provider" wait_for 10 sh -c \
    "\"$BIN_DIR/etrn-queue\" -c '$T/provider/server.ini' -p | grep -q 'in 5 Requests'"

timeout 60 "$AGENT" -c "$T/first.ini" --once >"$T/second.out" 2>"$T/second.err"
rc=$?
check_eq "second ATRN: exit status (453, nothing waiting)" "$rc" 0
check "second ATRN: 453 logged" grep -q "domain a.example: 453 .*no mail waiting" "$T/second.err"
check_eq "second ATRN: still 20" "$(maildir_count "$T/site/mail")" 20

agent_conf notmine 'c.example'
timeout 60 "$AGENT" -c "$T/notmine.ini" --once >"$T/notmine.out" 2>"$T/notmine.err"
rc=$?
check_eq "ATRN for another user's domain: exit status" "$rc" 69
check "ATRN for another user's domain: 450 logged" grep -q "domain c.example: 450 " "$T/notmine.err"
check_eq "ATRN for another user's domain: nothing delivered" "$(maildir_count "$T/site/mail/c.example")" 0
if [ "$E2E_FAIL" -ne 0 ]; then
    echo "--- provider"; tail -n 30 "$T/provider/maillog" | sed 's/^/    /'
fi
e2e_done
