#!/bin/sh
# server_auth_abuse.sh - AUTH cannot be brute-forced nor used to stall the
# server (issue 11, item 6): smtpd_client_auth_rate_limit per client address
# (450 4.7.1; 10 here, 30 by default), a delay before each failure reply that grows with the failures
# of that address across sessions (smtpd_error_sleep_time), and the crypt(3)
# check on a worker thread: another client's NOOPs are answered at once while
# an attacker makes the server check slow hashes (SHA-512, 2,000,000 rounds).
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1
check "test setup: self-signed certificate made" test -s "$T/cert.pem"
hash=$($PY -W ignore -c 'import crypt; print(crypt.crypt("secret", "$6$rounds=2000000$saltsalt$"))')
# bob's hash is quick (5000 rounds), so his failures time the delays alone
{ echo "alice:$hash"; echo "bob:$(openssl passwd -6 hunter2)"; } >"$T/users"
chmod 644 "$T/key.pem" "$T/cert.pem"
chown nobody "$T/users" && chmod 600 "$T/users"

port=$(free_port)
srv_conf s "127.0.0.1:$port" \
    'myhostname = relay.test' \
    'mynetworks = 127.0.0.2/32' \
    'relay_domains = relay.test' \
    'smtpd_timeout = 30s' \
    'smtpd_client_auth_rate_limit = 10' \
    'smtpd_junk_command_limit = 1000' \
    "smtpd_tls_cert_file = $T/cert.pem" \
    "smtpd_tls_key_file = $T/key.pem" \
    "smtpd_sasl_users_file = $T/users"
srv_start s || e2e_abort "etrn-server starts"
LOG="$T/s/maillog"
export T

cat >"$T/lib.py" <<'PYEOF'
import base64, socket, ssl, time
PORT = 0
CTX = ssl.create_default_context(); CTX.check_hostname = False; CTX.verify_mode = ssl.CERT_NONE
def reply(f):
    try:
        while True:
            line = f.readline()
            if not line:
                return "EOF"
            line = line.decode("latin-1").rstrip("\r\n")
            if len(line) < 4 or line[3] != "-":
                return line
    except (socket.timeout, OSError):
        return "EOF"
def tls_session(src):
    s = socket.create_connection(("127.0.0.1", PORT), 90, (src, 0))
    f = s.makefile("rb")
    reply(f)
    s.sendall(b"EHLO c.test\r\n"); reply(f)
    s.sendall(b"STARTTLS\r\n"); reply(f)
    t = CTX.wrap_socket(s, server_hostname="relay.test")
    tf = t.makefile("rb")
    t.sendall(b"EHLO c.test\r\n"); reply(tf)
    return t, tf
def cmd(t, tf, text):
    try:
        t.sendall(text.encode() + b"\r\n")
    except OSError:
        return "EOF"
    return reply(tf)
def plain(user, pw):
    return "AUTH PLAIN " + base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()
PYEOF

# 1. For 20 s, 127.0.0.3 guesses passwords on 20 sessions at a time (new ones
# as the server closes them); 127.0.0.4 sends a NOOP every 0.2 s meanwhile
# (about 100 of them: smtpd_junk_command_limit is raised for this probe).
$PY - "$port" >"$T/guess" 2>"$T/guess.err" <<'PYEOF'
import os, sys, threading, time
exec(open(os.environ["T"] + "/lib.py").read())
PORT = int(sys.argv[1])
end = time.time() + 20
verdicts, refused, lock = [0], [""], threading.Lock()
def guesser(n):
    i = 0
    while time.time() < end:
        try:
            t, tf = tls_session("127.0.0.3")
        except OSError:
            time.sleep(0.2); continue
        while time.time() < end:
            i += 1
            t.settimeout(max(0.1, end - time.time()))
            r = cmd(t, tf, plain("alice", "guess%d-%d" % (n, i)))
            with lock:
                if r[:3] in ("235", "535"):
                    verdicts[0] += 1
                elif r[:3] == "450":
                    refused[0] = r
            if r[:3] not in ("535", "450"):
                break
            if r[:3] == "450":
                time.sleep(0.5)
        t.close()
