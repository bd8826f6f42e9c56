# dnsmasq.sh - a private dnsmasq as the DNS server of end-to-end tests (POSIX sh,
# sourced after tests/lib/e2e.sh).
#
#   dnsmasq_usable              0 if dnsmasq can run here; else prints why
#   dnsmasq_start PORT ARGS...  serve the records in ARGS on 127.0.0.1:PORT (UDP and TCP),
#                               and on [::1]:PORT too when DNSMASQ_IPV6=1; waits (bounded)
#                               until it listens; sets $DNSMASQ_PID (stopped at exit);
#                               its log (every query) goes to $T/dnsmasq-PORT.out
#   dnsmasq_stop                stop the last one started
#
# Records: --mx-host=DOMAIN,HOST,PREF (HOST "." is a null MX, RFC 7505),
# --host-record=NAME,ADDR[,ADDR...] (A and AAAA). Nothing else is ever read or
# asked: --conf-file=/dev/null, --no-resolv (no /etc/resolv.conf, no upstream, so
# nothing is forwarded), --no-hosts, --pid-file= (none), --bind-interfaces on
# loopback only.
#
# What dnsmasq 2.90 (Debian 12) answers, learned by asking it:
# - names under .test are --local: an unknown name there is NXDOMAIN, a known name
#   without the asked type (a host-record asked for MX) is NOERROR with no answer;
# - any other name is REFUSED (no upstream), which glibc's res_nquery reports just
#   like a timeout (h_errno TRY_AGAIN, no packet);
# - records are served with TTL 0; an MX answer carries the targets' A records
#   as additional data.

DNSMASQ=${DNSMASQ:-/usr/sbin/dnsmasq}
DNSMASQ_PID=

dnsmasq_usable() {
    if [ ! -x "$DNSMASQ" ]; then
        echo "$DNSMASQ missing (Debian package dnsmasq-base)"
        return 1
    fi
    return 0
}

dnsmasq_start() {
    dm_port=$1; shift
    dm_listen="--listen-address=127.0.0.1"
    [ "${DNSMASQ_IPV6:-0}" = 1 ] && dm_listen="$dm_listen --listen-address=::1"
    # shellcheck disable=SC2086 # dm_listen is a list of options
    start_bg "dnsmasq-$dm_port" "$DNSMASQ" --no-daemon --conf-file=/dev/null --no-resolv \
        --no-hosts --pid-file= --bind-interfaces $dm_listen --port="$dm_port" \
        --local=/test/ --log-queries --log-facility=- "$@"
    DNSMASQ_PID=$E2E_LAST_PID
    if ! wait_port "$dm_port" 10 127.0.0.1 || ! kill -0 "$DNSMASQ_PID" 2>/dev/null; then
        echo "dnsmasq did not start on port $dm_port:"
        cat "$T/dnsmasq-$dm_port.out"
        return 1
    fi
    return 0
}

dnsmasq_stop() {
    [ -n "$DNSMASQ_PID" ] && stop_pid "$DNSMASQ_PID"
    DNSMASQ_PID=
}
