#!/bin/sh
# server_diskfull.sh - etrn-server's queue on a 2 MB tmpfs that fills up: the
# server answers 452 4.3.1 (at MAIL, DATA or the end of DATA), never 250 for a
# message it could not store, leaves no partial file in tmp/ or the queue,
# stays up and in sync, and accepts mail again once space is freed.
# Needs permission to mount a tmpfs (root); otherwise SKIP.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

port=$(free_port)
FS="$T/fs"
SPOOL="$FS/spool"
CONF="$T/relay/server.ini"

mkdir "$FS"
if ! mount -t tmpfs -o size=2m,mode=0755 tmpfs "$FS" 2>"$T/mount.err"; then
    skip "cannot mount a tmpfs here ($(cat "$T/mount.err")): disk-full test not run"
    e2e_done
    exit $?
fi
# the server is stopped (e2e_cleanup) before this runs, so the mount is not busy
E2E_CLEANUP_HOOK="umount '$FS' 2>/dev/null || umount -l '$FS'"

srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" "queue_directory = $SPOOL" \
    "mynetworks = 127.0.0.0/8" \
    "relay_domains = site.test" "etrn_only_domains = site.test" \
    "relayhost = [127.0.0.1]:1" "[transport]" "site.test = smtp:[127.0.0.1]:1"

check "server listens" srv_start relay || e2e_abort
SPID=$SRV_PID

# Ballast takes half the filesystem; removing it later frees space without
# touching the queue.
dd if=/dev/zero of="$FS/ballast" bs=64k count=16 2>/dev/null
check "ballast written" test -s "$FS/ballast"

