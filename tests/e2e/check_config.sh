#!/bin/sh
# check_config.sh - what --check-config finds before it fails at run time:
# etrn-server: inet_interfaces = all / loopback-only accepted as in Postfix, a
# [main] parameter under a table refused, TLS key and users file that
# mail_owner cannot read (a SIGHUP reload would fail) refused with the line
# that set them; etrn-agent: missing log / status_file directories, an
# on_link_up program that is missing or not a full path, and (as root) a
# password file, status directory or program the run-time user
# ($ETRN_AGENT_USER) cannot use. Every error names FILE:LINE.
. "$(dirname "$0")/../lib/e2e.sh"
e2e_init

SRV=$BIN_DIR/etrn-server
AGENT=$BIN_DIR/etrn-agent

# line FILE KEY - the line number of KEY in FILE
line() { grep -n "^$2 *=" "$1" | head -1 | cut -d: -f1; }

# --- etrn-server -------------------------------------------------------------
srv_ini() { # srv_ini FILE [lines...]
    f=$1; shift
    {
        printf '[main]\nmyhostname = relay.test\nqueue_directory = %s/spool\nmail_owner = nobody\n' "$T"
        printf 'maillog_file = %s/maillog\nrelay_domains = example.org\nrelayhost = [127.0.0.1]:1\n' "$T"
        for l in "$@"; do printf '%s\n' "$l"; done
    } >"$f"
}

srv_ini "$T/all.ini" "inet_interfaces = all"
out=$("$SRV" -c "$T/all.ini" --check-config 2>&1); rc=$?
check_eq "server: inet_interfaces = all: accepted" "$rc:$out" "0:"
srv_ini "$T/lo.ini" "inet_interfaces = loopback-only"
out=$("$SRV" -c "$T/lo.ini" --check-config 2>&1); rc=$?
check_eq "server: inet_interfaces = loopback-only: accepted" "$rc:$out" "0:"

srv_ini "$T/section.ini" "inet_interfaces = 127.0.0.1:2525" "[etrn_users]" "alice = example.org" \
    "myhostname = other.test"
out=$("$SRV" -c "$T/section.ini" --check-config 2>&1); rc=$?
check_eq "server: myhostname under [etrn_users]: exit 78" "$rc" 78
check_eq "server: myhostname under [etrn_users]: the line and the fix" "$out" \
    "etrn-server: $T/section.ini:11: [etrn_users] myhostname: a [main] parameter in the [etrn_users] table; move it above the first table, into [main]"
srv_ini "$T/section2.ini" "inet_interfaces = 127.0.0.1:2525" "[transport]" \
    "relayhost = [192.0.2.1]"
out=$("$SRV" -c "$T/section2.ini" --check-config 2>&1); rc=$?
check_eq "server: relayhost under [transport]: exit 78" "$rc" 78

if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
        -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
    echo "alice:$(openssl passwd -6 secret)" >"$T/users"
    chmod 600 "$T/key.pem" "$T/users"
    chmod 644 "$T/cert.pem"
    srv_ini "$T/tls.ini" "inet_interfaces = 127.0.0.1:2525" "smtpd_tls_cert_file = $T/cert.pem" \
        "smtpd_tls_key_file = $T/key.pem" "smtpd_sasl_users_file = $T/users"
    out=$("$SRV" -c "$T/tls.ini" --check-config 2>&1); rc=$?
    check_eq "server: key only root can read: exit 78" "$rc" 78
    check_eq "server: key only root can read: the line, the user, the fix" "$out" \
        "etrn-server: $T/tls.ini:$(line "$T/tls.ini" smtpd_tls_key_file): [main] smtpd_tls_key_file: $T/key.pem: mail_owner nobody cannot read it (Permission denied), so a reload (SIGHUP) would fail: make it readable by nobody (e.g. root:nobody 0640)"
    chgrp nogroup "$T/key.pem" && chmod 640 "$T/key.pem"
    out=$("$SRV" -c "$T/tls.ini" --check-config 2>&1); rc=$?
    check_eq "server: users file only root can read: the line" "$rc:$out" \
        "78:etrn-server: $T/tls.ini:$(line "$T/tls.ini" smtpd_sasl_users_file): [main] smtpd_sasl_users_file: $T/users: mail_owner nobody cannot read it (Permission denied), so a reload (SIGHUP) would fail: make it readable by nobody (e.g. root:nobody 0640)"
    chgrp nogroup "$T/users" && chmod 640 "$T/users"
    out=$("$SRV" -c "$T/tls.ini" --check-config 2>&1); rc=$?
    check_eq "server: root:nogroup 0640 files: accepted" "$rc:$out" "0:"
