#!/usr/bin/env bash
# verify.sh: `pitr verify` throughput against the floor (plain GETs of the
# same objects, discarding the bytes), on a base backup of a pgbench
# cluster and its WAL in one local MinIO over TLS.
#
# One scratch cluster (pgbench -i -s $SCALE) archives with pitr wal-push;
# pitr backup stores a base backup. Then, per round:
#   first  pitr verify --full --json with an empty cache (reads every object:
#          decrypt, decompress, SHA-256), and the floor: GET of every object
#          under the repository's prefix, 4 at once (pitr's default workers)
#   incr   after pgbench -t $INCR_TX and a WAL switch (a night's new WAL):
#          pitr verify --json with the first run's state (reads only the new
#          objects), and the floor: GET of the objects modified since
# The order of floor and pitr alternates by round; before the first round
# every object is read once, untimed, so both find MinIO's data in the page
# cache. For each: wall time, MB/s of stored bytes read, CPU of the tool, of
# MinIO and of everyone else (the machine is shared).
# Writes the Markdown section to $WORK/report.md and prints it (docs/BENCHMARKS.md
# is edited by hand).
#
# Run as root (PostgreSQL runs as `postgres`):
#   bash bench/verify.sh     about 5 minutes on 2 cores with the defaults
# Environment (defaults in brackets):
#   PITR_BENCH_VERIFY_WORK  scratch: cluster, MinIO data, results [/var/tmp/pitr-bench-verify]
#   PITR_BENCH_SCALE        pgbench scale of the cluster [50]
#   PITR_BENCH_ROUNDS       rounds [2]
#   PITR_BENCH_INCR_TX      pgbench transactions before the incremental run [20000]
#   PGBIN                   PostgreSQL binaries [/usr/lib/postgresql/15/bin]
#   PITR_MINIO_BIN          MinIO binary [minio in PATH, else ~/go/bin/minio]
#   PITR_BIN                a pitr binary to measure [built from this tree]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PITR_BENCH_VERIFY_WORK:-/var/tmp/pitr-bench-verify}
SCALE=${PITR_BENCH_SCALE:-50}
ROUNDS=${PITR_BENCH_ROUNDS:-2}
INCR_TX=${PITR_BENCH_INCR_TX:-20000}

BENCH=verify.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

cleanup() {
	if [ -n "${SRC:-}" ] && [ -f "$SRC/postmaster.pid" ]; then
		as_postgres "$PGBIN/pg_ctl" -D "$SRC" -m immediate stop >/dev/null 2>&1 || true
	fi
	stop_pids
	rm -rf "$WORK/minio/data" "$WORK/pg"
}
trap cleanup EXIT

setup_pitr() {
	export PITR_REPO=s3://pitr/bench PITR_S3_ENDPOINT=$BENCH_S3_ENDPOINT PITR_LOG_LEVEL=warn PITR_AGE_RECIPIENTS
	"$PITR" keygen --output "$WORK/age-identity.txt" >/dev/null 2>&1
	export PITR_AGE_IDENTITY_FILE=$WORK/age-identity.txt
	PITR_AGE_RECIPIENTS=$(grep -o 'age1[0-9a-z]*' "$WORK/age-identity.txt" | head -1)
	[ -n "$PITR_AGE_RECIPIENTS" ] || die "no age recipient in $WORK/age-identity.txt"
}

