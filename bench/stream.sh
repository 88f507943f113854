#!/usr/bin/env bash
# stream.sh: pitr wal-receive under a steady pgbench load, side by side with
# PostgreSQL's pg_receivewal (what Barman's streaming runs).
#
# One scratch PostgreSQL 15 cluster (archive_mode off, pgbench -i -s $SCALE)
# and one local MinIO over TLS. Each phase starts both receivers on their own
# physical slots, runs `pgbench -c 4 -j 2 -R $RATE -T $SECONDS`, and meanwhile
# commits a one-row INSERT every 100 ms on its own connection, reads the end
# of WAL right after the commit returns, and polls pg_stat_replication every
# 5 ms until each receiver reports that position flushed. pitr reports flushed
# only what MinIO confirmed storing, so that is the moment the commit is
# durable in object storage; pg_receivewal's flush is an fsync to local disk.
# After the load, pg_switch_wal() ends the segment; once both receivers
# report it flushed they get SIGTERM. Phases:
#   1s     pitr with the default stream_ship_interval; pg_receivewal as Barman runs it by default
#   200ms  stream_ship_interval 200ms; pg_receivewal --synchronous (fsync and report every write)
#   sync   pitr --synchronous with synchronous_standby_names = 'pitr' (commits wait
#          for MinIO); pg_receivewal --synchronous beside it, not waited for
#   sync0  as sync with stream_group_delay 0: every flush stored on its own (not by default)
# Writes the Markdown section to $WORK/report.md and, unless
# PITR_BENCH_WRITE_DOCS=0, into docs/BENCHMARKS.md between this script's markers.
#
# Run as root (PostgreSQL runs as `postgres`), about 5 minutes:
#   bash bench/stream.sh
# Environment (defaults in brackets):
#   PITR_BENCH_STREAM_WORK  scratch: cluster, MinIO data, logs, results [/var/tmp/pitr-bench-stream]
#   PITR_BENCH_SCALE        pgbench scale [20]
#   PITR_BENCH_RATE         pgbench -R, transactions per second; 0 runs unthrottled [300]
#   PITR_STREAM_GROUP_DELAY pitr's stream_group_delay outside phase sync0 [5ms]
#   PITR_BENCH_SECONDS      pgbench -T per phase [60]
#   PITR_BENCH_PHASES       [1s 200ms sync]
#   PITR_BENCH_WRITE_DOCS   1: update docs/BENCHMARKS.md [1]
#   PGBIN                   PostgreSQL binaries [/usr/lib/postgresql/15/bin]
#   PITR_MINIO_BIN          MinIO binary [minio in PATH, else ~/go/bin/minio]
#   PITR_BIN                a pitr binary to measure [built from this tree]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PITR_BENCH_STREAM_WORK:-/var/tmp/pitr-bench-stream}
SCALE=${PITR_BENCH_SCALE:-20}
RATE=${PITR_BENCH_RATE:-300}
SECONDS_PER_PHASE=${PITR_BENCH_SECONDS:-60}
PHASES=${PITR_BENCH_PHASES:-1s 200ms sync}

BENCH=stream.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

cleanup() {
	if [ -n "${SRC:-}" ] && [ -f "$SRC/postmaster.pid" ]; then
		as_postgres "$PGBIN/pg_ctl" -D "$SRC" -m immediate stop >/dev/null 2>&1 || true
	fi
	stop_pids
	# Keep logs and results; drop the bulk.
	cp "$WORK/pg/postgres.log" "$WORK/logs/" 2>/dev/null || true
	rm -rf "$WORK/pg" "$WORK/minio/data" "$WORK/receivewal"
}
trap cleanup EXIT

build() {
	mkdir -p "$WORK/logs"
	build_harness stream
	build_pitr
}

