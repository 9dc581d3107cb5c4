#!/bin/sh
# Install the Debian packages sluice needs to build and test (idempotent).
set -eu
PKGS="build-essential pkg-config meson ninja-build libevent-dev libssl-dev
libsqlite3-dev libcrypt-dev libcmocka-dev python3-pytest python3-aiosmtpd
swaks curl openssl sqlite3"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
