#!/bin/sh
# server_privilege.sh - started as root, etrn-server lets nothing that
# mail_owner (nobody here) controls steer what root does. The attacks are made
# as nobody, as a broken smtpd running as mail_owner could: flush/ replaced by
# a link to a victim directory, tmp/ by a link to a directory holding files,
# queue_directory itself and maillog_file replaced by links. At the restart as
# root the server refuses to start, names the path and why, and the targets
# are untouched. Also: a directory owned by another user or a file where a
# directory belongs is refused, and files in tmp/ are removed with
# mail_owner's rights, not root's. Root only (skips otherwise).
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

if [ "$(id -u)" != 0 ]; then
    skip "server_privilege needs root (the server must start as root and switch to nobody)"
    e2e_done
    exit $?
fi

SRV="$BIN_DIR/etrn-server"
port=$(free_port)
srv_conf s "127.0.0.1:$port" "relay_domains = site.test"
CONF="$T/s/server.ini"
SPOOL="$T/s/queue"
LOG="$T/s/maillog"

# as_nobody CMD - run a shell command as nobody:nogroup, no supplementary groups
as_nobody() {
    setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c "$1"
}

# start_refused WHAT - start as root; it must exit at once: $out, $rc
start_refused() {
    out=$(timeout 10 "$SRV" -c "$CONF" 2>&1)
    rc=$?
    check_eq "$1: refuses to start (exit 74)" "$rc" 74
}

# a first start as root makes the queue and gives it to nobody
srv_start s || { E2E_FAIL=1; e2e_done; exit 1; }
srv_stop s
check_eq "queue tree owned by nobody" \
    "$(owners "$SPOOL" "$SPOOL/tmp" "$SPOOL/flush" "$SPOOL/public")" nobody

# 1. flush/ -> a victim directory (root's): root must not chown it
mkdir "$T/victim"
echo secret >"$T/victim/file"
as_nobody "rm -rf '$SPOOL/flush' && ln -s '$T/victim' '$SPOOL/flush'"
check "attack made as nobody: flush/ is a link" test -L "$SPOOL/flush"
start_refused "flush/ a link"
check_eq "flush/ a link: the reason on stderr" "$out" \
    "etrn-server: fatal: $SPOOL/flush is a symbolic link: refusing to follow it (a queue directory must be a plain directory; remove the link)"
check "flush/ a link: the reason in the log" \
    grep -qF "fatal: $SPOOL/flush is a symbolic link" "$LOG"
check_eq "flush/ a link: the victim keeps its owner" "$(owners "$T/victim" "$T/victim/file")" root
as_nobody "rm '$SPOOL/flush' && mkdir '$SPOOL/flush'"

# 2. tmp/ -> a directory holding files: root must not remove them
mkdir "$T/other"
echo keep1 >"$T/other/a"
echo keep2 >"$T/other/r123.4"
as_nobody "rm -rf '$SPOOL/tmp' && ln -s '$T/other' '$SPOOL/tmp'"
start_refused "tmp/ a link"
check_eq "tmp/ a link: the reason on stderr" "$out" \
    "etrn-server: fatal: $SPOOL/tmp is a symbolic link: refusing to follow it (a queue directory must be a plain directory; remove the link)"
check_eq "tmp/ a link: the other directory's files are all there" "$(cat "$T/other/a" "$T/other/r123.4")" \
    "keep1
keep2"
check_eq "tmp/ a link: the other directory keeps its owner" "$(owners "$T/other" "$T/other/a")" root

# 3. both at once, as the issue reproduced it
as_nobody "rm -rf '$SPOOL/flush' && ln -s '$T/victim' '$SPOOL/flush'"
start_refused "flush/ and tmp/ links"
check "flush/ and tmp/ links: the reason names a link" \
    sh -c "printf '%s' \"\$1\" | grep -q 'is a symbolic link: refusing to follow it'" sh "$out"
check_eq "flush/ and tmp/ links: victim owner unchanged" "$(owners "$T/victim")" root
check "flush/ and tmp/ links: the other files are there" test -f "$T/other/a" -a -f "$T/other/r123.4"
as_nobody "rm '$SPOOL/flush' '$SPOOL/tmp' && mkdir '$SPOOL/flush' '$SPOOL/tmp'"

