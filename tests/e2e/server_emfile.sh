#!/bin/sh
# server_emfile.sh - etrn-server out of file descriptors. Started with a low
# descriptor limit (prlimit --nofile), it is sent connections until accept()
# fails with EMFILE and further clients wait in the kernel's queue unanswered.
# Then: the server's CPU time over 3 s stays low (the listener pauses and
# retries every 100 ms instead of spinning), one warning is logged for the
# whole episode, a session opened before still answers NOOP, and once the
# clients go away a new client gets 220 again and the server says it accepts
# again.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

NOFILE=100
port=$(free_port)
srv_conf s "127.0.0.1:$port" "relay_domains = site.test" \
    "smtpd_client_connection_count_limit = 0" "smtpd_timeout = 300s"
LOG="$T/s/maillog"
if ! SRV_WRAP="prlimit --nofile=$NOFILE:$NOFILE" srv_start s; then
    E2E_FAIL=1; e2e_done; exit 1
fi
check_eq "the limit applies to the server" \
    "$(awk '/^Max open files/ {print $4}' "/proc/$SRV_PID/limits")" $NOFILE

# fill.py PORT PID: one session first (it gets 220), then connections until
# three in a row get no 220 within 1 s (at most 300); then the server's CPU
# seconds over 3 s, NOOP on the first session, all but the first closed, and
# a new client's first line (waited for up to 20 s).
cat >"$T/fill.py" <<'PYEOF'
import os, socket, sys, time

port, pid = int(sys.argv[1]), int(sys.argv[2])
hz = os.sysconf("SC_CLK_TCK")

def cpu():
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / hz

def line(s, secs):
    s.settimeout(secs)
    data = b""
    try:
        while not data.endswith(b"\n"):
            b = s.recv(512)
            if not b:
                break
            data += b
    except OSError:
        pass
    return data.decode(errors="replace").strip()

first = socket.create_connection(("127.0.0.1", port), 5)
print("first", line(first, 5)[:3])
served, waiting, miss = [], [], 0
for i in range(300):
    c = socket.create_connection(("127.0.0.1", port), 5)
    if line(c, 1).startswith("220"):
        served.append(c)
        miss = 0
    else:
        waiting.append(c)
        miss += 1
        if miss == 3:
            break
print("served", len(served))
print("waiting", len(waiting))
c0 = cpu()
time.sleep(3)
print("cpu %.2f" % (cpu() - c0))
first.sendall(b"NOOP\r\n")
print("noop", line(first, 5)[:3])
for c in served + waiting:
    c.close()
end = time.time() + 20
got = ""
while time.time() < end and not got.startswith("220"):
    try:
        c = socket.create_connection(("127.0.0.1", port), 5)
        got = line(c, 2)
        c.close()
    except OSError:
        time.sleep(0.2)
print("after", got[:3])
first.sendall(b"QUIT\r\n")
print("quit", line(first, 5)[:3])
PYEOF
$PY "$T/fill.py" "$port" "$SRV_PID" >"$T/fill.out" 2>&1
cat "$T/fill.out"
val() { awk -v k="$1" '$1 == k {print $2}' "$T/fill.out"; }

check_eq "a session opened first gets 220" "$(val first)" 220
check "some sessions were served before the limit" test "$(val served)" -gt 5
check "clients past the limit got no 220 (accept failed)" test "$(val waiting)" -ge 3
cpu=$(val cpu)
echo "server CPU over 3 s with accept() failing: ${cpu:-?} s"
check "server CPU over 3 s stays under 0.5 s (no spinning)" \
    $PY -c "import sys; sys.exit(0 if float('${cpu:-99}') < 0.5 else 1)"
check_eq "the open session still answers NOOP" "$(val noop)" 250
check_eq "after the clients left, a new client gets 220" "$(val after)" 220
check_eq "the open session still answers QUIT" "$(val quit)" 221
check_eq "one warning for the whole episode" \
    "$(grep -c 'warning: accept: Too many open files: not accepting new connections, retrying every 100 ms' "$LOG")" 1
check "the warning says how many sessions are open" \
    grep -qE 'retrying every 100 ms \([0-9]+ sessions open\)' "$LOG"
check_eq "one line when accepting resumes" \
    "$(grep -cE 'accepting new connections again after [0-9]+\.[0-9] s \([0-9]+ failed accept\(\) calls\)' "$LOG")" 1
check "the server is still running" alive "$SRV_PID"
stop_pid "$SRV_PID"
check_eq "nothing on stderr" "$(cat "$T/s.out")" ""

e2e_done
