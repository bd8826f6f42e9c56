#!/bin/sh
# server_abuse.sh - one client cannot lock out the others (issue 11, item 2):
# smtpd_client_connection_count_limit per client address, the connection
# rate limit, default_process_limit, smtpd_client_event_limit_exceptions,
# and smtpd_per_request_deadline with smtpd_min_data_rate against clients
# that drip a command or a message. Clients bind their own source address
# on loopback: 127.0.0.3 attacks, 127.0.0.4 is a legitimate client.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

port=$(free_port)
srv_conf s "127.0.0.1:$port" \
    'myhostname = relay.test' \
    'mynetworks = 127.0.0.2/32' \
    'relay_domains = relay.test' \
    'etrn_only_domains = relay.test' \
    'smtpd_timeout = 3s' \
    'smtpd_client_connection_count_limit = 5' \
    'smtpd_client_connection_rate_limit = 10' \
    'default_process_limit = 20' \
    '[transport]' \
    'relay.test = etrn-only:[127.0.0.1]:1'
srv_start s || e2e_abort "etrn-server starts"
LOG="$T/s/maillog"
QD="$T/s/queue"
queued() { find "$QD/incoming" "$QD/active" "$QD/deferred" "$QD/hold" -type f | wc -l; }
# sessions the server still has open (a refused connection logs no "connect from")
open_sessions() {
    echo $(( $(grep -c ': connect from' "$LOG") - $(grep -c ': disconnect from' "$LOG") ))
}
no_sessions() { [ "$(open_sessions)" -eq 0 ]; }
export T

cat >"$T/lib.py" <<'PYEOF'
import socket, time
PORT = 0
def conn(src, timeout=15):
    s = socket.create_connection(("127.0.0.1", PORT), timeout, (src, 0))
    return s, s.makefile("rb")
def reply(f):
    try:
        while True:
            line = f.readline()
            if not line:
                return "EOF"
            line = line.decode("latin-1").rstrip("\r\n")
            if len(line) < 4 or line[3] != "-":
                return line
    except socket.timeout:
        return "no reply"
def cmd(s, f, text):
    s.sendall(text.encode() + b"\r\n")
    return reply(f)
PYEOF

# 1. The attacker holds its 5 sessions and drips a byte every 0.5 s; its 6th
# connection is refused, the legitimate client is served meanwhile, and every
# dripped command is cut off after smtpd_timeout (3 s), not after 3 s of silence.
before=$(queued)
$PY - "$port" >"$T/drip" 2>&1 <<'PYEOF'
import sys, threading, time
import os
exec(open(os.environ["T"] + "/lib.py").read())
PORT = int(sys.argv[1])
held = []
for _ in range(5):
    s, f = conn("127.0.0.3")
    reply(f)
    held.append((s, f, time.time()))
stop = time.time() + 12
def drip():
    while time.time() < stop:
        for s, f, t in held:
            try:
                s.sendall(b"N")
            except OSError:
                pass
        time.sleep(0.5)
threading.Thread(target=drip, daemon=True).start()
s, f = conn("127.0.0.3")
print("6th from 127.0.0.3:", reply(f))
s.close()
s, f = conn("127.0.0.4")
codes = [reply(f)[:3]]
for c in ["EHLO legit.test", "MAIL FROM:<a@legit.test>", "RCPT TO:<u@relay.test>", "DATA",
          "Subject: legit\r\n\r\nhello\r\n.", "QUIT"]:
    codes.append(cmd(s, f, c)[:3])
print("127.0.0.4 while the attacker drips:", " ".join(codes))
worst = 0
for s, f, t in held:
    line = reply(f)
    worst = max(worst, time.time() - t)
    print("dripper:", line)
print("cut within smtpd_timeout + 2 s:", "yes" if worst < 5 else "no (%.1f s)" % worst)
PYEOF
check_eq "attacker at its limit: 421 4.7.0 for the 6th; the other client is served; drippers cut" \
    "$(cat "$T/drip")" \
    "6th from 127.0.0.3: 421 4.7.0 relay.test Error: too many connections from 127.0.0.3
127.0.0.4 while the attacker drips: 220 250 250 250 354 250 221
dripper: 421 4.4.2 relay.test Error: timeout exceeded
dripper: 421 4.4.2 relay.test Error: timeout exceeded
dripper: 421 4.4.2 relay.test Error: timeout exceeded
dripper: 421 4.4.2 relay.test Error: timeout exceeded
dripper: 421 4.4.2 relay.test Error: timeout exceeded
cut within smtpd_timeout + 2 s: yes"
check "log: Connection concurrency limit exceeded, as Postfix logs it" grep -q \
    'warning: Connection concurrency limit exceeded: 6 from unknown\[127.0.0.3\] for service smtp' "$LOG"
check_eq "only the legitimate message was queued" "$(queued)" $((before + 1))

# 2. A dripped DATA is cut off at smtpd_timeout plus what smtpd_min_data_rate
# (500 bytes/s) allows for the bytes sent, and nothing of it is queued.
before=$(queued)
$PY - "$port" >"$T/dripdata" 2>&1 <<'PYEOF'
import os, sys, threading, time
exec(open(os.environ["T"] + "/lib.py").read())
PORT = int(sys.argv[1])
s, f = conn("127.0.0.5")
reply(f)
for c in ["EHLO d.test", "MAIL FROM:<d@d.test>", "RCPT TO:<u@relay.test>"]:
    cmd(s, f, c)
