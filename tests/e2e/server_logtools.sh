#!/bin/sh
# server_logtools.sh - the mail log as the admin's tools read it: etrn-server's
# maillog_file, written by real traffic (swaks in, smtp-sink out), through
# Debian's pflogsumm --syslog-name=etrnkit (received, delivered, deferred,
# bounced, rejected) and fail2ban-regex with fail2ban's own postfix filter
# (relay rejects in the default mode, SASL failures in mode=auth). The only
# change to the filter is its daemon name (_daemon), as a jail.local would set.
# syslog_name = other: the tag follows it.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

if ! command -v swaks >/dev/null || ! [ -x /usr/sbin/smtp-sink ] || ! [ -x /usr/sbin/pflogsumm ] \
    || ! command -v fail2ban-regex >/dev/null; then
    skip "swaks, smtp-sink, pflogsumm or fail2ban-regex missing"
    e2e_done; exit
fi

port=$(free_port)
sink=$(free_port)
refuser=$(free_port)
closed=$(free_port)
mkdir -p "$T/sink" "$T/refuser" "$T/out"
chmod 777 "$T/sink" "$T/refuser"
start_bg sink /usr/sbin/smtp-sink -u postfix -d "$T/sink/msg." "127.0.0.1:$sink" 10
start_bg refuser /usr/sbin/smtp-sink -u postfix -f rcpt "127.0.0.1:$refuser" 10
check "test setup: smtp-sink receivers listen" wait_port "$sink" 10 || e2e_abort
wait_port "$refuser" 10

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
echo "alice:$(openssl passwd -6 secret)" >"$T/users"
chmod 644 "$T/key.pem"
chown nobody "$T/users" && chmod 600 "$T/users"

# 127.0.0.1 is not in mynetworks: relaying to outside.example is refused
srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" "mynetworks = 127.0.0.2/32" \
    "relay_domains = ok.test later.test refused.test" \
    "smtpd_tls_cert_file = $T/cert.pem" "smtpd_tls_key_file = $T/key.pem" \
    "smtpd_sasl_users_file = $T/users" \
    "[transport]" "ok.test = smtp:[127.0.0.1]:$sink" "later.test = smtp:[127.0.0.1]:$closed" \
    "refused.test = smtp:[127.0.0.1]:$refuser"
srv_start relay || { check "etrn-server relay starts" false; e2e_done; exit 1; }
LOG="$T/relay/maillog"

send() { # send RCPT [FROM]
    swaks --server 127.0.0.1 --port "$port" --ehlo client.test --from "${2:-sender@ok.test}" \
        --to "$1" --header "Subject: log tools" --body "hello" >>"$T/out/swaks" 2>&1
}
for i in 1 2 3; do send "user$i@ok.test"; done
send a@later.test
send b@later.test
send c@refused.test
send x@outside.example
send y@outside.example
for i in 1 2 3; do
    swaks --server 127.0.0.1 --port "$port" --ehlo client.test --tls --auth LOGIN \
        --auth-user alice --auth-password wrong$i --from a@ok.test --to user1@ok.test \
        >>"$T/out/swaks-auth" 2>&1
done

# 3 sent + the DSN for c@refused.test to sender@ok.test; 2 deferred; 1 bounced
check "all deliveries, deferrals and the bounce are logged" wait_for 30 sh -c \
    "[ \$(grep -c 'status=sent' '$LOG') -ge 4 ] && [ \$(grep -c 'status=deferred' '$LOG') -ge 2 ] \
     && [ \$(grep -c 'status=bounced' '$LOG') -ge 1 ]"