setup_pitr() {
	export PITR_S3_ENDPOINT=$BENCH_S3_ENDPOINT PITR_LOG_LEVEL=debug PITR_LOG_FORMAT=json PITR_AGE_RECIPIENTS
	rm -f "$WORK/age-identity.txt"
	"$PITR" keygen --output "$WORK/age-identity.txt" >/dev/null 2>&1
	PITR_AGE_RECIPIENTS=$(grep -o 'age1[0-9a-z]*' "$WORK/age-identity.txt" | head -1)
	[ -n "$PITR_AGE_RECIPIENTS" ] || die "no age recipient in $WORK/age-identity.txt"
}

setup_cluster() {
	SRC=$WORK/pg/src
	SOCK=$WORK/pg/sock
	rm -rf "$WORK/pg" "$WORK/receivewal"
	mkdir -p "$SOCK"
	chmod 755 "$WORK"
	chown -R postgres "$WORK/pg"
	PGPORT=$("$H" freeport)
	export PITR_PG_DSN="host=127.0.0.1 port=$PGPORT user=postgres"
	as_postgres "$PGBIN/initdb" -D "$SRC" -U postgres -A trust >"$WORK/logs/initdb.log"
	cat >>"$SRC/postgresql.conf" <<-EOF
		port = $PGPORT
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$SOCK'
		archive_mode = off
		log_line_prefix = '%m [%p] '
	EOF
	as_postgres "$PGBIN/pg_ctl" -D "$SRC" -l "$WORK/pg/postgres.log" -w start >/dev/null
	log "pgbench -i -s $SCALE"
	as_postgres "$PGBIN/pgbench" -h "$SOCK" -p "$PGPORT" -U postgres -i -s "$SCALE" -q postgres >"$WORK/logs/pgbench-init.log" 2>&1
	# Before any phase: with only the sync phase, creating it later would
	# wait for a synchronous standby that is not connected yet.
	psql_src -c "CREATE TABLE IF NOT EXISTS stream_probe (at timestamptz DEFAULT now())" >/dev/null
	psql_src -c CHECKPOINT
}

run_phase() {
	local phase=$1 interval=1s title pflag="" rflag="" rlabel=pg_receivewal group=${PITR_STREAM_GROUP_DELAY:-5ms} rate="-R $RATE"
	case $phase in
	1s) title="ship interval 1s (default)" ;;
	200ms) interval=200ms title="ship interval 200ms" rflag=" --synchronous" ;;
	sync) title="pitr --synchronous, synchronous_standby_names = 'pitr'" pflag=" --synchronous" rflag=" --synchronous" ;;
	sync0) title="pitr --synchronous, stream_group_delay 0 (no grouping)" pflag=" --synchronous" rflag=" --synchronous" group=0 ;;
	*) die "unknown phase $phase" ;;
	esac
	rlabel+=$rflag
	local rdir=$WORK/receivewal/$phase
	mkdir -p "$rdir"
	# A new physical slot starts at the last checkpoint's redo pointer: make
	# it recent, so neither receiver starts with a backlog.
	psql_src -c CHECKPOINT
	"$PGBIN/pg_receivewal" -d "$PITR_PG_DSN" --slot=receivewal --create-slot --if-not-exists
	if [ -n "$pflag" ]; then
		psql_src -c "ALTER SYSTEM SET synchronous_standby_names = 'pitr'" -c "SELECT pg_reload_conf()" >/dev/null
	fi
	[ "$RATE" != 0 ] || rate=""
	log "phase $phase: $title"
	"$H" run --phase "$phase" --title "$title" --out "$RESULTS" --minio-pid "$MINIO_PID" ${pflag:+--synchronous} \
		--pgbench "$PGBIN/pgbench -h $SOCK -p $PGPORT -U postgres -n -c 4 -j 2 $rate -T $SECONDS_PER_PHASE postgres" \
		--recv "pitr$pflag|pitr|$WORK/logs/$phase-pitr.log|s3://pitr/$phase|env PITR_REPO=s3://pitr/$phase PITR_STREAM_SHIP_INTERVAL=$interval PITR_STREAM_GROUP_DELAY=$group $PITR wal-receive$pflag" \
		--recv "$rlabel|pg_receivewal|$WORK/logs/$phase-pg_receivewal.log|-|$PGBIN/pg_receivewal -d '$PITR_PG_DSN' -D $rdir --slot=receivewal --no-loop --no-password$rflag"
	if [ -n "$pflag" ]; then
		psql_src -c "ALTER SYSTEM RESET synchronous_standby_names" -c "SELECT pg_reload_conf()" >/dev/null
	fi
	rm -rf "$rdir"
}

