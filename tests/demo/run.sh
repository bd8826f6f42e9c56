#!/bin/sh
# demo - a site and its provider on loopback: mail waits while the site is
# offline and arrives when the site's agent sends ETRN; then a second site
# behind NAT, which the provider cannot reach, fetches its mail with ATRN.
#
# Two etrn-servers from conf/demo/: the provider (holds site.example's mail,
# etrn-only) and the site (delivers site.example into Maildirs). Mail is sent
# to the provider while the site's server is not running, listed with
# etrn-queue -p, then the site comes online and etrn-agent --once asks the
# provider for its mail. Act two: mail for nat.example waits at the same
# provider; the NAT site's agent (protocol = atrn) logs in to the provider's
# ODMR listener (odmr_listen) with CRAM-MD5, says ATRN, and relays the
# provider's delivery to its own server (conf/demo/nat-*.ini).
# Ends with "demo: N of N messages delivered" (both acts); exit 0
# only when all arrived. Everything runs as the calling user (as root: as
# nobody), on free 127.0.0.1 ports, in a temporary directory removed at exit.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BIN_DIR=${BIN_DIR:-$top/bin}
PY=/usr/bin/python3
N=5
NAT_N=3
T=$(mktemp -d /tmp/etrnkit-demo.XXXXXX)
provider_pid=""
site_pid=""
nat_pid=""

