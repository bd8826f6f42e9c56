#!/bin/sh
# server_rcpt.sh - unknown recipients are refused at RCPT, never queued and
# bounced later: relay_recipient_maps (user@domain, @domain, case-insensitive),
# local_recipient_maps empty (only users that already have a Maildir; none is
# made for anyone else), local_recipient_maps set (a listed user gets a Maildir
# on delivery), local parts delivery would refuse (501 at RCPT), the NOQUEUE
# log lines, SIGHUP reloading the maps, and --check-config naming the map
# file and line of a bad entry.
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

SRV="$BIN_DIR/etrn-server"
Q="$BIN_DIR/etrn-queue"
port=$(free_port)
closed=$(free_port)
SPOOL="$T/relay/queue"
LOG="$T/relay/maillog"
MAIL="$T/vhosts"
CONF="$T/relay/server.ini"
mkdir -p "$MAIL/local.test/old/Maildir/new" "$MAIL/local.test/old/Maildir/cur" \
    "$MAIL/local.test/old/Maildir/tmp"
chown -R nobody "$MAIL" 2>/dev/null

printf '# relay.test users\nann@relay.test  OK\nBob@Relay.Test  OK\n@whole.test  OK\n' >"$T/relay-users"
srv_conf relay "127.0.0.1:$port" "myhostname = mx.test" "mynetworks = 10.9.9.0/24" \
    "relay_domains = relay.test whole.test open.test" \
    "relay_recipient_maps = texthash:$T/relay-users" \
    "etrn_only_domains = relay.test whole.test open.test" "mydestination = local.test" \
    "local_maildir_base = $MAIL" "relayhost = [127.0.0.1]:$closed"

# --check-config: good maps pass; a bad line names the map file and line; a missing file its key
out=$("$SRV" -c "$CONF" --check-config 2>&1)
check_eq "--check-config with good maps: exit 0, silent" "$?:$out" "0:"
printf 'ann@relay.test OK\n\nbad@exa_mple.test OK\n' >"$T/bad-users"
sed "s|^relay_recipient_maps = .*|relay_recipient_maps = $T/bad-users|" "$CONF" >"$T/bad.ini"
out=$("$SRV" -c "$T/bad.ini" --check-config 2>&1); rc=$?
check_eq "--check-config, bad map line: exit 78" "$rc" 78
check_eq "--check-config, bad map line: file and line named" "$out" \
    "etrn-server: $T/bad-users:3: [main] relay_recipient_maps: \"bad@exa_mple.test\": not a valid address: bad domain"
printf 'ann@relay.test\n' >"$T/novalue-users"
sed "s|^relay_recipient_maps = .*|relay_recipient_maps = hash:$T/novalue-users|" "$CONF" >"$T/bad2.ini"
out=$("$SRV" -c "$T/bad2.ini" --check-config 2>&1)
check_eq "--check-config, line without a value" "$out" \
    "etrn-server: $T/novalue-users:1: [main] relay_recipient_maps: \"ann@relay.test\": expected \"address  value\""
sed "s|^relay_recipient_maps = .*|local_recipient_maps = $T/no-such-file|" "$CONF" >"$T/bad3.ini"
line=$(grep -n '^local_recipient_maps' "$T/bad3.ini" | cut -d: -f1)
out=$("$SRV" -c "$T/bad3.ini" --check-config 2>&1); rc=$?
check_eq "--check-config, unreadable map: exit 78, config line and file named" "$rc:$out" \
    "78:etrn-server: $T/bad3.ini:$line: [main] local_recipient_maps: cannot open $T/no-such-file: No such file or directory"

check "etrn-server listens" srv_start relay || { cat "$T/relay.out"; e2e_done; exit 1; }

# rcpt FROM RCPT... - one session: MAIL, each RCPT, DATA, QUIT; the dialogue as
# a C:/S: transcript, in order, with the queue ID as QID
rcpt() {
    rcpt_from=$1; shift
    rcpt_n=$#
    for r in "$@"; do set -- "$@" "RCPT TO:<$r>"; done
    shift "$rcpt_n"
    smtp_client -c -e client.test "$port" "MAIL FROM:<$rcpt_from>" "$@" \
        DATA 'Subject: rcpt test' '' hello . QUIT | sed 's/queued as [0-9A-F]*$/queued as QID/'
}

got=$(rcpt sender@src.test ann@relay.test ANN@RELAY.TEST bob@relay.test \
    eve@relay.test anyone@whole.test x@open.test old@local.test Old@Local.Test \
    new@local.test 'a/b@local.test' '.x@local.test' 'a$b@local.test' x@elsewhere.test)
