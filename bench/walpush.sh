#!/usr/bin/env bash
# walpush.sh: archive_command throughput, pitr against cp and pgBackRest.
#
# Pushes N real 16 MiB WAL segments (default 256) one process per segment,
# as PostgreSQL's archiver does, to a local MinIO over TLS, and reports wall
# time, CPU seconds and peak RSS of
#   cp                                  to a local directory (the floor)
#   pitr wal-push                       default settings, push_concurrency 1, 4 (default), 8
#   pitr wal-push + pitr daemon         over the daemon's socket (PITR_SOCKET)
#   pitr wal-push, PITR_COMPRESSION     zstd, lz4, s2 (when the setting exists)
#   pgbackrest archive-push             sync, and async with process-max 2
#   wal-g wal-push                      with its defaults, when WALG_BIN is set
# in interleaved rounds, then single-segment latency and process start-up.
# Writes the Markdown section to $WORK/report.md and, unless
# PITR_BENCH_WRITE_DOCS=0, into docs/BENCHMARKS.md between the markers.
#
# pgBackRest is optional: when it is not installed, its modes and probes are
# skipped (said once in the log).
#
# Run as root (PostgreSQL runs as `postgres`):
#   bench/walpush.sh            everything (about 16 minutes on 2 cores, plus 5 to make the segments once)
#   bench/walpush.sh segments   only generate the segment cache
# Environment (defaults in brackets):
#   PITR_BENCH_SEGMENTS_DIR  cache of generated segments [/var/tmp/pitr-bench/segments]
#   PITR_BENCH_WORK          scratch: MinIO data, runs, results [/var/tmp/pitr-bench/work]
#   PITR_BENCH_ROUNDS        interleaved rounds [3]
#   PITR_BENCH_N             segments per run [256]
#   PITR_BENCH_N_RANDOM      segments per run of the random set [128: it is 3x slower to push]
#   PITR_BENCH_SETS          segment sets: pgbench (TPC-B WAL), random (incompressible rows) [pgbench random]
#   PITR_BENCH_MODES         [cp pitr-c1 pitr-c4 pitr-c8 pgbackrest-sync pgbackrest-async]; also
#                            pitr (default settings), pitr-daemon (pitr daemon running, wal-push
#                            over its socket; "not available" when the daemon makes no socket), walg
#   PITR_BENCH_CODECS        codec modes run as their own sets (codec-pgbench, codec-random) beside
#                            cp and pgbackrest-async [none; bench/speed.sh: zstd lz4 s2 when
#                            `pitr config --doc` lists compression]
#   PITR_BENCH_N_CODEC       segments per codec run [64]
#   PITR_BENCH_CODEC_SETS    segment sets of the codec runs [pgbench random]
#   PITR_BENCH_LATENCY_MODES [pitr-c1 pitr-c4 pgbackrest-sync]; also pitr-inproc (push_resident false), pitr-daemon, walg
#   WALG_BIN                 a wal-g binary: enables the walg mode and probes
#   PITR_BENCH_LATENCY_N     timed calls per latency probe and round [20]
#   PGBIN                    PostgreSQL binaries [/usr/lib/postgresql/15/bin]
#   PITR_MINIO_BIN           MinIO binary [minio in PATH, else ~/go/bin/minio]
#   PITR_BIN                 a pitr binary to measure [built from this tree]
#   PITR_BENCH_LOG_LEVEL     PITR_LOG_LEVEL of every pitr process [warn]; the resident pusher logs to pg_wal/pitr/push.log
#   PITR_ALT_BIN             a second pitr binary (e.g. with a fix), measured as modes alt-c1, alt-c4, alt-c8
#   PITR_BENCH_LATENCY       0 skips the latency and start-up probes [1]
#
# Segments are generated once: a scratch cluster archives with cp into the
# cache while `pgbench -i -s 50` then `pgbench -T` run (set pgbench), and
# then while rows of 1000 random bytes (pgcrypto's gen_random_bytes) are
# inserted (set random). Both sets come from the same cluster, so one
# pgBackRest stanza accepts them; its pg_control is kept in the cache.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SEGDIR=${PITR_BENCH_SEGMENTS_DIR:-/var/tmp/pitr-bench/segments}
WORK=${PITR_BENCH_WORK:-/var/tmp/pitr-bench/work}
ROUNDS=${PITR_BENCH_ROUNDS:-3}
N=${PITR_BENCH_N:-256}
N_RANDOM=${PITR_BENCH_N_RANDOM:-128}
SETS=${PITR_BENCH_SETS-pgbench random}
MODES=${PITR_BENCH_MODES-cp pitr-c1 pitr-c4 pitr-c8 pgbackrest-sync pgbackrest-async}
LATENCY_N=${PITR_BENCH_LATENCY_N:-20}
LATENCY_MODES=${PITR_BENCH_LATENCY_MODES-pitr-c1 pitr-c4 pgbackrest-sync}
CODECS=${PITR_BENCH_CODECS:-}
N_CODEC=${PITR_BENCH_N_CODEC:-64}
CODEC_SETS=${PITR_BENCH_CODEC_SETS:-pgbench random}
WALG=${WALG_BIN:-}
# The latency probe uses 9 segments per timed call.
GEN_SEGMENTS=$((N > 9 * LATENCY_N ? N : 9 * LATENCY_N))
GEN_SEGMENTS=$((N_RANDOM > GEN_SEGMENTS ? N_RANDOM : GEN_SEGMENTS))
GEN_SEGMENTS=$((N_CODEC > GEN_SEGMENTS ? N_CODEC : GEN_SEGMENTS))

