#!/bin/sh
# odmr_fetchmail.sh - etrn-server's ODMR listener (RFC 2645) against Debian's
# fetchmail (--protocol ODMR, AUTH CRAM-MD5 from a Dovecot-style verifier):
# 20 messages wait for tim's two domains and 5 for another user's; fetchmail
# relays the turn to a site etrn-server (Maildir): exactly the 20 arrive,
# the 5 stay queued, the log says relay=odmr:tim[...], etrn-queue status
# shows the last ATRN; a second run finds nothing (453).
. "$(dirname "$0")/../lib/e2e.sh"
. "$E2E_TOP/tests/lib/etrn_server.sh"
e2e_init

command -v fetchmail >/dev/null 2>&1 || { skip "fetchmail is not installed"; e2e_done; exit $?; }
PP=$(free_port)
OP=$(free_port)
SP=$(free_port)
# tim's verifier is RFC 2195's password "tanstaaftanstaaf" as doveadm pw -s CRAM-MD5 prints it
echo "tim:{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b" >"$T/users"
echo "eve:{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b" >>"$T/users"
chown nobody "$T/users" && chmod 600 "$T/users"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
chmod 644 "$T/key.pem"
srv_conf provider "127.0.0.1:$PP" "odmr_listen = 127.0.0.1:$OP" "mynetworks = 127.0.0.0/8" \
    "relay_domains = a.test b.test c.test" "etrn_only_domains = a.test b.test c.test" \
    "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/key.pem" \
    "smtpd_sasl_users_file = $T/users" "smtpd_error_sleep_time = 0s" \
    "[etrn_users]" "tim = a.test b.test" "eve = c.test"
srv_start provider || { E2E_FAIL=1; e2e_done; exit 1; }
printf '@a.test OK\n@b.test OK\n@c.test OK\n' >"$T/site-users"
srv_conf site "127.0.0.1:$SP" "mydestination = a.test b.test c.test" \
    "local_maildir_base = $T/site/mail" "local_recipient_maps = $T/site-users"
srv_start site || { E2E_FAIL=1; e2e_done; exit 1; }

i=0
while [ $i -lt 10 ]; do
    for d in a.test b.test; do
        swaks --server 127.0.0.1 --port "$PP" --from s@x.test --to "u$i@$d" \
            --header "Subject: m$i $d" >/dev/null 2>&1 || echo "send $i $d failed"
    done
    i=$((i + 1))
done >"$T/send.err"
i=0
while [ $i -lt 5 ]; do
    swaks --server 127.0.0.1 --port "$PP" --from s@x.test --to "v$i@c.test" >/dev/null 2>&1 ||
        echo "send $i c.test failed"
    i=$((i + 1))
done >>"$T/send.err"
check_eq "25 messages sent to the provider" "$(cat "$T/send.err")" ""
deferred25() { [ "$(srv_log_count provider 'status=deferred')" = 25 ]; }
check "the 25 wait at the provider (25 deferred lines)" wait_for 10 deferred25

cat >"$T/fetchmailrc" <<RC
set no bouncemail
poll 127.0.0.1 protocol odmr port $OP auth cram-md5:
    user tim password tanstaaftanstaaf
    fetchdomains a.test,b.test
    smtphost 127.0.0.1/$SP
RC
chmod 600 "$T/fetchmailrc"
HOME=$T timeout 60 fetchmail --nosyslog --pidfile "$T/fetchmail.pid" -f "$T/fetchmailrc" -N -v --nosslcertck >"$T/fetchmail.out" 2>&1
echo "fetchmail rc=$?" >>"$T/fetchmail.out"
check "site: all 20 messages in the Maildir" wait_for 20 sh -c \
    "test \$(find '$T/site/mail' -path '*/new/*' -type f 2>/dev/null | wc -l) -eq 20"
check_eq "site: exactly 20 (no duplicates, nothing of c.test)" \
    "$(find "$T/site/mail" -path '*/new/*' -type f | wc -l)" 20
check "provider log: delivered with relay=odmr:tim[127.0.0.1]" \
    grep -q 'odmr\[[0-9]*\]: [0-9A-F]*: to=<u0@a.test>, relay=odmr:tim\[127.0.0.1\], .*status=sent' \
    "$T/provider/maillog"
srv_queue provider -p >"$T/mailq" 2>&1
check_eq "provider: the 5 for c.test stay queued" "$(grep -c '@c.test$' "$T/mailq")" 5
check_eq "provider: nothing for a.test or b.test stays" "$(grep -c '@[ab].test$' "$T/mailq")" 0
srv_queue provider status >"$T/status" 2>&1
check "etrn-queue status: last ATRN for a.test" grep -q '^a.test .* 250 started .*tim' "$T/status"

HOME=$T timeout 60 fetchmail --nosyslog --pidfile "$T/fetchmail.pid" -f "$T/fetchmailrc" -N -v --nosslcertck >"$T/fetchmail2.out" 2>&1
check "second run: 453 You have no mail" grep -q '453 You have no mail' "$T/fetchmail2.out"

# Three more sessions with mail: the ended sessions' destination is reused, so
# the provider's status keeps one odmr:tim row, not one per session.
for n in 1 2 3; do
    swaks --server 127.0.0.1 --port "$PP" --from s@x.test --to "again$n@a.test" >/dev/null 2>&1 ||
        echo "send again$n failed"
    HOME=$T timeout 60 fetchmail --nosyslog --pidfile "$T/fetchmail.pid" -f "$T/fetchmailrc" -N \
        --nosslcertck >/dev/null 2>&1
done >"$T/send2.err"
check_eq "three more messages sent to the provider" "$(cat "$T/send2.err")" ""
check "site: the three later messages arrived" wait_for 20 sh -c \
    "test \$(find '$T/site/mail' -path '*/new/*' -type f 2>/dev/null | wc -l) -eq 23"
srv_queue provider status --json >"$T/status.json" 2>&1
check_eq "provider status: one odmr:tim destination after four sessions" \
    "$(grep -o '"odmr:tim[^"]*"' "$T/status.json" | wc -l | tr -d ' ')" 1
e2e_done
