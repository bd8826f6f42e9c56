#!/bin/sh
# version_help.sh - --version on all three programs prints "PROGRAM (etrnkit)
# VERSION" with the text of the VERSION file (the packages carry the same
# string), exit 0; --help prints the usage with every option on stdout, exit
# 0; an unknown option prints it on stderr, exit 64.
. "$(dirname "$0")/../lib/e2e.sh"
e2e_init

want=$(cat "$E2E_TOP/VERSION")
for p in etrn-agent etrn-server etrn-queue; do
    out=$("$BIN_DIR/$p" --version 2>"$T/err")
    check_eq "$p --version exits 0" "$?" 0
    check_eq "$p --version prints the VERSION file's version" "$out" "$p (etrnkit) $want"
    check_eq "$p --version prints nothing on stderr" "$(cat "$T/err")" ""
    "$BIN_DIR/$p" --help >"$T/help.$p" 2>"$T/err"
    check_eq "$p --help exits 0" "$?" 0
    check "$p --help starts with usage:" grep -q "^usage: $p" "$T/help.$p"
    check_eq "$p --help prints nothing on stderr" "$(cat "$T/err")" ""
    "$BIN_DIR/$p" --no-such-option >"$T/out" 2>"$T/err"
    check_eq "$p with an unknown option exits 64" "$?" 64
    check "$p with an unknown option prints the usage on stderr" grep -q "^usage: $p" "$T/err"
done
# every option the program takes is in its --help
for o in -c --once --dry-run --check-config -v --version --help; do
    check "etrn-agent --help lists $o" grep -qe "$o" "$T/help.etrn-agent"
done
for o in -c --check-config -v --version --help; do
    check "etrn-server --help lists $o" grep -qe "$o" "$T/help.etrn-server"
done
for o in -c -p -s -f -i -d -h -H status --json reopen --version --help; do
    check "etrn-queue --help lists $o" grep -qe "$o" "$T/help.etrn-queue"
done
e2e_done
