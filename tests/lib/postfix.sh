# postfix.sh - private Postfix instances for end-to-end tests (POSIX sh, sourced
# after tests/lib/e2e.sh).
#
#   postfix_usable                 0 if a private instance can run here; else prints why
#   postfix_instance DIR PORT [main.cf lines...]
#                                  write DIR/conf/{main,master}.cf; smtpd on 127.0.0.1:PORT
#   postfix_service DIR LINE       append one master.cf line (e.g. "etrn-only unix - - n - - smtp",
#                                  or "  -o name=value" after it); no tlsmgr by default
#   postfix_start DIR              start it (bounded wait for the listener); stopped at exit
#   postfix_stop DIR               stop it; kill the master, then any child, by PID if
#                                  they linger (idempotent)
#   postfix_master_pid DIR         print the master's PID while it runs
#   postfix_pids DIR               print the PIDs of all the instance's processes
#   postfix_flush DIR              postqueue -f: try every queued message now
#   postfix_queue_count DIR        print the number of messages in the queue (two
#                                  scans in a row agree: robust while qmgr moves files)
#   postfix_flushlog_count DIR DOMAIN  print the number of queue IDs in DOMAIN's flush log
#   postfix_cmd DIR PROG args...   run a Postfix command (postqueue, postsuper, ...) on DIR
#
# Layout: DIR/conf (config_directory), DIR/queue, DIR/data, DIR/maillog (no syslog).
# The instance only listens on 127.0.0.1, makes no DNS lookups of its own
# (smtp_dns_support_level = disabled: give next hops as [127.0.0.1]:port
# literals, other names go to the system resolver), and by default delivers
# nowhere: default_transport and relay_transport are "error", mydestination and
# relayhost are empty. Extra main.cf lines are "name = value" and replace the
# default of that name (postconf -e): route mail with transport_maps, or with
# "relay_transport = relay" plus a bracketed relayhost on 127.0.0.1.
#
# What real Postfix (3.7, Debian 12) needs for this, learned the hard way:
# - Runs as root only: "postfix start" is reserved for the superuser, and the set-gid
#   postqueue/postdrop accept "-c DIR" without alternate_config_directories in the
#   default main.cf only when run by root.
# - maillog_file needs the postlog (postlogd) service in master.cf (3.4+; "postfix
#   start" fails with "missing 'postlog' service in master.cf" otherwise), and the
#   path must start with one of maillog_file_prefixes (default /var, /dev/stdout).
#   "postfix start" reports either mistake only in the maillog, if at all (a path
#   outside the prefixes fails without a word), never on its own output.
# - "postfix start" runs "post-install create-missing", which makes the queue
#   subdirectories and data_directory with the right owners; "postfix
#   set-permissions" is never needed (and would touch the shared system files).
#   config_directory and queue_directory must be owned by root and not group or
#   other writable, or "postfix check" warns.

PF_SBIN=/usr/sbin
PF_START_WAIT=${PF_START_WAIT:-15}
PF_STOP_WAIT=${PF_STOP_WAIT:-5}

postfix_usable() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "not root: Postfix's master and postqueue -c need root"
        return 1
    fi
    for pf_prog in postfix postconf postqueue postsuper postmap smtp-sink; do
        if [ ! -x "$PF_SBIN/$pf_prog" ]; then
            echo "$PF_SBIN/$pf_prog missing (Debian package postfix)"
            return 1
        fi
    done
    if ! id postfix >/dev/null 2>&1 || ! getent group postdrop >/dev/null 2>&1; then
        echo "user postfix or group postdrop missing (Debian package postfix)"
        return 1
    fi
    return 0
}

postfix_instance() {
    pf_dir=$1; pf_port=$2; shift 2
    mkdir -p "$pf_dir/conf" "$pf_dir/queue" || return 1
    chown root:root "$pf_dir" "$pf_dir/conf" "$pf_dir/queue" || return 1
    chmod 755 "$pf_dir" "$pf_dir/conf" "$pf_dir/queue" || return 1
    {
        cat <<EOF
# private test instance written by tests/lib/postfix.sh
compatibility_level = 3.6
config_directory = $pf_dir/conf
queue_directory = $pf_dir/queue
data_directory = $pf_dir/data
maillog_file = $pf_dir/maillog
maillog_file_prefixes = $pf_dir
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-$pf_port.test
mydomain = test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
relayhost =
relay_domains =
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtp_host_lookup = native
smtpd_peername_lookup = no
default_transport = error:5.3.0 test instance delivers nowhere by default
relay_transport = \$default_transport
smtpd_tls_security_level = none
smtp_tls_security_level = none
EOF
    } >"$pf_dir/conf/main.cf" || return 1
    # postconf -e replaces a default in place: a duplicate entry would draw a
    # warning from every Postfix program.
    for pf_line in "$@"; do
        "$PF_SBIN/postconf" -c "$pf_dir/conf" -e "$pf_line" || return 1
    done
    # No chroot anywhere: the queue directory has no copy of /etc or the libraries.
    cat >"$pf_dir/conf/master.cf" <<EOF || return 1
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$pf_port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    chmod 644 "$pf_dir/conf/main.cf" "$pf_dir/conf/master.cf" || return 1
    "$PF_SBIN/postconf" -c "$pf_dir/conf" -n >/dev/null || return 1
}

postfix_service() {
    printf '%s\n' "$2" >>"$1/conf/master.cf"
}

