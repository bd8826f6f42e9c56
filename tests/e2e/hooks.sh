#!/bin/sh
# hooks.sh - the link hooks in packaging/hooks start `etrn-agent --once -c
# CONFIG` exactly when their caller (pppd, NetworkManager-dispatcher,
# networkd-dispatcher, ifupdown) says the link is up, never for lo, down,
# pre-up, limited connectivity or a second address family; they return at
# once, exit 0 whatever the agent does, bound a hanging agent, run one round
# at a time, and log the agent's result. The NetworkManager hook starts the
# round with "systemctl start --no-block etrn-agent-once.service" when systemd
# runs (a fake systemctl here) and falls back when it does not or when that
# start fails. Also: the cron line is quiet on 0 and
# 75 and speaks on 69/78; sh -n, shellcheck and systemd-analyze verify.
#
# Each hook is run the way its caller runs it (run-parts with --arg for ppp,
# run-parts with the ifupdown environment, argv + environment for the two
# dispatchers). ETRN_AGENT points at a fake agent that appends its argv to
# $T/calls; every case uses its own config path, so a line in $T/calls names
# the case that started it. Nothing here touches /run or the network.
. "$(dirname "$0")/../lib/e2e.sh"
e2e_init

H=$E2E_TOP/packaging/hooks
HOOKS="ppp-ip-up nm-dispatcher networkd-dispatcher ifupdown-if-up"

cat >"$T/fake-agent" <<'EOF'
#!/bin/sh
# fake etrn-agent: record argv and who ran it; behave as FAKE_MODE says
d=$(dirname "$0")
if [ "${FAKE_MODE:-ok}" = hang ]; then
    echo $$ >"$d/hang.pid"
    printf '%s\n' "$*" >>"$d/calls"
    exec sleep 60
fi
if [ -e "$d/running" ]; then echo "overlap: $*" >>"$d/overlap"; fi
: >"$d/running"
printf '%s %s\n' "$(id -un)" "$*" >>"$d/users"
printf '%s\n' "$*" >>"$d/calls"
case ${FAKE_MODE:-ok} in
    ok) rc=0 ;;
    tempfail) echo "etrn-agent: relay1.isp.example[192.0.2.9]:25: Connection refused" >&2; rc=75 ;;
    badconf) echo "etrn-agent: agent.ini:3: [agent] interval: bad duration" >&2; rc=78 ;;
    slow) sleep 1; rc=0 ;;
esac
rm -f "$d/running"
exit $rc
EOF
chmod 755 "$T/fake-agent"

ETRN_AGENT=$T/fake-agent
ETRNKIT_RUNDIR=$T/run
ETRN_HOOK_LOG=$T/hook.log
ETRN_AGENT_USER=
ETRN_HOOK_TIMEOUT=30
# systemd "not running" unless a case says otherwise, whatever this machine runs
ETRN_HOOK_SYSTEMD_DIR=$T/no-systemd
export ETRN_AGENT ETRNKIT_RUNDIR ETRN_HOOK_LOG ETRN_AGENT_USER ETRN_HOOK_TIMEOUT ETRN_HOOK_SYSTEMD_DIR
: >"$T/calls"
: >"$T/users"
: >"$T/hook.log"

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# hook CASE CMD... - run a hook as its caller would, config $T/CASE.ini;
# record its exit status in $T/CASE.rc and its run time (ms) in $T/CASE.ms
hook() {
    hook_case=$1
    shift
    hook_t0=$(now_ms)
    ETRN_AGENT_CONFIG=$T/$hook_case.ini "$@" >"$T/$hook_case.out" 2>&1
    echo $? >"$T/$hook_case.rc"
    echo $(($(now_ms) - hook_t0)) >"$T/$hook_case.ms"
}

called() { grep -qxF -- "--once -c $T/$1.ini" "$T/calls"; }
logged() { grep -qF -- "$1" "$T/hook.log"; }
quick() { [ "$(cat "$T/$1.ms")" -lt 3000 ]; }

# expect_run CASE - the hook exited 0 at once and the agent ran with --once -c CONFIG
expect_run() {
    check_eq "$1: hook exit status" "$(cat "$T/$1.rc")" 0
    check "$1: hook returned within 3 s" quick "$1"
    check "$1: agent run as etrn-agent --once -c $T/$1.ini" wait_for 10 called "$1"
}

