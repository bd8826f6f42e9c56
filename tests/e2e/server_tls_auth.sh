#!/bin/sh
# server_tls_auth.sh - etrn-server's STARTTLS and AUTH: what EHLO offers before
# and after TLS, swaks with --tls and AUTH PLAIN/LOGIN relaying to a non-relay
# domain (queued, logged with sasl_username, Received ... ESMTPSA), wrong
# password 535, AUTH before TLS 503, the SASL exchange edge cases, the
# CVE-2011-0411 plaintext injection after STARTTLS, and a missing, broken or
# unreadable TLS key refused at startup with the key's name.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

SRV="$BIN_DIR/etrn-server"
Q="$BIN_DIR/etrn-queue"
port=$(free_port)
SPOOL="$T/relay/queue"
CONF="$T/relay/server.ini"
LOG="$T/relay/maillog"
mkdir -p "$T/out"

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
check "test setup: self-signed certificate made" test -s "$T/cert.pem"
{
    echo "# AUTH users"
    echo "alice:$(openssl passwd -6 secret)"
    echo "bob:$(openssl passwd -6 hunter2)"
} >"$T/users"
chown nobody "$T/users" && chmod 600 "$T/users"

# write_conf NAME PORT [extra main lines...] - $T/NAME/server.ini
write_conf() {
    wc_name=$1 wc_port=$2; shift 2
    srv_conf "$wc_name" "127.0.0.1:$wc_port" "myhostname = relay.test" \
        "mynetworks = 127.0.0.2/32" "relay_domains = relay.test" \
        "etrn_only_domains = other.test" "smtpd_timeout = 5s" \
        "; the AUTH limits and the delay after failures: tests/e2e/server_auth_abuse.sh" \
        "smtpd_client_auth_rate_limit = 0" "smtpd_error_sleep_time = 0s" \
        "$@" "[transport]" "other.test = smtp:[127.0.0.1]:1"
}
write_conf relay "$port" "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/key.pem" \
    "smtpd_sasl_users_file = $T/users"

# sess [-t] PORT CMD... - with -t EHLO, STARTTLS, EHLO first (not printed),
# then each CMD and the last line of its reply; "EOF" when the server closed
sess() {
    if [ "$1" = -t ]; then shift; smtp_client -e c.test -t "$@"; else smtp_client "$@"; fi
}
b64() { printf '%s' "$1" | base64 -w0; }

check "server with TLS and AUTH listens" srv_start relay || e2e_abort
SPID=$SRV_PID

# EHLO before and after TLS
$PY - "$port" >"$T/out/ehlo" 2>&1 <<'PYEOF'
import smtplib, ssl, sys
c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
c.ehlo("c.test")
print("before:", " ".join(sorted(c.esmtp_features)))
print("before-auth:", c.has_extn("auth"))
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c.starttls(context=ctx)
c.ehlo("c.test")
print("after:", " ".join(sorted(c.esmtp_features)))
print("auth:", c.esmtp_features.get("auth", ""))
c.quit()
PYEOF
check "EHLO before TLS offers STARTTLS" grep -q '^before:.* starttls' "$T/out/ehlo"
check_eq "EHLO before TLS offers no AUTH" "$(sed -n 's/^before-auth: //p' "$T/out/ehlo")" False
check "EHLO after TLS offers no STARTTLS" grep_none '^after:.* starttls' "$T/out/ehlo"
check_eq "EHLO after TLS offers AUTH PLAIN LOGIN" "$(sed -n 's/^auth: //p' "$T/out/ehlo")" \
    " PLAIN LOGIN"
check "log: TLS connection established" \
    grep -q 'Anonymous TLS connection established from unknown\[127.0.0.1\]: TLSv1\.[23]' "$LOG"

# AUTH before STARTTLS: 503, as Postfix with smtpd_tls_auth_only
plain_alice=$(printf '\0alice\0secret' | base64 -w0)
plain_wrong=$(printf '\0alice\0wrong' | base64 -w0)
check_eq "AUTH before STARTTLS: 503" \
    "$(sess "$port" 'EHLO c.test' "AUTH PLAIN $plain_alice")" \
    "250 8BITMIME
503 5.5.1 Error: authentication not enabled"

# swaks: TLS + AUTH PLAIN and LOGIN relay to a domain that is not in relay_domains
swaks --server 127.0.0.1 --port "$port" --ehlo c.test --tls --auth PLAIN --auth-user alice \
    --auth-password secret --from a@b.test --to u1@other.test --header 'Subject: plain' \
    >"$T/out/swaks-plain" 2>&1
