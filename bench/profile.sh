#!/bin/sh
# bench/profile.sh BUILD [SESSIONS [MESSAGES]] - where sluice spends its time under load.
# Starts sluiced on a fresh spool (127.0.0.1:${BENCH_PORT:-2528}), then under
# `peers.sh local endpoint ... SESSIONS MESSAGES 4096` (default 50 x 5000):
#   1. perf record -g on every sluiced process: CPU per process, top symbols;
#   2. perf trace -s: system calls per process (heavy overhead: counts, not times).
# Output in bench/results/profile.txt. Needs root and perf (falls back to strace -c).
set -eu
BUILD=${1:-build}
SESSIONS=${2:-50}
MESSAGES=${3:-5000}
PORT=${BENCH_PORT:-2528}
TOP=$(pwd)
PEERS=$TOP/../shared/bench/peers.sh
OUT=$TOP/bench/results/profile.txt
die() { echo "profile: $*" >&2; exit 1; }
[ -f "$PEERS" ] || die "$PEERS not found: the shared directory must be at ../shared"
[ "$(id -u)" -eq 0 ] || die "must run as root"
[ -x "$BUILD/sluiced" ] || die "$BUILD/sluiced not built: run make"

D=$(mktemp -d /tmp/sluice-prof-XXXXXX)
SPID=
cleanup() {
	set +e
	[ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && sleep 1
	rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
chmod 755 "$D"
mkdir "$D/spool" "$D/mail" "$D/db"
chown _sluice: "$D/spool" "$D/mail" "$D/db"
printf 'hostname bench.localhost\nspool %s/spool\nmailboxes %s/mail\ndatabase sqlite:%s/db/sluice.db\nuser _sluice\nlisten 127.0.0.1:%s smtp\n' \
    "$D" "$D" "$D" "$PORT" > "$D/sluice.conf"
"$BUILD/sluice" -c "$D/sluice.conf" domain add bench.test >/dev/null 2>&1
echo pw-long-enough | "$BUILD/sluice" -c "$D/sluice.conf" account add u@bench.test --password-stdin >/dev/null 2>&1
setsid "$BUILD/sluiced" -c "$D/sluice.conf" -F > "$D/sluiced.log" 2>&1 &
SPID=$!
sleep 1
kill -0 "$SPID" || { cat "$D/sluiced.log" >&2; die "sluiced did not start"; }
PIDS="$SPID $(pgrep -P "$SPID" | tr '\n' ' ')"
load() { bash "$PEERS" local endpoint "127.0.0.1:$PORT" "$D/mail/bench.test/u" "$SESSIONS" "$MESSAGES" 4096; }
names() {  # pid -> process role, from sluiced's start-up log lines
	grep -o 'started [a-z]* process (pid [0-9]*)' "$D/sluiced.log" | sed 's/started \([a-z]*\) process (pid \([0-9]*\))/\2 \1/'
}
load >/dev/null	# warm up: Maildir created, database pages cached

mkdir -p "$(dirname "$OUT")"
{
	echo "# profile of sluice $(git describe --always --dirty 2>/dev/null), $SESSIONS sessions x $MESSAGES messages, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# processes: master $SPID; $(names | tr '\n' ' ')"
} > "$OUT"
if command -v perf >/dev/null; then
	perf record -e cpu-clock -F 2000 -g -p "$(echo $PIDS | tr ' ' ',')" -o "$D/perf.data" >/dev/null 2>&1 &
	RP=$!
	sleep 1
	load >> "$OUT"
	kill -INT "$RP"; wait "$RP" || true
	{
		echo "## on-CPU samples per process"
		perf report -i "$D/perf.data" --no-children --sort pid --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$'
		echo "## top symbols (self), all processes"
		perf report -i "$D/perf.data" --no-children --sort pid,sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
		echo "## system calls per process (perf trace; times inflated by tracing)"
	} >> "$OUT"
	timeout 120 perf trace -s -p "$(echo $PIDS | tr ' ' ',')" -o "$D/trace.txt" 2>/dev/null &
	TP=$!
	sleep 2
	load >> "$OUT"
	kill -INT "$TP"; wait "$TP" || true
	grep -vE '^\s*$' "$D/trace.txt" >> "$OUT"
else
	strace -c -f $(for p in $PIDS; do printf -- '-p %s ' "$p"; done) -o "$D/strace.txt" &
	TP=$!
	sleep 1
	load >> "$OUT"
	kill -INT "$TP"; wait "$TP" || true
	cat "$D/strace.txt" >> "$OUT"
fi
cat "$OUT"
