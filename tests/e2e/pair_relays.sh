#!/bin/sh
# pair_relays.sh - one site, three independent etrn-server relays in its MX set.
#
# Relays on 127.0.0.2, .3 and .4 (one port), each holding site.test's mail
# (etrn-only, next hop the site's etrn-server on 127.0.0.1). dnsmasq on a
# loopback port serves site.test's MX set: the site itself (preference 5,
# skipped by the agent as its own helo_name) and the three relays. Mail for
# the site is spread over the relays while the site is offline; then the
# site's server starts and one etrn-agent --once with hosts = mx:site.test
# sends ETRN to all three, and every message arrives in the site's Maildir.
. "$(dirname "$0")/../lib/e2e.sh"
. "$E2E_TOP/tests/lib/dnsmasq.sh"
. "$E2E_TOP/tests/lib/etrn_server.sh"
e2e_init

if ! why=$(dnsmasq_usable); then
    skip "$why"; e2e_done; exit $?
fi
DNS_PORT=$(free_port)
dnsmasq_start "$DNS_PORT" --mx-host=site.test,mail.site.test,5 \
    --mx-host=site.test,mx1.isp.test,10 --mx-host=site.test,mx2.isp.test,10 \
    --mx-host=site.test,mx3.isp.test,20 \
    --host-record=mx1.isp.test,127.0.0.2 --host-record=mx2.isp.test,127.0.0.3 \
    --host-record=mx3.isp.test,127.0.0.4 --host-record=mail.site.test,127.0.0.5

P=$(free_port)
SPORT=$(free_port)
PER_RELAY=4
for n in 1 2 3; do
    srv_conf "mx$n" "127.0.0.$((n + 1)):$P" "mynetworks = 127.0.0.0/8" \
        "relay_domains = site.test" "etrn_only_domains = site.test" \
        "[transport]" "site.test = etrn-only:[127.0.0.1]:$SPORT"
    srv_start "mx$n" || { E2E_FAIL=1; e2e_done; exit 1; }
done
# every user of site.test is valid there (the site's Maildirs are made on delivery)
printf '@site.test OK\n' >"$T/site-users"
srv_conf site "127.0.0.1:$SPORT" "mydestination = site.test" \
    "local_maildir_base = $T/site/mail" "local_recipient_maps = $T/site-users"

# the site is offline: 4 messages to each relay
for n in 1 2 3; do
    smtp-source -m $PER_RELAY -s 1 -f "sender@world.test" -t "user$n@site.test" \
        "127.0.0.$((n + 1)):$P" >"$T/source$n.out" 2>&1
    check "mx$n accepted $PER_RELAY messages" test "$(srv_log_count "mx$n" ': from=<sender@world.test>')" -eq $PER_RELAY
    check "mx$n holds them" sh -c "\"$BIN_DIR/etrn-queue\" -c '$T/mx$n/server.ini' -p | grep -q 'in $PER_RELAY Requests'"
done

srv_start site || { E2E_FAIL=1; e2e_done; exit 1; }
cat >"$T/agent.ini" <<INI
[agent]
helo_name = mail.site.test
log = stderr
status_file = $T/status.json
resolver = 127.0.0.1:$DNS_PORT
local_smtp = 127.0.0.1:$SPORT
[provider isp]
hosts = mx:site.test
port = $P
domains = site.test
tls = none
timeout = 10s
INI
chmod 600 "$T/agent.ini"
"$BIN_DIR/etrn-agent" -c "$T/agent.ini" --once >"$T/agent.out" 2>&1
check_eq "agent --once: exit status" "$?" 0
for n in 1 2 3; do
    check "mx$n got the ETRN and answered 253" \
        grep -q "ETRN site.test from .*: $PER_RELAY messages" "$T/mx$n/maillog"
done
total=$((3 * PER_RELAY))
have() { [ "$(maildir_count "$T/site/mail")" -ge "$1" ]; }
check "all $total messages arrive in the site's Maildir" wait_for 20 have $total
check_eq "Maildir count" "$(maildir_count "$T/site/mail")" $total
for n in 1 2 3; do
    check "user$n (through mx$n) has $PER_RELAY messages" \
        test "$(maildir_count "$T/site/mail/site.test/user$n")" -eq $PER_RELAY
    check "mx$n queue is empty afterwards" wait_for 5 sh -c \
        "\"$BIN_DIR/etrn-queue\" -c '$T/mx$n/server.ini' -p | grep -q 'Mail queue is empty'"
done
check "the site's own MX was never contacted" grep_none '127.0.0.5' "$T/agent.out"
if [ "$E2E_FAIL" -ne 0 ]; then
    echo "--- agent"; sed 's/^/    /' "$T/agent.out"
    for n in 1 2 3; do echo "--- mx$n"; tail -n 20 "$T/mx$n/maillog" | sed 's/^/    /'; done
    echo "--- site"; tail -n 20 "$T/site/maillog" | sed 's/^/    /'
fi
e2e_done