check_eq "swaks --tls --auth PLAIN: exit 0" "$?" 0
check "swaks PLAIN: 235 2.7.0" grep -q '<~  235 2.7.0 Authentication successful' "$T/out/swaks-plain"
idp=$(sed -n 's/.*250 2.0.0 Ok: queued as \([0-9A-F]*\).*/\1/p' "$T/out/swaks-plain")
check "swaks PLAIN: relayed to other.test and queued" test -n "$idp"
swaks --server 127.0.0.1 --port "$port" --ehlo c.test --tls --auth LOGIN --auth-user bob \
    --auth-password hunter2 --from a@b.test --to u2@other.test --header 'Subject: login' \
    >"$T/out/swaks-login" 2>&1
check_eq "swaks --tls --auth LOGIN: exit 0" "$?" 0
check "swaks LOGIN: 334 VXNlcm5hbWU6 challenge" grep -q '<~  334 VXNlcm5hbWU6' "$T/out/swaks-login"
idl=$(sed -n 's/.*250 2.0.0 Ok: queued as \([0-9A-F]*\).*/\1/p' "$T/out/swaks-login")
check "swaks LOGIN: relayed to other.test and queued" test -n "$idl"
"$Q" -c "$CONF" -p >"$T/out/mailq" 2>&1
check "etrn-queue -p lists the PLAIN message" grep -q "^$idp " "$T/out/mailq"
check "etrn-queue -p lists u1@other.test" grep -q '^  *u1@other.test$' "$T/out/mailq"
check "etrn-queue -p lists u2@other.test" grep -q '^  *u2@other.test$' "$T/out/mailq"
qf=$(ls "$SPOOL"/*/"$idp" 2>/dev/null | head -n 1)
check "queue file: Received ... with ESMTPSA" grep -q "by relay.test (etrn-server) with ESMTPSA id $idp" "$qf"
check "queue file: Received names the TLS version" grep -q '(using TLSv1\.[23] with cipher ' "$qf"
check "log: client= line with sasl_method=PLAIN, sasl_username=alice" \
    grep -q ": $idp: client=unknown\[127.0.0.1\], sasl_method=PLAIN, sasl_username=alice$" "$LOG"
check "log: client= line with sasl_method=LOGIN, sasl_username=bob" \
    grep -q ": $idl: client=unknown\[127.0.0.1\], sasl_method=LOGIN, sasl_username=bob$" "$LOG"
check "log: disconnect counts starttls and auth" \
    grep -q 'disconnect from unknown\[127.0.0.1\] ehlo=2 starttls=1 auth=1 mail=1 rcpt=1 data=1 quit=1 commands=8$' \
    "$LOG"

# wrong password: 535, no relaying
swaks --server 127.0.0.1 --port "$port" --ehlo c.test --tls --auth PLAIN --auth-user alice \
    --auth-password wrong --from a@b.test --to u3@other.test >"$T/out/swaks-wrong" 2>&1
check "swaks wrong password: non-zero exit" test $? -ne 0
check "swaks wrong password: 535 5.7.8" grep -q '<~\* *535 5.7.8 ' "$T/out/swaks-wrong"
check "log: authentication failed warning" \
    grep -q 'warning: unknown\[127.0.0.1\]: SASL PLAIN authentication failed: authentication failure, sasl_username=alice' \
    "$LOG"
check_eq "without AUTH: no relaying inside TLS either" \
    "$(sess -t "$port" 'MAIL FROM:<a@b.test>' 'RCPT TO:<u@other.test>')" \
    "250 2.1.0 Ok
554 5.7.1 <u@other.test>: Relay access denied"

# the SASL exchange, by hand
check_eq "AUTH PLAIN: initial response, then already authenticated, then relay" \
    "$(sess -t "$port" "AUTH PLAIN $plain_alice" "AUTH PLAIN $plain_alice" \
        'MAIL FROM:<a@b.test>' 'RCPT TO:<u@other.test>' "AUTH PLAIN $plain_alice")" \
    "235 2.7.0 Authentication successful
503 5.5.1 Error: already authenticated
250 2.1.0 Ok
250 2.1.5 Ok
503 5.5.1 Error: MAIL transaction in progress"
check_eq "AUTH PLAIN with a 334 challenge; * cancels with 501" \
    "$(sess -t "$port" 'AUTH PLAIN' '*' 'AUTH PLAIN' "$plain_alice")" \
    "334 
501 5.7.0 Authentication aborted
334 
235 2.7.0 Authentication successful"
check_eq "AUTH PLAIN: bad base64 501, = (empty) 535, unknown mechanism 504, no mechanism 501" \
    "$(sess -t "$port" 'AUTH PLAIN !!!!' 'AUTH PLAIN =' 'AUTH CRAM-MD5' 'AUTH')" \
    "501 5.5.2 Cannot decode response
535 5.7.8 Error: authentication failed: authentication failure
504 5.5.4 Unsupported authentication mechanism
501 5.5.4 Syntax: AUTH mechanism"
check_eq "AUTH LOGIN: Username:/Password: challenges, success" \
    "$(sess -t "$port" 'AUTH LOGIN' "$(b64 bob)" "$(b64 hunter2)")" \
    "334 VXNlcm5hbWU6
334 UGFzc3dvcmQ6
235 2.7.0 Authentication successful"
check_eq "AUTH LOGIN with the user as initial response; unknown user 535" \
    "$(sess -t "$port" "AUTH LOGIN $(b64 nobody)" "$(b64 secret)")" \
    "334 UGFzc3dvcmQ6
535 5.7.8 Error: authentication failed: authentication failure"
check_eq "AUTH PLAIN for another authorization identity: 535" \
    "$(sess -t "$port" "AUTH PLAIN $(printf 'bob\0alice\0secret' | base64 -w0)")" \
    "535 5.7.8 Error: authentication failed: authentication failure"
check_eq "three failed AUTHs, then 421 and the session ends" \
    "$(sess -t "$port" "AUTH PLAIN $plain_wrong" "AUTH PLAIN $plain_wrong" \
        "AUTH PLAIN $plain_wrong" "AUTH PLAIN $plain_alice" 'NOOP')" \
    "535 5.7.8 Error: authentication failed: authentication failure
535 5.7.8 Error: authentication failed: authentication failure
535 5.7.8 Error: authentication failed: authentication failure
421 4.7.0 relay.test Error: too many failed AUTH attempts
EOF"
check_eq "STARTTLS: 501 with an argument, 503 inside TLS, EHLO needed again after TLS" \
    "$(sess "$port" 'EHLO c.test' 'STARTTLS now' && sess -t "$port" 'STARTTLS' && \
       sess "$port" 'EHLO c.test' 'MAIL FROM:<a@b.test>' 'STARTTLS')" \
    "250 8BITMIME
501 5.5.4 Syntax: STARTTLS
503 5.5.1 Error: TLS already active
250 8BITMIME
250 2.1.0 Ok
503 5.5.1 Error: MAIL transaction in progress"
$PY - "$port" >"$T/out/reset" 2>&1 <<'PYEOF'
import smtplib, ssl, sys
c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10)
c.ehlo("c.test")
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c.starttls(context=ctx)
print(c.docmd("MAIL", "FROM:<a@b.test>")[0])
PYEOF
check_eq "after STARTTLS the session starts over: MAIL without EHLO is 503" "$(cat "$T/out/reset")" 503

# CVE-2011-0411: commands pipelined after STARTTLS in plaintext are dropped
$PY - "$port" >"$T/out/inject" 2>&1 <<'PYEOF'
import socket, ssl, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10)
f = s.makefile("rb")
def reply(f):
    lines = []
    while True:
        line = f.readline().decode("latin-1").rstrip("\r\n")
        lines.append(line)
        if len(line) < 4 or line[3] != "-":
            return lines
reply(f)
s.sendall(b"EHLO c.test\r\n"); reply(f)
s.sendall(b"STARTTLS\r\nRSET\r\nHELP\r\n")
print("starttls:", reply(f)[-1])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(s, server_hostname="relay.test")
tf = t.makefile("rb")
t.sendall(b"EHLO c.test\r\n")
print("first over TLS:", reply(tf)[0])
t.sendall(b"NOOP\r\n")
print("next:", reply(tf)[-1])
t.sendall(b"QUIT\r\n")
print("quit:", reply(tf)[-1])
PYEOF
check_eq "STARTTLS injection: the injected RSET/HELP get no reply" "$(cat "$T/out/inject")" \
    "starttls: 220 2.0.0 Ready to start TLS
first over TLS: 250-relay.test
next: 250 2.0.0 Ok
quit: 221 2.0.0 Bye"
check "log: the pipelined octets were discarded" \
    grep -q 'unknown\[127.0.0.1\]: discarded 12 octets pipelined after STARTTLS' "$LOG"

# smtpd_timeout inside TLS: the 421 arrives encrypted before the close
$PY - "$port" >"$T/out/tlstimeout" 2>&1 <<'PYEOF'
import smtplib, ssl, sys
c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=15)
c.ehlo("c.test")
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
c.starttls(context=ctx)
print(c.getreply())
PYEOF
check_eq "timeout inside TLS: 421 over TLS" "$(cat "$T/out/tlstimeout")" \
    "(421, b'4.4.2 relay.test Error: timeout exceeded')"

# a TLS handshake that fails ends only that session
$PY - "$port" >"$T/out/badtls" 2>&1 <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10)
f = s.makefile("rb")
f.readline()
s.sendall(b"EHLO c.test\r\n")
while f.readline()[3:4] == b"-":
    pass
s.sendall(b"STARTTLS\r\n"); f.readline()
s.sendall(b"this is not a TLS client hello\r\n" * 4)
print(f.read() == b"" and "closed" or "open")
PYEOF
check_eq "garbage instead of a TLS handshake: connection closed" "$(cat "$T/out/badtls")" closed
check "log: SSL_accept error" grep -q 'SSL_accept error from unknown\[127.0.0.1\]' "$LOG"
check_eq "server still serves after the bad handshake" "$(sess "$port" 'NOOP')" "250 2.0.0 Ok"

# SIGHUP rereads the users file: a new user can log in
echo "carol:$(openssl passwd -6 pw3)" >>"$T/users"
kill -HUP "$SPID"
check "SIGHUP: reload logged" wait_for 5 grep -q 'reload: configuration .* loaded' "$LOG"
check_eq "SIGHUP: a user added to the users file can log in" \
    "$(sess -t "$port" "AUTH PLAIN $(printf '\0carol\0pw3' | base64 -w0)")" \
    "235 2.7.0 Authentication successful"

kill -TERM "$SPID"
wait "$SPID"
check_eq "SIGTERM: exit 0" "$?" 0
check_eq "nothing on stdout/stderr (no sanitizer report)" "$(cat "$T/relay.out")" ""

# no TLS configured: STARTTLS is not offered and answers 454
port2=$(free_port)
write_conf notls "$port2"
check "server without TLS listens" srv_start notls
check_eq "without TLS: STARTTLS 454, AUTH 503" \
    "$(sess "$port2" 'EHLO c.test' 'STARTTLS' "AUTH PLAIN $plain_alice")" \
    "250 8BITMIME
454 4.7.0 TLS not available
503 5.5.1 Error: authentication not enabled"
srv_stop notls

# startup: a missing, broken or unreadable key is refused, naming the key
run_bad() {
    "$SRV" -c "$1" >"$T/out/bad.out" 2>&1
}
write_conf nokey "$port" "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/missing-key.pem"
run_bad "$T/nokey/server.ini"; rc=$?
check_eq "missing key: exit 78 (configuration)" "$rc" 78
check "missing key: message names the key file" \
    grep -qF "etrn-server: $T/nokey/server.ini: smtpd_tls_key_file $T/missing-key.pem: cannot read: No such file or directory" "$T/out/bad.out"
printf 'not a key\n' >"$T/garbage-key.pem"
write_conf badkey "$port" "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/garbage-key.pem"
run_bad "$T/badkey/server.ini"; rc=$?
check_eq "broken key: exit 78 (configuration)" "$rc" 78
"$SRV" -c "$T/badkey/server.ini" --check-config >"$T/out/bad.out" 2>&1; rc=$?
check_eq "broken key: --check-config finds it too (exit 78)" "$rc" 78
check "broken key: message names the key file" \
    grep -qF "etrn-server: $T/badkey/server.ini: smtpd_tls_key_file $T/garbage-key.pem: no usable private key" "$T/out/bad.out"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=other -days 1 \
    -keyout "$T/key2.pem" -out "$T/cert2.pem" >/dev/null 2>&1
write_conf mismatch "$port" "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/key2.pem"
run_bad "$T/mismatch/server.ini"; rc=$?
check_eq "key of another certificate: exit 78 (configuration)" "$rc" 78
check "key of another certificate: says so" \
    grep -qF "smtpd_tls_key_file $T/key2.pem: does not match the certificate in $T/cert.pem" "$T/out/bad.out"
printf 'alice:secret\n' >"$T/badusers"
chown nobody "$T/badusers" && chmod 600 "$T/badusers"
write_conf plainusers "$port" "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/key.pem" \
    "smtpd_sasl_users_file = $T/badusers"
run_bad "$T/plainusers/server.ini"; rc=$?
check_eq "users file with a plain password: exit 78 (configuration)" "$rc" 78
check "users file: the error names file and line" \
    grep -qF "etrn-server: $T/plainusers/server.ini: $T/badusers:1: user alice: not a modern crypt(3) hash" "$T/out/bad.out"


# unreadable (not just missing): run as an unprivileged user, key mode 0600 root
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
    cp "$T/key.pem" "$T/root-key.pem"
    chmod 600 "$T/root-key.pem"
    write_conf nb "$port" \
        "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/root-key.pem"
    chmod 644 "$T/nb/server.ini"
    setpriv --reuid=nobody --regid=nogroup --clear-groups "$SRV" -c "$T/nb/server.ini" \
        >"$T/out/bad.out" 2>&1; rc=$?
    check_eq "unreadable key: exit 78 (configuration)" "$rc" 78
    check "unreadable key: message names the key file" \
        grep -qF "smtpd_tls_key_file $T/root-key.pem: cannot read: Permission denied" \
        "$T/out/bad.out"
else
    skip "unreadable key: needs root and setpriv to test as another user"
fi

e2e_done
