#!/bin/sh
# server_auth_cram.sh - AUTH CRAM-MD5 (RFC 2195) against a Dovecot-style
# "{CRAM-MD5}" verifier in smtpd_sasl_users_file: offered outside TLS only when
# a user has a verifier, Python's smtplib logs in with the password and relays
# (logged sasl_method=CRAM-MD5), a wrong password or a user with only a crypt
# hash gets 535, and a users file other users can read is refused at start.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

port=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
chmod 644 "$T/key.pem" "$T/cert.pem"
# tim's verifier is RFC 2195's password "tanstaaftanstaaf" as doveadm pw -s CRAM-MD5 prints it
{
    echo "tim:{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b"
    echo "alice:$(openssl passwd -6 secret)"
} >"$T/users"
chown nobody "$T/users" && chmod 600 "$T/users"
srv_conf r "127.0.0.1:$port" "relay_domains = relay.test" "mynetworks = 127.0.0.2/32" \
    "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/key.pem" \
    "smtpd_sasl_users_file = $T/users" "smtpd_error_sleep_time = 0s" \
    "etrn_only_domains = other.test"
srv_start r
check "server with a CRAM-MD5 user listens" wait_port "$port" 10 || e2e_abort

$PY - "$port" >"$T/cram.out" 2>&1 <<'PYEOF'
import smtplib, ssl, sys
port = int(sys.argv[1])
c = smtplib.SMTP("127.0.0.1", port, timeout=10)
c.ehlo("c.test")
print("before:", c.esmtp_features.get("auth", "-"))
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c.starttls(context=ctx)
c.ehlo("c.test")
print("after:", c.esmtp_features.get("auth", "-"))
c.quit()

def login(user, password):
    c = smtplib.SMTP("127.0.0.1", port, timeout=10)
    c.ehlo("c.test")
    c.user, c.password = user, password
    try:
        code, text = c.auth("CRAM-MD5", c.auth_cram_md5)
    except smtplib.SMTPAuthenticationError as e:
        code, text = e.smtp_code, e.smtp_error
    print("login %s: %d %s" % (user, code, text.decode()))
    return c

c = login("tim", "tanstaaftanstaaf")
c.sendmail("a@b.test", ["u1@other.test"], "Subject: cram\r\n\r\nbody\r\n")
c.quit()
login("tim", "tanstaaftanstaaF").close()
login("alice", "secret").close()
login("mallory", "x").close()
PYEOF
check_eq "EHLO before TLS offers only CRAM-MD5" "$(sed -n 's/^before: //p' "$T/cram.out")" \
    " CRAM-MD5"
check_eq "EHLO after TLS offers CRAM-MD5 PLAIN LOGIN" "$(sed -n 's/^after: //p' "$T/cram.out")" \
    " CRAM-MD5 PLAIN LOGIN"
check_eq "CRAM-MD5 with the right password: 235, and relaying allowed" \
    "$(grep '^login tim' "$T/cram.out" | head -n 1)" \
    "login tim: 235 2.7.0 Authentication successful"
check "the relayed message is queued" grep -q '^  *u1@other.test$' "$(srv_queue r -p >"$T/mailq" 2>&1; echo "$T/mailq")"
check "log: client= line with sasl_method=CRAM-MD5, sasl_username=tim" \
    grep -q ": client=unknown\[127.0.0.1\], sasl_method=CRAM-MD5, sasl_username=tim$" "$T/r/maillog"
check_eq "CRAM-MD5 with a wrong password: 535" "$(grep '^login tim' "$T/cram.out" | sed -n 2p)" \
    "login tim: 535 5.7.8 Error: authentication failed: authentication failure"
check_eq "CRAM-MD5 for a user with only a crypt hash: 535" "$(grep '^login alice' "$T/cram.out")" \
    "login alice: 535 5.7.8 Error: authentication failed: authentication failure"
check_eq "CRAM-MD5 for an unknown user: 535" "$(grep '^login mallory' "$T/cram.out")" \
    "login mallory: 535 5.7.8 Error: authentication failed: authentication failure"
check "log: the failure names the mechanism and user" \
    grep -q 'SASL CRAM-MD5 authentication failed: authentication failure, sasl_username=alice$' "$T/r/maillog"
srv_stop r

# SIGTERM while a 535 waits on its failure delay (5 s here) on a plaintext
# session: the client gets its 535 at once, before the connection ends
# (TLS sessions: server_auth_abuse.sh)
sed -i 's/^smtpd_error_sleep_time = 0s$/smtpd_error_sleep_time = 5s/' "$T/r/server.ini"
srv_start r
T=$T $PY - "$port" >"$T/drain.out" 2>&1 <<'PYEOF' &
import os, smtplib, sys, time
c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
c.ehlo("c.test")
c.user, c.password = "tim", "wrong"
open(os.environ["T"] + "/drain.ready", "w").close()
t0 = time.time()
try:
    code, text = c.auth("CRAM-MD5", c.auth_cram_md5)
except smtplib.SMTPAuthenticationError as e:
    code = e.smtp_code
except smtplib.SMTPServerDisconnected:
    code = "EOF"
print(code, "in time" if time.time() - t0 < 3.5 else "late (%.2f s)" % (time.time() - t0))
PYEOF
drain_pid=$!
wait_for 10 test -e "$T/drain.ready"
sleep 1
srv_stop r
wait $drain_pid
check_eq "SIGTERM during a failure delay: the 535 is sent before the session ends" \
    "$(cat "$T/drain.out")" "535 in time"

# a users file other users can read is refused at start (verifiers are password equivalents)
chmod 604 "$T/users"
"$BIN_DIR/etrn-server" -c "$T/r/server.ini" >"$T/bad.out" 2>&1; rc=$?
check_eq "users file readable by others: exit 78" "$rc" 78
check "users file readable by others: the error says so" \
    grep -qF "$T/users: readable by others (mode 0604): make it 0600 or 0640" "$T/bad.out"
e2e_done
