#!/bin/sh
# interop.sh - etrnkit with the Debian packages people already run.
#
#  1. etrn-server as the provider, Postfix as the site's MTA: mail held for
#     site.test (etrn-only) is delivered into Postfix's virtual Maildir after
#     an ETRN from etrn-agent; Postfix's Received: line names etrn-server's EHLO.
#  2. Postfix as the provider (ETRN_README's etrn-only recipe), etrn-server as
#     the site's MTA with local Maildir delivery: an ETRN makes Postfix deliver
#     and the mail lands in etrn-server's Maildir.
#  3. fetchmail --protocol ETRN --fetchdomains against etrn-server: 253 and the
#     mail arrives at the site's etrn-server.
# (etrn-agent against a Postfix provider: agent_postfix.sh; swaks with
# STARTTLS and AUTH against etrn-server: server_tls_auth.sh.)
# Root only for the Postfix parts (private instances need root).
. "$(dirname "$0")/../lib/e2e.sh"
. "$E2E_TOP/tests/lib/postfix.sh"
. "$E2E_TOP/tests/lib/etrn_server.sh"
e2e_init

send() { # send PORT RCPT SUBJECT
    swaks --server "127.0.0.1:$1" --helo world.test --from sender@world.test --to "$2" \
        --header "Subject: $3" --body "interop body: $3" --silent 2 >>"$T/swaks.out" 2>&1
}
agent_once() { # agent_once PORT LOCALPORT
    cat >"$T/agent.ini" <<INI
[agent]
helo_name = mail.site.test
log = stderr
status_file = $T/status.json
local_smtp = 127.0.0.1:$2
[provider isp]
hosts = 127.0.0.1:$1
domains = site.test
tls = none
timeout = 10s
INI
    chmod 600 "$T/agent.ini"
    "$BIN_DIR/etrn-agent" -c "$T/agent.ini" --once >>"$T/agent.out" 2>&1
}

if why=$(postfix_usable); then
    # --- 1. etrn-server provider -> Postfix site -----------------------------------
    PF=$T/pfsite
    PFP=$(free_port)
    mkdir -p "$T/vmail" && chown nobody:nogroup "$T/vmail"
    postfix_instance "$PF" "$PFP" "myhostname = mail.site.test" \
        "virtual_mailbox_domains = site.test" "virtual_mailbox_base = $T/vmail" \
        "virtual_mailbox_maps = static:site.test/user/" "virtual_minimum_uid = 100" \
        "virtual_uid_maps = static:65534" "virtual_gid_maps = static:65534"
    postfix_service "$PF" "virtual unix - n n - - virtual"
    check "1: Postfix site MTA starts" postfix_start "$PF"
    PP=$(free_port)
    srv_conf prov1 "127.0.0.1:$PP" "myhostname = relay1.isp.test" "mynetworks = 127.0.0.0/8" \
        "relay_domains = site.test" "etrn_only_domains = site.test" \
        "[transport]" "site.test = etrn-only:[127.0.0.1]:$PFP"
    srv_start prov1 || E2E_FAIL=1
    for i in 1 2 3; do send "$PP" "u$i@site.test" "to postfix $i"; done
    check_eq "1: nothing reached Postfix before ETRN" "$(maildir_count "$T/vmail")" 0
    agent_once "$PP" "$PFP"
    check_eq "1: etrn-agent exit status" "$?" 0
    have_pf() { [ "$(maildir_count "$T/vmail")" -ge 3 ]; }
    check "1: 3 messages in Postfix's virtual Maildir" wait_for 20 have_pf
    f=$(find "$T/vmail" -path '*/new/*' -type f | head -n 1)
    check "1: Postfix saw etrn-server's EHLO name" \
        grep -q "from relay1.isp.test (unknown \[127.0.0.1\])" "$f"
    check "1: the body is intact" grep -q "^interop body: to postfix" "$f"
    check "1: etrn-server logged status=sent to Postfix" \
        wait_for 5 sh -c "[ \$(grep -c 'status=sent' '$T/prov1/maillog') -eq 3 ]"
    postfix_stop "$PF"

    # --- 2. Postfix provider -> etrn-server site -------------------------------------
    PF=$T/pfprov
    PFP=$(free_port)
    SP=$(free_port)
    postfix_instance "$PF" "$PFP" "myhostname = mx.provider.test" "relay_domains = site.test" \
        "fast_flush_domains = \$relay_domains" "smtpd_etrn_restrictions = permit_mynetworks, reject" \
        "defer_transports = etrn-only" "transport_maps = hash:$PF/conf/transport"
    postfix_service "$PF" "etrn-only unix - - n - - smtp"
    printf 'site.test\tetrn-only:[127.0.0.1]:%s\n' "$SP" >"$PF/conf/transport"
    postfix_cmd "$PF" postmap "hash:$PF/conf/transport"
    check "2: Postfix provider starts" postfix_start "$PF"
    printf '@site.test OK\n' >"$T/site-users"
    srv_conf site2 "127.0.0.1:$SP" "mydestination = site.test" "local_maildir_base = $T/site2/mail" \
        "local_recipient_maps = $T/site-users"
    srv_start site2 || E2E_FAIL=1
    for i in 1 2 3; do send "$PFP" "u$i@site.test" "from postfix $i"; done
    pf_holds3() { [ "$(postfix_queue_count "$PF")" -eq 3 ]; }
    check "2: Postfix holds 3 messages" wait_for 10 pf_holds3
    agent_once "$PFP" "$SP"
    check_eq "2: etrn-agent exit status" "$?" 0
    have_s2() { [ "$(maildir_count "$T/site2/mail")" -ge 3 ]; }
    check "2: 3 messages in etrn-server's Maildir" wait_for 20 have_s2
    f=$(find "$T/site2/mail" -path '*/new/*' -type f | head -n 1)
    check "2: Postfix's Received: line is there" grep -q "by mx.provider.test (Postfix)" "$f"
    check "2: delivered for u1..u3" test -d "$T/site2/mail/site.test/u2"
    postfix_stop "$PF"