# expect_ignored CASE WHY - the hook exited 0, logged WHY, and (checked at the end) never ran the agent
expect_ignored() {
    check_eq "$1: hook exit status" "$(cat "$T/$1.rc")" 0
    check "$1: hook logged that it ignored $2" logged "ignored: $2"
    NEGATIVE="${NEGATIVE:-} $1"
}

# --- static checks -----------------------------------------------------------
for h in $HOOKS; do
    check "$h is executable" test -x "$H/$h"
    check "$h passes sh -n" sh -n "$H/$h"
done
if command -v shellcheck >/dev/null 2>&1; then
    for h in $HOOKS; do
        check "$h passes shellcheck -s sh" shellcheck -s sh "$H/$h"
    done
else
    skip "shellcheck not installed"
fi
if command -v systemd-analyze >/dev/null 2>&1; then
    # The units name etrn-agent / etrn-server without a path (systemd finds
    # them in /usr/local/bin or /usr/bin); verify wants them to exist, so it
    # checks copies that point at stand-ins in $T. Documentation=man:... is
    # checked against the man pages in packaging/man.
    mkdir -p "$T/sbin" "$T/units" "$T/man/man8"
    for p in etrn-agent etrn-server; do cp "$T/fake-agent" "$T/sbin/$p"; done
    cp "$E2E_TOP"/packaging/man/*.8 "$T/man/man8/"
    for u in "$E2E_TOP"/packaging/systemd/*; do
        sed "s|^\(Exec[A-Za-z]*=\)etrn-|\1$T/sbin/etrn-|" "$u" >"$T/units/$(basename "$u")"
    done
    for u in "$T"/units/*; do
        check "systemd-analyze verify $(basename "$u") prints nothing" \
            sh -c 'out=$(MANPATH="$2" systemd-analyze verify "$1" 2>&1); [ -z "$out" ] || { echo "$out"; exit 1; }' \
            sh "$u" "$T/man"
    done
else
    skip "systemd-analyze not installed"
fi

# --- ppp: Debian's /etc/ppp/ip-up runs run-parts with six --arg and PPP_* ---
mkdir "$T/ip-up.d"
cp "$H/ppp-ip-up" "$T/ip-up.d/etrnkit"
check "run-parts accepts the ppp hook's name" \
    sh -c '[ "$(run-parts --test "$1")" = "$1/etrnkit" ]' sh "$T/ip-up.d"
hook ppp env PPP_IFACE=ppp0 PPP_TTY=/dev/ttyUSB0 PPP_SPEED=115200 PPP_LOCAL=10.64.64.64 \
    PPP_REMOTE=10.112.112.112 PPP_IPPARAM=isp \
    run-parts --arg=ppp0 --arg=/dev/ttyUSB0 --arg=115200 --arg=10.64.64.64 \
    --arg=10.112.112.112 --arg=isp "$T/ip-up.d"
expect_run ppp
check "ppp: the trigger is logged with interface and addresses" \
    logged "ppp: ppp0 up (local 10.64.64.64, remote 10.112.112.112, ipparam isp): starting $T/fake-agent --once -c $T/ppp.ini"

# --- NetworkManager-dispatcher: argv = interface action, plus environment ---
nm() {
    nm_case=$1 nm_if=$2 nm_act=$3
    shift 3
    hook "$nm_case" env NM_DISPATCHER_ACTION="$nm_act" DEVICE_IFACE="$nm_if" \
        DEVICE_IP_IFACE="$nm_if" CONNECTION_ID=office CONNECTION_UUID=0b8a1b4e-0000-4000-8000-000000000001 \
        "$@" "$H/nm-dispatcher" "$nm_if" "$nm_act"
}
nm nm-up eth0 up
expect_run nm-up
nm nm-full "" connectivity-change CONNECTIVITY_STATE=FULL
expect_run nm-full
nm nm-lo lo up
expect_ignored nm-lo "up on 'lo'"
nm nm-preup eth0 pre-up
expect_ignored nm-preup "action 'pre-up' on 'eth0'"
nm nm-down eth0 down
expect_ignored nm-down "action 'down' on 'eth0'"
nm nm-vpn tun0 vpn-up VPN_IP_IFACE=tun0
expect_ignored nm-vpn "action 'vpn-up' on 'tun0'"
nm nm-dhcp eth0 dhcp4-change
expect_ignored nm-dhcp "action 'dhcp4-change' on 'eth0'"
nm nm-limited "" connectivity-change CONNECTIVITY_STATE=LIMITED
expect_ignored nm-limited "connectivity-change to LIMITED"
# with systemd running: the round is the unit etrn-agent-once, started without waiting
mkdir -p "$T/systemd-run" "$T/sysbin"
cat >"$T/sysbin/systemctl" <<SYSTEMCTL
#!/bin/sh
printf '%s\n' "\$*" >>"$T/systemctl.calls"
[ -z "\${FAKE_SYSTEMCTL_FAIL:-}" ] && exit 0
echo "Failed to start etrn-agent-once.service: Unit etrn-agent-once.service not found." >&2
exit 5
SYSTEMCTL
chmod 755 "$T/sysbin/systemctl"
: >"$T/systemctl.calls"
nm nm-systemd eth0 up ETRN_HOOK_SYSTEMD_DIR="$T/systemd-run" PATH="$T/sysbin:$PATH"
check_eq "nm-systemd: hook exit status" "$(cat "$T/nm-systemd.rc")" 0
check "nm-systemd: hook returned within 3 s" quick nm-systemd
check_eq "nm-systemd: systemctl start --no-block etrn-agent-once.service, once" \
    "$(cat "$T/systemctl.calls")" "start --no-block etrn-agent-once.service"
check "nm-systemd: logged" logged "NetworkManager: eth0 up: systemctl start --no-block etrn-agent-once.service"
NEGATIVE="${NEGATIVE:-} nm-systemd"
nm nm-sysfull "" connectivity-change CONNECTIVITY_STATE=FULL ETRN_HOOK_SYSTEMD_DIR="$T/systemd-run" PATH="$T/sysbin:$PATH"
check_eq "nm-sysfull: connectivity FULL also goes through systemctl" "$(grep -c . "$T/systemctl.calls")" 2
NEGATIVE="${NEGATIVE:-} nm-sysfull"
nm nm-sysfail eth0 up ETRN_HOOK_SYSTEMD_DIR="$T/systemd-run" PATH="$T/sysbin:$PATH" FAKE_SYSTEMCTL_FAIL=1
expect_run nm-sysfail
check "nm-sysfail: the failed start is logged with systemctl's message" \
    logged "failed (Failed to start etrn-agent-once.service: Unit etrn-agent-once.service not found.); the round runs directly instead"
check_eq "nm-sysfail: systemctl was tried" "$(grep -c . "$T/systemctl.calls")" 3

# --- networkd-dispatcher: no arguments, IFACE/STATE/... in the environment ---
hook nd-eth0 env IFACE=eth0 STATE=routable AdministrativeState=configured \
    OperationalState=routable ADDR=192.0.2.20 IP_ADDRS=192.0.2.20 "$H/networkd-dispatcher"
expect_run nd-eth0
hook nd-lo env IFACE=lo STATE=routable AdministrativeState=unmanaged \
    OperationalState=routable "$H/networkd-dispatcher"
expect_ignored nd-lo "IFACE='lo'"
hook nd-degraded env IFACE=eth0 STATE=degraded AdministrativeState=configured \
    OperationalState=degraded "$H/networkd-dispatcher"
expect_ignored nd-degraded "eth0 state 'degraded'"

# --- ifupdown: run-parts /etc/network/if-up.d with the ifupdown environment --
mkdir "$T/if-up.d"
cp "$H/ifupdown-if-up" "$T/if-up.d/etrnkit"
check "run-parts accepts the ifupdown hook's name" \
    sh -c '[ "$(run-parts --test "$1")" = "$1/etrnkit" ]' sh "$T/if-up.d"
ifup() {
    ifup_case=$1 ifup_if=$2 ifup_fam=$3 ifup_meth=$4 ifup_mode=$5
    shift 5
    hook "$ifup_case" env IFACE="$ifup_if" LOGICAL="$ifup_if" ADDRFAM="$ifup_fam" \
        METHOD="$ifup_meth" MODE="$ifup_mode" PHASE=post-up VERBOSITY=0 \
        "$@" run-parts "$T/if-up.d"
}
ifup if-lo lo inet loopback start
expect_ignored if-lo "IFACE='lo'"
ifup if-eth0-inet eth0 inet dhcp start
expect_run if-eth0-inet
ifup if-eth0-inet6 eth0 inet6 auto start
expect_ignored if-eth0-inet6 "eth0 inet6: another address family of eth0 started a round"
ifup if-all --all meta none start
expect_ignored if-all "IFACE='--all'"
ifup if-stop eth1 inet dhcp stop
expect_ignored if-stop "eth1 MODE='stop'"
ifup if-eth1-inet6 eth1 inet6 static start
expect_run if-eth1-inet6
ifup if-eth0-again eth0 inet dhcp start
expect_run if-eth0-again
# the window: eth7's two families come at once, a third call 3 s later (window 2 s)
ifup if-eth7-inet6 eth7 inet6 auto start ETRN_IFUP_WINDOW=2
ifup if-eth7-inet eth7 inet static start ETRN_IFUP_WINDOW=2
sleep 3
ifup if-eth7-late eth7 inet static start ETRN_IFUP_WINDOW=2
expect_run if-eth7-inet6
expect_ignored if-eth7-inet "eth7 inet: another address family"
expect_run if-eth7-late

# --- the agent's result: exit 0 always, and the log says what happened ------
nm nm-temp eth2 up FAKE_MODE=tempfail
expect_run nm-temp
check "exit 75 is logged with its meaning and the agent's last line" wait_for 10 logged \
    "etrn-agent --once exited 75: temporary failure; the next link event, timer or cron run tries again: etrn-agent: relay1.isp.example[192.0.2.9]:25: Connection refused"
hook nd-badconf env IFACE=wwan0 STATE=routable FAKE_MODE=badconf "$H/networkd-dispatcher"
expect_run nd-badconf
check "exit 78 is logged as an error naming the config" wait_for 10 logged \
    "err networkd-dispatcher[" 
check "exit 78 log line names the config and the agent's message" wait_for 10 logged \
    "exited 78: bad configuration in $T/nd-badconf.ini: etrn-agent: agent.ini:3: [agent] interval: bad duration"
check "a successful round is logged" wait_for 10 logged "etrn-agent --once: every domain accepted"
check "the agent's last output is kept in ETRNKIT_RUNDIR" test -f "$T/run/nm-dispatcher.last"

# --- one round at a time: two slow rounds started together do not overlap ---
nm nm-slow1 eth3 up FAKE_MODE=slow
nm nm-slow2 eth4 up FAKE_MODE=slow
expect_run nm-slow1
expect_run nm-slow2
check "rounds started together ran one after the other" test ! -e "$T/overlap"

# --- a hanging agent: the hook returns at once, the agent is killed later ----
hook ppp-hang env ETRNKIT_RUNDIR="$T/run-hang" ETRN_HOOK_TIMEOUT=4 FAKE_MODE=hang \
    PPP_IFACE=ppp1 PPP_LOCAL=10.0.0.1 PPP_REMOTE=10.0.0.2 \
    run-parts --arg=ppp1 --arg=/dev/ttyACM0 --arg=0 --arg=10.0.0.1 --arg=10.0.0.2 --arg= "$T/ip-up.d"
expect_run ppp-hang
check "a hanging agent is killed after ETRN_HOOK_TIMEOUT and that is logged" wait_for 15 logged \
    "exited 124: still running after 4s (ETRN_HOOK_TIMEOUT); killed"
hang_pid=$(cat "$T/hang.pid" 2>/dev/null)
check "the hung agent process is gone" sh -c '[ -n "$1" ] && ! kill -0 "$1" 2>/dev/null' sh "$hang_pid"

# --- no agent: the hook still exits 0 and says why nothing happened ----------
hook nm-noagent env ETRN_AGENT="$T/no-such-agent" "$H/nm-dispatcher" eth5 up
check_eq "nm-noagent: hook exit status" "$(cat "$T/nm-noagent.rc")" 0
check "a missing agent is logged" logged "NetworkManager: eth5 up, but $T/no-such-agent is not an executable file; no round"

# --- ETRN_AGENT_USER: the round runs as that user, not as root ---------------
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1; then
    chmod 1777 "$T"
    chmod 666 "$T/calls" "$T/users"
    hook nd-user env ETRN_AGENT_USER=nobody IFACE=eth6 STATE=routable "$H/networkd-dispatcher"
    expect_run nd-user
    check_eq "ETRN_AGENT_USER=nobody runs the agent as nobody" \
        "$(grep -F -- "--once -c $T/nd-user.ini" "$T/users")" "nobody --once -c $T/nd-user.ini"
    check_eq "ETRN_AGENT_USER= (empty) runs the agent as the caller" \
        "$(grep -F -- "--once -c $T/nd-eth0.ini" "$T/users")" "$(id -un) --once -c $T/nd-eth0.ini"
    chmod 755 "$T"
else
    skip "user switch needs root, setpriv and user nobody"
fi

# --- negatives, checked after every positive case has been seen --------------
for c in $NEGATIVE; do
    check "$c: agent not run" grep_none -xF -- "--once -c $T/$c.ini" "$T/calls"
done
check_eq "agent runs in all" "$(wc -l <"$T/calls" | tr -d ' ')" "$(grep -c 'starting ' "$T/hook.log")"
check "every agent run had exactly --once -c CONFIG" \
    grep_none -vxE -- "--once -c [^ ]+\.ini" "$T/calls"

# --- cron: quiet on 0 and 75, speaks on anything else ------------------------
cron=$E2E_TOP/packaging/cron/etrnkit
check_eq "cron job is commented out as installed (no job until the admin turns it on)" \
    "$(grep -cE '^[0-9*]' "$cron")" 0
cronline=$(grep -E '^#[0-9*]' "$cron" | sed 's/^#//')
check_eq "cron file has one job line" "$(printf '%s\n' "$cronline" | grep -c .)" 1
check_eq "cron job runs every 10 minutes as user etrnkit" \
    "$(printf '%s\n' "$cronline" | awk '{print $1, $2, $3, $4, $5, $6}')" "*/10 * * * * etrnkit"
