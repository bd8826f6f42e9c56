#!/bin/sh
# server_smtp_lf.sh - the SMTP client sends every content line with CRLF, even
# when the queue file holds bare LF line ends (a file made by the queue API
# from LF text): the receiver sees the end of data and each line, dot-stuffed,
# and the message is delivered, not left hanging until smtp_data_done_timeout.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

INJ="$TOOLS_DIR/queue_inject"
port=$(free_port)
sink=$(free_port)
mkdir -p "$T/dump" && chown nobody "$T/dump"
start_bg sink /usr/sbin/smtp-sink -u nobody -d "$T/dump/" "127.0.0.1:$sink" 100
check "smtp-sink listens" wait_port "$sink" 10 || e2e_abort
srv_conf s "127.0.0.1:$port" 'relay_domains = site.test' 'smtp_data_done_timeout = 60s' \
    '[transport]' "site.test = smtp:[127.0.0.1]:$sink"
mkdir -p "$T/s/queue" && chown nobody "$T/s/queue"
printf 'From: a@src.test\nSubject: lf only\n\n.starts with a dot\nlast line\n' >"$T/msg"
chmod 644 "$T/msg"
setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$INJ" -q "$T/s/queue" -f a@src.test -c "src.test[127.0.0.1]" -m deferred u@site.test <"$T/msg" >"$T/id"
check "queue_inject made the message" test -s "$T/id"
srv_start s || e2e_abort "etrn-server starts"
srv_queue s -f >/dev/null 2>&1
sent() { grep -q 'to=<u@site.test>.*status=sent' "$T/s/maillog"; }
check "delivered within 20 s (the end of data was seen)" wait_for 20 sent
check_eq "one message at the sink" "$(find "$T/dump" -type f | wc -l | tr -d ' ')" 1
f=$(find "$T/dump" -type f | head -n 1)
check "the dot-stuffed line arrived whole" grep -qx '\.starts with a dot' "$f"
check "the last line arrived" grep -qx 'last line' "$f"
e2e_done
