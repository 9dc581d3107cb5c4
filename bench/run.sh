#!/bin/sh
# bench/run.sh BUILD - `make bench`: the same SMTP load against Postfix, OpenSMTPD and
# sluice on loopback, in one run (../shared/bench/peers.sh drives the peers), and sluice
# with and without a milter.
#
#   throughput  peers.sh local TARGET SESSIONS MESSAGES 4096: smtp-source, one message
#               per connection, timed until every message is a file in the Maildir
#   latency     BUILD/bench/smtp-load: time from the final "." to the 250, per message
#   relay       peers.sh relay TARGET SESSIONS MESSAGES 4096: smtp-source sends to
#               x@sink.test, each server relays it to smtp-sink on 127.0.0.1:2599 (sluice
#               by "route sink.test via 127.0.0.1:2599"), timed until the sink has them
#               all; every measurement BENCH_RELAY_RUNS times, targets taking turns
#   milter      peers.sh local endpoint ... against four more sluiced, each with a fresh
#               spool and the same configuration but for one line: none; "milter accept"
#               to bench/milter-accept.py (answers every step, accepts at the end of the
#               body); "milter noreply" to the same with --no-reply (asks for no answer
#               but at the end of the body, as rspamd does); "milter rspamd" to rspamd's
#               milter proxy with Debian's default rules, started here in a temporary
#               directory as tests/integration/test_milter.py does. Throughput at
#               BENCH_MILTER_SESSIONS, BENCH_MILTER_RUNS times, targets taking turns, with
#               the milter's own CPU; then the accept latency of one session (smtp-load)
#
# Writes bench/results/latest.txt (raw lines) and rewrites the section of
# docs/BENCHMARKS.md between <!-- bench:begin --> and <!-- bench:end -->; prints the
# tables. `sh bench/run.sh BUILD --report` only regenerates them from latest.txt.
# Knobs (environment): BENCH_MESSAGES (5000), BENCH_SIZE (4096), BENCH_SESSIONS
# ("1 4 10 50"), BENCH_LAT_SESSIONS ("10 50"), BENCH_OSD_MESSAGES (500: OpenSMTPD at 10+
# sessions, see below), BENCH_PORT (2527), BENCH_DIR (peers.sh work dir), BENCH_KEEP=1
# keeps sluice's temporary directory, BENCH_PARTS ("local latency relay": the parts to
# run; the rows of a part not run are carried over from the previous latest.txt),
# BENCH_RELAY_SESSIONS ("10 50"), BENCH_RELAY_RUNS (2), BENCH_OSD_RELAY_MESSAGES (500:
# OpenSMTPD relays about 15 msg/s, see docs/BENCHMARKS.md), BENCH_RELAY_TUNED (config
# lines separated by ";": one more sluice each, "sluice-tunedN" with that one line
# added, measured in the same rounds as the default one; empty for none),
# BENCH_TUNED_PORT (2529: the first of theirs), BENCH_SLUICE_REV (what the results call
# the sluice build; default git describe), BENCH_MILTER_SESSIONS ("10 50"),
# BENCH_MILTER_RUNS (3), BENCH_MILTER_MESSAGES (2000: no milter and accept-all),
# BENCH_MILTER_SLOW_MESSAGES (1000: rspamd and the no-reply milter, see
# docs/BENCHMARKS.md), BENCH_MILTER_LAT_MESSAGES (100: the one-session latency run),
# BENCH_MILTER_PORT (2535: the first of the four sluiced), BENCH_MILTER_MPORT (11440: the
# first of the milters' ports; rspamd's proxy, normal and controller workers take it and
# the next two, the Python milters the two after).
# BUILD may be relative to the repository or absolute.
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
PARTS=${BENCH_PARTS:-local latency relay milter}
RELAY_SESSIONS=${BENCH_RELAY_SESSIONS:-10 50}
RELAY_RUNS=${BENCH_RELAY_RUNS:-2}
OSD_RELAY_MESSAGES=${BENCH_OSD_RELAY_MESSAGES:-500}
RELAY_TUNED=${BENCH_RELAY_TUNED-relay-messages-per-connection 1000; relay-idle-time 0; relay-destination-connections 20}
TUNED_PORT=${BENCH_TUNED_PORT:-2529}
SLUICE_REV=${BENCH_SLUICE_REV:-$(git describe --always --dirty 2>/dev/null || echo '?')}
MILTER_SESSIONS=${BENCH_MILTER_SESSIONS:-10 50}
MILTER_RUNS=${BENCH_MILTER_RUNS:-3}
MILTER_MESSAGES=${BENCH_MILTER_MESSAGES:-2000}
MILTER_SLOW_MESSAGES=${BENCH_MILTER_SLOW_MESSAGES:-1000}
MILTER_LAT_MESSAGES=${BENCH_MILTER_LAT_MESSAGES:-100}
MILTER_PORT=${BENCH_MILTER_PORT:-2535}
MPORT=${BENCH_MILTER_MPORT:-11440}
export BENCH_DIR=${BENCH_DIR:-/tmp/peers-bench}
SDIR=
SPIDS=
MPIDS=
RSPAMD_PID=
OLD=