BENCH=walpush
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

count_segments() { find "$1" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}' 2>/dev/null | wc -l; }

cleanup() {
	stop_pids
	# MinIO keeps deleted objects in .minio.sys until it purges them: gigabytes.
	rm -rf "$WORK/minio/data" "$WORK/cp-archive" "$WORK/pgbackrest-spool"
	if [ -n "${GEN_TMP:-}" ] && [ -d "$GEN_TMP/data" ]; then
		as_postgres "$PGBIN/pg_ctl" -D "$GEN_TMP/data" -m immediate stop >/dev/null 2>&1 || true
		rm -rf "$GEN_TMP"
	fi
}
trap cleanup EXIT

# generate_segments fills $SEGDIR/pgbench and $SEGDIR/random (and
# $SEGDIR/pgdata) unless they hold enough segments already.
generate_segments() {
	local s missing=0
	for s in pgbench random; do
		[ "$(count_segments "$SEGDIR/$s")" -ge "$GEN_SEGMENTS" ] || missing=1
	done
	[ -f "$SEGDIR/pgdata/global/pg_control" ] || missing=1
	if [ "$missing" = 0 ]; then
		log "using cached segments in $SEGDIR"
		return
	fi
	log "generating $GEN_SEGMENTS segments per set into $SEGDIR (takes a few minutes, once)"
	rm -rf "$SEGDIR/pgbench" "$SEGDIR/random" "$SEGDIR/pgdata"
	mkdir -p "$SEGDIR/pgbench" "$SEGDIR/random" "$SEGDIR/pgdata/global" "$(dirname "$SEGDIR")"
	GEN_TMP=$(mktemp -d "$(dirname "$SEGDIR")/gen.XXXXXX")
	chmod 755 "$GEN_TMP" "$(dirname "$SEGDIR")"
	chown postgres "$GEN_TMP" "$SEGDIR/pgbench" "$SEGDIR/random"
	local port
	port=$("$H" freeport)
	as_postgres "$PGBIN/initdb" -D "$GEN_TMP/data" -U postgres -A trust --no-sync >"$GEN_TMP/initdb.log"
	cat >>"$GEN_TMP/data/postgresql.conf" <<-EOF
		port = $port
		listen_addresses = ''
		unix_socket_directories = '$GEN_TMP'
		archive_mode = on
		archive_command = 'test ! -f $SEGDIR/pgbench/%f && cp %p $SEGDIR/pgbench/%f'
		# Speed only: neither changes what is written to WAL.
		fsync = off
		synchronous_commit = off
	EOF
	as_postgres "$PGBIN/pg_ctl" -D "$GEN_TMP/data" -l "$GEN_TMP/server.log" -w start >/dev/null
	local psql=(as_postgres "$PGBIN/psql" -h "$GEN_TMP" -p "$port" -U postgres -X -q -t -A -v ON_ERROR_STOP=1)
	local pgbench=(as_postgres "$PGBIN/pgbench" -h "$GEN_TMP" -p "$port" -U postgres)

	"${pgbench[@]}" -i -s 50 -q postgres >"$GEN_TMP/pgbench-init.log" 2>&1
	while [ "$(count_segments "$SEGDIR/pgbench")" -lt "$GEN_SEGMENTS" ]; do
		"${pgbench[@]}" -n -c 4 -j 2 -T 20 postgres >>"$GEN_TMP/pgbench.log" 2>&1
		log "pgbench set: $(count_segments "$SEGDIR/pgbench") segments"
	done
	switch_and_wait "$SEGDIR/pgbench"

	"${psql[@]}" -c "ALTER SYSTEM SET archive_command = 'test ! -f $SEGDIR/random/%f && cp %p $SEGDIR/random/%f'" \
		-c "SELECT pg_reload_conf()" >/dev/null
	sleep 1
	"${psql[@]}" -c "CREATE EXTENSION pgcrypto" \
		-c "CREATE TABLE rnd (id bigserial PRIMARY KEY, b bytea)" \
		-c "ALTER TABLE rnd ALTER b SET STORAGE EXTERNAL" >/dev/null
	"${psql[@]}" -c "SELECT pg_switch_wal()" >/dev/null
	while [ "$(count_segments "$SEGDIR/random")" -lt "$GEN_SEGMENTS" ]; do
		"${psql[@]}" -c "INSERT INTO rnd (b) SELECT gen_random_bytes(1000) FROM generate_series(1, 100000)" >/dev/null
		log "random set: $(count_segments "$SEGDIR/random") segments"
	done
	switch_and_wait "$SEGDIR/random"

	as_postgres "$PGBIN/pg_ctl" -D "$GEN_TMP/data" -w stop >/dev/null
	cp "$GEN_TMP/data/global/pg_control" "$SEGDIR/pgdata/global/"
	cp "$GEN_TMP/data/PG_VERSION" "$SEGDIR/pgdata/"
	rm -rf "$GEN_TMP"
	GEN_TMP=
	# Keep exactly the segments we need, and none from the other set's edges.
	for s in pgbench random; do
		find "$SEGDIR/$s" -maxdepth 1 -type f | sort | tail -n +$((GEN_SEGMENTS + 1)) | xargs -r rm -f
	done
	log "segments ready: $(du -sh "$SEGDIR" | cut -f1)"
}

