#!/bin/sh
# agent_mx.sh - "hosts = mx:DOMAIN": MX lookup through a real resolver.
#
# A private dnsmasq on 127.0.0.1 (free port) serves site.test's MX records;
# $TOOLS_DIR/mx_query runs agent/mx's lookup against it. Asserted: the hosts in
# preference order with their A/AAAA addresses, the site's own MX skipped by
# name (any case) and by an address of this machine (loopback never counts),
# NODATA for a domain without MX and for a null MX, NXDOMAIN for an unknown
# name, TEMPFAIL for REFUSED, for nothing listening and for a silent server
# (bounded by the short resolver timeout), a resolver on [::1], a host without
# addresses, and a bad resolver address. mx_dns_start is the data set later
# agent-level MX tests reuse.
. "$(dirname "$0")/../lib/e2e.sh"
. "$E2E_TOP/tests/lib/dnsmasq.sh"
e2e_init

MXQ=$TOOLS_DIR/mx_query

if [ ! -x "$MXQ" ]; then
    echo "FAIL no $MXQ"
    E2E_FAIL=1
    e2e_done
    exit 1
fi
if ! why=$(dnsmasq_usable); then
    skip "$why"
    e2e_done
    exit $?
fi

# One global (non-loopback) address of this machine, for the skip-by-address case.
LOCAL_ADDR=$(ip -o addr show scope global 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print $4; exit }')

# ::1 usable? Then dnsmasq listens there too.
if $PY -c 'import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(("::1", 0))' \
    2>/dev/null; then
    DNSMASQ_IPV6=1
else
    DNSMASQ_IPV6=0
fi

# mx_dns_start - dnsmasq with the test data on a free port; sets $DNS_PORT and $RESOLVER
#   site.test     MX 5 mail.site.test (the site itself), 10 mx1.isp.test, 20 mx2.isp.test,
#                 and, when this machine has a global address, 30 gw.site.test at it
#   nomx.test     a host, no MX          nullmx.test   MX 0 "." (RFC 7505)
#   partial.test  MX 10 mx1.isp.test, 20 nohost.isp.test (no address records)
#   mx1.isp.test 127.0.0.2 and ::1, mx2.isp.test 127.0.0.3, mail.site.test 127.0.0.4
mx_dns_start() {
    DNS_PORT=$(free_port)
    RESOLVER=127.0.0.1:$DNS_PORT
    set -- --mx-host=site.test,mx2.isp.test,20 --mx-host=site.test,mail.site.test,5 \
        --mx-host=site.test,mx1.isp.test,10 \
        --host-record=mx1.isp.test,127.0.0.2,::1 --host-record=mx2.isp.test,127.0.0.3 \
        --host-record=mail.site.test,127.0.0.4 --host-record=nomx.test,127.0.0.9 \
        --mx-host=nullmx.test,.,0 \
        --mx-host=partial.test,mx1.isp.test,10 --mx-host=partial.test,nohost.isp.test,20
    if [ -n "$LOCAL_ADDR" ]; then
        set -- "$@" --mx-host=site.test,gw.site.test,30 --host-record=gw.site.test,"$LOCAL_ADDR"
    fi
    dnsmasq_start "$DNS_PORT" "$@"
}

# mxq NAME ARGS... - run mx_query; $rc, stdout in $out, all in $T/NAME.{out,err}
mxq() {
    qname=$1; shift
    "$MXQ" -v "$@" >"$T/$qname.out" 2>"$T/$qname.err"
    rc=$?
    out=$(cat "$T/$qname.out")
}

if ! mx_dns_start; then
    E2E_FAIL=$((E2E_FAIL + 1))
    e2e_done
    exit 1
fi

nl='
'
ALL="5 mail.site.test 127.0.0.4${nl}10 mx1.isp.test 127.0.0.2,::1${nl}20 mx2.isp.test 127.0.0.3"
PROVIDERS="10 mx1.isp.test 127.0.0.2,::1${nl}20 mx2.isp.test 127.0.0.3"

# 1. no self name: every MX but the one at this machine's address, by preference
mxq all "$RESOLVER" site.test -
check_eq "site.test: exit 0" "$rc" 0
check_eq "site.test: all MX hosts by preference, loopback ones kept, A and AAAA" "$out" "$ALL"
if [ -n "$LOCAL_ADDR" ]; then
    check "site.test: gw.site.test ($LOCAL_ADDR, this machine) skipped and said so" \
        grep -q "skipping gw.site.test: it is this host" "$T/all.err"
    check "site.test: dnsmasq really served gw.site.test" \
        grep -q "gw.site.test is $LOCAL_ADDR" "$T/dnsmasq-$DNS_PORT.out"
else
    skip "this machine has no global address: skip-by-address not exercised"
fi

