#!/bin/sh
# server_logrotate.sh - log rotation of maillog_file: a log file the server
# created as root belongs to mail_owner (so it can reopen it later); SIGHUP
# and "etrn-queue reopen" open maillog_file again by name, so after a rename
# new lines land in a new file and none in the old one; and the shipped
# logrotate file (packaging/logrotate/etrnkit-server, paths and user adapted
# to the test) rotates the log and makes the running server follow.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

port=$(free_port)
LOGDIR=$T/log
LOG=$LOGDIR/etrnkit.log
CONF=$T/relay/server.ini
mkdir -p "$LOGDIR" "$T/spool"
chown nobody "$LOGDIR" "$T/spool"
srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" "queue_directory = $T/spool/queue" \
    "maillog_file = $LOG" "mynetworks = 127.0.0.0/8" "relay_domains = site.test"

# session - one SMTP connection (banner, QUIT): a "connect from" line in the log
session() { smtp_client "$port" QUIT >/dev/null; }
# count FILE PATTERN - lines of FILE matching PATTERN (0 when FILE is missing)
count() {
    if [ -f "$1" ]; then grep -cE "$2" "$1"; else echo 0; fi
}

check "etrn-server listens" srv_start relay || { cat "$T/relay.out"; e2e_done; exit 1; }
pid=$SRV_PID
session
wait_for 10 grep -q ': connect from' "$LOG"
check_eq "log file made by the server as root belongs to mail_owner" "$(stat -c %U "$LOG")" nobody

# SIGHUP without a rename: the same file again, as mail_owner
kill -HUP "$pid"
wait_for 10 grep -q 'reload: log file reopened' "$LOG"
check_eq "SIGHUP reopens maillog_file (same file, after dropping root)" \
    "$(count "$LOG" 'reload: log file reopened')" 1
check_eq "no warning about the reopen" "$(count "$LOG" 'cannot reopen')" 0

# rename, SIGHUP: new lines in a new file
mv "$LOG" "$LOG.1"
kill -HUP "$pid"
wait_for 10 grep -q 'reload: log file reopened' "$LOG"
check "after rename + SIGHUP a new $LOG exists" test -f "$LOG"
old=$(count "$LOG.1" ': connect from')
session
wait_for 10 grep -q ': connect from' "$LOG"
check_eq "a new session is logged in the new file" "$(count "$LOG" ': connect from')" 1
check_eq "the renamed file got no line after the signal" "$(count "$LOG.1" ': connect from')" "$old"
check_eq "the renamed file ends before the reopen" "$(count "$LOG.1" 'reload: log file reopened')" 1

# rename, etrn-queue reopen
mv "$LOG" "$LOG.2"
out=$("$BIN_DIR/etrn-queue" -c "$CONF" reopen 2>&1)
check_eq "etrn-queue reopen exits 0" "$?" 0
check_eq "etrn-queue reopen says so" "$out" "log file reopened"
session
wait_for 10 grep -q ': connect from' "$LOG"
check_eq "after etrn-queue reopen new lines land in a new file" "$(count "$LOG" ': connect from')" 1
check_eq "the renamed file got no more sessions" "$(count "$LOG.2" ': connect from')" 1
check "the reopen is logged with who asked" grep -q 'control: root: reopen: OK log file reopened' "$LOG"

# the shipped logrotate file, with the test's paths, user and etrn-queue
if command -v logrotate >/dev/null 2>&1; then
    sed -e "s|/var/log/etrnkit/\*\.log|$LOGDIR/*.log|" \
        -e 's|create 0640 etrnkit adm|create 0640 nobody nogroup|' \
        -e "s|etrn-queue reopen|$BIN_DIR/etrn-queue -c $CONF reopen|" \
        "$E2E_TOP/packaging/logrotate/etrnkit-server" >"$T/logrotate.conf"
    before=$(count "$LOG" ': connect from')
    logrotate -f -s "$T/logrotate.state" "$T/logrotate.conf" >"$T/logrotate.out" 2>&1
    check_eq "logrotate -f with the shipped file exits 0" "$?" 0
    check "logrotate renamed the log to etrnkit.log.1" test -f "$LOG.1"
    check_eq "the rotated file holds the lines written before" "$(count "$LOG.1" ': connect from')" "$before"
    check_eq "logrotate's create made the new file for mail_owner" "$(stat -c %U "$LOG" 2>/dev/null)" nobody
    session
    wait_for 10 grep -q ': connect from' "$LOG"
    check_eq "after logrotate the server writes the new file" "$(count "$LOG" ': connect from')" 1
    check_eq "and nothing more into the rotated one" "$(count "$LOG.1" ': connect from')" "$before"
else
    skip "logrotate not installed"
fi

stop_pid "$pid"
e2e_done
