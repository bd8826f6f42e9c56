#!/bin/sh
# deb.sh - the Debian packages as an admin meets them: make deb builds
# etrnkit-agent and etrnkit-server, lintian finds no error and no warning,
# dpkg -i installs both (user etrnkit, spool, directories, conffiles and
# their modes, units enabled), the version is VERSION everywhere,
# etrn-server --check-config passes on the shipped configuration, the
# server started by hand from the unit's ExecStart line answers SMTP on a
# test port as user etrnkit, the shipped logrotate file rotates its log and
# the server follows, systemd-analyze verify passes on the installed units,
# and removing and purging both leaves nothing behind except a queue that
# still holds mail (which purge keeps, and says so).
#
# Needs root and dpkg; changes the system (that is the point), so it runs
# only when no etrnkit package is installed, and undoes everything at exit:
# purges the packages and removes the etrnkit user and group when this
# script created them. Only 127.0.0.1 is used.
#   tests/pkg/deb.sh            build with make deb, then test
#   DEB_DIR=DIR tests/pkg/deb.sh   test the .deb files already in DIR
. "$(dirname "$0")/../lib/e2e.sh"
e2e_init

if [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null 2>&1; then
    echo "deb.sh: needs root and dpkg"
    exit 1
fi
if dpkg-query -W -f='${Status}\n' etrnkit-agent etrnkit-server 2>/dev/null | grep -qv 'not-installed'; then
    echo "deb.sh: an etrnkit package is installed already; not touching it"
    exit 1
fi
VERSION=$(cat "$E2E_TOP/VERSION")
ARCH=$(dpkg --print-architecture)
user_existed=0
id etrnkit >/dev/null 2>&1 && user_existed=1
for d in /var/spool/etrnkit /var/log/etrnkit /var/lib/etrnkit /etc/etrnkit; do
    if [ -e "$d" ]; then
        echo "deb.sh: $d exists already; not touching it"
        exit 1
    fi
done

deb_cleanup() {
    for p in etrnkit-agent etrnkit-server; do
        if dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qv 'not-installed'; then
            dpkg -P "$p" >/dev/null 2>&1
        fi
    done
    rm -rf /var/spool/etrnkit /var/log/etrnkit /var/lib/etrnkit /etc/etrnkit
    if [ $user_existed = 0 ] && id etrnkit >/dev/null 2>&1; then
        deluser --system --quiet etrnkit >/dev/null 2>&1
        getent group etrnkit >/dev/null && delgroup --system --quiet etrnkit >/dev/null 2>&1
    fi
}
E2E_CLEANUP_HOOK=deb_cleanup

# --- build --------------------------------------------------------------------
if [ -z "${DEB_DIR:-}" ]; then
    make -C "$E2E_TOP" deb >"$T/make-deb.out" 2>&1
    rc=$?
    check_eq "make deb exits 0" "$rc" 0
    [ "$rc" = 0 ] || tail -20 "$T/make-deb.out"
    DEB_DIR=$E2E_TOP/build/deb
fi
AGENT_DEB=$DEB_DIR/etrnkit-agent_${VERSION}_$ARCH.deb
SERVER_DEB=$DEB_DIR/etrnkit-server_${VERSION}_$ARCH.deb
check "etrnkit-agent_${VERSION}_$ARCH.deb built" test -f "$AGENT_DEB"
check "etrnkit-server_${VERSION}_$ARCH.deb built" test -f "$SERVER_DEB"
[ -f "$AGENT_DEB" ] && [ -f "$SERVER_DEB" ] || { e2e_done; exit 1; }

if command -v lintian >/dev/null 2>&1; then
    lintian --pedantic "$AGENT_DEB" "$SERVER_DEB" >"$T/lintian.out" 2>&1
    check_eq "lintian: no error and no warning on either package" \
        "$(grep -E '^(E|W): ' "$T/lintian.out")" ""
else
    skip "lintian not installed"
fi

# --- make install puts the same files where the packages put them ------------
make -C "$E2E_TOP" install DESTDIR="$T/inst" PREFIX=/usr UNITDIR=/lib/systemd/system \
    DOCDIR=/usr/share/doc/etrnkit >"$T/make-install.out" 2>&1
check_eq "make install (PREFIX=/usr, DESTDIR) exits 0" "$?" 0
(cd "$T/inst" && find . -type f | sed 's|^\.||' | sort) >"$T/inst.list"
for d in "$AGENT_DEB" "$SERVER_DEB"; do
    dpkg-deb -c "$d" | awk '$1 !~ /^d/ {print $6}'
done | sed -e 's|^\.||' -e 's|\.gz$||' -e 's|^/usr/share/doc/etrnkit-[a-z]*/|/usr/share/doc/etrnkit/|' |
    grep -vxE '/usr/share/doc/etrnkit/(copyright|changelog)' | sort -u >"$T/deb.list"
check_eq "make install installs exactly the packages' files" \
    "$(diff "$T/deb.list" "$T/inst.list" | grep '^[<>]' | tr '\n' ' ')" ""
check_eq "make install: config files 0640, never world-readable" \
    "$(stat -c '%a' "$T/inst/etc/etrnkit/agent.ini" "$T/inst/etc/etrnkit/server-lite.ini" | tr '\n' ' ')" "640 640 "
echo "changed by the admin" >>"$T/inst/etc/etrnkit/agent.ini"
make -C "$E2E_TOP" install DESTDIR="$T/inst" PREFIX=/usr UNITDIR=/lib/systemd/system \
    DOCDIR=/usr/share/doc/etrnkit >/dev/null 2>&1
check "make install again keeps an existing agent.ini" grep -q "changed by the admin" "$T/inst/etc/etrnkit/agent.ini"
make -C "$E2E_TOP" uninstall DESTDIR="$T/inst" PREFIX=/usr UNITDIR=/lib/systemd/system \
    DOCDIR=/usr/share/doc/etrnkit >/dev/null 2>&1
check_eq "make uninstall leaves only the configuration" \
    "$(cd "$T/inst" && find . -type f | sort | tr '\n' ' ')" "./etc/etrnkit/agent.ini ./etc/etrnkit/server-lite.ini "

# --- install ------------------------------------------------------------------
dpkg -i "$AGENT_DEB" "$SERVER_DEB" >"$T/dpkg-i.out" 2>&1
rc=$?
check_eq "dpkg -i of both packages exits 0" "$rc" 0
[ "$rc" = 0 ] || cat "$T/dpkg-i.out"

# owner:group mode of a path
perm() { stat -c '%U:%G %a' "$1" 2>/dev/null; }
check "system user etrnkit exists" id etrnkit
check "etrnkit is a system user (uid < 1000) with no login shell" \
    sh -c 'u=$(id -u etrnkit) && [ "$u" -lt 1000 ] && case $(getent passwd etrnkit | cut -d: -f7) in */nologin|*/false) ;; *) exit 1 ;; esac'
check_eq "group etrnkit is etrnkit's primary group" "$(id -gn etrnkit)" etrnkit
check_eq "/var/spool/etrnkit: etrnkit, 0700" "$(perm /var/spool/etrnkit)" "etrnkit:etrnkit 700"
check_eq "/var/lib/etrnkit: etrnkit, 0750" "$(perm /var/lib/etrnkit)" "etrnkit:etrnkit 750"
check_eq "/var/log/etrnkit: etrnkit:adm, 2750" "$(perm /var/log/etrnkit)" "etrnkit:adm 2750"
check_eq "/etc/etrnkit/agent.ini: root:etrnkit 0640" "$(perm /etc/etrnkit/agent.ini)" "root:etrnkit 640"
check_eq "/etc/etrnkit/server-lite.ini: root:etrnkit 0640" "$(perm /etc/etrnkit/server-lite.ini)" "root:etrnkit 640"
for f in /etc/ppp/ip-up.d/etrnkit /etc/NetworkManager/dispatcher.d/90-etrnkit \
    /etc/networkd-dispatcher/routable.d/50-etrnkit /etc/network/if-up.d/etrnkit; do
    check_eq "hook $f: root, 0755" "$(perm "$f")" "root:root 755"
done
check_eq "/etc/cron.d/etrnkit: root, 0644" "$(perm /etc/cron.d/etrnkit)" "root:root 644"
check_eq "the cron job is installed commented out" "$(grep -cE '^[0-9*]' /etc/cron.d/etrnkit)" 0
check_eq "/etc/logrotate.d/etrnkit-server: root, 0644" "$(perm /etc/logrotate.d/etrnkit-server)" "root:root 644"
conffiles=$(dpkg-query -W -f='${Conffiles}\n' etrnkit-agent etrnkit-server | awk 'NF {print $1}' | sort | tr '\n' ' ')
check_eq "conffiles" "$conffiles" \
    "/etc/NetworkManager/dispatcher.d/90-etrnkit /etc/cron.d/etrnkit /etc/etrnkit/agent.ini /etc/etrnkit/server-lite.ini /etc/logrotate.d/etrnkit-server /etc/network/if-up.d/etrnkit /etc/networkd-dispatcher/routable.d/50-etrnkit /etc/ppp/ip-up.d/etrnkit "
for m in etrn-agent etrn-server etrn-queue; do
    check "man page $m(8) installed" test -f "/usr/share/man/man8/$m.8.gz"
done
check "man pages name the installed paths (no @...@ left, no /usr/local)" \
    sh -c '! zcat /usr/share/man/man8/etrn-*.8.gz | grep -E "@[A-Z]+@|/usr/local"'
check "etrn-agent(8) names /etc/ppp/ip-up.d/etrnkit" \
    sh -c 'zcat /usr/share/man/man8/etrn-agent.8.gz | grep -q "/etc/ppp/ip\\\\-up.d/etrnkit"'
check_eq "etrn-server.service enabled, not etrn-agent-once.timer" \
    "$(ls /etc/systemd/system/multi-user.target.wants/ /etc/systemd/system/timers.target.wants/ 2>/dev/null | grep -E '^etrn' | sort | tr '\n' ' ')" \
    "etrn-agent.service etrn-server.service "

# --- versions -----------------------------------------------------------------
for p in etrnkit-agent etrnkit-server; do
    check_eq "$p package version is VERSION" "$(dpkg-query -W -f='${Version}' "$p")" "$VERSION"
done
for b in etrn-agent etrn-server etrn-queue; do
    check_eq "/usr/bin/$b --version" "$("/usr/bin/$b" --version)" "$b (etrnkit) $VERSION"
done

# --- the shipped configuration ------------------------------------------------
out=$(/usr/bin/etrn-server --check-config -c /etc/etrnkit/server-lite.ini 2>&1)
check_eq "etrn-server --check-config -c /etc/etrnkit/server-lite.ini passes as shipped" "$?:$out" "0:"
out=$(/usr/bin/etrn-agent --check-config -c /etc/etrnkit/agent.ini 2>&1)
check_eq "etrn-agent --check-config -c /etc/etrnkit/agent.ini passes as shipped" "$?:$out" "0:"

# --- the server from its unit's ExecStart line, on a test port ----------------
port=$(free_port)
execstart=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/etrn-server.service)
check_eq "etrn-server.service ExecStart" "$execstart" "etrn-server -c /etc/etrnkit/server-lite.ini"
SYSTEMD_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
check_eq "systemd's PATH finds the packaged etrn-server" \
    "$(PATH=$SYSTEMD_PATH command -v etrn-server)" /usr/bin/etrn-server