else
    skip "Postfix interop: $why"
fi

# --- 3. fetchmail --protocol ETRN -> etrn-server ----------------------------------
if command -v fetchmail >/dev/null 2>&1; then
    PP=$(free_port)
    SP=$(free_port)
    srv_conf prov3 "127.0.0.1:$PP" "mynetworks = 127.0.0.0/8" "relay_domains = site.test" \
        "etrn_only_domains = site.test" "[transport]" "site.test = etrn-only:[127.0.0.1]:$SP"
    srv_start prov3 || E2E_FAIL=1
    printf '@site.test OK\n' >"$T/site-users"
    srv_conf site3 "127.0.0.1:$SP" "mydestination = site.test" "local_maildir_base = $T/site3/mail" \
        "local_recipient_maps = $T/site-users"
    srv_start site3 || E2E_FAIL=1
    for i in 1 2; do send "$PP" "f$i@site.test" "fetchmail $i"; done
    : >"$T/fetchmailrc"; chmod 600 "$T/fetchmailrc"
    HOME=$T timeout 30 fetchmail --nosyslog --pidfile "$T/fetchmail.pid" -f "$T/fetchmailrc" -v --protocol ETRN \
        --fetchdomains site.test --service "$PP" 127.0.0.1 >"$T/fetchmail.out" 2>&1
    rc=$?
    sed 's/^/    /' "$T/fetchmail.out"
    check "3: fetchmail saw the 253 reply" grep -q "253 OK, 2 pending messages for node site.test started" "$T/fetchmail.out"
    check "3: fetchmail exit status 0 or 1 (1: no mail for fetchmail itself) (rc=$rc)" test "$rc" -le 1
    have_s3() { [ "$(maildir_count "$T/site3/mail")" -ge 2 ]; }
    check "3: 2 messages arrive at the site" wait_for 20 have_s3
else
    skip "fetchmail missing (Debian package fetchmail)"
fi
if [ "$E2E_FAIL" -ne 0 ]; then
    echo "--- agent"; sed 's/^/    /' "$T/agent.out" 2>/dev/null | tail -n 30
    for d in prov1 site2 prov3 site3; do
        [ -f "$T/$d/maillog" ] && { echo "--- $d"; tail -n 15 "$T/$d/maillog" | sed 's/^/    /'; }
    done
    [ -f "$T/pfsite/maillog" ] && { echo "--- postfix site"; tail -n 20 "$T/pfsite/maillog"; }
    [ -f "$T/pfprov/maillog" ] && { echo "--- postfix provider"; tail -n 20 "$T/pfprov/maillog"; }
fi
e2e_done
