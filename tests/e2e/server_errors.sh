#!/bin/sh
# server_errors.sh - Postfix's smtpd_soft_error_limit and smtpd_hard_error_limit:
# a client that keeps getting 4xx/5xx replies is slowed down past the soft
# limit (each reply held for smtpd_error_sleep_time) and disconnected at the
# hard limit with 421 4.7.0; an accepted message starts the count again;
# clients in smtpd_client_event_limit_exceptions are neither slowed nor cut
# off. An ETRN flood past etrn_rate_limit ends the same way. Past
# smtpd_junk_command_limit each NOOP, VRFY, ETRN or RSET counts as an error
# (a client cannot hold a session open with NOOPs); a message restarts that
# count too.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

port=$(free_port)
srv_conf s "127.0.0.1:$port" \
    'myhostname = relay.test' \
    'mynetworks = 127.0.0.2/32' \
    'relay_domains = relay.test' \
    'etrn_only_domains = relay.test' \
    'smtpd_etrn_restrictions = permit' \
    'etrn_rate_limit = 2' \
    'smtpd_soft_error_limit = 2' \
    'smtpd_hard_error_limit = 5' \
    'smtpd_error_sleep_time = 1s' \
    '[transport]' \
    'relay.test = etrn-only:[127.0.0.1]:1'
srv_start s || e2e_abort "etrn-server starts"
LOG="$T/s/maillog"

# errs.py SRC CMD... - send each CMD (one at a time, "MSG" = a whole message
# to relay.test) and print "CODE SECONDS" per reply (3-digit code, or EOF)
cat >"$T/errs.py" <<'PYEOF'
import socket, sys, time
port, src, cmds = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
s = socket.create_connection(("127.0.0.1", port), 20, (src, 0))
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if not line:
            return "EOF"
        line = line.decode("latin-1").rstrip("\r\n")
        if len(line) < 4 or line[3] != "-":
            return line
def send(text):
    t0 = time.time()
    s.sendall(text.encode() + b"\r\n")
    r = reply()
    return r, time.time() - t0
reply()
for c in cmds:
    if c == "MSG":
        for part in ("MAIL FROM:<a@src.test>", "RCPT TO:<x@relay.test>", "DATA"):
            send(part)
        r, dt = send("Subject: ok\r\n\r\nbody\r\n.")
    else:
        r, dt = send(c)
    print(r[:3], "%.1f" % dt, r if r.startswith("421") else "")
    if r == "EOF" or r.startswith("421"):
        break
PYEOF
errs() { $PY "$T/errs.py" "$port" "$@"; }
codes() { awk '{ printf "%s%s", sep, $1; sep = " " }'; }

# 1. Bad commands from a client outside the exceptions: the first two answered
# at once, the third and fourth held about a second each, and right after the
# fifth error's reply comes the 421 (Postfix sends it at the next command).
errs 127.0.0.3 "EHLO c.test" BOGUS1 BOGUS2 BOGUS3 BOGUS4 BOGUS5 BOGUS6 >"$T/out1"
check_eq "bad commands: 502 x5, then 421" "$(codes <"$T/out1")" "250 502 502 502 502 502 421"
check "the 421 text" grep -q '^421 .* 421 4.7.0 relay.test Error: too many errors$' "$T/out1"
check "first two errors answered at once (< 0.8 s)" \
    awk 'NR == 2 || NR == 3 { if ($2 >= 0.8) exit 1 }' "$T/out1"
check "third and fourth errors held for smtpd_error_sleep_time (>= 0.9 s)" \
    awk 'NR == 4 || NR == 5 { if ($2 < 0.9) exit 1 }' "$T/out1"
check "log: too many errors after UNKNOWN" \
    wait_for 5 grep -q 'too many errors after UNKNOWN from unknown\[127\.0\.0\.3\]' "$LOG"

# 2. An accepted message starts the count again: 4 errors, a message, 4 errors
errs 127.0.0.3 "EHLO c.test" B1 B2 B3 B4 MSG B5 B6 B7 B8 QUIT >"$T/out2"
check_eq "a message between errors: no 421" "$(codes <"$T/out2")" \
    "250 502 502 502 502 250 502 502 502 502 221"

# 3. A client in smtpd_client_event_limit_exceptions ($mynetworks) is neither
# slowed nor cut off
errs 127.0.0.2 "EHLO c.test" B1 B2 B3 B4 B5 B6 B7 B8 B9 B10 QUIT >"$T/out3"
check_eq "exempt client: ten 502s, no 421" "$(codes <"$T/out3")" \
    "250 502 502 502 502 502 502 502 502 502 502 221"
check "exempt client: no reply held (< 0.8 s each)" awk '{ if ($2 >= 0.8) exit 1 }' "$T/out3"

# 4. An ETRN flood past etrn_rate_limit: each refusal counts, the flood is cut
errs 127.0.0.4 "EHLO c.test" "ETRN relay.test" "ETRN relay.test" "ETRN relay.test" \
    "ETRN relay.test" "ETRN relay.test" "ETRN relay.test" "ETRN relay.test" \
    "ETRN relay.test" "ETRN relay.test" "ETRN relay.test" >"$T/out4"
check "ETRN flood ends with 421 4.7.0 too many errors" grep -q 'Error: too many errors' "$T/out4"
check_eq "ETRN flood: 2 started (253), 5 refused (458), then 421" "$(codes <"$T/out4")" \
    "250 253 253 458 458 458 458 458 421"

# 5. smtpd_junk_command_limit (3 here): the first three junk commands are free,
# each one after that is an error, and the hard limit (5) ends the session
jport=$(free_port)
srv_conf j "127.0.0.1:$jport" \
    'myhostname = relay.test' \
    'mynetworks = 127.0.0.2/32' \
    'relay_domains = relay.test' \
    'etrn_only_domains = relay.test' \
    'smtpd_junk_command_limit = 3' \
    'smtpd_hard_error_limit = 5' \
    'smtpd_error_sleep_time = 0s' \
    '[transport]' \
    'relay.test = etrn-only:[127.0.0.1]:1'
srv_start j || e2e_abort "etrn-server (junk limit) starts"
$PY "$T/errs.py" "$jport" 127.0.0.3 "EHLO c.test" NOOP RSET "VRFY x" NOOP NOOP NOOP NOOP NOOP \
    NOOP >"$T/out5"
check_eq "junk commands: 3 free, 5 counted as errors, then 421" "$(codes <"$T/out5")" \
    "250 250 250 252 250 250 250 250 250 421"
check "log: too many errors after NOOP" \
    wait_for 5 grep -q 'too many errors after NOOP from unknown\[127\.0\.0\.3\]' "$T/j/maillog"
# a message starts the junk count again: 3 free + 1 error, a message, 3 free + 4 errors
$PY "$T/errs.py" "$jport" 127.0.0.3 "EHLO c.test" NOOP NOOP NOOP NOOP MSG NOOP NOOP NOOP \
    NOOP NOOP NOOP NOOP QUIT >"$T/out6"
check_eq "a message between junk commands: no 421" "$(codes <"$T/out6")" \
    "250 250 250 250 250 250 250 250 250 250 250 250 250 221"
$PY "$T/errs.py" "$jport" 127.0.0.2 "EHLO c.test" NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP \
    QUIT >"$T/out7"
check_eq "exempt client: nine NOOPs, no 421" "$(codes <"$T/out7")" \
    "250 250 250 250 250 250 250 250 250 250 221"

e2e_done