# The listener and the log move (a test port, the package's log directory),
# and TLS and AUTH files go in as the man page says: root:etrnkit 0640, so the
# server, no longer root, can read them again on SIGHUP.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=relay.isp.example \
    -keyout "$T/tls.key" -out "$T/tls.crt" >/dev/null 2>&1
install -o root -g etrnkit -m 0640 "$T/tls.key" /etc/etrnkit/tls.key
install -o root -g etrnkit -m 0640 "$T/tls.crt" /etc/etrnkit/tls.crt
printf 'site:%s\n' "$(openssl passwd -6 secret)" >"$T/users"
install -o root -g etrnkit -m 0640 "$T/users" /etc/etrnkit/sasl-users
sed -i -e "s|^inet_interfaces = .*|inet_interfaces = 127.0.0.1:$port|" \
    -e "s|^maillog_file =.*|maillog_file = /var/log/etrnkit/etrnkit.log|" \
    -e "s|^smtpd_tls_cert_file =.*|smtpd_tls_cert_file = /etc/etrnkit/tls.crt|" \
    -e "s|^smtpd_tls_key_file =.*|smtpd_tls_key_file = /etc/etrnkit/tls.key|" \
    -e "s|^smtpd_sasl_users_file =.*|smtpd_sasl_users_file = /etc/etrnkit/sasl-users|" \
    /etc/etrnkit/server-lite.ini
