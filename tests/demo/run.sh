#!/bin/sh
# demo - a site and its provider on loopback: mail waits while the site is
# offline and arrives when the site's agent sends ETRN.
#
# Two etrn-servers from conf/demo/: the provider (holds site.example's mail,
# etrn-only) and the site (delivers site.example into Maildirs). Mail is sent
# to the provider while the site's server is not running, listed with
# etrn-queue -p, then the site comes online and etrn-agent --once asks the
# provider for its mail. Ends with "demo: N of N messages delivered"; exit 0
# only when all arrived. Everything runs as the calling user (as root: as
# nobody), on free 127.0.0.1 ports, in a temporary directory removed at exit.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
BIN_DIR=${BIN_DIR:-$top/bin}
PY=/usr/bin/python3
N=5
T=$(mktemp -d /tmp/etrnkit-demo.XXXXXX)
provider_pid=""
site_pid=""

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
delivered() { # number of messages in the site's Maildirs
    find "$T/site/mail" -path '*/new/*' -type f 2>/dev/null | wc -l
}

owner=""
run=""
if [ "$(id -u)" -eq 0 ]; then
    # root would have to switch to mail_owner: run the whole demo as nobody instead
    owner=nobody
    chown nobody "$T"
    run="setpriv --reuid=nobody --regid=nogroup --clear-groups"
fi
mkdir -p "$T/provider" "$T/site"
printf 'alice@site.example  OK\nbob@site.example  OK\n' >"$T/site/users"
[ -n "$owner" ] && chown nobody "$T/provider" "$T/site"
pport=$(free_port)
sport=$(free_port)
while [ "$sport" = "$pport" ]; do sport=$(free_port); done
for f in provider site agent; do
    sed -e "s|@DEMO@|$T|g" -e "s|@PROVIDER_PORT@|$pport|g" -e "s|@SITE_PORT@|$sport|g" \
        -e "s|@MAIL_OWNER@|$owner|g" "$top/conf/demo/$f.ini" >"$T/$f.ini"
done
chmod 600 "$T/agent.ini"
[ -n "$owner" ] && chown nobody "$T/agent.ini"

echo "demo: 1. the provider's etrn-server starts on 127.0.0.1:$pport (site.example is etrn-only)"
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
echo "demo: $got of $N messages delivered"
[ "$got" -eq $N ]