stop() { # stop PID: TERM, then wait (bounded), then KILL
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null || return 0
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    return 0
}
cleanup() {
    stop "$nat_pid"
    stop "$site_pid"
    stop "$provider_pid"
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() { # wait_port PORT: until something accepts on 127.0.0.1:PORT (10 s at most)
    $PY - "$1" <<'EOF'
import socket, sys, time
end = time.time() + 10
while time.time() < end:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
EOF
}
delivered() { # delivered [SITE]: number of messages in the site's Maildirs
    find "$T/${1:-site}/mail" -path '*/new/*' -type f 2>/dev/null | wc -l
}

owner=""
run=""
if [ "$(id -u)" -eq 0 ]; then
    # root would have to switch to mail_owner: run the whole demo as nobody instead
    owner=nobody
    chown nobody "$T"
    run="setpriv --reuid=nobody --regid=nogroup --clear-groups"
fi
mkdir -p "$T/provider" "$T/site" "$T/nat"
printf 'alice@site.example  OK\nbob@site.example  OK\n' >"$T/site/users"
printf 'carol@nat.example  OK\n' >"$T/nat/users"
# the login nat, password "tanstaaftanstaaf" (RFC 2195's example) as a verifier
printf 'nat:{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b\n' \
    >"$T/provider/users"
chmod 600 "$T/provider/users"
if ! openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -days 2 -keyout "$T/provider/key.pem" -out "$T/provider/cert.pem" >"$T/openssl.out" 2>&1; then
    echo "demo: openssl could not make the provider's certificate:"; cat "$T/openssl.out"; exit 1
fi
[ -n "$owner" ] && chown nobody "$T/provider/users" "$T/provider/key.pem"
[ -n "$owner" ] && chown nobody "$T/provider" "$T/site" "$T/nat"
ports=""
for v in pport sport nport oport; do
    p=$(free_port)
    while printf '%s\n' $ports | grep -qx "$p"; do p=$(free_port); done
    ports="$ports $p"
    eval "$v=$p"
done
for f in provider site agent nat-site nat-agent; do
    sed -e "s|@DEMO@|$T|g" -e "s|@PROVIDER_PORT@|$pport|g" -e "s|@SITE_PORT@|$sport|g" \
        -e "s|@NAT_PORT@|$nport|g" -e "s|@ODMR_PORT@|$oport|g" \
        -e "s|@MAIL_OWNER@|$owner|g" "$top/conf/demo/$f.ini" >"$T/$f.ini"
done
chmod 600 "$T/agent.ini" "$T/nat-agent.ini"
[ -n "$owner" ] && chown nobody "$T/agent.ini" "$T/nat-agent.ini"

echo "demo: 1. the provider's etrn-server starts on 127.0.0.1:$pport (site.example is etrn-only)"
echo "         and listens for ODMR (ATRN) on 127.0.0.1:$oport"
$run "$BIN_DIR/etrn-server" -c "$T/provider.ini" 2>"$T/provider.err" &
provider_pid=$!
if ! wait_port "$pport"; then
    echo "demo: the provider did not start:"; cat "$T/provider.err"; exit 1
fi

echo "demo: 2. the site is offline; $N messages for site.example arrive at the provider"
i=1
while [ $i -le $N ]; do
    rcpt=alice; [ $((i % 2)) -eq 0 ] && rcpt=bob
    if ! swaks --server "127.0.0.1:$pport" --helo world.example --from "news@world.example" \
        --to "$rcpt@site.example" --header "Subject: demo message $i of $N" \
        --body "Hello $rcpt, this is message $i, held while your link was down." \
        --silent 2 >"$T/swaks.out" 2>&1; then
        echo "demo: the provider refused message $i:"; cat "$T/swaks.out"; exit 1
    fi
    i=$((i + 1))
done

echo "demo: 3. they wait at the provider (etrn-queue -p):"
"$BIN_DIR/etrn-queue" -c "$T/provider.ini" -p | sed 's/^/    /'

echo "demo: 4. the link comes up: the site's etrn-server starts on 127.0.0.1:$sport"
$run "$BIN_DIR/etrn-server" -c "$T/site.ini" 2>"$T/site.err" &
site_pid=$!
if ! wait_port "$sport"; then
    echo "demo: the site's server did not start:"; cat "$T/site.err"; exit 1
fi

echo "demo: 5. the site's agent asks for its mail: etrn-agent --once"
$run "$BIN_DIR/etrn-agent" -c "$T/agent.ini" --once 2>&1 | sed 's/^/    /'
i=0
while [ "$(delivered)" -lt $N ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
got=$(delivered)

echo "demo: 6. the site's Maildirs now hold:"
for f in $(find "$T/site/mail" -path '*/new/*' -type f 2>/dev/null | sort); do
    user=${f#"$T/site/mail/site.example/"}
    user=${user%%/*}
    subj=$(sed -n 's/^Subject: //p' "$f" | head -n 1)
    echo "    $user: $subj"
done

echo "demo: act two: nat.example sits behind NAT; the provider cannot connect to it"
echo "demo: 7. $NAT_N messages for nat.example arrive at the provider and wait"
i=1
while [ $i -le $NAT_N ]; do
    if ! swaks --server "127.0.0.1:$pport" --helo world.example --from "news@world.example" \
        --to "carol@nat.example" --header "Subject: NAT message $i of $NAT_N" \
        --body "Hello carol, message $i, fetched over your own connection." \
        --silent 2 >"$T/swaks.out" 2>&1; then
        echo "demo: the provider refused NAT message $i:"; cat "$T/swaks.out"; exit 1
    fi
    i=$((i + 1))
done
"$BIN_DIR/etrn-queue" -c "$T/provider.ini" -p | sed 's/^/    /'

echo "demo: 8. the NAT site's own server starts, on its loopback port $nport only"
$run "$BIN_DIR/etrn-server" -c "$T/nat-site.ini" 2>"$T/nat.err" &
nat_pid=$!
if ! wait_port "$nport"; then
    echo "demo: the NAT site's server did not start:"; cat "$T/nat.err"; exit 1
fi
echo "demo: 9. the NAT site's agent connects out and asks: etrn-agent --once (protocol = atrn)"
$run "$BIN_DIR/etrn-agent" -c "$T/nat-agent.ini" --once 2>&1 | sed 's/^/    /'
i=0
while [ "$(delivered nat)" -lt $NAT_N ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
nat_got=$(delivered nat)
echo "demo: 10. the NAT site's Maildir now holds:"
for f in $(find "$T/nat/mail" -path '*/new/*' -type f 2>/dev/null | sort); do
    echo "    carol: $(sed -n 's/^Subject: //p' "$f" | head -n 1)"
done
echo "demo: act two: $nat_got of $NAT_N messages fetched with ATRN"
echo "demo: $((got + nat_got)) of $((N + NAT_N)) messages delivered"
[ "$got" -eq $N ] && [ "$nat_got" -eq $NAT_N ]