else
    skip "server: files mail_owner cannot read (needs root and user nobody)"
fi

# an IPv6 listener in messages: [addr]:port
if $PY -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    p6=$(free_port)
    start_bg holder $PY -c "
import socket, time
s = socket.socket(socket.AF_INET6); s.bind(('::1', $p6)); s.listen(); time.sleep(30)"
    wait_port "$p6" 10 ::1
    srv_ini "$T/v6.ini" "inet_interfaces = [::1]:$p6"
    out=$("$SRV" -c "$T/v6.ini" 2>&1); rc=$?
    check_eq "server: bind error names [::1]:port (exit 71)" "$rc:$(echo "$out" | head -1)" \
        "71:etrn-server: bind [::1]:$p6: Address already in use"
    stop_pid "$E2E_LAST_PID"
else
    skip "server: no IPv6 loopback"
fi

# --- etrn-agent --------------------------------------------------------------
umask 077
agent_ini() { # agent_ini FILE [agent lines...]
    f=$1; shift
    {
        printf '[agent]\nhelo_name = site.test\n'
        for l in "$@"; do printf '%s\n' "$l"; done
        printf '[provider isp]\nhosts = 127.0.0.1\ndomains = site.test\ntls = none\n'
    } >"$f"
}
export ETRN_AGENT_USER=
agent_ini "$T/a-ok.ini" "status_file = $T/status.json" "log = $T/agent.log" \
    "on_link_up = /bin/true"
out=$("$AGENT" -c "$T/a-ok.ini" --check-config 2>&1); rc=$?
check_eq "agent: good paths: accepted" "$rc:$out" "0:"
printf '[agent]\nhelo_name = site.test\n[provider isp]\nhosts = 127.0.0.1\ndomains = site.test\ninterval = 5m\n' \
    >"$T/a-wrong.ini"
out=$("$AGENT" -c "$T/a-wrong.ini" --check-config 2>&1); rc=$?
check_eq "agent: interval under [provider isp]: the line and where it belongs" "$rc:$out" \
    "78:etrn-agent: fatal: $T/a-wrong.ini:6: [provider isp] interval: not a key of this section; it belongs in [agent]"
printf '[agent]\nhelo_name = site.test\ndomains = site.test\n[provider isp]\nhosts = 127.0.0.1\ndomains = site.test\n' \
    >"$T/a-wrong2.ini"
out=$("$AGENT" -c "$T/a-wrong2.ini" --check-config 2>&1); rc=$?
check_eq "agent: domains under [agent]: where it belongs" "$rc:$out" \
    "78:etrn-agent: fatal: $T/a-wrong2.ini:3: [agent] domains: not a key of this section; it belongs in a [provider NAME] section"
agent_ini "$T/a-log.ini" "status_file = $T/status.json" "log = $T/no/such/dir/agent.log"
out=$("$AGENT" -c "$T/a-log.ini" --check-config 2>&1); rc=$?
check_eq "agent: log in a missing directory" "$rc:$out" \
    "78:etrn-agent: fatal: $T/a-log.ini:4: [agent] log: $T/no/such/dir/agent.log: directory $T/no/such/dir: No such file or directory"
agent_ini "$T/a-status.ini" "status_file = $T/nodir/status.json"
out=$("$AGENT" -c "$T/a-status.ini" --check-config 2>&1); rc=$?
check_eq "agent: status_file in a missing directory" "$rc:$out" \
    "78:etrn-agent: fatal: $T/a-status.ini:3: [agent] status_file: $T/nodir/status.json: directory $T/nodir: No such file or directory"
