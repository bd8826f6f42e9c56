#!/bin/sh
# agent_auth_log.sh - `etrn-agent -v` never writes credentials to its log.
#
# A scripted server (tests/lib/scripted_smtpd.py) offers only AUTH PLAIN, then
# only AUTH LOGIN, over STARTTLS. For each, the agent runs `--once -v` twice:
# logging to stderr, and logging to a file (stderr kept too). Neither the log
# file nor stderr may hold the password, its base64, the base64 of the PLAIN
# response (\0user\0password) or of the LOGIN responses (user, password),
# while the server's record shows those responses really went over the wire
# and the log shows the masked exchange (so the check is not vacuous).
. "$(dirname "$0")/../lib/e2e.sh"
e2e_init

AGENT=$BIN_DIR/etrn-agent
SMTPD=$E2E_TOP/tests/lib/scripted_smtpd.py
USER=siteuser
PASS='Tr0ub4dor&3-secret'

b64() {
    printf '%b' "$1" | base64 -w0
}

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 \
    -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 || { echo "openssl failed"; exit 1; }
printf '%s\n' "$PASS" >"$T/pw.secret"
chmod 600 "$T/pw.secret"

# the strings that must never be logged
secrets="$PASS
$(b64 "$PASS")
$(b64 "\\0$USER\\0$PASS")
$(b64 "$USER\\0$PASS")
$(b64 "$USER")"

# leaks FILE... - the secrets found in the files, one per line
leaks() {
    printf '%s\n' "$secrets" | while IFS= read -r s; do
        [ -n "$s" ] && cat "$@" 2>/dev/null | grep -qF -- "$s" && printf '%s\n' "$s"
    done
}

for mech in PLAIN LOGIN; do
    rm -f "$T/$mech.ready"
    : >"$T/$mech.dialogue"
    start_bg "smtpd-$mech" "$PY" "$SMTPD" --listen 127.0.0.1:0 --log "$T/$mech.dialogue" \
        --ready-file "$T/$mech.ready" --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" \
        --auth "$USER:$PASS" --auth-mechs "$mech"
    smtpd_pid=$E2E_LAST_PID
    if ! wait_for 10 test -s "$T/$mech.ready"; then
        echo "FAIL scripted_smtpd did not start"; cat "$T/smtpd-$mech.out"; exit 1
    fi
    port=$(sed 's/.*://' "$T/$mech.ready")
    for target in stderr file; do
        name=$mech-$target
        logto=stderr
        [ $target = file ] && logto=$T/$name.log
        cat >"$T/$name.ini" <<EOF
[agent]
helo_name = site.example
log = $logto
status_file = $T/$name.status.json

[provider isp]
hosts = 127.0.0.1:$port
domains = example.org
tls = starttls
ca_file = $T/cert.pem
username = $USER
password_file = $T/pw.secret
timeout = 10s
EOF
        chmod 600 "$T/$name.ini"
        "$AGENT" -c "$T/$name.ini" --once -v >"$T/$name.out" 2>"$T/$name.err"
        check_eq "AUTH $mech, log to $target: agent exit status" "$?" 0
        logs="$T/$name.out $T/$name.err"
        [ $target = file ] && logs="$logs $T/$name.log"
        # shellcheck disable=SC2086
        check_eq "AUTH $mech, log to $target: no credential in the verbose log" \
            "$(leaks $logs | paste -sd' ' -)" ""
        # shellcheck disable=SC2086
        check "AUTH $mech, log to $target: the masked exchange is logged" \
            sh -c "cat $logs | grep -q 'C: AUTH $mech (credentials not shown)' &&
                   cat $logs | grep -q 'S: 334' && cat $logs | grep -q 'S: 235 '"
        if [ $target = file ]; then
            check "AUTH $mech, log to file: the dialogue went to the file" \
                grep -q 'S: 235 ' "$T/$name.log"
        fi
    done
    # the responses the log must hide did go over the wire
    case $mech in
    PLAIN) sent=$(b64 "\\0$USER\\0$PASS") ;;
    LOGIN) sent="$(b64 "$USER") $(b64 "$PASS")" ;;
    esac
    for s in $sent; do
        check "AUTH $mech: the server received $s" grep -qF " C: $s" "$T/$mech.dialogue"
    done
    check "AUTH $mech: ETRN sent after AUTH" grep -q ' C: ETRN example.org' "$T/$mech.dialogue"
    stop_pid "$smtpd_pid"
done

e2e_done