# send.py PORT PREFIX N KB - one session; N messages of about KB kilobytes
# with tokens PREFIX-0.. (the token is the whole Message-Id), stopping after
# 3 refusals in a row. Prints per message "250 TOKEN ID", or "REFUSED TOKEN
# STAGE REPLY" with STAGE MAIL, RCPT, DATA or END; finally "NOOP REPLY".
cat >"$T/send.py" <<'PYEOF'
import socket, sys
port, prefix, n, kb = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def message(token, kb):
    line = (token + " ").encode() * (76 // (len(token) + 1))
    head = b"From: <a@full.test>\r\nTo: <rcpt@site.test>\r\nMessage-Id: <" + token.encode() + b">\r\n\r\n"
    return head + (line[:-1] + b"\r\n") * (kb * 1024 // (len(line) + 1))

s = socket.create_connection(("127.0.0.1", port), 10)
s.settimeout(10)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if not line.endswith(b"\r\n"):
            print("EOF"); sys.exit(0)
        if line[3:4] != b"-":
            return line.decode("latin-1").rstrip("\r\n")
reply()
s.sendall(b"EHLO full.test\r\n"); reply()
refused = 0
for i in range(n):
    token = "%s-%d" % (prefix, i)
    stage, r = None, None
    for st, cmd in (("MAIL", b"MAIL FROM:<a@full.test>\r\n"), ("RCPT", b"RCPT TO:<rcpt@site.test>\r\n"),
                    ("DATA", b"DATA\r\n")):
        s.sendall(cmd)
        r = reply()
        if r[0] not in "23":
            stage = st
            break
    if stage is None:
        s.sendall(message(token, kb) + b".\r\n")
        r = reply()
        if not r.startswith("250"):
            stage = "END"
    if stage is None:
        print("250 %s %s" % (token, r.split()[-1]))
        refused = 0
    else:
        print("REFUSED %s %s %s" % (token, stage, r))
        if stage != "END":
            s.sendall(b"RSET\r\n"); reply()
        refused += 1
        if refused == 3:
            break
s.sendall(b"NOOP\r\n")
print("NOOP " + reply())
s.sendall(b"QUIT\r\n"); reply()
PYEOF

# check.py SPOOL - every queue file complete; prints "files N", "tmp N",
# "corrupt N", "incomplete N", then "TOKEN ID SIZE-OK" per parseable file.
cat >"$T/check.py" <<'PYEOF'
import os, re, sys
spool = sys.argv[1]
files, incomplete, out = 0, 0, []
for d in ("incoming", "active", "deferred", "hold"):
    for name in sorted(os.listdir(os.path.join(spool, d))):
        files += 1
        data = open(os.path.join(spool, d, name), "rb").read()
        hdr_end = data.find(b"\ndata\n")
        m = re.search(rb"\nsize (\d+)\n", data[:hdr_end + 1])
        if data[:16] != b"ETRNKIT-QUEUE 1\n" or hdr_end < 0 or not m:
            incomplete += 1
            continue
        content = data[hdr_end + 6:]
        tok = re.search(rb"\r\nMessage-Id: <([^>]*)>\r\n", content)
        ok = int(m.group(1)) == len(content) and content.endswith(b"\r\n")
        if not ok or not tok:
            incomplete += 1
            continue
        # the body repeats the token: every body line must be intact
        body = content.split(b"\r\n\r\n", 1)[1]
        t = tok.group(1)
        good = all(l and set(l.split(b" ")) == {t} for l in body.split(b"\r\n")[:-1])
        out.append("%s %s %s" % (t.decode(), name, "intact" if good else "damaged"))
print("files", files)
print("tmp", len(os.listdir(os.path.join(spool, "tmp"))))
print("corrupt", len(os.listdir(os.path.join(spool, "corrupt"))))
print("incomplete", incomplete)
print("\n".join(out))
PYEOF

# 1. fill the disk: up to 30 messages of 150 KB into about 1 MB of free space
$PY "$T/send.py" "$port" full 30 150 >"$T/fill" 2>&1
cut -c1-100 "$T/fill"
n250=$(grep -c '^250 ' "$T/fill")
nref=$(grep -c '^REFUSED ' "$T/fill")
check "some messages accepted before the disk filled" test "$n250" -ge 2
check "the full disk refused messages" test "$nref" -ge 1
check_eq "every refusal is 452 4.3.1" \
    "$(grep '^REFUSED ' "$T/fill" | grep -vc '^REFUSED [^ ]* [A-Z]* 452 4\.3\.1 ')" 0
check "refused with 452 4.3.1 at MAIL, DATA or the end of DATA" \
    grep -qE '^REFUSED full-[0-9]+ (MAIL|DATA|END) 452 4\.3\.1 ' "$T/fill"
check_eq "session in sync after the refusals: NOOP 250" "$(sed -n 's/^NOOP //p' "$T/fill" | cut -c1-3)" 250
check "log names the cause" grep -q 'No space left on device' "$T/relay/maillog"

$PY "$T/check.py" "$SPOOL" >"$T/after-fill"
val() { sed -n "s/^$1 //p" "$T/after-fill"; }
check_eq "no partial file in tmp/" "$(val tmp)" 0
check_eq "nothing moved to corrupt/" "$(val corrupt)" 0
check_eq "no partial or damaged file in the queue" "$(val incomplete)" 0
check_eq "the queue holds exactly the accepted messages" "$(val files)" "$n250"
check_eq "every 250 is a stored, intact message with that ID" \
    "$(grep '^250 ' "$T/fill" | awk '{ print $2, $3, "intact" }' | sort)" \
    "$(grep '^full-' "$T/after-fill" | sort)"
check_eq "no refused message was stored" \
    "$(grep '^REFUSED ' "$T/fill" | awk '{ print $2 }' | while read -r t; do grep -c "^$t " "$T/after-fill"; done | sort -u)" \
    "0"
check "server still running on a full disk" alive "$SPID"

# 2. a small message on the full disk: 452 or stored, never a 250 without a file
$PY "$T/send.py" "$port" tiny 1 1 >"$T/tiny"
check "full disk, 1 KB message: 250 or 452 4.3.1" grep -qE '^(250 |REFUSED tiny-0 [A-Z]+ 452 4\.3\.1 )' "$T/tiny"
$PY "$T/check.py" "$SPOOL" >"$T/after-tiny"
if grep -q '^250 ' "$T/tiny"; then
    check "full disk, 1 KB message: its 250 means it is stored" grep -q '^tiny-0 .* intact$' "$T/after-tiny"
else
    check_eq "full disk, 1 KB message refused: nothing stored" "$(grep -c '^tiny-0 ' "$T/after-tiny")" 0
fi
check_eq "full disk: still no partial file in tmp/" "$(sed -n 's/^tmp //p' "$T/after-tiny")" 0

# 3. free space: the same server takes mail again
rm -f "$FS/ballast"
$PY "$T/send.py" "$port" again 3 150 >"$T/again"
check_eq "after freeing space: three 250s" "$(grep -c '^250 ' "$T/again")" 3
$PY "$T/check.py" "$SPOOL" >"$T/after-again"
check_eq "after freeing space: the three are stored and intact" \
    "$(grep '^250 ' "$T/again" | awk '{ print $2, $3, "intact" }' | sort)" \
    "$(grep '^again-' "$T/after-again" | sort)"
check_eq "after freeing space: no partial file anywhere" \
    "$(sed -n 's/^\(tmp\|incomplete\|corrupt\) //p' "$T/after-again" | tr '\n' ' ')" "0 0 0 "
check "server still running" alive "$SPID"
check_eq "server printed nothing" "$(cat "$T/relay.out")" ""

e2e_done