die() { echo "bench: $*" >&2; exit 1; }
peers() { bash "$PEERS" "$@"; }
part() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

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
	/^# relay tuned: / {
		x = $0; sub(/^# relay tuned: /, "", x); i = index(x, " = ")
		tname[++nt] = substr(x, 1, i - 1); tline[nt] = substr(x, i + 3)
	}
	/^# milter/ { next }
	/^#/ { sub(/^# ?/, ""); hdr = hdr "    " $0 "\n"; next }
	$1 == "tput" {
		t = $2; s = kv($0, "sessions"); seen[s] = 1
		rate[t, s] = kv($0, "msgs/s"); cpu[t, s] = kv($0, "cpu_ms/msg")
		msgs[t, s] = kv($0, "messages"); if (t == "sluice") full = msgs[t, s]
		if (kv($0, "delivered") != msgs[t, s]) short[t, s] = kv($0, "delivered")
	}
	$1 == "lat" { lat[++nl] = $0 }
	$1 == "relay" {
		t = $2; s = kv($0, "sessions"); rseen[s] = 1; r = kv($0, "msgs/s") + 0
		rn[t, s]++; if (t == "sluice") MSGS = kv($0, "messages")
		if (!((t, s) in rbest) || r > rbest[t, s]) {
			rbest[t, s] = r; rcpu[t, s] = kv($0, "cpu_ms/msg"); rmsgs[t, s] = kv($0, "messages")
		}
		if (!((t, s) in rlo) || r < rlo[t, s]) rlo[t, s] = r
		if (kv($0, "delivered") != kv($0, "messages"))
			rshort[++nrs] = t " at " s " sessions, run " kv($0, "run") ": " kv($0, "delivered") " of " kv($0, "messages")
	}
	function rcell(t, s) {
		if (!((t, s) in rbest)) return "–"
		return rbest[t, s] " msg/s, " rcpu[t, s] " ms" (rn[t, s] > 1 ? " (" rlo[t, s] "–" rbest[t, s] ", " rn[t, s] " runs)" : "") (rmsgs[t, s] != MSGS ? " (" rmsgs[t, s] " msgs)³" : "")
	}
	function rratio(a, s, b) {
		return ((a, s) in rbest && rbest[b, s] > 0) ? sprintf("%.2f×", rbest[a, s] / rbest[b, s]) : "–"
	}
	function relay_table(    ns, i, j, s, x, ss, k) {
		ns = 0; for (s in rseen) ss[++ns] = s + 0
		if (ns == 0) return
		for (i = 1; i <= ns; i++) for (j = i + 1; j <= ns; j++) if (ss[j] < ss[i]) { x = ss[i]; ss[i] = ss[j]; ss[j] = x }
		print "\n**Relay** (" (MSGS >= 1000 ? int(MSGS / 1000) "," sprintf("%03d", MSGS % 1000) : MSGS) " messages of 4 KB unless marked to x@sink.test, one per inbound connection, relayed to smtp-sink on 127.0.0.1:2599, timed until the sink has them all; best msg/s of the runs, machine CPU ms per message of that run, and the range over the runs):\n"
		print "| sessions | Postfix | OpenSMTPD | sluice | sluice/Postfix | sluice/OpenSMTPD |"
		print "| ---: | ---: | ---: | ---: | ---: | ---: |"
		for (i = 1; i <= ns; i++) {
			s = ss[i]
			printf "| %d | %s | %s | %s | %s | %s |\n", s, rcell("postfix", s), rcell("opensmtpd", s), rcell("sluice", s), rratio("sluice", s, "postfix"), rratio("sluice", s, "opensmtpd")
			for (k = 1; k <= nt; k++)
				if ((tname[k], s) in rbest)
					printf "| %d, sluice with `%s`⁴ | | | %s | %s | %s |\n", s, tline[k], rcell(tname[k], s), rratio(tname[k], s, "postfix"), rratio(tname[k], s, "opensmtpd")
		}
		for (k = 1; k <= nrs; k++) printf "\nWARNING: %s delivered.\n", rshort[k]
		print "\n³ OpenSMTPD relays one connection at a time at about 15 msg/s (see notes): fewer messages."
		if (nt) print "\n⁴ another sluiced (own spool) with that one line added to the default configuration, measured in the same rounds as the default one; ratios against the Postfix and OpenSMTPD figures of the default row of the same session count."
	}
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
		relay_table()
	}' "$RESULTS" > "$RESULTS.md"
	milter_report > "$RESULTS.milter.md"
	cat "$RESULTS.md"
	echo
	cat "$RESULTS.milter.md"
	insert bench "$RESULTS.md"
	insert bench-milter "$RESULTS.milter.md"
}
# insert NAME FILE: FILE between <!-- NAME:begin --> and <!-- NAME:end --> in docs/BENCHMARKS.md
insert() {
	if [ -f "$DOC" ] && grep -q "<!-- $1:begin -->" "$DOC" && grep -q "<!-- $1:end -->" "$DOC"; then
		awk -v tbl="$2" -v b="<!-- $1:begin -->" -v e="<!-- $1:end -->" '
		$0 == b { print; while ((getline l < tbl) > 0) print l; skip = 1; next }
		$0 == e { skip = 0 }
		!skip { print }' "$DOC" > "$DOC.new" && mv "$DOC.new" "$DOC"
		echo "bench: $2 written to docs/BENCHMARKS.md"
	else
		echo "bench: docs/BENCHMARKS.md has no $1 markers; tables only in $2"
	fi
}
# milter_report: the "With a milter" tables from the milter rows of latest.txt
milter_report() {
	awk '
	function kv(line, key,    n, i, f, a) {
		n = split(line, f, " ")
		for (i = 1; i <= n; i++) { split(f[i], a, "="); if (a[1] == key) return a[2] }
		return ""
	}
	BEGIN {
		nt = split("none accept noreply rspamd", tt, " ")
		name["none"] = "no milter"
		name["accept"] = "accept-all milter"
		name["noreply"] = "accept-all milter, `--no-reply`"
		name["rspamd"] = "rspamd"
	}
	/^# milter rows carried over from / { sub(/^# /, ""); hdr = hdr "    " $0 "\n"; next }
	/^# milter: / { sub(/^# milter: /, ""); hdr = hdr "    " $0 "\n"; next }
	$1 == "milter" && $2 == "tput" {
		t = $3; s = kv($0, "sessions") + 0; seen[s] = 1; r = kv($0, "msgs/s") + 0
		n[t, s]++; rows++
		if (!((t, s) in best) || r > best[t, s]) {
			best[t, s] = r; cpu[t, s] = kv($0, "cpu_ms/msg")
			mcpu[t, s] = kv($0, "milter_cpu_ms/msg"); msgs[t, s] = kv($0, "messages")
		}
		if (!((t, s) in lo) || r < lo[t, s]) lo[t, s] = r
		if (kv($0, "delivered") != kv($0, "messages"))
			short[++nsh] = name[t] " at " s " sessions, run " kv($0, "run") ": " kv($0, "delivered") " of " kv($0, "messages")
	}
	$1 == "milter" && $2 == "lat" { lat[$3] = $0 }
	END {
		if (!rows) { print "(no milter rows: run `BENCH_PARTS=milter sh bench/run.sh BUILD`)"; exit }
		print "Setup of the run (see the results header above for the machine):\n\n" hdr
		print "**Throughput with a milter** (messages of 4 KB, one per connection, timed until all are in the Maildir; best msg/s of the runs and the range; machine CPU ms per message of that run, and the part of it the milter process(es) used):\n"
		print "| sessions | sluice with | messages | msg/s | ratio to no milter | CPU ms/msg | of which the milter |"
		print "| ---: | --- | ---: | ---: | ---: | ---: | ---: |"
		ns = 0; for (s in seen) ss[++ns] = s + 0
		for (i = 1; i <= ns; i++) for (j = i + 1; j <= ns; j++) if (ss[j] < ss[i]) { x = ss[i]; ss[i] = ss[j]; ss[j] = x }
		for (i = 1; i <= ns; i++) {
			s = ss[i]
			for (k = 1; k <= nt; k++) {
				t = tt[k]
				if (!((t, s) in best)) continue
				rg = n[t, s] > 1 ? " (" lo[t, s] "–" best[t, s] ", " n[t, s] " runs)" : ""
				ra = best["none", s] > 0 ? sprintf("%.2f×", best[t, s] / best["none", s]) : "–"
				printf "| %d | %s | %s | %s%s | %s | %s | %s |\n", s, name[t], msgs[t, s], best[t, s], rg, ra, cpu[t, s], (mcpu[t, s] == "-" ? "–" : mcpu[t, s])
			}
		}
		for (k = 1; k <= nsh; k++) printf "\nWARNING: %s delivered.\n", short[k]
		print "\n**Accept latency with a milter** (smtp-load, one session, one message per connection: time from the final \".\" to the 250):\n"
		print "| sluice with | accepted | msg/s accepted | p50 ms | p90 ms | p99 ms | max ms |"
		print "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
		for (k = 1; k <= nt; k++) {
			t = tt[k]; if (!(t in lat)) continue; l = lat[t]
			printf "| %s | %s | %s | %s | %s | %s | %s |\n", name[t], kv(l, "accepted") "/" kv(l, "messages"), kv(l, "msgs/s"), kv(l, "p50_ms"), kv(l, "p90_ms"), kv(l, "p99_ms"), kv(l, "max_ms")
		}
	}' "$RESULTS"
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
case $BUILD in /*) LOAD=$BUILD/bench/smtp-load ;; *) LOAD=$TOP/$BUILD/bench/smtp-load ;; esac
part local || part latency || part relay || part milter ||
    die "BENCH_PARTS=\"$PARTS\": nothing to run (local, latency, relay, milter)"
# Postfix and OpenSMTPD are needed by the first three parts only
peers_needed() { part local || part latency || part relay; }
PY=
if part milter; then
	PY=$(command -v /usr/bin/python3 || command -v python3) || die "python3 is needed by the milter part"
	RSPAMD=$(command -v rspamd || true)
	for p in 0 1 2 3 4; do
		! ss -Hltn "sport = :$((MPORT + p))" | grep -q . ||
		    die "port $((MPORT + p)) is taken: set BENCH_MILTER_MPORT"
	done
fi

# alive PID: running, not a zombie (our background children stay zombies until the exit)
alive() {
	st=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
	[ -n "$st" ] && [ "$st" != Z ]
}
stop_sluice() {
	alive "$1" || return 0
	kill -TERM "$1"
	i=0
	while alive "$1" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	if alive "$1"; then kill -KILL "-$1"; fi
}
# stop_group PID: a process group we started with setsid (rspamd: main and workers)
stop_group() {
	alive "$1" || return 0
	kill -TERM "-$1"
	i=0
	while alive "$1" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	if alive "$1"; then kill -KILL "-$1"; fi
}
cleanup() {
	set +e
	for p in $SPIDS; do stop_sluice "$p"; done
	for p in $MPIDS $RSPAMD_PID; do stop_group "$p"; done
	peers stop
	if [ -n "$OLD" ]; then rm -f "$OLD"; fi
	if [ -n "$SDIR" ] && [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$SDIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if peers_needed; then
	echo "bench: installing the peers (peers.sh install)"
	peers install
	# peers.sh creates /var/spool/smtpd with the default mode; OpenSMTPD refuses anything but 0711
	chmod 711 /var/spool/smtpd
fi

# ---- sluice: fresh spool, database and mailboxes ----
id _sluice >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin _sluice
SDIR=$(mktemp -d /tmp/sluice-bench-XXXXXX)
chmod 755 "$SDIR"
# start_sluice NAME PORT [CONFIG-LINE]: sluiced on 127.0.0.1:PORT with its own spool,
# database and Maildir under $SDIR/NAME, default settings (plus CONFIG-LINE). It relays
# for loopback clients and routes sink.test to the smtp-sink of `peers.sh relay`.
start_sluice() {
	d=$SDIR/$1
	mkdir "$d" "$d/spool" "$d/mail" "$d/db"
	chown _sluice: "$d/spool" "$d/mail" "$d/db"
	cat > "$d/sluice.conf" <<-EOF
	hostname bench.localhost
	spool $d/spool
	mailboxes $d/mail
	database sqlite:$d/db/sluice.db
	user _sluice
	listen 127.0.0.1:$2 smtp
	trusted-networks 127.0.0.0/8
	route sink.test via 127.0.0.1:2599
	EOF
	if [ -n "${3:-}" ]; then echo "$3" >> "$d/sluice.conf"; fi
	"$BUILD/sluice" -c "$d/sluice.conf" check >/dev/null
	"$BUILD/sluice" -c "$d/sluice.conf" domain add bench.test >/dev/null 2>&1
	echo pw-long-enough | "$BUILD/sluice" -c "$d/sluice.conf" account add u@bench.test --password-stdin >/dev/null 2>&1
	setsid "$BUILD/sluiced" -c "$d/sluice.conf" -F > "$d/sluiced.log" 2>&1 &
	pid=$!
	SPIDS="$SPIDS $pid"
	i=0
	until "$LOAD" -s 1 -m 1 -T 5 "127.0.0.1:$2" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 50 ] && kill -0 "$pid" 2>/dev/null || { cat "$d/sluiced.log" >&2; die "sluiced did not start on 127.0.0.1:$2"; }
		sleep 0.1
	done
}
if peers_needed; then start_sluice default "$PORT"; fi
SLUICE_MAILDIR=$SDIR/default/mail/bench.test/u
# the tuned ones: sluice-tunedN on port TUNED_PORT + N - 1, its line in TUNED_LINE_N
NTUNED=0
if part relay; then
	ifs=$IFS
	IFS=';'
	set -f
	# shellcheck disable=SC2086 # split on ";" on purpose
	set -- $RELAY_TUNED
	set +f
	IFS=$ifs
	for l in "$@"; do
		l=$(echo "$l" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
		[ -n "$l" ] || continue
		NTUNED=$((NTUNED + 1))
		start_sluice "tuned$NTUNED" $((TUNED_PORT + NTUNED - 1)) "$l"
		eval "TUNED_LINE_$NTUNED=\$l"
	done
fi

if peers_needed; then
	echo "bench: starting Postfix (127.0.0.1:2525) and OpenSMTPD (127.0.0.1:2526)"
	peers start postfix >/dev/null
	peers start opensmtpd >/dev/null
fi

maildir() {
	case $1 in
	postfix) echo "$BENCH_DIR/postfix-mail/u/Maildir" ;;
	opensmtpd) echo "$BENCH_DIR/opensmtpd-mail/Maildir" ;;
	sluice) echo "$SLUICE_MAILDIR" ;;
	milter-*) echo "$SDIR/$1/mail/bench.test/u" ;;
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
if [ -f "$RESULTS" ]; then OLD=$(mktemp /tmp/bench-results-XXXXXX); cp "$RESULTS" "$OLD"; fi
{
	echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r), /tmp on $(df -T /tmp | awk 'NR == 2 {print $2}')"
	echo "# Postfix $(postconf -h mail_version 2>/dev/null || echo '?'), OpenSMTPD $(dpkg-deb -f "$BENCH_DIR"/opensmtpd_*.deb Version 2>/dev/null || echo '?'), sluice $SLUICE_REV"
	echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "# parts run: $PARTS"
	i=1
	while [ $i -le $NTUNED ]; do
		eval "l=\$TUNED_LINE_$i"
		echo "# relay tuned: sluice-tuned$i = $l"
		i=$((i + 1))
	done
} > "$RESULTS"
# carry KIND PART: the rows of a part not run this time, from the previous results
carry() {
	if part "$2" || [ -z "$OLD" ] || ! grep -q "^$1 " "$OLD"; then return 0; fi
	# rows the previous results had carried over themselves keep their origin
	if grep -q "^# $2 rows carried over from " "$OLD"; then
		grep -m 1 "^# $2 rows carried over from " "$OLD" >> "$RESULTS"
	else
		echo "# $2 rows carried over from the run of $(sed -n '1s/^# //p' "$OLD"); $(sed -n '2s/^# //p' "$OLD")" >> "$RESULTS"
	fi
	if [ "$1" = relay ]; then grep '^# relay tuned:' "$OLD" >> "$RESULTS" || true; fi
	if [ "$1" = milter ]; then grep '^# milter: ' "$OLD" >> "$RESULTS" || true; fi
	grep "^$1 " "$OLD" >> "$RESULTS"
}
carry tput local
carry lat latency
carry relay relay
carry milter milter

if part local; then
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
fi

if part latency; then
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
fi

# peers.sh counts smtp-sink's messages by grepping the sink's whole output every 50 ms, and
# that output grows by about 40 bytes a message: after a few runs of 5,000 each poll costs
# tens of ms of CPU beside the target. Stopping the sink (by the PID peers.sh wrote) before
# every relay run makes peers.sh start a fresh one, so the harness costs every run the same.
fresh_sink() {
	if [ -f "$BENCH_DIR/sink.pid" ]; then
		kill "$(cat "$BENCH_DIR/sink.pid")" 2>/dev/null || true
		rm -f "$BENCH_DIR/sink.pid"
	fi
	i=0
	while ss -Hltn 'sport = :2599' | grep -q . && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
}
# Mail that an interrupted run left in a peer's queue would reach the sink during a later
# run and count for whichever target is measured then: remove it first (this Postfix and
# this OpenSMTPD serve the benchmark only). sluice starts on a fresh spool anyway.
purge_peers() {
	n=$(postqueue -j 2>/dev/null | grep -c . || true)
	if [ "$n" -gt 0 ]; then
		echo "bench: removing $n messages left in Postfix's queue by an earlier run"
		postsuper -d ALL >/dev/null 2>&1 || true
	fi
	# smtpctl insists on running with the group opensmtpq (dpkg -x dropped its setgid bit)
	ctl="setpriv --regid=opensmtpq --clear-groups $BENCH_DIR/opensmtpd-root/usr/sbin/smtpctl"
	n=$($ctl show queue 2>/dev/null | grep -c . || true)
	if [ "$n" -gt 0 ]; then
		echo "bench: removing $n envelopes left in OpenSMTPD's queue by an earlier run"
		$ctl remove all >/dev/null 2>&1 || true
	fi
}
if part relay; then
purge_peers
echo "bench: relay (peers.sh relay, $MESSAGES x $SIZE bytes to smtp-sink, $RELAY_RUNS runs each)"
targets="postfix opensmtpd sluice"
i=1
while [ $i -le $NTUNED ]; do targets="$targets sluice-tuned$i"; i=$((i + 1)); done
for s in $RELAY_SESSIONS; do
	r=1
	while [ $r -le "$RELAY_RUNS" ]; do
		for t in $targets; do
			n=$MESSAGES
			[ "$t" = opensmtpd ] && n=$OSD_RELAY_MESSAGES
			fresh_sink
			settle
			l1=$(cut -d' ' -f1 /proc/loadavg)
			case $t in
			sluice) line=$(peers relay endpoint "127.0.0.1:$PORT" "$SLUICE_MAILDIR" "$s" "$n" "$SIZE") ;;
			sluice-tuned*)
				i=${t#sluice-tuned}
				line=$(peers relay endpoint "127.0.0.1:$((TUNED_PORT + i - 1))" "$SDIR/tuned$i/mail/bench.test/u" "$s" "$n" "$SIZE") ;;
			*) line=$(peers relay "$t" "$s" "$n" "$SIZE") ;;
			esac
			echo "  $t run $r: $line"
			echo "relay $t run=$r load1=$l1 $line" >> "$RESULTS"
		done
		r=$((r + 1))
	done
done
fi
# ---- milter: sluice without a milter, with an accept-all one, with rspamd ----
# pgrp_ms PGID: CPU ms (user + system) used so far by the live processes of a group
pgrp_ms() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v g="$1" -v hz="$(getconf CLK_TCK)" '
	{ sub(/^.*\) /, ""); if ($3 == g) t += $12 + $13 } END { printf "%d\n", t * 1000 / hz }'
}
# wait_port PORT SECONDS PID: until something listens on 127.0.0.1:PORT (PID still alive)
wait_port() {
	i=0
	until ss -Hltn "sport = :$1" | grep -q .; do
		i=$((i + 1))
		[ $i -lt $(($2 * 10)) ] && kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
}
# start_pymilter PORT [--no-reply]: bench/milter-accept.py in its own process group
start_pymilter() {
	# shellcheck disable=SC2086 # no second argument: none at all
	setsid "$PY" "$TOP/bench/milter-accept.py" -p "$1" ${2:-} > "$SDIR/milter-accept-$1.log" 2>&1 &
	MPIDS="$MPIDS $!"
	wait_port "$1" 10 $! || { cat "$SDIR/milter-accept-$1.log" >&2; die "milter-accept.py did not start on $1"; }
}
# start_rspamd: rspamd with Debian's rules and our worker sockets, logs and databases in
# $SDIR/rspamd, exactly as tests/integration/test_milter.py starts it; the milter proxy
# (one worker, scanning itself) on MPORT, the normal and controller workers on the next two
start_rspamd() {
	r=$SDIR/rspamd
	mkdir "$r" "$r/override.d" "$r/local.d" "$r/db" "$r/run" "$r/log"
	printf 'milter = yes;\nbind_socket = "127.0.0.1:%d";\ntimeout = 60s;\ncount = 1;\nupstream "local" {\n  default = yes;\n  self_scan = yes;\n}\n' \
	    "$MPORT" > "$r/override.d/worker-proxy.inc"
	printf 'bind_socket = "127.0.0.1:%d";\ncount = 1;\n' $((MPORT + 1)) > "$r/override.d/worker-normal.inc"
	printf 'bind_socket = "127.0.0.1:%d";\ncount = 1;\n' $((MPORT + 2)) > "$r/override.d/worker-controller.inc"
	printf 'type = "file";\nfilename = "%s/log/rspamd.log";\nlevel = "info";\n' "$r" > "$r/override.d/logging.inc"
	# no DNS off this machine: a closed loopback port fails fast
	printf 'dns {\n  nameserver = ["127.0.0.1:9"];\n  timeout = 0.2s;\n  retransmits = 1;\n}\n' > "$r/local.d/options.inc"
	printf 'use = ["x-spamd-result", "x-rspamd-queue-id", "x-rspamd-server"];\nskip_local = false;\n' \
	    > "$r/local.d/milter_headers.conf"
	chown -R _rspamd:_rspamd "$r"
	setsid "$RSPAMD" -f -c /etc/rspamd/rspamd.conf -p "$r/run/rspamd.pid" --var "LOCAL_CONFDIR=$r" \
	    --var "DBDIR=$r/db" --var "RUNDIR=$r/run" --var "LOGDIR=$r/log" -u _rspamd -g _rspamd \
	    > "$r/stdout" 2>&1 &
	RSPAMD_PID=$!
	wait_port "$MPORT" 180 "$RSPAMD_PID" || { tail -20 "$r/stdout" "$r/log/rspamd.log" >&2; die "rspamd did not start on $MPORT"; }
}
mport() {
	case $1 in
	none) echo "$MILTER_PORT" ;; accept) echo $((MILTER_PORT + 1)) ;;
	noreply) echo $((MILTER_PORT + 2)) ;; rspamd) echo $((MILTER_PORT + 3)) ;;
	esac
}
if part milter; then
	mtargets="none accept noreply"
	echo "bench: milter: starting bench/milter-accept.py on $((MPORT + 3)) and (--no-reply) $((MPORT + 4))"
	start_pymilter $((MPORT + 3))
	ACCEPT_PID=${MPIDS##* }
	start_pymilter $((MPORT + 4)) --no-reply
	NOREPLY_PID=${MPIDS##* }
	RSPAMD_V=
	if [ -n "$RSPAMD" ] && id _rspamd >/dev/null 2>&1; then
		echo "bench: milter: starting rspamd's milter proxy on $MPORT (takes about 10 s)"
		start_rspamd
		RSPAMD_V=$("$RSPAMD" --version 2>/dev/null | sed -n 's/.*version //p' | head -n 1)
		mtargets="$mtargets rspamd"
	else
		echo "bench: milter: rspamd is not installed (make deps): no rspamd row" >&2
	fi
	{
		echo "# milter: the four sluiced differ by one line: none, \`milter accept inet:127.0.0.1:$((MPORT + 3)) timeout 60s\`, \`milter noreply inet:127.0.0.1:$((MPORT + 4)) timeout 60s\`, \`milter rspamd inet:127.0.0.1:$MPORT timeout 60s\`"
		echo "# milter: bench/milter-accept.py on $("$PY" -c 'import platform; print("Python", platform.python_version())'); rspamd ${RSPAMD_V:-not installed} (Debian's rules, one proxy worker scanning itself, log level info)"
	} >> "$RESULTS"
	for t in $mtargets; do
		case $t in
		none) start_sluice milter-none "$(mport none)" ;;
		accept) start_sluice milter-accept "$(mport accept)" "milter accept inet:127.0.0.1:$((MPORT + 3)) timeout 60s" ;;
		noreply) start_sluice milter-noreply "$(mport noreply)" "milter noreply inet:127.0.0.1:$((MPORT + 4)) timeout 60s" ;;
		rspamd) start_sluice milter-rspamd "$(mport rspamd)" "milter rspamd inet:127.0.0.1:$MPORT timeout 60s" ;;
		esac
		# warm-up (rspamd's first messages are slow), not measured
		before=$(count "milter-$t")
		"$LOAD" -s 4 -m 40 -l "$SIZE" -T 60 "127.0.0.1:$(mport "$t")" >/dev/null || true
		drain "milter-$t" 40 "$before"
	done
	echo "bench: milter: throughput (peers.sh local endpoint, $MILTER_MESSAGES x $SIZE bytes; rspamd and no-reply $MILTER_SLOW_MESSAGES; $MILTER_RUNS runs each)"
	for s in $MILTER_SESSIONS; do
		r=1
		while [ $r -le "$MILTER_RUNS" ]; do
			for t in $mtargets; do
				n=$MILTER_MESSAGES
				case $t in noreply | rspamd) n=$MILTER_SLOW_MESSAGES ;; esac
				case $t in accept) mp=$ACCEPT_PID ;; noreply) mp=$NOREPLY_PID ;; rspamd) mp=$RSPAMD_PID ;; *) mp= ;; esac
				settle
				l1=$(cut -d' ' -f1 /proc/loadavg)
				c0=0
				if [ -n "$mp" ]; then c0=$(pgrp_ms "$mp"); fi
				line=$(peers local endpoint "127.0.0.1:$(mport "$t")" "$(maildir "milter-$t")" "$s" "$n" "$SIZE")
				mc=-
				if [ -n "$mp" ]; then
					mc=$(awk -v a="$c0" -v b="$(pgrp_ms "$mp")" -v d="$(echo "$line" | sed -n 's/.* delivered=\([0-9]*\) .*/\1/p')" \
					    'BEGIN { printf "%.2f", (d > 0 ? (b - a) / d : 0) }')
				fi
				echo "  $t run $r: $line milter_cpu_ms/msg=$mc"
				echo "milter tput $t run=$r load1=$l1 $line milter_cpu_ms/msg=$mc" >> "$RESULTS"
			done
			r=$((r + 1))
		done
	done
	echo "bench: milter: accept latency, one session (smtp-load, $MILTER_LAT_MESSAGES messages)"
	for t in $mtargets; do
		settle
		before=$(count "milter-$t")
		line=$("$LOAD" -s 1 -m "$MILTER_LAT_MESSAGES" -l "$SIZE" -T 120 "127.0.0.1:$(mport "$t")") || true
		echo "  $t: $line"
		drain "milter-$t" "$(echo "$line" | sed -n 's/.* accepted=\([0-9]*\) .*/\1/p')" "$before"
		echo "milter lat $t $line" >> "$RESULTS"
	done
fi
echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESULTS"

echo
report
