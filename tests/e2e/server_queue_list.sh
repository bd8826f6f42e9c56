#!/bin/sh
# server_queue_list.sh - etrn-queue -p lists a queue in Postfix mailq format
# without a running server; messages are made with the queue API (queue_inject).
. "$(dirname "$0")/../lib/e2e.sh"
. "$(dirname "$0")/../lib/etrn_server.sh"
e2e_init

Q="$BIN_DIR/etrn-queue"
INJ="$TOOLS_DIR/queue_inject"
srv_conf relay "127.0.0.1:$(free_port)" "myhostname = relay.test" "queue_directory = $T/spool" \
    "relay_domains = yahoo.co.jp example.org"

# no queue directory yet: a clear error, not an empty listing
out=$("$Q" -c "$T/relay/server.ini" -p 2>&1); rc=$?
check_eq "missing queue: exit status" "$rc" 74
check "missing queue: message names the directory" sh -c "echo '$out' | grep -q '$T/spool'"

# a bad configuration is a config error naming file and line
printf '[main]\nqueue_directory = %s/spool\nbogus = 1\n' "$T" >"$T/bad.ini"
out=$("$Q" -c "$T/bad.ini" -p 2>&1); rc=$?
check_eq "bad config: exit status" "$rc" 78
check_eq "bad config: message" "$out" "etrn-queue: $T/bad.ini:3: [main] bogus: unknown key"

out=$("$Q" -c "$T/relay/server.ini" -x 2>&1); rc=$?
check_eq "unknown option: exit status" "$rc" 64

# the DESIGN sample: one deferred message, 508 bytes, one reason
head -c 508 /dev/zero | tr '\0' 'x' >"$T/m1"
set -- $("$INJ" -q "$T/spool" -f relay@test.local -c 'pop[192.168.11.12]' -m deferred \
    -R '0:P:4.4.1:connect to 192.168.11.11[192.168.11.11]:25: Connection refused' \
    aaaabc@yahoo.co.jp <"$T/m1")
id1=$1 at1=$(LC_ALL=C date -d "@$2" '+%a %b %e %H:%M:%S')
check "inject 1 gave an ID" test -n "$id1"

"$Q" -c "$T/relay/server.ini" -p >"$T/out1"; rc=$?
check_eq "one message: exit status" "$rc" 0
printf '%s\n' "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------" >"$T/want1"
printf '%-11s %7d %-20s %s\n' "$id1" 508 "$at1" relay@test.local >>"$T/want1"
printf '%s\n' "              (connect to 192.168.11.11[192.168.11.11]:25: Connection refused)" \
    "                                         aaaabc@yahoo.co.jp" "" \
    "-- 0 Kbytes in 1 Request." >>"$T/want1"
check "one message: exact mailq format" cmp "$T/out1" "$T/want1"
[ -n "${E2E_VERBOSE:-}" ] && diff "$T/out1" "$T/want1"

# a held message from <> with a delivered recipient, and an active one
head -c 2000 /dev/zero | tr '\0' 'y' >"$T/m2"
set -- $("$INJ" -q "$T/spool" -f '' -m hold -R '0:D:2.0.0:250 ok' -R '1:P::' \
    done@example.org wait@example.org <"$T/m2")
id2=$1 at2=$(LC_ALL=C date -d "@$2" '+%a %b %e %H:%M:%S')
set -- $(printf 'hi\r\n' | "$INJ" -q "$T/spool" -f a@example.org -m active b@example.org)
id3=$1 at3=$(LC_ALL=C date -d "@$2" '+%a %b %e %H:%M:%S')

"$Q" -c "$T/relay/server.ini" -p >"$T/out2"
{
    printf '%s\n' "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
    printf '%-11s %7d %-20s %s\n' "$id3*" 4 "$at3" a@example.org
    printf '%41s%s\n\n' "" b@example.org
    cat "$T/want1" | sed -n '2,5p'
    printf '%-11s %7d %-20s %s\n' "$id2!" 2000 "$at2" MAILER-DAEMON
    printf '%41s%s\n\n' "" wait@example.org
    printf '%s\n' "-- 2 Kbytes in 3 Requests."
} >"$T/want2"
check "three messages: active *, hold !, null sender, delivered recipient hidden" cmp "$T/out2" "$T/want2"
[ -n "${E2E_VERBOSE:-}" ] && diff "$T/out2" "$T/want2"

# reasons as Postfix's mailq prints them: "(reason)" ends in column 78 (a longer
# one starts in column 1), printed when it changes; "(reason unavailable)" after one
rm -f "$T"/spool/deferred/* "$T"/spool/hold/* "$T"/spool/active/*
LONG='host mx.example.net[192.0.2.25] said: 450 4.2.0 <x@example.net>: Recipient address rejected: greylisted, try again later (in reply to RCPT TO command)'
set -- $(printf 'hi\r\n' | "$INJ" -q "$T/spool" -f a@example.org -m deferred \
    -R '0:P:4.4.1:lost connection' -R '1:P:4.4.1:lost connection' -R "2:P:4.2.0:$LONG" -R '3:P::' \
    r1@example.org r2@example.org x@example.net r4@example.org)
id4=$1 at4=$(LC_ALL=C date -d "@$2" '+%a %b %e %H:%M:%S')
"$Q" -c "$T/relay/server.ini" -p >"$T/out3"
{
    printf '%s\n' "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------"
    printf '%-11s %7d %-20s %s\n' "$id4" 4 "$at4" a@example.org
    printf '%61s(lost connection)\n' ""
    printf '%41s%s\n' "" r1@example.org "" r2@example.org
    printf '(%s)\n' "$LONG"
    printf '%41s%s\n' "" x@example.net
    printf '%58s(reason unavailable)\n' ""
    printf '%41s%s\n\n' "" r4@example.org
    printf '%s\n' "-- 0 Kbytes in 1 Request."
} >"$T/want3"
check "reasons right-aligned to column 78 as mailq, once per change, long ones whole" \
    cmp "$T/out3" "$T/want3"
[ -n "${E2E_VERBOSE:-}" ] && diff "$T/out3" "$T/want3"

# empty again
rm -f "$T"/spool/deferred/* "$T"/spool/hold/* "$T"/spool/active/*
check_eq "empty queue" "$("$Q" -c "$T/relay/server.ini" -p)" "Mail queue is empty"

e2e_done
