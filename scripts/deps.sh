#!/bin/sh
# Install the Debian packages sluice needs to build and test (idempotent).
set -eu
PKGS="build-essential pkg-config meson ninja-build libevent-dev libssl-dev
libsqlite3-dev libpq-dev libpsl-dev publicsuffix libcrypt-dev libcmocka-dev python3-pytest python3-aiosmtpd
swaks curl openssl sqlite3 libc-ares-dev dnsmasq-base
postfix postgresql libarchive-dev libgmime-3.0-dev clang
dovecot-imapd dovecot-lmtpd dovecot-sqlite dovecot-pgsql
python3-dkim python3-dnspython python3-nacl
rspamd spamassassin spamd spamc spamass-milter"
missing=""
had_dovecot=no
had_rspamd=no
dpkg-query -W -f='${Status}' rspamd 2>/dev/null | grep -q "install ok installed" &&
    had_rspamd=yes
had_spamd=no
dpkg-query -W -f='${Status}' spamass-milter 2>/dev/null |
    grep -q "install ok installed" && had_spamd=yes
dpkg-query -W -f='${Status}' dovecot-core 2>/dev/null | grep -q "install ok installed" &&
    had_dovecot=yes
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
	    missing="$missing $p"
done
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ -n "$missing" ]; then
	echo "deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	# postfix only for smtp-sink in the tests: no mail system configured
	case "$missing" in *" postfix"*)
		echo "postfix postfix/main_mailer_type select No configuration" |
		    $SUDO debconf-set-selections ;;
	esac
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -qq --no-install-recommends $missing
	# Dovecot is only for the tests and `make run`, which start their own
	# on other ports: a system instance the install started is stopped and
	# disabled (best effort, never failing make deps)
	if [ "$had_dovecot" = no ]; then
		$SUDO service dovecot stop >/dev/null 2>&1 || true
		if command -v systemctl >/dev/null 2>&1; then
			$SUDO systemctl disable --now dovecot.service \
			    dovecot.socket >/dev/null 2>&1 || true
		fi
		$SUDO update-rc.d dovecot disable >/dev/null 2>&1 || true
	fi
	# rspamd, spamd and spamass-milter likewise: the milter tests
	# start their own on loopback
	stop_service() {
		$SUDO service "$1" stop >/dev/null 2>&1 || true
		if command -v systemctl >/dev/null 2>&1; then
			$SUDO systemctl disable --now "$1.service" \
			    >/dev/null 2>&1 || true
		fi
		$SUDO update-rc.d "$1" disable >/dev/null 2>&1 || true
	}
	[ "$had_rspamd" = yes ] || stop_service rspamd
	if [ "$had_spamd" = no ]; then
		stop_service spamass-milter
		stop_service spamd
	fi
fi
# the unprivileged user sluiced drops to when started as root
if [ "$(id -u)" -eq 0 ] && ! id _sluice >/dev/null 2>&1; then
	useradd --system --no-create-home --home-dir /nonexistent \
	    --shell /usr/sbin/nologin _sluice
fi