ths = [threading.Thread(target=guesser, args=(n,)) for n in range(20)]
for th in ths:
    th.start()
t, tf = tls_session("127.0.0.4")
worst = 0.0
while time.time() < end:
    t0 = time.time()
    r = cmd(t, tf, "NOOP")
    worst = max(worst, time.time() - t0)
    if r[:3] != "250":
        print("NOOP:", r); break
    time.sleep(0.2)
print("worst NOOP latency: %.1f ms" % (worst * 1000), file=sys.stderr)
for th in ths:
    th.join(30)
print("AUTH verdicts for 127.0.0.3: %d" % verdicts[0], file=sys.stderr)
print("verdicts for 127.0.0.3 in 20 s:", "fewer than 40" if verdicts[0] < 40 else verdicts[0])
print("refused:", refused[0])
print("NOOPs of 127.0.0.4 meanwhile:", "all under 300 ms" if worst < 0.3 else "%.0f ms" % (worst * 1000))
print("127.0.0.4 AUTH:", cmd(t, tf, plain("alice", "secret"))[:3])
PYEOF
check_eq "AUTH guessing: rate limited, NOOPs of another client unaffected" "$(cat "$T/guess")" \
    "verdicts for 127.0.0.3 in 20 s: fewer than 40
refused: 450 4.7.1 Error: too many AUTH commands from 127.0.0.3
NOOPs of 127.0.0.4 meanwhile: all under 300 ms
127.0.0.4 AUTH: 235"
cat "$T/guess.err"
check "log: AUTH command rate limit exceeded, as Postfix logs it" grep -q \
    'warning: AUTH command rate limit exceeded: 11 from unknown\[127.0.0.3\] for service smtp' "$LOG"

# 2. The delay before a failure reply grows with the failures of the address,
# also across sessions: about 1 s, 2 s, 3 s (smtpd_error_sleep_time = 1s).
$PY - "$port" >"$T/delay" 2>&1 <<'PYEOF'
import os, sys, time
exec(open(os.environ["T"] + "/lib.py").read())
PORT = int(sys.argv[1])
took = []
for i in range(3):
    t, tf = tls_session("127.0.0.5")
    t0 = time.time()
    r = cmd(t, tf, plain("bob", "wrong%d" % i))
    took.append(time.time() - t0)
    t.close()
    print("failure %d:" % (i + 1), r[:3])
print("each reply later than the one before by about a second:",
      "yes" if took[0] >= 0.8 and took[1] - took[0] >= 0.6 and took[2] - took[1] >= 0.6
      else "no (%s)" % " ".join("%.2f" % x for x in took))
PYEOF
check_eq "AUTH failures: growing delay across sessions" "$(cat "$T/delay")" \
    "failure 1: 535
failure 2: 535
failure 3: 535
each reply later than the one before by about a second: yes"

# 3. Shutdown does not leave a client waiting on its delay without a reply:
# 127.0.0.5 has three failures (a 4 s delay earned); SIGTERM 1 s after its
# fourth wrong password gives it the 535 at once, before the connection ends.
$PY - "$port" >"$T/drain" 2>&1 <<'PYEOF' &
import os, sys, time
exec(open(os.environ["T"] + "/lib.py").read())
PORT = int(sys.argv[1])
t, tf = tls_session("127.0.0.5")
open(os.environ["T"] + "/drain.ready", "w").close()
t0 = time.time()
r = cmd(t, tf, plain("bob", "wrong4"))
print(r[:3], "in time" if time.time() - t0 < 3.5 else "late (%.2f s)" % (time.time() - t0))
PYEOF
drain_pid=$!
wait_for 10 test -e "$T/drain.ready"
sleep 1
srv_stop s
wait $drain_pid
check_eq "SIGTERM during a failure delay: the 535 is sent before the session ends" \
    "$(cat "$T/drain")" "535 in time"

e2e_done