# switch_and_wait ends the current segment and waits until the archiver
# has copied it.
switch_and_wait() {
	local dir=$1 seg
	seg=$("${psql[@]}" -c "SELECT pg_walfile_name(pg_switch_wal())")
	for _ in $(seq 600); do
		[ -f "$dir/$seg" ] && return
		sleep 0.1
	done
	die "segment $seg was not archived into $dir"
}

setup_pitr() {
	export PITR_S3_ENDPOINT=$BENCH_S3_ENDPOINT
	export PITR_LOG_LEVEL=${PITR_BENCH_LOG_LEVEL:-warn}
	"$PITR" keygen --output "$WORK/age-identity.txt" >/dev/null 2>&1 || true
	export PITR_AGE_RECIPIENTS
	PITR_AGE_RECIPIENTS=$(grep -o 'age1[0-9a-z]*' "$WORK/age-identity.txt" | head -1)
	[ -n "$PITR_AGE_RECIPIENTS" ] || die "no age recipient in $WORK/age-identity.txt"
}

setup_pgbackrest() {
	PGBR_CONF=$WORK/pgbackrest.conf
	PGBR_SPOOL=$WORK/pgbackrest-spool
	mkdir -p "$WORK/pgbackrest-log" "$WORK/pgbackrest-lock"
	cat >"$PGBR_CONF" <<-EOF
		[global]
		$(pgbackrest_repo_conf)
		compress-type=zst
		compress-level=1
		log-path=$WORK/pgbackrest-log
		lock-path=$WORK/pgbackrest-lock
		spool-path=$PGBR_SPOOL

		[bench]
		pg1-path=$SEGDIR/pgdata
	EOF
	PGBR="pgbackrest --config=$PGBR_CONF --stanza=bench"
	$PGBR --no-online --log-level-console=warn stanza-create
}

setup_walg() {
	WALG_CONF=$WORK/walg.json
	(umask 077 && walg_conf unset >"$WALG_CONF")
}