setup_cluster() {
	SRC=$WORK/pg/src
	SOCK=$WORK/sock
	mkdir -p "$WORK/pg" "$SOCK"
	chown postgres "$WORK/pg" "$SOCK" "$WORK/logs"
	PGPORT=$("$H" freeport)
	export PITR_PG_DSN="host=127.0.0.1 port=$PGPORT user=postgres"
	as_postgres "$PGBIN/initdb" -D "$SRC" -U postgres -A trust >"$WORK/logs/initdb.log"
	cat >>"$SRC/postgresql.conf" <<-EOF
		port = $PGPORT
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$SOCK'
		archive_mode = on
		archive_command = '$PITR wal-push %p'
		synchronous_commit = off
	EOF
	# The server (so archive_command) inherits this environment: AWS_* and PITR_*.
	as_postgres "$PGBIN/pg_ctl" -D "$SRC" -l "$WORK/logs/src.log" -w start >/dev/null
	log "pgbench -i -s $SCALE"
	as_postgres "$PGBIN/pgbench" -h "$SOCK" -p "$PGPORT" -U postgres -i -s "$SCALE" -q postgres >"$WORK/logs/pgbench-init.log" 2>&1
	psql_src -c CHECKPOINT
	log "pitr backup"
	"$PITR" backup >"$WORK/logs/backup.log" 2>&1 || die "pitr backup: $(tail -3 "$WORK/logs/backup.log")"
	wait_archived "$(switch_wal)"
}

quiet() {
	sync
	"$H" idle --max 10s
}

floor() { # phase round [--newer T]
	local phase=$1 round=$2
	shift 2
	quiet
	"$H" floor --phase "$phase" --tool floor --round "$round" --title 'GET of each object, 4 at once (floor)' \
		--minio-pid "$MINIO_PID" --out "$RESULTS" --bucket pitr --prefix bench/ --concurrency 4 "$@"
}

verify() { # phase round [flags...]
	local phase=$1 round=$2 title='`pitr verify`'
	shift 2
	[ "$phase" = first ] && title='`pitr verify --full` (empty cache)'
	quiet
	"$H" run --phase "$phase" --tool pitr --round "$round" --title "$title" --minio-pid "$MINIO_PID" \
		--out "$RESULTS" --log "$WORK/logs/verify-$phase-r$round.log" -- \
		env "XDG_CACHE_HOME=$WORK/cache/r$round" "$PITR" verify --json "$@"
}

machine_facts() {
	local stored
	stored=$("$PITR" list --json 2>/dev/null | python3 -c 'import json, sys; print(sum(b["stored"] for b in json.load(sys.stdin)["backups"]))' || echo 0)
	{
		echo "- pgbench scale $SCALE ($((DB_BYTES / 1000000)) MB of data files), one base backup ($((stored / 1000000)) MB stored) and its WAL; incremental: pgbench -t $INCR_TX, then a WAL switch."
		echo "- Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM; MinIO $("$MINIO" --version | head -1 | awk '{print $3}') over TLS on 127.0.0.1, data in the page cache; pitr $PITR_REV, zstd and age. Shared with other work: see the others' CPU column."
	} >"$WORK/facts.md"
}

main() {
	[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL runs as postgres)"
	rm -rf "$WORK"
	mkdir -p "$WORK/logs"
	build_harness verify
	build_pitr
	start_minio pitr
	setup_pitr
	setup_cluster
	DB_BYTES=$(du -sb --exclude=pg_wal "$SRC" | cut -f1)
	RESULTS=$WORK/results.jsonl
	: >"$RESULTS"
	"$H" floor --phase warm --tool warm --bucket pitr --prefix bench/ >/dev/null 2>&1 # page cache, untimed
	local round since
	for round in $(seq "$ROUNDS"); do
		rm -rf "$WORK/cache/r$round"
		if [ $((round % 2)) = 1 ]; then
			floor first "$round"
			verify first "$round" --full
		else
			verify first "$round" --full
			floor first "$round"
		fi
		since=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
		as_postgres "$PGBIN/pgbench" -h "$SOCK" -p "$PGPORT" -U postgres -t "$INCR_TX" -n postgres >"$WORK/logs/pgbench-r$round.log" 2>&1
		wait_archived "$(switch_wal)"
		if [ $((round % 2)) = 1 ]; then
			floor incr "$round" --newer "$since"
			verify incr "$round"
		else
			verify incr "$round"
			floor incr "$round" --newer "$since"
		fi
	done
	machine_facts
	"$H" report --facts "$WORK/facts.md" "$RESULTS" >"$WORK/report.md"
	cat "$WORK/report.md"
}

main "$@"
