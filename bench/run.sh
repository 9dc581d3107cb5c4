#!/bin/sh
# bench/run.sh BUILD - `make bench`: the same SMTP load against Postfix, OpenSMTPD and
# sluice on loopback, in one run (../shared/bench/peers.sh drives the peers).
#
#   throughput  peers.sh local TARGET SESSIONS MESSAGES 4096: smtp-source, one message
#               per connection, timed until every message is a file in the Maildir
#   latency     BUILD/bench/smtp-load: time from the final "." to the 250, per message
#
# Writes bench/results/latest.txt (raw lines) and rewrites the section of
# docs/BENCHMARKS.md between <!-- bench:begin --> and <!-- bench:end -->; prints the
# tables. `sh bench/run.sh BUILD --report` only regenerates them from latest.txt.
# Knobs (environment): BENCH_MESSAGES (5000), BENCH_SIZE (4096), BENCH_SESSIONS
# ("1 4 10 50"), BENCH_LAT_SESSIONS ("10 50"), BENCH_OSD_MESSAGES (500: OpenSMTPD at 10+
# sessions, see below), BENCH_PORT (2527), BENCH_DIR (peers.sh work dir), BENCH_KEEP=1
# keeps sluice's temporary directory.
#
# OpenSMTPD 6.8 listens with a backlog of 5: at 10 or more sessions connection attempts
# are dropped and retried by the kernel after a second, so it is measured there with
# BENCH_OSD_MESSAGES only (the full count would take many minutes); compare it at 1-4.
set -eu

BUILD=${1:-build}
MODE=${2:-run}
TOP=$(pwd)
SHARED=$TOP/../shared
PEERS=$SHARED/bench/peers.sh
RESULTS=$TOP/bench/results/latest.txt
DOC=$TOP/docs/BENCHMARKS.md
MESSAGES=${BENCH_MESSAGES:-5000}
SIZE=${BENCH_SIZE:-4096}
SESSIONS=${BENCH_SESSIONS:-1 4 10 50}
LAT_SESSIONS=${BENCH_LAT_SESSIONS:-10 50}
OSD_MESSAGES=${BENCH_OSD_MESSAGES:-500}
PORT=${BENCH_PORT:-2527}
export BENCH_DIR=${BENCH_DIR:-/tmp/peers-bench}
SDIR=
SPID=

die() { echo "bench: $*" >&2; exit 1; }
peers() { bash "$PEERS" "$@"; }