# daemon_command prints the command that runs pitr daemon for repository
# prefix $1 with only its socket: no streaming, schedules or retention.
daemon_command() {
	echo "env PITR_REPO=s3://pitr/$1 PITR_SOCKET=$PITR_SOCK PITR_DAEMON_STREAM=false PITR_BACKUP_SCHEDULE= PITR_DUMP_SCHEDULE= PITR_FILES_SCHEDULE= PITR_DAEMON_RETAIN=false PITR_METRICS_ADDR=127.0.0.1:$DAEMON_METRICS_PORT $PITR daemon"
}

# check_daemon sets DAEMON_NA to why pitr daemon cannot be measured (it
# creates no socket within 10 s), or empty when it can.
check_daemon() {
	PITR_SOCK=$WORK/pitr.sock
	DAEMON_METRICS_PORT=$("$H" freeport)
	DAEMON_NA=
	local pid
	rm -f "$PITR_SOCK"
	sh -c "exec $(daemon_command probe)" >"$WORK/daemon-probe.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		[ -S "$PITR_SOCK" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ ! -S "$PITR_SOCK" ]; then
		local said
		said=$(tail -c 200 "$WORK/daemon-probe.log" | tr -d '"\\\n' | tr -s ' ')
		DAEMON_NA="pitr daemon created no socket at PITR_SOCKET within 10 s${said:+ (it said: $said)}"
	fi
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	"$H" clean pitr probe/
	if [ -n "$DAEMON_NA" ]; then log "pitr-daemon: not available: $DAEMON_NA"; fi
}

# record_na records that mode $2 could not run, in set $1 with n $3 (0 for a latency probe).
record_na() {
	printf '{"kind":"na","set":"%s","label":"%s","title":"%s","n":%d,"note":"%s"}\n' "$1" "$2" "$(mode_title "$2")" "$3" "$DAEMON_NA" >>"$RESULTS"
}

# mode_command prints the archive_command of a mode for run $2.
mode_command() {
	local mode=$1 tag=${2:-}
	case $mode in
	cp) echo "test ! -f $WORK/cp-archive/%f && cp %p $WORK/cp-archive/%f" ;;
	pitr) echo "PITR_REPO=s3://pitr/$tag $PITR wal-push %p" ;;
	pitr-daemon) echo "PITR_REPO=s3://pitr/$tag PITR_SOCKET=$PITR_SOCK $PITR wal-push %p" ;;
	pitr-zstd | pitr-lz4 | pitr-s2) echo "PITR_REPO=s3://pitr/$tag PITR_COMPRESSION=${mode#pitr-} $PITR wal-push %p" ;;
	pitr-c*) echo "PITR_REPO=s3://pitr/$tag PITR_PUSH_CONCURRENCY=${mode#pitr-c} $PITR wal-push %p" ;;
	walg) echo "WALG_S3_PREFIX=s3://walg/$tag $WALG --config $WALG_CONF wal-push %p" ;;
	alt-c*) echo "PITR_REPO=s3://pitr/$tag PITR_PUSH_CONCURRENCY=${mode#alt-c} ${PITR_ALT_BIN:?PITR_ALT_BIN is not set} wal-push %p" ;;
	pgbackrest-sync) echo "$PGBR --pg1-path=%D archive-push %p" ;;
	pgbackrest-async) echo "$PGBR --pg1-path=%D --archive-async --process-max=2 archive-push %p" ;;
	*) die "unknown mode $mode" ;;
	esac
}

mode_title() {
	case $1 in
	cp) echo "cp to local disk (floor)" ;;
	pitr) echo "pitr wal-push (default settings)" ;;
	pitr-daemon) echo "pitr wal-push via pitr daemon (socket)" ;;
	pitr-zstd | pitr-lz4 | pitr-s2) echo "pitr wal-push, PITR_COMPRESSION=${1#pitr-}" ;;
	walg) echo "wal-g wal-push (lz4, upload concurrency 16: its defaults)" ;;
	pitr-c4) echo "pitr wal-push, concurrency 4 (default)" ;;
	pitr-c*) echo "pitr wal-push, concurrency ${1#pitr-c}" ;;
	alt-c*) echo "pitr $(basename "$PITR_ALT_BIN") (PITR_ALT_BIN), concurrency ${1#alt-c}" ;;
	pgbackrest-sync) echo "pgBackRest archive-push, sync" ;;
	pgbackrest-async) echo "pgBackRest archive-push, async, process-max 2" ;;
	esac
}