# the tags: syslog_name/service[pid], the service as Postfix would name it
tags() { sed -n "s/^... .. ..:..:.. [^ ]* \([^[]*\)\[[0-9]*\]: .*$1.*/\1/p" "$LOG" | sort -u | tr '\n' ' '; }
check_eq "client= is smtpd's" "$(tags ': client=')" "etrnkit/smtpd "
check_eq "message-id= is cleanup's" "$(tags ': message-id=')" "etrnkit/cleanup "
check_eq "from=<>, size=, nrcpt= is qmgr's" "$(tags ', nrcpt=')" "etrnkit/qmgr "
check_eq "deliveries over SMTP are smtp's" "$(tags 'status=sent')" "etrnkit/smtp "
check_eq "the DSN is bounce's" "$(tags 'sender non-delivery notification')" "etrnkit/bounce "
check_eq "the relay reject is smtpd's" "$(tags 'NOQUEUE: reject: RCPT')" "etrnkit/smtpd "
check_eq "the start is master's" "$(tags 'daemon started')" "etrnkit/master "
check "a Postfix delivery line, field for field" grep -qE \
    "etrnkit/smtp\[[0-9]+\]: [0-9A-F]+: to=<user1@ok.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:$sink, delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn=2\.0\.0, status=sent \(250 " \
    "$LOG"
check "a Postfix relay reject line" grep -qE \
    'etrnkit/smtpd\[[0-9]+\]: NOQUEUE: reject: RCPT from [^ ]*\[127\.0\.0\.1\]: 554 5\.7\.1 <x@outside\.example>: Relay access denied; from=<sender@ok\.test> to=<x@outside\.example> proto=ESMTP helo=<client\.test>$' \
    "$LOG"
check "a Postfix SASL failure line" grep -qE \
    'etrnkit/smtpd\[[0-9]+\]: warning: [^ ]*\[127\.0\.0\.1\]: SASL LOGIN authentication failed: ' \
    "$LOG"

# pflogsumm: the grand totals
/usr/sbin/pflogsumm --syslog-name=etrnkit "$LOG" >"$T/out/pflogsumm" 2>&1
total() { awk -v what="$1" '$2 == what { print $1; exit }' "$T/out/pflogsumm"; }
check_eq "pflogsumm: received" "$(total received)" 6
check_eq "pflogsumm: delivered" "$(total delivered)" 4
check_eq "pflogsumm: deferred" "$(total deferred)" 2
check_eq "pflogsumm: bounced" "$(total bounced)" 1
check_eq "pflogsumm: rejected" "$(total rejected)" 2
check_eq "pflogsumm: senders (from qmgr's from=<>, size= lines)" "$(total senders)" 1
check "pflogsumm: the relay reject in the reject detail" grep -q "Relay access denied" \
    "$T/out/pflogsumm"
check "pflogsumm: the deferral reason" grep -qi "connection refused" "$T/out/pflogsumm"

# fail2ban: the stock postfix filter, only the daemon name set as a jail would
f2b() { # f2b MODE → "matched N"
    fail2ban-regex "$LOG" "postfix[mode=$1, _daemon=etrnkit/\w+]" >"$T/out/f2b-$1" 2>&1
    sed -n 's/^Lines: .* lines, .* ignored, \([0-9]*\) matched.*/\1/p' "$T/out/f2b-$1"
}
check_eq "fail2ban postfix filter: the 2 relay rejects" "$(f2b more)" 2
check_eq "fail2ban postfix[mode=auth]: the 3 SASL failures" "$(f2b auth)" 3

# syslog_name = other: every line of the new server is other/...
srv_stop relay
port2=$(free_port)
srv_conf named "127.0.0.1:$port2" "syslog_name = mta-out"
srv_start named || { check "etrn-server named starts" false; e2e_done; exit 1; }
swaks --server 127.0.0.1 --port "$port2" --ehlo client.test --from a@named.test \
    --to x@outside.example >/dev/null 2>&1
srv_stop named
check_eq "syslog_name = mta-out: the tags" \
    "$(sed -n 's/^... .. ..:..:.. [^ ]* \([^[/]*\)\/[a-z]*\[[0-9]*\]: .*/\1/p' "$T/named/maillog" | sort -u)" \
    "mta-out"
srv_conf badname "127.0.0.1:$port2" "syslog_name = a/b"
check_eq "syslog_name with a '/': refused, naming the line" \
    "$("$BIN_DIR/etrn-server" -c "$T/badname/server.ini" --check-config 2>&1)" \
    "etrn-server: $T/badname/server.ini:$(grep -n '^syslog_name' "$T/badname/server.ini" | cut -d: -f1): [main] syslog_name: \"a/b\": letters, digits, '.', '_' and '-' only, at most 48"

e2e_done
