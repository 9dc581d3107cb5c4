#!/bin/sh
# make run: a demo configuration under ./run/ and sluiced in the foreground.
# SQLite database, hostname localhost, SMTP on 127.0.0.1:2525, submission on
# 2587 (STARTTLS) and 2465 (TLS) with a self-signed certificate, the domain
# example.test with the account demo@example.test. When Dovecot is installed,
# IMAP on 127.0.0.1:2143 from `sluice dovecot-config` (run/dovecot/), stopped
# with sluiced.
set -eu
BUILD=${1:-build}
TOP=$(pwd)
RUN=$TOP/run
SLUICE="$TOP/$BUILD/sluice -c $RUN/sluice.conf"
mkdir -p "$RUN"
chmod 755 "$RUN"
if [ "$(id -u)" -eq 0 ]; then
	id _sluice >/dev/null 2>&1 || useradd --system --no-create-home \
	    --home-dir /nonexistent --shell /usr/sbin/nologin _sluice
	RUNUSER=_sluice
else
	RUNUSER=$(id -un)
fi
if [ ! -f "$RUN/cert.pem" ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
	    -keyout "$RUN/key.pem" -out "$RUN/cert.pem" >/dev/null 2>&1
	chmod 600 "$RUN/key.pem"
fi
cat > "$RUN/sluice.conf" <<CONF
# sluice demo configuration, written by \`make run\` (scripts/run-demo.sh)
hostname     localhost
spool        $RUN/spool
mailboxes    $RUN/mail
database     sqlite:$RUN/db/sluice.db
user         $RUNUSER
listen       127.0.0.1:2525 smtp
listen       127.0.0.1:2587 submission
listen       127.0.0.1:2465 submissions
tls-cert     $RUN/cert.pem
tls-key      $RUN/key.pem
CONF
mkdir -p "$RUN/db" "$RUN/mail" "$RUN/spool"
[ "$(id -u)" -eq 0 ] && chown "$RUNUSER:" "$RUN/db" "$RUN/mail" "$RUN/spool"
$SLUICE check >/dev/null
$SLUICE domain list | grep -q '^example\.test ' || $SLUICE domain add example.test
if ! $SLUICE account list example.test | grep -q '^demo@example.test'; then
	echo "demo-password" | $SLUICE account add demo@example.test --password-stdin
fi
DOVECOT_PID=""
stop_dovecot() {
	[ -n "$DOVECOT_PID" ] && kill "$DOVECOT_PID" 2>/dev/null
	DOVECOT_PID=""
}
trap stop_dovecot EXIT
trap 'exit 130' INT TERM
if [ -x /usr/sbin/dovecot ] && [ -x /usr/lib/dovecot/imap ]; then
	DC=$RUN/dovecot
	mkdir -p "$DC"
	# as root Dovecot starts as root; otherwise all of it runs as us
	USEROPT=""
	[ "$(id -u)" -eq 0 ] || USEROPT="--user $RUNUSER"
	# shellcheck disable=SC2086
	$SLUICE dovecot-config --imap-listen 127.0.0.1:2143 --base-dir "$DC/run" \
	    --sql-file "$DC/sql.conf.ext" --log "$DC/dovecot.log" $USEROPT \
	    > "$DC/dovecot.conf"
	/usr/sbin/dovecot -F -c "$DC/dovecot.conf" >>"$DC/dovecot.log" 2>&1 &
	DOVECOT_PID=$!
	sleep 1
	if kill -0 "$DOVECOT_PID" 2>/dev/null; then
		cat <<MSG

Dovecot serves the mailboxes over IMAP (run/dovecot/, log in
run/dovecot/dovecot.log). Mail client settings:

    incoming (IMAP):  server 127.0.0.1, port 2143, STARTTLS
                      (self-signed certificate: accept it once)
    outgoing (SMTP):  server 127.0.0.1, port 2587, STARTTLS
    user name:        demo@example.test
    password:         demo-password
MSG
	else
		DOVECOT_PID=""
		echo "Dovecot did not start: see run/dovecot/dovecot.log"
	fi
else
	echo "For IMAP install Dovecot (make deps, or apt-get install" \
	    "dovecot-imapd dovecot-sqlite) and run make run again."
fi
cat <<MSG

sluice is starting with the demo configuration in run/sluice.conf.
Send a test mail from another terminal:

    swaks --server 127.0.0.1:2525 --to demo@example.test
    echo "Subject: hi" | $BUILD/sluice -c run/sluice.conf sendmail demo@example.test

and find it in run/mail/example.test/demo/new/.  Queue: $BUILD/sluice -c run/sluice.conf queue
Stop with Ctrl-C.

MSG
"$TOP/$BUILD/sluiced" -c "$RUN/sluice.conf" -F