# reset_mode empties where a mode's previous run stored its archive.
reset_mode() {
	case $1 in
	cp) rm -rf "$WORK/cp-archive" && mkdir -p "$WORK/cp-archive" ;;
	pitr* | alt-c*) "$H" clean pitr "$2/" ;;
	pgbackrest-*) rm -rf "$PGBR_SPOOL" && "$H" clean pgbackrest repo/archive/bench/15-1/ ;;
	walg) "$H" clean walg "$2/" ;;
	esac
}

stored_of() {
	case $1 in
	cp) echo "$WORK/cp-archive" ;;
	pitr* | alt-c*) echo "s3://pitr/$2/" ;;
	pgbackrest-*) echo "s3://pgbackrest/repo/archive/bench/15-1/" ;;
	walg) echo "s3://walg/$2/" ;;
	esac
}

# run_mode SET ROUND MODE [SEGMENTS]: SET is pgbench, random, or
# codec-pgbench / codec-random (the same segments, PITR_BENCH_N_CODEC of them).
run_mode() {
	local set=$1 round=$2 mode=$3 tag="$1-r$2-$3" n=$N segset=${1#codec-}
	[ "$set" = random ] && n=$N_RANDOM
	case $set in codec-*) n=$N_CODEC ;; esac
	if [ "$mode" = pitr-daemon ] && [ -n "$DAEMON_NA" ]; then
		record_na "$set" "$mode" "$n"
		return
	fi
	local daemon=()
	[ "$mode" = pitr-daemon ] && daemon=(--daemon "$(daemon_command "$tag")" --daemon-socket "$PITR_SOCK")
	reset_mode "$mode" "$tag"
	sync
	"$H" run --label "$mode" --title "$(mode_title "$mode")" --set "$set" --round "$round" \
		--segdir "$SEGDIR/$segset" --pgcontrol "$SEGDIR/pgdata" --dir "$WORK/run/$mode" -n "$n" \
		--command "$(mode_command "$mode" "$tag")" --minio-pid "$MINIO_PID" \
		--stored "$(stored_of "$mode" "$tag")" --out "$RESULTS" "${daemon[@]}"
	reset_mode "$mode" "$tag"
}

# env_used prints the settings that differ from the defaults.
env_used() {
	local v out=()
	for v in PITR_BENCH_ROUNDS PITR_BENCH_N PITR_BENCH_N_RANDOM PITR_BENCH_SETS PITR_BENCH_MODES PITR_BENCH_LATENCY_N PITR_BENCH_LATENCY \
		PITR_BENCH_LATENCY_MODES PITR_BENCH_CODECS PITR_BENCH_N_CODEC PITR_BENCH_CODEC_SETS PITR_BIN PITR_ALT_BIN WALG_BIN; do
		[ -n "${!v:-}" ] && out+=("$v='${!v}'")
	done
	echo "${out[*]}"
}