# shellcheck disable=SC2086 # ExecStart is a command line, split as systemd splits this one
start_bg server env -i PATH=$SYSTEMD_PATH $execstart
pid=$E2E_LAST_PID
if wait_port "$port" 10; then
    banner=$($PY - "$port" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10)
f = s.makefile("rb")
banner = f.readline().decode().strip()
s.sendall(b"EHLO pkg.test\r\n")
while True:
    l = f.readline().decode()
    if not l or l[3:4] != "-":
        break
s.sendall(b"MAIL FROM:<a@pkg.test>\r\nRCPT TO:<someone@example.org>\r\nDATA\r\n")
for _ in range(3):
    f.readline()
s.sendall(b"Subject: waits for ETRN\r\n\r\nbody\r\n.\r\n")
print(banner, f.readline().decode().strip()[:3])
s.sendall(b"QUIT\r\n")
f.readline()
s.close()
PYEOF
)
    check_eq "the server answers 220 on the test port, and queues a message (250)" \
        "$banner" "220 relay.isp.example ESMTP etrn-server 250"
else
    check "the server started from ExecStart listens on 127.0.0.1:$port" false
    cat "$T/server.out"
fi
check_eq "the server runs as user etrnkit" "$(ps -o user= -p "$pid" | tr -d ' ')" etrnkit
check_eq "its log file belongs to etrnkit" "$(perm /var/log/etrnkit/etrnkit.log)" "etrnkit:etrnkit 640"
check "etrn-queue -p as root shows the waiting message" \
    sh -c '/usr/bin/etrn-queue -p | grep -q "someone@example.org"'