# ---- report: markdown tables from the raw result lines ----
report() {
	[ -f "$RESULTS" ] || die "no $RESULTS: run the benchmark first"
	awk '
	function kv(line, key,    n, i, f, a) {
		n = split(line, f, " ")
		for (i = 1; i <= n; i++) { split(f[i], a, "="); if (a[1] == key) return a[2] }
		return ""
	}
	function cell(t, s) {
		if (!((t, s) in rate)) return "–"
		return rate[t, s] " msg/s, " cpu[t, s] " ms" (msgs[t, s] != full ? " (" msgs[t, s] " msgs)¹" : "")
	}
	/^#/ { sub(/^# ?/, ""); hdr = hdr "    " $0 "\n"; next }
	$1 == "tput" {
		t = $2; s = kv($0, "sessions"); seen[s] = 1
		rate[t, s] = kv($0, "msgs/s"); cpu[t, s] = kv($0, "cpu_ms/msg")
		msgs[t, s] = kv($0, "messages"); if (t == "sluice") full = msgs[t, s]
		if (kv($0, "delivered") != msgs[t, s]) short[t, s] = kv($0, "delivered")
	}
	$1 == "lat" { lat[++nl] = $0 }
	END {
		print "Run of:\n\n" hdr
		print "**Throughput** (5,000 messages of 4 KB unless marked, one per connection, timed until all are in the Maildir; msg/s and machine CPU ms per message):\n"
		print "| sessions | Postfix | OpenSMTPD | sluice | sluice/Postfix |"
		print "| ---: | ---: | ---: | ---: | ---: |"
		ns = 0; for (s in seen) ss[++ns] = s + 0
		for (i = 1; i <= ns; i++) for (j = i + 1; j <= ns; j++) if (ss[j] < ss[i]) { x = ss[i]; ss[i] = ss[j]; ss[j] = x }
		for (i = 1; i <= ns; i++) {
			s = ss[i]
			r = (rate["postfix", s] > 0 && ("sluice", s) in rate) ? sprintf("%.2f×", rate["sluice", s] / rate["postfix", s]) : "–"
			printf "| %d | %s | %s | %s | %s |\n", s, cell("postfix", s), cell("opensmtpd", s), cell("sluice", s), r
		}
		for (k in short) { split(k, p, SUBSEP); printf "\nWARNING: %s at %s sessions delivered only %s.\n", p[1], p[2], short[k] }
		print "\n¹ OpenSMTPD at 10+ sessions: listen backlog 5, dropped SYNs retried after 1 s; fewer messages, see notes."
		print "\n**Accept latency** (smtp-load: time from the final \".\" to the 250, one message per connection):\n"
		print "| target | sessions | accepted | msg/s accepted | p50 ms | p90 ms | p99 ms | max ms | reconnects² |"
		print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		for (i = 1; i <= nl; i++) {
			l = lat[i]; split(l, f, " ")
			printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", f[2], kv(l, "sessions"), kv(l, "accepted") "/" kv(l, "messages"), kv(l, "msgs/s"), kv(l, "p50_ms"), kv(l, "p90_ms"), kv(l, "p99_ms"), kv(l, "max_ms"), kv(l, "reconnects")
		}
		print "\n² connections given up after 5 s without a banner and made again (a full listen queue)."
	}' "$RESULTS" > "$RESULTS.md"
	cat "$RESULTS.md"
	if [ -f "$DOC" ] && grep -q '<!-- bench:begin -->' "$DOC" && grep -q '<!-- bench:end -->' "$DOC"; then
		awk -v tbl="$RESULTS.md" '
		/<!-- bench:begin -->/ { print; while ((getline l < tbl) > 0) print l; skip = 1; next }
		/<!-- bench:end -->/ { skip = 0 }
		!skip { print }' "$DOC" > "$DOC.new" && mv "$DOC.new" "$DOC"
		echo "bench: tables written to docs/BENCHMARKS.md and $RESULTS"
	else
		echo "bench: docs/BENCHMARKS.md has no bench markers; tables only in $RESULTS.md"
	fi
}

if [ "$MODE" = --report ]; then
	report
	exit 0
fi

# ---- preconditions ----
[ -f "$PEERS" ] || die "$PEERS not found: the shared directory must be at ../shared from the repository root"
[ "$(id -u)" -eq 0 ] || die "must run as root (peers.sh installs and starts Postfix and OpenSMTPD)"
[ -x "$BUILD/sluiced" ] && [ -x "$BUILD/sluice" ] || die "$BUILD/sluiced not built: run make"
[ -x "$BUILD/bench/smtp-load" ] || die "$BUILD/bench/smtp-load not built: run make"
command -v bash >/dev/null || die "bash is needed by peers.sh"
LOAD=$TOP/$BUILD/bench/smtp-load

