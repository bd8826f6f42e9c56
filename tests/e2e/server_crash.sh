#!/bin/sh
# server_crash.sh - 20 cycles of: load on etrn-server, kill -9 at a random
# moment, restart. Every message that got "250 2.0.0 Ok: queued as ID" is in
# the queue exactly once and intact (each carries a unique token; its stored
# content is the Received: header plus exactly what the client sent), no
# temporary file survives a restart, every queue file is complete, and
# corrupt/ stays empty. E2E_CRASH_SEED=N repeats a run's kill delays.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

Q="$BIN_DIR/etrn-queue"
CYCLES=${E2E_CRASH_CYCLES:-20}
SESSIONS=4
port=$(free_port)
SPOOL="$T/relay/queue"
CONF="$T/relay/server.ini"
SEED=${E2E_CRASH_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "kill delays seeded with $SEED (E2E_CRASH_SEED=$SEED repeats them)"

srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" "mynetworks = 127.0.0.0/8" \
    "relay_domains = site.test" "etrn_only_domains = site.test" \
    "relayhost = [127.0.0.1]:1" "[transport]" "site.test = smtp:[127.0.0.1]:1"

# load.py PORT SESSIONS CYCLE ACKFILE SECS - SESSIONS sessions send messages
# (pipelined MAIL/RCPT/DATA) until the server goes away or SECS pass; every
# "250 2.0.0 Ok: queued as ID" is appended to ACKFILE as "TOKEN ID" at once.
# The message of a token is a function of the token (message() below).
cat >"$T/msg.py" <<'PYEOF'
import hashlib

def message(token):
    """The exact bytes a client sends for token (before dot-stuffing)."""
    h = hashlib.sha256(token.encode()).digest()
    lines = [b"From: <load@crash.test>", b"To: <rcpt@site.test>", b"Subject: crash test",
             b"Message-Id: <" + token.encode() + b"@crash.test>", b""]
    for i in range(2 + h[0] % 59):
        d = hashlib.sha256(h + bytes([i])).hexdigest().encode()
        line = (d + b" " + d)[:h[i % 32] % 100]
        if i % 7 == 3:
            line = b"." + line      # dot-stuffed on the wire, stored unstuffed
        lines.append(line)
    return b"\r\n".join(lines) + b"\r\n"
PYEOF
cat >"$T/load.py" <<'PYEOF'
import socket, sys, threading, time
sys.path.insert(0, sys.argv[6])
from msg import message
port, nsess, cycle, ackfile, secs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
deadline = time.time() + secs
lock = threading.Lock()
ack = open(ackfile, "a")
inflight = [0]    # messages whose end of DATA got no reply

def session(k):
    try:
        s = socket.create_connection(("127.0.0.1", port), 5)
        s.settimeout(5)
        f = s.makefile("rb")
        def reply():
            while True:
                line = f.readline()
                if not line.endswith(b"\r\n"):
                    raise EOFError
                if line[3:4] != b"-":
                    return line.decode("latin-1").rstrip("\r\n")
        reply()
        s.sendall(b"EHLO crash.test\r\n")
        reply()
        i = 0
        while time.time() < deadline:
            token = "TOK%02dx%dx%05dZ" % (cycle, k, i)
            i += 1
            body = message(token).replace(b"\r\n.", b"\r\n..")
            s.sendall(b"MAIL FROM:<load@crash.test>\r\nRCPT TO:<rcpt@site.test>\r\nDATA\r\n")
            codes = [reply()[:3] for _ in range(3)]
            if codes != ["250", "250", "354"]:
                return
            with lock:
                inflight[0] += 1
            s.sendall(body + b".\r\n")
            r = reply()
            with lock:
                inflight[0] -= 1
            if r.startswith("250 2.0.0 Ok: queued as "):
                with lock:
                    ack.write("%s %s\n" % (token, r.split()[-1]))
                    ack.flush()
            elif not r.startswith("4"):
                return
    except (OSError, EOFError):
        pass

threads = [threading.Thread(target=session, args=(k,)) for k in range(nsess)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(inflight[0])
PYEOF

# check.py SPOOL ACKFILE - after a restart: print "name count" lines (see below)
# and the details of any problem on stderr.
cat >"$T/check.py" <<'PYEOF'
import os, re, sys, time, collections
sys.path.insert(0, sys.argv[3])
from msg import message
spool, ackfile = sys.argv[1], sys.argv[2]
DIRS = ("incoming", "active", "deferred", "hold")
TOKEN = re.compile(rb"TOK\d\dx\dx\d{5}Z")

def listing():
    return sorted((d, n) for d in DIRS for n in os.listdir(os.path.join(spool, d)))

# the queue manager may move files while we look: two equal scans in a row
cur = listing()
for _ in range(50):
    time.sleep(0.05)
    nxt = listing()
    if nxt == cur:
        break
    cur = nxt

def parse(data):
    lines, pos = [], 0
    while True:
        nl = data.index(b"\n", pos)
        lines.append(data[pos:nl].decode("latin-1"))
        pos = nl + 1
        if lines[-1] == "data":
            break
    if lines[0] != "ETRNKIT-QUEUE 1":
        raise ValueError("bad magic")
    hdr = dict(l.partition(" ")[::2] for l in lines[1:7])
    nrcpt = int(hdr["rcpts"])
    if nrcpt != 1 or not lines[7].startswith("R ") or not lines[7].endswith(" rcpt@site.test") \
            or lines[8] != "data" or hdr["sender"] != "load@crash.test":
        raise ValueError("bad envelope")
    content = data[pos:]
    if int(hdr["size"]) != len(content):
        raise ValueError("size field %s, %d content bytes" % (hdr["size"], len(content)))
    return hdr, content

problems = collections.Counter()
def bad(kind, what):
    problems[kind] += 1
    print("%s: %s" % (kind, what), file=sys.stderr)

where = collections.defaultdict(list)    # queue ID -> dirs
intact = {}                              # queue ID -> token when intact
token_files = collections.Counter()
for d, name in cur:
    try:
        data = open(os.path.join(spool, d, name), "rb").read()
    except FileNotFoundError:
        bad("vanished", "%s/%s" % (d, name))
        continue
    where[name].append(d)
    try:
        hdr, content = parse(data)
    except (ValueError, KeyError, IndexError) as e:
        bad("incomplete", "%s/%s: %s" % (d, name, e))
        continue
    if hdr["id"] != name:
        bad("incomplete", "%s/%s: id field %s" % (d, name, hdr["id"]))
    toks = TOKEN.findall(content)
    for t in set(toks):
        token_files[t] += 1
    if len(toks) != 1:
        bad("token_count", "%s/%s: tokens %s" % (d, name, toks))
        continue
    token = toks[0].decode()
    # stored = "Received: ..." (folded onto tab-led lines), then what was sent
    m = re.match(rb"Received: [^\r\n]*\r\n(?:\t[^\r\n]*\r\n)*", content)
    if not m or content[m.end():] != message(token):
        bad("content", "%s/%s (%s) differs from what was sent" % (d, name, token))
        continue
    intact[name] = token

for t, n in token_files.items():
    if n > 1:
        bad("token_in_several_files", "%s in %d files" % (t.decode(), n))
acked = 0
for line in open(ackfile):
    token, qid = line.split()
    acked += 1
    dirs = where.get(qid, [])
    if not dirs:
        bad("acked_missing", "%s (%s) is not in the queue" % (qid, token))
    elif len(dirs) > 1:
        bad("acked_twice", "%s (%s) is in %s" % (qid, token, dirs))
    elif intact.get(qid) != token:
        bad("acked_not_intact", "%s should hold %s" % (qid, token))
print("acked", acked)
print("queued", len(cur))
print("tmp", len(os.listdir(os.path.join(spool, "tmp"))))
print("corrupt", len(os.listdir(os.path.join(spool, "corrupt"))))
for k in ("vanished", "incomplete", "token_count", "content", "token_in_several_files",
          "acked_missing", "acked_twice", "acked_not_intact"):
    print(k, problems[k])
PYEOF

# random kill delays, 0.05 to 0.8 s after the load starts
$PY -c "import random; r = random.Random($SEED); print(' '.join('%.3f' % r.uniform(0.05, 0.8) for _ in range($CYCLES)))" \
    >"$T/delays"

start_server() {
    srv_start relay
    srv_rc=$?
    SPID=$SRV_PID
    return $srv_rc
}

: >"$T/acks"
start_server || { check "server starts" false; e2e_done; exit 1; }
cycle=0
fails=0
prev_acked=0
for delay in $(cat "$T/delays"); do
    cycle=$((cycle + 1))
    $PY "$T/load.py" "$port" "$SESSIONS" "$cycle" "$T/acks" 15 "$T" >>"$T/inflight" &
    LPID=$!
    E2E_PIDS="$E2E_PIDS $LPID"
    sleep "$delay"
    kill -9 "$SPID"
    wait "$SPID" 2>/dev/null
    wait "$LPID"   # the client ends when its connections break (socket timeouts 5 s)
    if ! start_server; then
        check "cycle $cycle: server restarts after kill -9" false
        break
    fi
    $PY "$T/check.py" "$SPOOL" "$T/acks" "$T" >"$T/check.$cycle" 2>"$T/problems.$cycle"
    val() { sed -n "s/^$1 //p" "$T/check.$cycle"; }
    acked=$(val acked)
    got="tmp=$(val tmp) corrupt=$(val corrupt) incomplete=$(val incomplete) vanished=$(val vanished)"
    got="$got token_count=$(val token_count) content=$(val content)"
    got="$got token_in_several_files=$(val token_in_several_files)"
    got="$got acked_missing=$(val acked_missing) acked_twice=$(val acked_twice)"
    got="$got acked_not_intact=$(val acked_not_intact)"
    want="tmp=0 corrupt=0 incomplete=0 vanished=0 token_count=0 content=0"
    want="$want token_in_several_files=0 acked_missing=0 acked_twice=0 acked_not_intact=0"
    echo "cycle $cycle: kill after ${delay}s; $((acked - prev_acked)) new 250s," \
        "$acked acknowledged in all, $(val queued) messages in the queue"
    prev_acked=$acked
    if [ "$got" != "$want" ]; then
        fails=$((fails + 1))
        check_eq "cycle $cycle: queue after restart" "$got" "$want"
        head -n 10 "$T/problems.$cycle"
    fi
done
check_eq "$CYCLES cycles of kill -9 and restart" "$cycle" "$CYCLES"
check_eq "every cycle: acknowledged messages there once and intact, no temp or partial files" \
    "$fails" 0
acked=$(wc -l <"$T/acks" | tr -d ' ')
check "the kills hit a loaded server (more than 100 messages acknowledged)" test "$acked" -gt 100
check "the kills hit messages in flight (data sent, no reply)" \
    test "$(awk '{ n += $1 } END { print n + 0 }' "$T/inflight")" -gt 0
queued=$(sed -n 's/^queued //p' "$T/check.$cycle")
check "queue holds at least the acknowledged messages" test "$queued" -ge "$acked"
check_eq "etrn-queue -p lists the whole queue" \
    "$("$Q" -c "$CONF" -p | tail -n 1 | sed -n 's/^-- [0-9]* Kbytes in \([0-9]*\) Requests*\.$/\1/p')" \
    "$queued"
check "log: recovery after a kill -9 leaves no error" grep_none 'queue recovery:' "$T/relay/maillog"
check "server still running after the last restart" alive "$SPID"

e2e_done
