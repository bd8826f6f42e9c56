#!/bin/sh
# server_client_name.sh - etrn-server names its clients as Postfix's smtpd does:
# reverse DNS, then forward confirmation, through dns_resolver (a private
# dnsmasq on loopback): "connect from client.test[127.0.0.1]", client= and the
# Received: header with the name; a PTR whose name does not resolve back, or no
# PTR, is unknown[addr]; IPv6 ::1 too. A resolver that never answers delays
# the greeting by at most CLIENT_NAME_TIMEOUT (5 s), then unknown;
# smtpd_peername_lookup = no asks nothing.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/dnsmasq.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

if ! why=$(dnsmasq_usable); then
    skip "dnsmasq: $why"
    e2e_done; exit
fi
DNS_PORT=$(free_port)
dnsmasq_start "$DNS_PORT" --host-record=client.test,127.0.0.1 \
    --ptr-record=2.0.0.127.in-addr.arpa,liar.test --host-record=liar.test,127.0.0.99 \
    --host-record=six.test,::1 || { check "dnsmasq starts" false; e2e_done; exit 1; }
DNSLOG=$T/dnsmasq-$DNS_PORT.out

# greet SRC PORT - connect from SRC (to ::1 when SRC is IPv6), print the
# greeting, QUIT; "secs=N" second line; fails when it cannot connect
greet() {
    g_host=127.0.0.1
    case $1 in *:*) g_host=$1 ;; esac
    g_t0=$(date +%s)
    smtp_client -g -w 20 -s "$1" -H "$g_host" "$2" QUIT >"$T/greet.out" || return 1
    head -n 1 "$T/greet.out"
    echo "secs=$(( $(date +%s) - g_t0 ))"
}

port=$(free_port)
srv_conf named "127.0.0.1:$port [::1]:$port" "dns_resolver = 127.0.0.1:$DNS_PORT" \
    "mynetworks = 127.0.0.0/8 [::1]/128" "relay_domains = named.test"
srv_start named || { check "etrn-server named starts" false; e2e_done; exit 1; }
LOG=$T/named/maillog

out=$(greet 127.0.0.1 "$port")
check_eq "127.0.0.1: greeted at once" "$(echo "$out" | head -1)" "220 named.test ESMTP etrn-server"
check "127.0.0.1: connect from client.test[127.0.0.1]" \
    grep -q "etrnkit/smtpd\[[0-9]*\]: connect from client.test\[127.0.0.1\]$" "$LOG"
check "dnsmasq was asked the PTR and then the A record" sh -c \
    "grep -q 'query\[PTR\] 1.0.0.127.in-addr.arpa' '$DNSLOG' && grep -q 'query\[A\] client.test' '$DNSLOG'"
swaks --server 127.0.0.1 --port "$port" --ehlo c.test --from a@named.test --to b@named.test \
    >"$T/swaks.out" 2>&1
id=$(sed -n 's/.*250 2.0.0 Ok: queued as \([0-9A-F]*\).*/\1/p' "$T/swaks.out")
check "a message: client=client.test[127.0.0.1]" grep -q ": $id: client=client.test\[127.0.0.1\]$" "$LOG"
check "a message: Received: from c.test (client.test [127.0.0.1])" sh -c \
    "grep -rqF 'Received: from c.test (client.test [127.0.0.1])' '$T/named/queue'"

greet 127.0.0.2 "$port" >/dev/null
check "127.0.0.2: PTR liar.test, whose A is 127.0.0.99: unknown[127.0.0.2]" \
    grep -q "connect from unknown\[127.0.0.2\]$" "$LOG"
greet 127.0.0.3 "$port" >/dev/null
check "127.0.0.3: no PTR: unknown[127.0.0.3]" grep -q "connect from unknown\[127.0.0.3\]$" "$LOG"
if greet ::1 "$port" >"$T/six.out"; then
    check "::1: six.test[::1]" grep -q "connect from six.test\[::1\]$" "$LOG"
else
    skip "::1: no IPv6 loopback here"
fi

# a resolver that never answers: the greeting waits at most ~5 s, then unknown
DEAD=$(free_port)
start_bg deaddns $PY -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', $DEAD))
end = time.time() + 120
while time.time() < end:
    s.settimeout(1)
    try: s.recvfrom(4096)
    except OSError: pass
"
srv_stop named
port2=$(free_port)
srv_conf slow "127.0.0.1:$port2" "dns_resolver = 127.0.0.1:$DEAD"
srv_start slow || { check "etrn-server slow starts" false; e2e_done; exit 1; }
out=$(greet 127.0.0.1 "$port2")
secs=$(echo "$out" | sed -n 's/^secs=//p')
check_eq "silent resolver: still greeted" "$(echo "$out" | head -1)" "220 slow.test ESMTP etrn-server"
check "silent resolver: greeted after the 5 s limit, not much later (${secs}s)" \
    test "$secs" -ge 4 -a "$secs" -le 12
check "silent resolver: unknown[127.0.0.1]" grep -q "connect from unknown\[127.0.0.1\]$" "$T/slow/maillog"
srv_stop slow

# smtpd_peername_lookup = no: nothing asked
before=$(grep -c 'query\[PTR\]' "$DNSLOG")
check "dnsmasq logs PTR queries (the count below means something)" test "${before:-0}" -gt 0
port3=$(free_port)
srv_conf off "127.0.0.1:$port3" "dns_resolver = 127.0.0.1:$DNS_PORT" "smtpd_peername_lookup = no"
srv_start off || { check "etrn-server off starts" false; e2e_done; exit 1; }
greet 127.0.0.1 "$port3" >/dev/null
check "smtpd_peername_lookup = no: unknown[127.0.0.1]" \
    grep -q "connect from unknown\[127.0.0.1\]$" "$T/off/maillog"
check_eq "smtpd_peername_lookup = no: no PTR query" "$(grep -c 'query\[PTR\]' "$DNSLOG")" "$before"

e2e_done
