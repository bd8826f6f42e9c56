#!/bin/sh
# server_local.sh - local Maildir delivery for mydestination: each recipient
# gets its own file in local_maildir_base/DOMAIN/USER/Maildir/new (made on
# first delivery for users local_recipient_maps lists), with Return-Path and Delivered-To prepended and LF line
# ends; tmp/ is left empty; Postfix-format "status=sent (delivered to maildir)".
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

port=$(free_port)
closed=$(free_port)
SPOOL="$T/relay/queue"
LOG="$T/relay/maillog"
MAIL="$T/vhosts"
mkdir "$MAIL" && chown nobody "$MAIL" 2>/dev/null
printf 'bob@local.test  OK\ncarol@local.test  OK\n' >"$T/local-users"

srv_conf relay "127.0.0.1:$port" "myhostname = relay.test" "mynetworks = 127.0.0.0/8" \
    "mydestination = local.test" "local_maildir_base = $MAIL" "home_mailbox = Maildir/" \
    "local_recipient_maps = texthash:$T/local-users" "relayhost = [127.0.0.1]:$closed"
check "etrn-server listens" srv_start relay || { cat "$T/relay.out"; e2e_done; exit 1; }

printf 'Subject: local one\r\nMessage-Id: <l1@src.test>\r\n\r\nfirst line\r\n.dot line\r\nlast line\r\n' >"$T/m1"
swaks --silent 2 --server "127.0.0.1:$port" --from alice@src.test --to Bob@Local.test,carol@local.test \
    --data "$T/m1" >/dev/null 2>&1
check "accepted" test $? -eq 0
check "log: removed" wait_for 10 grep -q ': removed$' "$LOG"
check_eq "log: two sent lines" \
    "$(grep -cE 'to=<(Bob@Local|carol@local)\.test>, relay=local, delay=[0-9.]+, delays=[0-9./]+, dsn=2\.0\.0, status=sent \(delivered to maildir\)$' "$LOG")" 2
bob=$(ls "$MAIL/local.test/bob/Maildir/new" 2>/dev/null)
check_eq "bob: one file in new/ (user folded to lower case)" "$(echo "$bob" | grep -c .)" 1
check_eq "carol: one file in new/" "$(ls "$MAIL/local.test/carol/Maildir/new" 2>/dev/null | wc -l | tr -d ' ')" 1
check_eq "tmp/ is empty" "$(ls "$MAIL/local.test/bob/Maildir/tmp" | wc -l | tr -d ' ')" 0
check "cur/ exists" test -d "$MAIL/local.test/bob/Maildir/cur"
f="$MAIL/local.test/bob/Maildir/new/$bob"
check_eq "file: first line Return-Path" "$(sed -n 1p "$f")" "Return-Path: <alice@src.test>"
check_eq "file: second line Delivered-To" "$(sed -n 2p "$f")" "Delivered-To: bob@local.test"
check "file: the original header" grep -qx 'Subject: local one' "$f"
check "file: body with a leading dot" grep -qx '.dot line' "$f"
check_eq "file: no CR left" "$(tr -cd '\r' <"$f" | wc -c | tr -d ' ')" 0
check "file name: time.MusecPpidQn.relay.test" sh -c "echo '$bob' | grep -qE '^[0-9]+\.M[0-9]+P[0-9]+Q[0-9]+\.relay\.test$'"

# a second message to bob: a second, distinct file
swaks --silent 2 --server "127.0.0.1:$port" --from alice@src.test --to bob@local.test --data "$T/m1" >/dev/null 2>&1
check "second message delivered" wait_for 10 sh -c "[ \$(ls '$MAIL/local.test/bob/Maildir/new' | wc -l) -eq 2 ]"

stop_pid "$SRV_PID"
check "no error lines in the log" grep_none 'error:\|panic:\|fatal:' "$LOG"
e2e_done