check "etrn-queue status as root talks to it" /usr/bin/etrn-queue status

# SIGHUP as etrnkit: the configuration, the key and the users file (root:etrnkit 0640) load again
kill -HUP "$pid"
check "SIGHUP: the configuration is reloaded as etrnkit" \
    wait_for 10 grep -q 'reload: configuration /etc/etrnkit/server-lite.ini loaded' /var/log/etrnkit/etrnkit.log
check_eq "SIGHUP: the root:etrnkit 0640 key and users file load (no Permission denied)" \
    "$(grep -c 'Permission denied' /var/log/etrnkit/etrnkit.log)" 0
chmod 0600 /etc/etrnkit/tls.key
kill -HUP "$pid"
check "a root-only key (0600) is what fails on SIGHUP, as the man page warns" \
    wait_for 10 grep -q 'tls.key.*Permission denied; keeping the TLS files loaded before' /var/log/etrnkit/etrnkit.log
rm -f /etc/etrnkit/tls.key /etc/etrnkit/tls.crt /etc/etrnkit/sasl-users

# the shipped logrotate file, as cron.daily would run it (forced)
if command -v logrotate >/dev/null 2>&1; then
    cp /var/log/etrnkit/etrnkit.log "$T/log.before"
    env -i PATH=$SYSTEMD_PATH logrotate -f -s "$T/logrotate.state" /etc/logrotate.d/etrnkit-server \
        >"$T/logrotate.out" 2>&1
    rc=$?
    check_eq "logrotate -f /etc/logrotate.d/etrnkit-server exits 0" "$rc" 0
    [ "$rc" = 0 ] || cat "$T/logrotate.out"
    check "the old log is etrnkit.log.1" test -f /var/log/etrnkit/etrnkit.log.1
    check_eq "the new log was made by logrotate for etrnkit:adm 0640" \
        "$(perm /var/log/etrnkit/etrnkit.log)" "etrnkit:adm 640"
    check "the server reopened: the reopen is in the new file" \
        wait_for 10 grep -q 'control: root: reopen: OK log file reopened' /var/log/etrnkit/etrnkit.log
    check "and not in the old one" sh -c '! grep -q "reopen: OK" /var/log/etrnkit/etrnkit.log.1'
    check "the old log kept its lines" cmp -n "$(stat -c %s "$T/log.before")" "$T/log.before" /var/log/etrnkit/etrnkit.log.1
else
    skip "logrotate not installed"
