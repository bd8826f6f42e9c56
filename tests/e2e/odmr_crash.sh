#!/bin/sh
# odmr_crash.sh - kill -9 of the provider during an ODMR turn of 500 messages:
# fetchmail (--protocol ODMR) relays the turn to a site etrn-server; once the
# site holds some of the messages the provider is killed, started again, and
# fetchmail runs ATRN again. Every message (by the provider's queue ID in its
# Received header) reaches the site's Maildir at least once, none is missing,
# and the provider's queue is empty at the end.
. "$(dirname "$0")/../lib/e2e.sh"
. "$E2E_TOP/tests/lib/etrn_server.sh"
e2e_init

command -v fetchmail >/dev/null 2>&1 || { skip "fetchmail is not installed"; e2e_done; exit $?; }
N=500
PP=$(free_port)
OP=$(free_port)
SP=$(free_port)
echo "tim:{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b" >"$T/users"
chown nobody "$T/users" && chmod 600 "$T/users"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
chmod 644 "$T/key.pem"
srv_conf provider "127.0.0.1:$PP" "odmr_listen = 127.0.0.1:$OP" "mynetworks = 127.0.0.0/8" \
    "relay_domains = a.test" "etrn_only_domains = a.test" \
    "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/key.pem" \
    "smtpd_sasl_users_file = $T/users" "[etrn_users]" "tim = a.test"
srv_start provider || { E2E_FAIL=1; e2e_done; exit 1; }
printf '@a.test OK\n' >"$T/site-users"
srv_conf site "127.0.0.1:$SP" "mydestination = a.test" \
    "local_maildir_base = $T/site/mail" "local_recipient_maps = $T/site-users"
srv_start site || { E2E_FAIL=1; e2e_done; exit 1; }

smtp-source -m $N -s 10 -l 1024 -f s@x.test -t u@a.test "127.0.0.1:$PP" >"$T/source.out" 2>&1
check "all $N messages wait at the provider" wait_for 60 sh -c \
    "test \$(grep -c 'to=<u@a.test>.*status=deferred' '$T/provider/maillog') -eq $N"
grep 'client=unknown' "$T/provider/maillog" | sed 's/.*: \([0-9A-F]*\): client=.*/\1/' | sort -u \
    >"$T/sent-ids"
check_eq "$N queue IDs at the provider" "$(wc -l <"$T/sent-ids")" $N

cat >"$T/fetchmailrc" <<RC
set no bouncemail
poll 127.0.0.1 protocol odmr port $OP auth cram-md5:
    user tim password tanstaaftanstaaf
    fetchdomains a.test
    smtphost 127.0.0.1/$SP
RC
chmod 600 "$T/fetchmailrc"
in_maildir() { find "$T/site/mail" -path '*/new/*' -type f 2>/dev/null | wc -l; }
HOME=$T fetchmail --nosyslog --pidfile "$T/fetchmail.pid" -f "$T/fetchmailrc" -N -v >"$T/fetchmail1.out" 2>&1 &
FPID=$!
check "the first turn delivers some messages" wait_for 60 sh -c "test \$(find '$T/site/mail' -path '*/new/*' -type f 2>/dev/null | wc -l) -ge 50"
eval "ppid=\$SRV_PID_provider"
kill -9 "$ppid"
before=$(in_maildir)
echo "killed the provider with $before of $N in the site's Maildir"
check "the kill came mid-turn (fewer than $N delivered)" test "$before" -lt $N
n=0
while kill -0 "$FPID" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
kill "$FPID" 2>/dev/null
wait "$FPID" 2>/dev/null
SRV_PID_provider=
srv_start provider || { E2E_FAIL=1; e2e_done; exit 1; }
HOME=$T timeout 120 fetchmail --nosyslog --pidfile "$T/fetchmail.pid" -f "$T/fetchmailrc" -N -v >"$T/fetchmail2.out" 2>&1
check "after the restart ATRN was answered 250" grep -q '250 OK now reversing the connection' "$T/fetchmail2.out"
for f in $(find "$T/site/mail" -path '*/new/*' -type f); do
    sed -n 's/^.*by provider.test (etrn-server) with E\{0,1\}SMTPS\{0,1\}A\{0,1\} id \([0-9A-F]*\).*$/\1/p' "$f" | head -n 1
done | sort >"$T/got-ids"
check_eq "every message arrived at least once (none missing)" \
    "$(sort -u "$T/got-ids" | comm -23 "$T/sent-ids" - | wc -l)" 0
echo "site holds $(wc -l <"$T/got-ids") message(s), $(sort -u "$T/got-ids" | wc -l) distinct; $(($(wc -l <"$T/got-ids") - $(sort -u "$T/got-ids" | wc -l))) sent twice"
check "at most a few sent twice (the ones in flight at the kill)" \
    test $(($(wc -l <"$T/got-ids") - $(sort -u "$T/got-ids" | wc -l))) -le 2
srv_queue provider -p >"$T/mailq" 2>&1
check_eq "the provider's queue is empty" "$(cat "$T/mailq")" "Mail queue is empty"
e2e_done
