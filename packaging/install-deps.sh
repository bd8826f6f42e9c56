#!/bin/sh
# install-deps.sh - install the Debian packages etrnkit needs to build, test
# and run its demo. Does nothing when they are all present; otherwise runs
# apt-get (through sudo when not root). Debian 12 (bookworm).
set -eu

pkgs="build-essential pkg-config libcurl4-openssl-dev libinih-dev libssl-dev libevent-dev
      postfix swaks fetchmail dnsmasq-base iproute2 openssl ca-certificates procps
      libio-socket-ssl-perl libnet-ssleay-perl libauthen-sasl-perl python3 shellcheck
      dpkg-dev debhelper lintian adduser logrotate
      clang libfuzzer-14-dev libclang-rt-14-dev
      strace"

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing:$missing"
# Postfix is only a test peer: no system mail configuration, no service.
echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