cleanup() {
	set +e
	if [ -n "$SPID" ] && kill -0 "$SPID" 2>/dev/null; then
		kill -TERM "$SPID"
		i=0
		while kill -0 "$SPID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		kill -0 "$SPID" 2>/dev/null && kill -KILL -- "-$SPID"
	fi
	peers stop
	if [ -n "$SDIR" ] && [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$SDIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: installing the peers (peers.sh install)"
peers install
# peers.sh creates /var/spool/smtpd with the default mode; OpenSMTPD refuses anything but 0711
chmod 711 /var/spool/smtpd

# ---- sluice: fresh spool, database and mailboxes ----
id _sluice >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin _sluice
SDIR=$(mktemp -d /tmp/sluice-bench-XXXXXX)
chmod 755 "$SDIR"
mkdir "$SDIR/spool" "$SDIR/mail" "$SDIR/db"
chown _sluice: "$SDIR/spool" "$SDIR/mail" "$SDIR/db"
cat > "$SDIR/sluice.conf" <<EOF
hostname bench.localhost
spool $SDIR/spool
mailboxes $SDIR/mail
database sqlite:$SDIR/db/sluice.db
user _sluice
listen 127.0.0.1:$PORT smtp
EOF
SLUICE="$BUILD/sluice -c $SDIR/sluice.conf"
$SLUICE check >/dev/null
$SLUICE domain add bench.test >/dev/null 2>&1
echo pw-long-enough | $SLUICE account add u@bench.test --password-stdin >/dev/null 2>&1
setsid "$BUILD/sluiced" -c "$SDIR/sluice.conf" -F > "$SDIR/sluiced.log" 2>&1 &
SPID=$!
i=0
until "$LOAD" -s 1 -m 1 -T 5 "127.0.0.1:$PORT" >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 50 ] && kill -0 "$SPID" 2>/dev/null || { cat "$SDIR/sluiced.log" >&2; die "sluiced did not start on 127.0.0.1:$PORT"; }
	sleep 0.1
done
SLUICE_MAILDIR=$SDIR/mail/bench.test/u

echo "bench: starting Postfix (127.0.0.1:2525) and OpenSMTPD (127.0.0.1:2526)"
peers start postfix >/dev/null
peers start opensmtpd >/dev/null

maildir() {
	case $1 in
	postfix) echo "$BENCH_DIR/postfix-mail/u/Maildir" ;;
	opensmtpd) echo "$BENCH_DIR/opensmtpd-mail/Maildir" ;;
	sluice) echo "$SLUICE_MAILDIR" ;;
	esac
}
port() {
	case $1 in postfix) echo 2525 ;; opensmtpd) echo 2526 ;; sluice) echo "$PORT" ;; esac
}
count() { find "$(maildir "$1")/new" "$(maildir "$1")/cur" -type f 2>/dev/null | wc -l; }
# Before every run: no dirty pages left by the previous one. Maildirs are not emptied
# (peers.sh counts relative to the start): on ext4 without a journal, freshly deleted
# inodes are skipped one by one by the next file creations (recently_deleted()), which
# would make every run pay for the clean-up of the one before.
settle() {
	sync
	sleep 1
}
# Wait until N more messages than BEFORE are files in the Maildir, so that deliveries
# still running after the last 250 do not eat into the next target's run.
drain() {
	set -- "$1" "${2:-0}" "$3"
	i=0
	while [ $(($(count "$1") - $3)) -lt "$2" ]; do
		i=$((i + 1))
		[ $i -lt 1200 ] || { echo "bench: $1 did not deliver $2 messages in 120 s" >&2; return 0; }
		sleep 0.1
	done
}

mkdir -p "$(dirname "$RESULTS")"
{
	echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r), /tmp on $(df -T /tmp | awk 'NR == 2 {print $2}')"
	echo "# Postfix $(postconf -h mail_version), OpenSMTPD $(dpkg-deb -f "$BENCH_DIR"/opensmtpd_*.deb Version 2>/dev/null || echo '?'), sluice $(git describe --always --dirty 2>/dev/null || echo '?')"
	echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$RESULTS"

echo "bench: throughput (peers.sh local, $MESSAGES x $SIZE bytes)"
for s in $SESSIONS; do
	for t in postfix opensmtpd sluice; do
		n=$MESSAGES
		[ "$t" = opensmtpd ] && [ "$s" -ge 10 ] && n=$OSD_MESSAGES
		settle
		if [ "$t" = sluice ]; then
			line=$(peers local endpoint "127.0.0.1:$PORT" "$SLUICE_MAILDIR" "$s" "$n" "$SIZE")
		else
			line=$(peers local "$t" "$s" "$n" "$SIZE")
		fi
		echo "  $line"
		echo "tput $t $line" >> "$RESULTS"
	done
done

echo "bench: accept latency (smtp-load)"
for s in $LAT_SESSIONS; do
	for t in postfix opensmtpd sluice; do
		n=$MESSAGES
		[ "$t" = opensmtpd ] && [ "$s" -ge 10 ] && n=$OSD_MESSAGES
		settle
		before=$(count "$t")
		line=$("$LOAD" -s "$s" -m "$n" -l "$SIZE" -T 300 "127.0.0.1:$(port "$t")") || true
		echo "  $line"
		drain "$t" "$(echo "$line" | sed -n 's/.* accepted=\([0-9]*\) .*/\1/p')" "$before"
		echo "lat $t $line" >> "$RESULTS"
	done
done
settle
before=$(count opensmtpd)
line=$("$LOAD" -s 4 -m "$MESSAGES" -l "$SIZE" -T 300 127.0.0.1:2526) || true
echo "  $line"
drain opensmtpd "$(echo "$line" | sed -n 's/.* accepted=\([0-9]*\) .*/\1/p')" "$before"
echo "lat opensmtpd $line" >> "$RESULTS"
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESULTS"

echo
report
