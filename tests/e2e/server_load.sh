#!/bin/sh
# server_load.sh - Postfix's smtp-source sends 5,000 messages of 1 KB over 10
# sessions to etrn-server: every one is in the queue exactly once with the
# right envelope and intact content, the log has one line per message, and
# etrn-queue -p lists all 5,000 with the right summary line.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

Q="$BIN_DIR/etrn-queue"
N=5000
SESSIONS=10
port=$(free_port)
SPOOL="$T/relay/queue"
CONF="$T/relay/server.ini"

if [ ! -x /usr/sbin/smtp-source ]; then
    skip "/usr/sbin/smtp-source missing (Debian package postfix)"
    e2e_done
    exit $?
fi

# The test domain waits for ETRN (etrn_only_domains) and, should anything try
# to deliver it anyway, its next hop and the relayhost are a closed loopback port.
srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" "mynetworks = 127.0.0.0/8" \
    "relay_domains = site.test" "etrn_only_domains = site.test" \
    "relayhost = [127.0.0.1]:1" "smtpd_client_connection_count_limit = 50" "[transport]" \
    "site.test = smtp:[127.0.0.1]:1"

check "server listens" srv_start relay || e2e_abort
SPID=$SRV_PID

t0=$($PY -c 'import time; print(time.time())')
# bounded: smtp-source gives up on a stalled server after its own timeouts
/usr/sbin/smtp-source -s "$SESSIONS" -m "$N" -l 1024 -f sender@load.test -t rcpt@site.test \
    "127.0.0.1:$port" >"$T/smtp-source.out" 2>&1
rc=$?
t1=$($PY -c 'import time; print(time.time())')
check_eq "smtp-source: exit 0" "$rc" 0
check_eq "smtp-source: no complaints" "$(cat "$T/smtp-source.out")" ""
echo "load: $N messages over $SESSIONS sessions in $($PY -c "print('%.2f' % ($t1 - $t0))") s"

# Inspect every queue file (format: server-lite/queue.c). A message may be in
# incoming/, active/ or deferred/ (the queue manager moves them); scan until two
# scans in a row see the same files, so a move during a scan is not miscounted.
cat >"$T/scan.py" <<'PYEOF'
import os, re, sys, time, collections
spool, want_sender, want_rcpt = sys.argv[1:4]
DIRS = ("incoming", "active", "deferred", "hold")

def listing():
    return sorted((d, n) for d in DIRS for n in os.listdir(os.path.join(spool, d)))

prev = listing()
for _ in range(50):
    time.sleep(0.1)
    cur = listing()
    if cur == prev:
        break
    prev = cur

def parse(path):
    data = open(path, "rb").read()
    lines, pos = [], 0
    while True:
        nl = data.index(b"\n", pos)
        line = data[pos:nl].decode("latin-1")
        pos = nl + 1
        lines.append(line)
        if line == "data":
            break
    if lines[0] != "ETRNKIT-QUEUE 1":
        raise ValueError("bad magic")
    hdr = {}
    for l in lines[1:7]:
        k, _, v = l.partition(" ")
        hdr[k] = v
    nrcpt = int(hdr["rcpts"])
    rcpts = [l.rsplit(" ", 1)[1] for l in lines[7:7 + nrcpt] if l.startswith("R ")]
    if len(rcpts) != nrcpt or lines[7 + nrcpt] != "data":
        raise ValueError("bad recipient records")
    content = data[pos:]
    if int(hdr["size"]) != len(content):
        raise ValueError("size %s but %d content bytes" % (hdr["size"], len(content)))
    return hdr, rcpts, content

stats = collections.Counter()
msgids = collections.Counter()
bodies = collections.Counter()
total = 0
for d, name in cur:
    stats["files"] += 1
    try:
        hdr, rcpts, content = parse(os.path.join(spool, d, name))
    except (ValueError, KeyError, IndexError) as e:
        stats["unparseable"] += 1
        print("unparseable %s/%s: %s" % (d, name, e), file=sys.stderr)
        continue
    total += len(content)
    if hdr["id"] != name:
        stats["id_mismatch"] += 1
    if hdr["sender"] != want_sender:
        stats["wrong_sender"] += 1
    if rcpts != [want_rcpt]:
        stats["wrong_rcpts"] += 1
    head, sep, body = content.partition(b"\r\n\r\n")
    if not head.startswith(b"Received: from ") or not sep:
        stats["no_received"] += 1
    m = re.search(rb"\r\nMessage-Id: (<[^>]*>)\r\n", head + b"\r\n", re.I)
    msgids[m.group(1) if m else None] += 1
    bodies[body] += 1