print("DATA:", cmd(s, f, "DATA")[:3])
t0 = time.time()
def drip():
    for _ in range(40):
        try:
            s.sendall(b"Subject: drip\r\n")
        except OSError:
            return
        time.sleep(0.3)
threading.Thread(target=drip, daemon=True).start()
line = reply(f)
print("dripped DATA:", line)
print("cut within smtpd_timeout + 2 s:", "yes" if time.time() - t0 < 5 else "no")
PYEOF
check_eq "dripped DATA: 421 4.4.2 within the bound" "$(cat "$T/dripdata")" \
    "DATA: 354
dripped DATA: 421 4.4.2 relay.test Error: timeout exceeded
cut within smtpd_timeout + 2 s: yes"
check "log: timeout after DATA" grep -q 'timeout after DATA ([0-9]* bytes) from unknown\[127.0.0.5\]' "$LOG"
check_eq "dripped DATA: nothing queued" "$(queued)" "$before"

# 3. A client that sends faster than smtpd_min_data_rate keeps going past
# smtpd_timeout: 1000-byte lines every 0.4 s (2500 bytes/s) for about 5 s.
$PY - "$port" >"$T/slowdata" 2>&1 <<'PYEOF'
import os, sys, time
exec(open(os.environ["T"] + "/lib.py").read())
PORT = int(sys.argv[1])
s, f = conn("127.0.0.5")
reply(f)
for c in ["EHLO d.test", "MAIL FROM:<d@d.test>", "RCPT TO:<u@relay.test>", "DATA"]:
    cmd(s, f, c)
t0 = time.time()
s.sendall(b"Subject: steady\r\n\r\n")
for _ in range(13):
    time.sleep(0.4)
    s.sendall(b"x" * 998 + b"\r\n")
print("steady DATA over %s s:" % ("more than 5" if time.time() - t0 > 5 else "less than 5"),
      cmd(s, f, ".")[:3])
PYEOF
check_eq "DATA at 2500 bytes/s is not cut at smtpd_timeout" "$(cat "$T/slowdata")" \
    "steady DATA over more than 5 s: 250"

# 4. Connection rate: 10 per anvil_rate_time_unit from 127.0.0.6, the 11th refused;
# 127.0.0.2 (mynetworks = smtpd_client_event_limit_exceptions) is exempt from both limits.
$PY - "$port" >"$T/rate" 2>&1 <<'PYEOF'
import os, sys
exec(open(os.environ["T"] + "/lib.py").read())
PORT = int(sys.argv[1])
got = []
for _ in range(11):
    s, f = conn("127.0.0.6")
    got.append(reply(f))
    s.close()
print("127.0.0.6, 10 then the 11th:", " ".join(g[:3] for g in got[:10]), "|", got[10])
held = []
codes = []
for _ in range(12):
    s, f = conn("127.0.0.2")
    codes.append(reply(f)[:3])
    held.append(s)
print("127.0.0.2, 12 at once:", " ".join(codes))
PYEOF
check_eq "connection rate limit: 421 4.7.0; exceptions are exempt" "$(cat "$T/rate")" \
    "127.0.0.6, 10 then the 11th: 220 220 220 220 220 220 220 220 220 220 | 421 4.7.0 relay.test Error: too many connections from 127.0.0.6
127.0.0.2, 12 at once: 220 220 220 220 220 220 220 220 220 220 220 220"
check "log: Connection rate limit exceeded" grep -q \
    'warning: Connection rate limit exceeded: 11 from unknown\[127.0.0.6\] for service smtp' "$LOG"

# 5. default_process_limit (20) caps all sessions, whatever the mix of clients.
check "every earlier session has ended" wait_for 10 no_sessions
$PY - "$port" >"$T/total" 2>&1 <<'PYEOF'
import os, sys
exec(open(os.environ["T"] + "/lib.py").read())
PORT = int(sys.argv[1])
held, codes = [], []
for i in range(4):
    for _ in range(5):
        s, f = conn("127.0.0.%d" % (10 + i))
        codes.append(reply(f)[:3])
        held.append(s)
s, f = conn("127.0.0.14")
print("20 sessions:", " ".join(sorted(set(codes))), "| the 21st:", reply(f))
PYEOF
check_eq "default_process_limit: the 21st session is refused" "$(cat "$T/total")" \
    "20 sessions: 220 | the 21st: 421 4.3.2 relay.test Error: too many sessions, try again later"
check "log: process limit reached" grep -q \
    'warning: service "smtp" has reached its process limit "20": refusing unknown\[127.0.0.14\]' "$LOG"
$PY - "$port" >"$T/after" 2>&1 <<'PYEOF'
import os, sys
exec(open(os.environ["T"] + "/lib.py").read())
PORT = int(sys.argv[1])
s, f = conn("127.0.0.14")
print(reply(f)[:3])
PYEOF
check_eq "once they closed, a new client gets 220" "$(cat "$T/after")" 220

e2e_done
