# etrn_server.sh - etrn-server instances for end-to-end tests (POSIX sh, sourced
# after tests/lib/e2e.sh).
#
#   srv_conf NAME LISTEN [main lines...]   write $T/NAME/server.ini: queue $T/NAME/queue,
#                                          log $T/NAME/maillog, the given inet_interfaces
#                                          ("127.0.0.1:PORT ..."); extra lines go into [main];
#                                          a line "[section]" starts a table, later lines go there;
#                                          mail_owner = nobody (it owns $T/NAME) unless given;
#                                          a given queue_directory or maillog_file replaces
#                                          the default one
#   srv_start NAME [DIR]                   start it (in working directory DIR when given;
#                                          under $SRV_WRAP, e.g. "prlimit --nofile=64", when set);
#                                          waits (bounded) until its first listener
#                                          accepts; $SRV_PID; stopped at exit
#   srv_stop NAME                          SIGTERM and wait (bounded)
#   srv_queue NAME ARGS...                 etrn-queue -c NAME's config ARGS...
#   srv_queued NAME [SUBDIR...]            files in NAME's queue subdirectories (default
#                                          incoming active deferred); "no DIR" when one is
#                                          missing, so a count of 0 never comes from a wrong path
#   srv_log_count NAME PATTERN             lines of NAME's maillog matching PATTERN (grep -E)
#   maildir_count DIR                      messages in every new/ under DIR
#
# Every config holds relayhost = [127.0.0.1]:1 (a closed port) unless the caller
# sets another, so nothing a test forgets to route ever leaves loopback; and
# smtpd_peername_lookup = no unless the caller sets it or dns_resolver, so a
# client on a test's veth address is never looked up through the system's
# resolver (which is off the machine).

srv_conf() {
    srv_name=$1; srv_listen=$2; shift 2
    mkdir -p "$T/$srv_name"
    chown nobody "$T/$srv_name" 2>/dev/null
    srv_has_relayhost=0 srv_has_name=0 srv_has_owner=0 srv_has_lookup=0
    srv_has_queue=0 srv_has_log=0
    for srv_line in "$@"; do
        case $srv_line in
        relayhost*) srv_has_relayhost=1 ;;
        dns_resolver*|smtpd_peername_lookup*) srv_has_lookup=1 ;;
        myhostname*) srv_has_name=1 ;;
        mail_owner*) srv_has_owner=1 ;;
        queue_directory*) srv_has_queue=1 ;;
        maillog_file*) srv_has_log=1 ;;
        esac
    done
    {
        printf '[main]\ninet_interfaces = %s\n' "$srv_listen"
        [ $srv_has_name = 1 ] || printf 'myhostname = %s.test\n' "$srv_name"
        [ $srv_has_owner = 1 ] || printf 'mail_owner = nobody\n'
        [ $srv_has_lookup = 1 ] || printf 'smtpd_peername_lookup = no\n'
        [ $srv_has_queue = 1 ] || printf 'queue_directory = %s/queue\n' "$T/$srv_name"
        [ $srv_has_log = 1 ] || printf 'maillog_file = %s/maillog\n' "$T/$srv_name"
        srv_in_main=1
        for srv_line in "$@"; do
            case $srv_line in
            \[*)
                if [ $srv_in_main = 1 ] && [ $srv_has_relayhost = 0 ]; then
                    printf 'relayhost = [127.0.0.1]:1\n'
                fi
                srv_in_main=0 ;;
            esac
            printf '%s\n' "$srv_line"
        done
        if [ $srv_in_main = 1 ] && [ $srv_has_relayhost = 0 ]; then
            printf 'relayhost = [127.0.0.1]:1\n'
        fi
    } >"$T/$srv_name/server.ini"
    eval "SRV_LISTEN_$srv_name=\$srv_listen"
}

srv_start() {
    eval "srv_listen=\$SRV_LISTEN_$1"
    srv_first=${srv_listen%% *}
    srv_port=${srv_first##*:}
    srv_addr=${srv_first%:*}
    # shellcheck disable=SC2086
    start_bg "$1" sh -c 'cd "$1" && shift && exec "$@"' sh "${2:-.}" ${SRV_WRAP:-} \
        "$BIN_DIR/etrn-server" -c "$T/$1/server.ini"
    SRV_PID=$E2E_LAST_PID
    eval "SRV_PID_$1=\$SRV_PID"
    if ! wait_port "$srv_port" 10 "$srv_addr"; then
        echo "etrn-server $1 did not start:"; cat "$T/$1.out"
        return 1
    fi
}

srv_stop() {
    eval "srv_pid=\$SRV_PID_$1"
    [ -n "$srv_pid" ] && stop_pid "$srv_pid"
    eval "SRV_PID_$1="
}

srv_queue() {
    srv_name=$1; shift
    "$BIN_DIR/etrn-queue" -c "$T/$srv_name/server.ini" "$@"
}

srv_queued() {
    sq_q=$T/$1/queue; shift
    [ $# -gt 0 ] || set -- incoming active deferred
    for sq_d in "$@"; do
        [ -d "$sq_q/$sq_d" ] || { echo "no $sq_q/$sq_d"; return 1; }
    done
    for sq_d in "$@"; do find "$sq_q/$sq_d" -type f; done | wc -l | tr -d ' '
}

srv_log_count() {
    grep -cE "$2" "$T/$1/maillog" 2>/dev/null
}

maildir_count() {
    find "$1" -path '*/new/*' -type f 2>/dev/null | wc -l
}