agent_ini "$T/a-default.ini" "log = stderr"
out=$("$AGENT" -c "$T/a-default.ini" --check-config 2>&1); rc=$?
if [ -d /var/lib/etrnkit ]; then
    skip "agent: the default status_file directory exists here"
else
    check_eq "agent: default status_file, /var/lib/etrnkit missing: no line, still named" "$rc:$out" \
        "78:etrn-agent: fatal: $T/a-default.ini: [agent] status_file: /var/lib/etrnkit/agent-status.json: directory /var/lib/etrnkit: No such file or directory"
fi
agent_ini "$T/a-prog.ini" "status_file = $T/status.json" "on_link_up = /no/such/postqueue -f"
out=$("$AGENT" -c "$T/a-prog.ini" --check-config 2>&1); rc=$?
check_eq "agent: on_link_up program missing" "$rc:$out" \
    "78:etrn-agent: fatal: $T/a-prog.ini:4: [agent] on_link_up: /no/such/postqueue: No such file or directory"
agent_ini "$T/a-rel.ini" "status_file = $T/status.json" "on_link_up = no-such-etrnkit-prog -f"
out=$(PATH=/usr/bin:/bin "$AGENT" -c "$T/a-rel.ini" --check-config 2>&1); rc=$?
check_eq "agent: on_link_up not found in PATH (it runs as execvp finds it)" "$rc:$out" \
    "78:etrn-agent: fatal: $T/a-rel.ini:4: [agent] on_link_up: no-such-etrnkit-prog: no such program in PATH (/usr/bin:/bin)"
agent_ini "$T/a-path.ini" "status_file = $T/status.json" "on_link_up = true"
out=$(PATH=/usr/bin:/bin "$AGENT" -c "$T/a-path.ini" --check-config 2>&1); rc=$?
check_eq "agent: on_link_up found in PATH: accepted" "$rc:$out" "0:"
out=$("$AGENT" -c "$T/a-prog.ini" --once 2>&1); rc=$?
check "agent: --once does not refuse what only --check-config checks" [ "$rc" != 78 ]

if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
    mkdir -m 755 "$T/run" && chown nobody "$T/run"
    printf 'secret\n' >"$T/isp.secret"
    {
        printf '[agent]\nhelo_name = site.test\nstatus_file = %s/run/status.json\n' "$T"
        printf '[provider isp]\nhosts = 127.0.0.1\ndomains = site.test\ntls = none\n'
        printf 'username = site\npassword_file = %s/isp.secret\n' "$T"
    } >"$T/a-user.ini"
    chmod 644 "$T/a-user.ini"
    out=$(ETRN_AGENT_USER=nobody "$AGENT" -c "$T/a-user.ini" --check-config 2>&1); rc=$?
    check_eq "agent as root, run user nobody: password file only root can read" "$rc:$out" \
        "78:etrn-agent: fatal: $T/a-user.ini:9: [provider isp] password_file: $T/isp.secret: user nobody cannot read it (Permission denied)"
    chown nobody "$T/isp.secret"
    chown root "$T/run"
    out=$(ETRN_AGENT_USER=nobody "$AGENT" -c "$T/a-user.ini" --check-config 2>&1); rc=$?
    check_eq "agent as root, run user nobody: status directory it cannot write" "$rc:$out" \
        "78:etrn-agent: fatal: $T/a-user.ini:3: [agent] status_file: $T/run: user nobody cannot make files in it (Permission denied)"
    chown nobody "$T/run"
    out=$(ETRN_AGENT_USER=nobody "$AGENT" -c "$T/a-user.ini" --check-config 2>&1); rc=$?
    check_eq "agent as root, run user nobody: all usable: accepted" "$rc:$out" "0:"
    chmod 600 "$T/a-user.ini"
    out=$(ETRN_AGENT_USER=nobody "$AGENT" -c "$T/a-user.ini" --check-config 2>&1); rc=$?
    check_eq "agent as root, run user nobody: the config itself unreadable" "$rc:$out" \
        "78:etrn-agent: fatal: $T/a-user.ini: user nobody cannot read it (Permission denied)"
else
    skip "agent: files the run-time user cannot use (needs root and user nobody)"
fi

e2e_done