print("files", stats["files"])
for k in ("unparseable", "id_mismatch", "wrong_sender", "wrong_rcpts", "no_received"):
    print(k, stats[k])
print("distinct_message_ids", len([k for k in msgids if k is not None]))
body, n = bodies.most_common(1)[0] if bodies else (b"", 0)
print("distinct_bodies", len(bodies))
print("body_bytes_ge_1024", int(len(body) >= 1024))
print("kbytes", total // 1024)
print("dirs", " ".join("%s=%d" % (d, sum(1 for x in cur if x[0] == d)) for d in DIRS))
PYEOF
$PY "$T/scan.py" "$SPOOL" sender@load.test rcpt@site.test >"$T/scan" 2>"$T/scan.err"
val() { sed -n "s/^$1 //p" "$T/scan"; }
echo "queue: $(val dirs)"
check_eq "queue: $N message files" "$(val files)" "$N"
check_eq "queue: every file parses, size field = content length" "$(val unparseable)" 0
check_eq "queue: file name = id field" "$(val id_mismatch)" 0
check_eq "queue: sender sender@load.test in every file" "$(val wrong_sender)" 0
check_eq "queue: one recipient rcpt@site.test in every file" "$(val wrong_rcpts)" 0
check_eq "queue: Received: header first in every message" "$(val no_received)" 0
check_eq "queue: $N distinct Message-Ids (nothing stored twice)" "$(val distinct_message_ids)" "$N"
check_eq "queue: one body, identical in all messages" "$(val distinct_bodies)" 1
check_eq "queue: body at least 1024 bytes (smtp-source -l 1024)" "$(val body_bytes_ge_1024)" 1
[ -s "$T/scan.err" ] && head -n 5 "$T/scan.err"

check_eq "log: one from= line per message" \
    "$(grep -c ': from=<sender@load.test>, size=[0-9]*, nrcpt=1 (queue active)$' "$T/relay/maillog")" "$N"
check_eq "log: no error, fatal or panic lines" "$(grep -cE ': (error|fatal|panic): ' "$T/relay/maillog")" 0
check_eq "no temporary file left in tmp/" "$(srv_queued relay tmp)" 0

# etrn-queue -p: every message listed once, summary line with the total size
"$Q" -c "$CONF" -p >"$T/mailq" 2>"$T/mailq.err"
check_eq "etrn-queue -p: exit 0" "$?" 0
check_eq "etrn-queue -p: $N queue ID lines" \
    "$(grep -cE '^[0-9A-F]+[*!]? +[0-9]+ [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} +sender@load.test$' "$T/mailq")" \
    "$N"
check_eq "etrn-queue -p: $N distinct IDs" \
    "$(grep -oE '^[0-9A-F]+' "$T/mailq" | sort -u | wc -l | tr -d ' ')" "$N"
check_eq "etrn-queue -p: the IDs are the queue files" \
    "$(grep -oE '^[0-9A-F]+' "$T/mailq" | sort | cksum)" \
    "$(ls "$SPOOL/incoming" "$SPOOL/active" "$SPOOL/deferred" | grep -E '^[0-9A-F]+$' | sort | cksum)"
check_eq "etrn-queue -p: $N recipient lines" "$(grep -c '^  *rcpt@site.test$' "$T/mailq")" "$N"
check_eq "etrn-queue -p: summary line" "$(tail -n 1 "$T/mailq")" \
    "-- $(val kbytes) Kbytes in $N Requests."

check "server still running" alive "$SPID"
kill -TERM "$SPID"
wait "$SPID"
check_eq "SIGTERM: exit 0" "$?" 0
check_eq "server printed nothing" "$(cat "$T/relay.out")" ""

e2e_done