check "cron job line has no % (cron would turn it into a newline)" \
    sh -c 'case $1 in *%*) exit 1 ;; esac' sh "$cronline"
cmd=$(printf '%s\n' "$cronline" | sed -E 's/^([^[:space:]]+[[:space:]]+){6}//')
mkdir -p "$T/cronbin"
for mode in ok tempfail badconf; do
    cat >"$T/cronbin/etrn-agent" <<EOF
#!/bin/sh
printf '%s\n' "\$*" >"$T/cron.argv"
FAKE_MODE=$mode
case \$FAKE_MODE in
    ok) echo "etrn-agent: example.org: 251 OK, no messages waiting"; exit 0 ;;
    tempfail) echo "etrn-agent: relay1.isp.example: Connection refused" >&2; exit 75 ;;
    badconf) echo "etrn-agent: agent.ini:3: [agent] interval: bad duration" >&2; exit 78 ;;
esac
EOF
    chmod 755 "$T/cronbin/etrn-agent"
    out=$(env -i HOME=/ SHELL=/bin/sh PATH="$T/cronbin:/usr/bin:/bin" sh -c "$cmd" 2>&1)
    eval "cron_$mode=\$out"
done
check_eq "cron job runs etrn-agent --once -c /etc/etrnkit/agent.ini" "$(cat "$T/cron.argv")" "--once -c /etc/etrnkit/agent.ini"
check_eq "cron job is silent when every domain was accepted" "$cron_ok" ""
check_eq "cron job is silent on a temporary failure (75)" "$cron_tempfail" ""
check "cron job reports exit 78 and the agent's message (cron mails it)" \
    sh -c 'printf "%s\n" "$1" | grep -q "exit status 78" && printf "%s\n" "$1" | grep -qF "interval: bad duration"' sh "$cron_badconf"

e2e_done