# 2. the site's own MX skipped by helo_name, any case, trailing dot
asked_self() { grep -c 'query\[A\] mail\.site\.test ' "$T/dnsmasq-$DNS_PORT.out"; }
before=$(asked_self)
mxq self "$RESOLVER" site.test mail.site.test
check_eq "self name: exit 0" "$rc" 0
check_eq "self name: mail.site.test skipped" "$out" "$PROVIDERS"
mxq selfcase "$RESOLVER" site.test MAIL.Site.TEST.
check_eq "self name in other case: mail.site.test skipped" "$out" "$PROVIDERS"
check_eq "self name: its address was not looked up (dnsmasq's A queries for it)" \
    "$before $(asked_self)" "1 1"

# 3. permanent failures
mxq nomx "$RESOLVER" nomx.test mail.site.test
check_eq "no MX: exit 1" "$rc" 1
check_eq "no MX: NODATA" "$out" "nodata: no MX records for nomx.test"
mxq nullmx "$RESOLVER" nullmx.test mail.site.test
check_eq "null MX: exit 1" "$rc" 1
check_eq "null MX: NODATA" "$out" "nodata: nullmx.test accepts no mail (null MX, RFC 7505)"
mxq nx "$RESOLVER" unknown.test mail.site.test
check_eq "unknown name: exit 1" "$rc" 1
check_eq "unknown name: NXDOMAIN" "$out" \
    "nxdomain: unknown.test: no such domain (NXDOMAIN from resolver $RESOLVER)"

# 4. a host without addresses stays, with its reason
mxq partial "$RESOLVER" partial.test mail.site.test
check_eq "host without address: exit 0" "$rc" 0
check_eq "host without address: listed with the reason" "$out" \
    "10 mx1.isp.test 127.0.0.2,::1${nl}20 nohost.isp.test - nxdomain: nohost.isp.test: no such domain (NXDOMAIN from resolver $RESOLVER)"

# 5. temporary failures
mxq refused "$RESOLVER" other.example mail.site.test
check_eq "REFUSED (name outside the served zone): exit 2" "$rc" 2
check_eq "REFUSED: TEMPFAIL" "$out" \
    "tempfail: no usable answer from resolver $RESOLVER for other.example MX (SERVFAIL, REFUSED or no reply)"
check "REFUSED: dnsmasq did get the query" \
    grep -q "query\\[MX\\] other.example" "$T/dnsmasq-$DNS_PORT.out"

dead=$(free_port)
mxq dead "127.0.0.1:$dead" site.test mail.site.test
check_eq "nothing listening: exit 2" "$rc" 2
check_eq "nothing listening: TEMPFAIL" "$out" \
    "tempfail: no usable answer from resolver 127.0.0.1:$dead for site.test MX (SERVFAIL, REFUSED or no reply)"

# a server that reads queries and never answers: the short retrans/retry bounds the wait
start_bg silent "$PY" -c '
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(sys.argv[1] + ".tmp", "w").write("%d\n" % s.getsockname()[1])
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.settimeout(1)
n = 0
end = time.time() + 60
while time.time() < end:
    try:
        s.recvfrom(4096); n += 1
        open(sys.argv[2], "w").write("%d\n" % n)
    except socket.timeout:
        pass
' "$T/silent.port" "$T/silent.count"
if wait_for 10 test -s "$T/silent.port"; then
    sport=$(cat "$T/silent.port")
    t0=$(date +%s)
    mxq silent "127.0.0.1:$sport" site.test mail.site.test
    t1=$(date +%s)
    check_eq "silent resolver: exit 2" "$rc" 2
    check_eq "silent resolver: TEMPFAIL" "$out" \
        "tempfail: no usable answer from resolver 127.0.0.1:$sport for site.test MX (SERVFAIL, REFUSED or no reply)"
    check "silent resolver: gave up within 10 s (took $((t1 - t0)) s)" [ $((t1 - t0)) -le 10 ]
    check "silent resolver: it was asked (and retried)" [ "$(cat "$T/silent.count" 2>/dev/null)" -ge 2 ]
else
    check "silent resolver started" false
fi

# 6. a resolver on [::1]
if [ "$DNSMASQ_IPV6" = 1 ]; then
    mxq v6 "[::1]:$DNS_PORT" site.test mail.site.test
    check_eq "resolver [::1]:PORT: exit 0" "$rc" 0
    check_eq "resolver [::1]:PORT: same hosts" "$out" "$PROVIDERS"
    check "resolver [::1]:PORT: the query came over IPv6" \
        grep -q "query\\[MX\\] site.test from ::1" "$T/dnsmasq-$DNS_PORT.out"
else
    skip "no ::1 here: IPv6 resolver not exercised"
fi

# 7. a bad resolver address is refused up front
mxq badres "localhost:53" site.test -
check_eq "resolver by name: exit 64" "$rc" 64
check "resolver by name: says why" grep -q 'resolver "localhost": not a numeric IPv4 address' \
    "$T/badres.err"

e2e_done