# 4. queue_directory itself -> the victim (nobody owns its parent here)
as_nobody "mv '$SPOOL' '$T/s/queue.real' && ln -s '$T/victim' '$SPOOL'"
start_refused "queue_directory a link"
check_eq "queue_directory a link: the reason on stderr" "$out" \
    "etrn-server: fatal: $SPOOL is a symbolic link: refusing to follow it (a queue directory must be a plain directory; remove the link)"
check_eq "queue_directory a link: victim untouched" \
    "$(owners "$T/victim"; ls -A "$T/victim")" "root
file"
as_nobody "rm '$SPOOL' && mv '$T/s/queue.real' '$SPOOL'"

# 5. a directory of another owner, a file where a directory belongs
chown daemon "$SPOOL/hold"
start_refused "hold/ owned by daemon"
check_eq "hold/ owned by daemon: the reason on stderr" "$out" \
    "etrn-server: fatal: $SPOOL/hold is owned by uid $(id -u daemon), not by mail_owner (uid 65534) or root: refusing it"
check_eq "hold/ owned by daemon: still daemon's" "$(owners "$SPOOL/hold")" daemon
chown nobody "$SPOOL/hold"
as_nobody "rmdir '$SPOOL/deferred' && echo x >'$SPOOL/deferred'"
start_refused "deferred/ a file"
check_eq "deferred/ a file: the reason on stderr" "$out" \
    "etrn-server: fatal: $SPOOL/deferred is not a directory: refusing it"
as_nobody "rm '$SPOOL/deferred' && mkdir '$SPOOL/deferred'"

# 6. tmp/ is emptied with nobody's rights: nobody made tmp/ read-only, so
# the leftover stays (root would have removed it), and the server still runs
as_nobody "echo partial >'$SPOOL/tmp/t99.1' && chmod 0500 '$SPOOL/tmp'"
srv_start s
check "tmp/ read-only for nobody: the server runs" alive "$SRV_PID"
check "tmp/ read-only for nobody: the leftover is still there" test -f "$SPOOL/tmp/t99.1"
check "tmp/ read-only for nobody: logged" \
    grep -qF "error: queue recovery: remove tmp/t99.1: Permission denied" "$LOG"
srv_stop s
as_nobody "chmod 0700 '$SPOOL/tmp'"
srv_start s
check "tmp/ writable again: the leftover is removed" wait_for 5 test ! -e "$SPOOL/tmp/t99.1"
check "tmp/ writable again: logged" grep -qF "removed unfinished $SPOOL/tmp/t99.1" "$LOG"
srv_stop s

# 7. maillog_file -> a file of root's (nobody owns the log's directory here)
echo "root's file" >"$T/victimlog"
as_nobody "mv '$LOG' '$LOG.old' && ln -s '$T/victimlog' '$LOG'"
out=$(timeout 10 "$SRV" -c "$CONF" 2>&1); rc=$?
check_eq "maillog_file a link: refuses to start (exit 74)" "$rc" 74
check_eq "maillog_file a link: the reason on stderr" "$out" \
    "etrn-server: cannot open log file $LOG: it is a symbolic link (refused)"
check_eq "maillog_file a link: the target is unchanged" "$(cat "$T/victimlog")" "root's file"
rm "$LOG"
ln "$T/victimlog" "$LOG"
out=$(timeout 10 "$SRV" -c "$CONF" 2>&1); rc=$?
check_eq "maillog_file with 2 hard links: refuses to start (exit 74)" "$rc" 74
check_eq "maillog_file with 2 hard links: the reason on stderr" "$out" \
    "etrn-server: cannot open log file $LOG: it has 2 hard links (refused)"
check_eq "maillog_file with 2 hard links: the target is unchanged" "$(cat "$T/victimlog")" "root's file"
rm "$LOG"
mv "$LOG.old" "$LOG"

# after all that, a clean tree starts and runs as nobody
srv_start s
check_eq "clean tree: runs as nobody" "$(awk '/^Uid:/ {print $2}' /proc/$SRV_PID/status)" 65534
srv_stop s

e2e_done