postfix_cmd() {
    pf_dir=$1; pf_prog=$2; shift 2
    MAIL_CONFIG="$pf_dir/conf" "$PF_SBIN/$pf_prog" -c "$pf_dir/conf" "$@"
}

# postfix_master_pid DIR - print the master's PID if the instance runs
postfix_master_pid() {
    pf_pid=$(sed -n '1s/[^0-9]//gp' "$1/queue/pid/master.pid" 2>/dev/null)
    [ -n "$pf_pid" ] && kill -0 "$pf_pid" 2>/dev/null || return 1
    # a killed master may linger as a zombie until init reaps it: that is gone
    [ "$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$pf_pid/stat" 2>/dev/null)" != Z ] || return 1
    echo "$pf_pid"
}

postfix_start() {
    pf_dir=$1
    pf_port=$(sed -n 's/^127\.0\.0\.1:\([0-9]*\)[ 	].*inet.*/\1/p' "$pf_dir/conf/master.cf" | head -n 1)
    # Registered before starting, so a half-started instance is stopped too.
    case "${E2E_CLEANUP_HOOK:-}" in
        *"postfix_stop '$pf_dir'"*) ;;
        *) E2E_CLEANUP_HOOK="${E2E_CLEANUP_HOOK:+$E2E_CLEANUP_HOOK; }postfix_stop '$pf_dir' >/dev/null 2>&1" ;;
    esac
    "$PF_SBIN/postfix" -c "$pf_dir/conf" start >"$pf_dir/start.out" 2>&1 || {
        # With maillog_file set, "postfix start" writes its errors to the maillog
        # (or nowhere, when maillog_file is outside maillog_file_prefixes).
        echo "postfix_start: postfix -c $pf_dir/conf start failed" \
            "(see $pf_dir/maillog, the postlog service, maillog_file_prefixes):" >&2
        cat "$pf_dir/start.out" >&2
        tail -n 5 "$pf_dir/maillog" >&2 2>/dev/null
        return 1
    }
    wait_for "$PF_START_WAIT" postfix_master_pid "$pf_dir" || {
        echo "postfix_start: no master for $pf_dir" >&2
        return 1
    }
    if [ -n "$pf_port" ]; then
        wait_port "$pf_port" "$PF_START_WAIT" || {
            echo "postfix_start: nothing listens on 127.0.0.1:$pf_port" >&2
            return 1
        }
    fi
}

# postfix_pids DIR - print the PIDs of every process of the instance: the master
# passes MAIL_CONFIG to all its children (smtpd, qmgr, postlogd, ...)
postfix_pids() {
    grep -lsxzF "MAIL_CONFIG=$1/conf" /proc/[0-9]*/environ 2>/dev/null |
        sed -n 's|^/proc/\([0-9]*\)/environ$|\1|p'
}

postfix_stop() {
    pf_dir=$1
    pf_pid=$(postfix_master_pid "$pf_dir")
    if [ -n "$pf_pid" ]; then
        # "postfix stop" sends SIGTERM and itself waits up to 5 s.
        "$PF_SBIN/postfix" -c "$pf_dir/conf" stop >/dev/null 2>&1
        pf_n=$((PF_STOP_WAIT * 10))
        while kill -0 "$pf_pid" 2>/dev/null && [ $pf_n -gt 0 ]; do
            sleep 0.1
            pf_n=$((pf_n - 1))
        done
        if kill -0 "$pf_pid" 2>/dev/null; then
            echo "postfix_stop: master $pf_pid of $pf_dir lingers; killing it" >&2
            kill -9 "$pf_pid" 2>/dev/null
        fi
    fi
    # Children leave on their own once the master is gone; bounded wait, then by PID.
    pf_n=30
    while [ -n "$(postfix_pids "$pf_dir")" ] && [ $pf_n -gt 0 ]; do
        sleep 0.1
        pf_n=$((pf_n - 1))
    done
    for pf_pid in $(postfix_pids "$pf_dir"); do
        echo "postfix_stop: process $pf_pid of $pf_dir lingers; killing it" >&2
        kill -9 "$pf_pid" 2>/dev/null
    done
    return 0
}

postfix_flush() {
    postfix_cmd "$1" postqueue -f
}

# pf_queue_scan DIR - one count of the queue files of every queue
pf_queue_scan() {
    find "$1/queue/maildrop" "$1/queue/incoming" "$1/queue/active" \
        "$1/queue/deferred" "$1/queue/hold" -type f 2>/dev/null | wc -l | tr -d ' '
}

postfix_queue_count() {
    # A message that the queue manager moves between queues (deferred ->
    # active on a retry) during a scan can be missed, so take scans until two
    # in a row agree (bounded).
    pf_prev=$(pf_queue_scan "$1")
    pf_n=10
    while [ $pf_n -gt 0 ]; do
        pf_cur=$(pf_queue_scan "$1")
        [ "$pf_cur" = "$pf_prev" ] && break
        pf_prev=$pf_cur
        sleep 0.05
        pf_n=$((pf_n - 1))
    done
    echo "$pf_cur"
}

postfix_flushlog_count() {
    # flush(8) keeps one file per site, named after the domain, hashed into
    # subdirectories of queue/flush; each line is one queue ID (duplicates possible).
    pf_file=$(find "$1/queue/flush" -type f -name "$(echo "$2" | tr "A-Z." "a-z_")" 2>/dev/null | head -n 1)
    if [ -z "$pf_file" ]; then
        echo 0
    else
        sort -u "$pf_file" | grep -c .
    fi
}