check_eq "RCPT replies" "$got" "C: MAIL FROM:<sender@src.test>
S: 250 2.1.0 Ok
C: RCPT TO:<ann@relay.test>
S: 250 2.1.5 Ok
C: RCPT TO:<ANN@RELAY.TEST>
S: 250 2.1.5 Ok
C: RCPT TO:<bob@relay.test>
S: 250 2.1.5 Ok
C: RCPT TO:<eve@relay.test>
S: 550 5.1.1 <eve@relay.test>: Recipient address rejected: User unknown in relay recipient table
C: RCPT TO:<anyone@whole.test>
S: 250 2.1.5 Ok
C: RCPT TO:<x@open.test>
S: 550 5.1.1 <x@open.test>: Recipient address rejected: User unknown in relay recipient table
C: RCPT TO:<old@local.test>
S: 250 2.1.5 Ok
C: RCPT TO:<Old@Local.Test>
S: 250 2.1.5 Ok
C: RCPT TO:<new@local.test>
S: 550 5.1.1 <new@local.test>: Recipient address rejected: User unknown in local recipient table
C: RCPT TO:<a/b@local.test>
S: 501 5.1.3 <a/b@local.test>: Recipient address rejected: local part not valid for a mailbox
C: RCPT TO:<.x@local.test>
S: 501 5.1.3 Bad recipient address syntax
C: RCPT TO:<a\$b@local.test>
S: 501 5.1.3 <a\$b@local.test>: Recipient address rejected: local part not valid for a mailbox
C: RCPT TO:<x@elsewhere.test>
S: 554 5.7.1 <x@elsewhere.test>: Relay access denied
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: Subject: rcpt test
C: 
C: hello
C: .
S: 250 2.0.0 Ok: queued as QID
C: QUIT
S: 221 2.0.0 Bye"
check "log: NOQUEUE reject line for the relay user, Postfix's format" grep -qF \
    "[127.0.0.1]: 550 5.1.1 <eve@relay.test>: Recipient address rejected: User unknown in relay recipient table; from=<sender@src.test> to=<eve@relay.test> proto=ESMTP helo=<client.test>" "$LOG"
check "log: NOQUEUE reject line for the local user" grep -qF \
    "NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 550 5.1.1 <new@local.test>: Recipient address rejected: User unknown in local recipient table; from=<sender@src.test>" "$LOG"

check "the old user's copy is delivered" wait_for 10 sh -c "[ \$(ls '$MAIL/local.test/old/Maildir/new' | wc -l) -eq 2 ]"
check_eq "no Maildir (nor user directory) made for refused local users" \
    "$(ls "$MAIL/local.test" | tr '\n' ' ')" "old "
"$Q" -c "$CONF" -p >"$T/mailq" 2>&1
check "queue: the accepted relay recipients wait" grep -q 'anyone@whole.test' "$T/mailq"
check "queue: the refused ones are not there" \
    grep_none -i 'eve@relay.test\|new@local.test\|x@open.test' "$T/mailq"

# SIGHUP rereads the map: eve becomes valid
printf 'eve@relay.test  OK\n' >>"$T/relay-users"
kill -HUP "$SRV_PID"
check "reload logged" wait_for 10 grep -q "reload: configuration .* loaded" "$LOG"
got=$(rcpt sender@src.test eve@relay.test | sed -n 3,4p)
check_eq "after SIGHUP: eve accepted" "$got" "C: RCPT TO:<eve@relay.test>
S: 250 2.1.5 Ok"

# local_recipient_maps set: a listed user's Maildir is made on delivery; others refused
printf 'carl@local.test  OK\ndora  OK\n' >"$T/local-users"
printf 'local_recipient_maps = %s/local-users\n' "$T" >>"$CONF"
kill -HUP "$SRV_PID"
check "second reload logged" wait_for 10 sh -c "[ \$(grep -c 'reload: configuration .* loaded' '$LOG') -ge 2 ]"
got=$(rcpt sender@src.test carl@local.test DORA@local.test old@local.test)
check_eq "with local_recipient_maps: the table decides, not the Maildir" "$got" "C: MAIL FROM:<sender@src.test>
S: 250 2.1.0 Ok
C: RCPT TO:<carl@local.test>
S: 250 2.1.5 Ok
C: RCPT TO:<DORA@local.test>
S: 250 2.1.5 Ok
C: RCPT TO:<old@local.test>
S: 550 5.1.1 <old@local.test>: Recipient address rejected: User unknown in local recipient table
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: Subject: rcpt test
C: 
C: hello
C: .
S: 250 2.0.0 Ok: queued as QID
C: QUIT
S: 221 2.0.0 Bye"
check "carl's Maildir made on delivery" wait_for 10 sh -c "[ \$(ls '$MAIL/local.test/carl/Maildir/new' 2>/dev/null | wc -l) -eq 1 ]"
check "dora (a bare user entry) delivered" wait_for 10 sh -c "[ \$(ls '$MAIL/local.test/dora/Maildir/new' 2>/dev/null | wc -l) -eq 1 ]"

stop_pid "$SRV_PID"
check "no bounce was generated" grep_none 'sender non-delivery notification' "$LOG"
check "no error lines in the log" grep_none 'error:\|panic:\|fatal:' "$LOG"
e2e_done