header() {
	local elapsed=$1
	cat <<-EOF
		## WAL streaming (wal-receive)

		Generated by \`bash bench/stream.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); pitr $PITR_REV; $((elapsed / 60)) min $((elapsed % 60)) s.

		Reproduce (as root, from the repository root):

		\`\`\`sh
		bash bench/stream.sh
		\`\`\`

		- Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), $(awk '/MemTotal/ {printf "%d GiB", $2/1048576 + 0.5}' /proc/meminfo) RAM, Linux $(uname -r); shared with other work.
		- Server: $("$PGBIN/postgres" --version), defaults except \`archive_mode = off\` (so \`wal_level = replica\`, \`synchronous_commit = on\`, \`fsync = on\`, \`full_page_writes = on\`); data and pg_receivewal's directory on the same local disk. MinIO (built with \`go install\`, one drive, same disk) over TLS on loopback.
		- Load: \`pgbench -i -s $SCALE\`, then per phase \`pgbench -n -c 4 -j 2 -R $RATE -T $SECONDS_PER_PHASE\` (TPC-B, $RATE tps at a fixed rate, so the WAL rate is steady; the tps column shows whether it kept up).
		- Probe: every 100 ms, on its own connection, \`INSERT INTO stream_probe DEFAULT VALUES\` (autocommit), then \`SELECT pg_current_wal_insert_lsn()\`; a second connection polls \`pg_stat_replication.flush_lsn\` per application_name every 5 ms, and a probe counts as durable at the first poll at or past its LSN (5 ms resolution, the poll's own time included). pitr's flush position is only ever what MinIO confirmed storing; pg_receivewal's is what it fsynced to local disk (without \`--synchronous\` it fsyncs only when a segment is complete and reports every 10 s, \`--status-interval\`), so it is not object storage.
		- pitr: \`PITR_LOG_LEVEL=debug\` (one log line per chunk), its default compression (s2 since issue 13, zstd before) and age to one X25519 recipient. Both receivers start each phase on a new physical slot (after a \`CHECKPOINT\`, so from the start of the current segment), and get SIGTERM after \`pg_switch_wal()\` and both reported that segment flushed.
		- CPU: user+system seconds from \`/proc/PID/stat\` over the pgbench run, as a % of one core. Peak RSS: \`ru_maxrss\` from wait4 when the receiver exits. Machine busy: all processes (PostgreSQL, pgbench, MinIO, both receivers, the probe), as a % of all CPUs.

	EOF
}

main() {
	[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL runs as postgres, the rest as root)"
	local started=$SECONDS phase
	build
	start_minio pitr
	setup_pitr
	setup_cluster
	RESULTS=$WORK/results.jsonl
	: >"$RESULTS"
	for phase in $PHASES; do
		run_phase "$phase"
	done
	header $((SECONDS - started)) >"$WORK/header.md"
	"$H" report --header "$WORK/header.md" "$RESULTS" | sed "s#$WORK/bin/pitr#\$PITR#g; s#$WORK#\$WORK#g" >"$WORK/report.md"
	if [ "${PITR_BENCH_WRITE_DOCS:-1}" = 1 ]; then
		"$H" splice --file "$ROOT/docs/BENCHMARKS.md" --section "$WORK/report.md"
		log "updated docs/BENCHMARKS.md"
	fi
	cat "$WORK/report.md"
}

main "$@"