fi
kill "$pid"
wait "$pid"
check_eq "SIGTERM: the server exits 0" "$?" 0
check_eq "no delivery was tried (example.org is etrn-only: the message waits, nothing left loopback)" \
    "$(cat /var/log/etrnkit/etrnkit.log* | grep -E 'relay=|connect to ' | grep -cv 'relay=none,')" 0
check "the message was deferred for ETRN" \
    sh -c 'cat /var/log/etrnkit/etrnkit.log* | grep -q "to=<someone@example.org>.*status=deferred"'

# --- systemd-analyze verify on the installed units ----------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
    for u in etrn-agent.service etrn-agent-once.service etrn-agent-once.timer etrn-server.service; do
        check "systemd-analyze verify /lib/systemd/system/$u prints nothing" \
            sh -c 'out=$(systemd-analyze verify "$1" 2>&1); [ -z "$out" ] || { echo "$out"; exit 1; }' \
            sh "/lib/systemd/system/$u"
    done
else
    skip "systemd-analyze not installed"
fi

# --- remove, then purge: the queued message makes purge keep the spool --------
dpkg -r etrnkit-agent etrnkit-server >"$T/dpkg-r.out" 2>&1
rc=$?
check_eq "dpkg -r of both exits 0" "$rc" 0
[ "$rc" = 0 ] || cat "$T/dpkg-r.out"
check "after remove: programs gone" sh -c '! test -e /usr/bin/etrn-server && ! test -e /usr/bin/etrn-agent'
check "after remove: the configuration stays" test -f /etc/etrnkit/server-lite.ini
# the hooks are conffiles: they stay until purge, and must do no harm without the agent
ETRN_HOOK_LOG=$T/hook.log ETRNKIT_RUNDIR=$T/run sh /etc/ppp/ip-up.d/etrnkit ppp0 /dev/ttyS0 38400 10.0.0.1 10.0.0.2 isp
check_eq "after remove: the ppp hook left behind exits 0" "$?" 0
check "after remove: it logs that there is no etrn-agent" grep -q 'but no etrn-agent in /usr/local/bin or /usr/bin' "$T/hook.log"
dpkg -P etrnkit-agent etrnkit-server >"$T/dpkg-p.out" 2>&1
rc=$?
check_eq "dpkg -P of both exits 0" "$rc" 0
[ "$rc" = 0 ] || cat "$T/dpkg-p.out"
check "purge says it kept the spool because it holds mail" \
    grep -q '/var/spool/etrnkit still holds queued mail; kept' "$T/dpkg-p.out"
check "the spool with the message is still there" \
    sh -c 'find /var/spool/etrnkit/deferred /var/spool/etrnkit/incoming -type f | grep -q .'
check "purge removed /etc/etrnkit" sh -c '! test -e /etc/etrnkit'
check "purge removed /var/log/etrnkit" sh -c '! test -e /var/log/etrnkit'
check "purge removed /var/lib/etrnkit" sh -c '! test -e /var/lib/etrnkit'
check "purge removed the enablement links" \
    sh -c '! ls /etc/systemd/system/*.wants/ 2>/dev/null | grep -q "^etrn"'
check "purge removed the hooks and the cron file" \
    sh -c '! test -e /etc/ppp/ip-up.d/etrnkit && ! test -e /etc/cron.d/etrnkit && ! test -e /etc/logrotate.d/etrnkit-server'
check_eq "both packages are gone from dpkg's database" \
    "$(dpkg-query -W -f='${Status}\n' etrnkit-agent etrnkit-server 2>/dev/null | grep -vc 'not-installed')" 0

# --- again with an empty queue: install over the existing user, purge removes the spool
rm -rf /var/spool/etrnkit
dpkg -i "$AGENT_DEB" "$SERVER_DEB" >"$T/dpkg-i2.out" 2>&1
rc=$?
check_eq "dpkg -i again (user etrnkit exists) exits 0" "$rc" 0
[ "$rc" = 0 ] || cat "$T/dpkg-i2.out"
dpkg -P etrnkit-agent etrnkit-server >"$T/dpkg-p2.out" 2>&1
rc=$?
check_eq "dpkg -P again exits 0" "$rc" 0
[ "$rc" = 0 ] || cat "$T/dpkg-p2.out"
check "purge removed the empty spool" sh -c '! test -e /var/spool/etrnkit'
check "the user etrnkit stays after purge (Debian keeps system users)" id etrnkit

e2e_done
