#!/bin/sh
# odmr_refusals.sh - what etrn-server's ODMR listener refuses, as a site sees
# it: the EHLO of each listener, ATRN on port 25 (502), MAIL and friends on
# the ODMR port (502), ATRN before AUTH (530), bad syntax (501), another
# user's domain (450, logged), nothing waiting (453), a second ATRN while a
# turn holds the domain (451); a site that drops the turn before its 220
# leaves the mail queued.
. "$(dirname "$0")/../lib/e2e.sh"
. "$E2E_TOP/tests/lib/etrn_server.sh"
e2e_init

PP=$(free_port)
OP=$(free_port)
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
chmod 644 "$T/key.pem"
{
    echo "tim:$(openssl passwd -6 pw)"
    echo "tim:{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b"
    echo "eve:$(openssl passwd -6 pw)"
} >"$T/users"
chown nobody "$T/users" && chmod 600 "$T/users"
srv_conf provider "127.0.0.1:$PP" "odmr_listen = 127.0.0.1:$OP" "mynetworks = 127.0.0.0/8" \
    "relay_domains = a.test b.test c.test" "etrn_only_domains = a.test b.test c.test" \
    "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/key.pem" \
    "smtpd_sasl_users_file = $T/users" "smtpd_error_sleep_time = 0s" \
    "smtp_helo_timeout = 3s" \
    "[etrn_users]" "tim = a.test b.test" "eve = c.test"
srv_start provider || { E2E_FAIL=1; e2e_done; exit 1; }

smtp_client -f "$PP" 'EHLO s.test' >"$T/ehlo25"
check "port 25: EHLO answered 250 (the list below is the server's)" \
    sh -c 'head -n 1 "$1" | grep -q "^250-provider.test$" && tail -n 1 "$1" | grep -q "^250 "' sh "$T/ehlo25"
check "port 25: EHLO offers no ATRN" grep_none ATRN "$T/ehlo25"
smtp_table "port 25" "$PP" <<'TBL'
EHLO s.test      -> 250 8BITMIME
ATRN a.test      -> 502 5.5.1 Error: command not implemented
QUIT             -> 221 2.0.0 Bye
TBL
check_eq "ODMR port: EHLO offers STARTTLS, AUTH CRAM-MD5, ATRN" \
    "$(smtp_client -f "$OP" 'EHLO s.test' | tr '\n' '|')" \
    "250-provider.test|250-STARTTLS|250-AUTH CRAM-MD5|250-ATRN|250 ENHANCEDSTATUSCODES|"
check_eq "ODMR port: inside TLS AUTH CRAM-MD5 PLAIN LOGIN, no STARTTLS" \
    "$(smtp_client -e s.test -t -f "$OP" 'EHLO s.test' | tr '\n' '|')" \
    "250-provider.test|250-AUTH CRAM-MD5 PLAIN LOGIN|250-ATRN|250 ENHANCEDSTATUSCODES|"
smtp_table "ODMR port, no AUTH" "$OP" <<'TBL'
ATRN a.test               -> 503 5.5.1 Error: send HELO/EHLO first
EHLO s.test               -> 250 ENHANCEDSTATUSCODES
ATRN a.test               -> 530 5.7.0 Authentication required
ATRN                      -> 530 5.7.0 Authentication required
MAIL FROM:<a@x.test>      -> 502 5.5.1 Error: command not available on the ODMR service
RCPT TO:<u@a.test>        -> 502 5.5.1 Error: command not available on the ODMR service
DATA                      -> 502 5.5.1 Error: command not available on the ODMR service
ETRN a.test               -> 502 5.5.1 Error: command not available on the ODMR service
VRFY u@a.test             -> 502 5.5.1 Error: command not available on the ODMR service
HELO s.test               -> 502 5.5.1 Error: command not available on the ODMR service
NOOP                      -> 250 2.0.0 Ok
RSET                      -> 250 2.0.0 Ok
QUIT                      -> 221 2.0.0 Bye
TBL
smtp_table "ODMR port, tim authenticated" -e s.test -t -a tim:pw "$OP" <<'TBL'
ATRN a.test,,b.test       -> 501 5.5.4 Syntax: ATRN [domain[,domain...]]: empty domain in the list
ATRN @a.test              -> 501 5.5.4 Syntax: ATRN [domain[,domain...]]: "@a.test": character not allowed in a hostname (letters, digits, '-' and '.' only)
ATRN c.test               -> 450 4.7.1 c.test: access denied
ATRN a.test,c.test        -> 450 4.7.1 c.test: access denied
ATRN a.test               -> 453 You have no mail
ATRN                      -> 453 You have no mail
QUIT                      -> 221 2.0.0 Bye
TBL
check "log: the refused ATRN names domain, client and user" \
    grep -q 'reject: ATRN c.test from unknown\[127.0.0.1\], sasl_username=tim: not in its \[etrn_users\] entry' \
    "$T/provider/maillog"

# one message waits for a.test; a turn that never gets its 220 holds a.test
swaks --server 127.0.0.1 --port "$PP" --from s@x.test --to u@a.test >/dev/null 2>&1
check "a message for a.test waits" wait_for 10 grep -q 'to=<u@a.test>.*status=deferred' \
    "$T/provider/maillog"
$PY - "$OP" >"$T/busy.out" 2>&1 <<'PYEOF'
import sys, time
sys.path.insert(0, "tests/lib")
from smtp_client import Client
port = int(sys.argv[1])
a = Client(port)
a.reply()
a.cmd("EHLO s.test"); a.cmd("STARTTLS"); a.starttls("localhost"); a.cmd("EHLO s.test")
a.auth_plain("tim", "pw")
print("first:", a.cmd("ATRN a.test")[-1])
b = Client(port)
b.reply()
b.cmd("EHLO s.test"); b.cmd("STARTTLS"); b.starttls("localhost"); b.cmd("EHLO s.test")
b.auth_plain("tim", "pw")
print("second:", b.cmd("ATRN a.test")[-1])
b.close()
a.close()   # the site goes away before its 220
PYEOF
check_eq "first ATRN: 250" "$(sed -n 's/^first: //p' "$T/busy.out")" \
    "250 OK now reversing the connection"
check_eq "second ATRN while the first holds a.test: 451" "$(sed -n 's/^second: //p' "$T/busy.out")" \
    "451 4.3.0 a.test: another ATRN or a flush for it is running, try again later"
check "log: the turn ends when the site leaves" wait_for 10 grep -q 'odmr:tim: unknown\[127.0.0.1\]: the turn failed' \
    "$T/provider/maillog"
srv_queue provider -p >"$T/mailq" 2>&1
check "the message for a.test stays queued" grep -q '^ *u@a.test$' "$T/mailq"
check_eq "a.test can be fetched again: ATRN a.test is 250 once more" \
    "$(smtp_client -e s.test -t -a tim:pw "$OP" 'ATRN a.test')" "250 OK now reversing the connection"
e2e_done