latency_probes() {
	local round=$1 set=pgbench mode
	local base="$PITR wal-push %p"
	local warm="PITR_REPO=s3://pitr/lat-r$round-%i PITR_PUSH_CONCURRENCY=1 $base"
	local common=(--set "$set" --round "$round" --segdir "$SEGDIR/$set" --pgcontrol "$SEGDIR/pgdata"
		--dir "$WORK/run/latency" -n "$LATENCY_N" --out "$RESULTS")
	for mode in $(available $LATENCY_MODES); do
		case $mode in
		pitr-c1)
			"$H" latency "${common[@]}" --label pitr-c1 --title "pitr wal-push, no look-ahead (concurrency 1)" \
				--warmup "$warm" --command "PITR_REPO=s3://pitr/lat-r$round-%i PITR_PUSH_CONCURRENCY=1 $base"
			;;
		pitr-c4)
			"$H" latency "${common[@]}" --label pitr-c4 --title "pitr wal-push, default settings (resident pusher, started by the call before; 7 more .ready)" --next \
				--command "PITR_REPO=s3://pitr/lat-r$round-%i $base"
			;;
		pitr-inproc)
			"$H" latency "${common[@]}" --label pitr-inproc --title "pitr wal-push in-process (push_resident false; concurrency 4; 7 more .ready)" --next \
				--command "PITR_REPO=s3://pitr/lat-r$round-%i PITR_PUSH_RESIDENT=false $base"
			;;
		pitr-daemon)
			if [ -n "$DAEMON_NA" ]; then
				record_na "$set" "$mode" 0
				continue
			fi
			"$H" latency "${common[@]}" --label pitr-daemon --title "pitr wal-push via pitr daemon (socket)" \
				--daemon "$(daemon_command "latd-r$round-%i")" --daemon-socket "$PITR_SOCK" \
				--warmup "PITR_REPO=s3://pitr/latd-r$round-%i PITR_SOCKET=$PITR_SOCK PITR_PUSH_CONCURRENCY=1 $base" \
				--command "PITR_REPO=s3://pitr/latd-r$round-%i PITR_SOCKET=$PITR_SOCK $base"
			;;
		pgbackrest-sync)
			reset_mode pgbackrest-sync
			"$H" latency "${common[@]}" --label pgbackrest-sync --title "pgBackRest archive-push, sync" \
				--command "$(mode_command pgbackrest-sync)"
			reset_mode pgbackrest-sync
			;;
		walg)
			"$H" latency "${common[@]}" --label walg --title "wal-g wal-push (its defaults; 7 more .ready)" \
				--warmup "WALG_S3_PREFIX=s3://walg/lat-r$round-%i WALG_UPLOAD_CONCURRENCY=1 $WALG --config $WALG_CONF wal-push %p" \
				--command "WALG_S3_PREFIX=s3://walg/lat-r$round-%i $WALG --config $WALG_CONF wal-push %p"
			"$H" clean walg "lat-r$round-"
			;;
		*) die "unknown latency mode $mode" ;;
		esac
	done
	"$H" clean pitr "lat"
}

main() {
	[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL runs as postgres, the rest as root)"
	mkdir -p "$WORK"
	build_harness walpush
	build_pitr
	generate_segments
	start_minio pitr pgbackrest walg
	setup_pitr
	if have_pgbackrest; then setup_pgbackrest; fi
	if [ -n "$WALG" ]; then setup_walg; fi
	check_daemon
	RESULTS=$WORK/results.jsonl
	: >"$RESULTS"
	local started=$SECONDS round set i c
	local modes=($(available $MODES)) codec_modes=()
	for c in $CODECS; do codec_modes+=("pitr-$c"); done
	if [ ${#codec_modes[@]} -gt 0 ]; then mapfile -t codec_modes < <(available cp "${codec_modes[@]}" pgbackrest-async); fi
	for round in $(seq "$ROUNDS"); do
		for set in $SETS; do
			# Rotate the order each round so no mode always runs first.
			for i in "${!modes[@]}"; do
				run_mode "$set" "$round" "${modes[$(((i + round - 1) % ${#modes[@]}))]}"
			done
		done
		if [ ${#codec_modes[@]} -gt 0 ]; then
			for set in $CODEC_SETS; do
				for i in "${!codec_modes[@]}"; do
					run_mode "codec-$set" "$round" "${codec_modes[$(((i + round - 1) % ${#codec_modes[@]}))]}"
				done
			done
		fi
		[ "${PITR_BENCH_LATENCY:-1}" = 1 ] || continue
		latency_probes "$round"
		local probes=("true=/bin/true" "pitr=$PITR --version")
		if have_pgbackrest; then probes+=("pgbackrest=pgbackrest version"); fi
		if [ -n "$WALG" ]; then probes+=("wal-g=$WALG --version"); fi
		"$H" startup --round "$round" -n 50 --out "$RESULTS" "${probes[@]}"
	done
	local elapsed=$((SECONDS - started))
	"$H" report --rounds "$ROUNDS" --n "$N" --elapsed "$elapsed" --rev "$PITR_REV" \
		--cmd "bench/walpush.sh" --env "$(env_used)" "$RESULTS" >"$WORK/report.md"
	if [ "${PITR_BENCH_WRITE_DOCS:-1}" = 1 ]; then
		"$H" splice --file "$ROOT/docs/BENCHMARKS.md" --section "$WORK/report.md"
		log "updated docs/BENCHMARKS.md"
	fi
	cat "$WORK/report.md"
}

case ${1:-all} in
all) main ;;
segments) # only generate (or check) the segment cache
	[ "$(id -u)" = 0 ] || die "run as root"
	mkdir -p "$WORK"
	build_harness walpush
	generate_segments
	;;
*) die "usage: $0 [all|segments]" ;;
esac
