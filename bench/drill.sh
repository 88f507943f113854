#!/usr/bin/env bash
# drill.sh: the time to restore (RTO) of a restore drill, `pitr verify
# --restore-drill`, next to `pgbackrest restore` plus a server start, on one
# pgbench cluster backed up by both to repositories on local disk.
#
# One scratch cluster (pgbench -i -s $SCALE) archives every WAL file with
# pitr wal-push and pgbackrest archive-push (a wrapper runs both; its name
# mentions pgbackrest because `pgbackrest backup` checks archive_command).
# pitr backup and pgbackrest backup --type=full are taken, the WAL switched
# and archived, and the cluster stopped. Then, in $ROUNDS rounds, the order
# of the tools alternating:
#   pitr        pitr verify --restore-drill --json (a SQL check on
#               pgbench_accounts): its report's RTO (unpacking + recovery
#               until the server accepts read-write connections, without
#               pg_verifybackup) and the whole drill's time
#   pgbackrest  pgbackrest restore (process-max 2) into an empty directory,
#               pg_ctl start with archive_mode off, until pg_is_in_recovery()
#               is false: the same RTO
# Both restore to the end of the archived WAL. Writes the Markdown section
# to $WORK/report.md and prints it (docs/BENCHMARKS.md is the lead's).
#
# Run as root (PostgreSQL runs as `postgres`):
#   bash bench/drill.sh                    scale 100 (1.5 GB), 2 rounds
#   PITR_BENCH_SCALE=20 bash bench/drill.sh
# Environment (defaults in brackets):
#   PITR_BENCH_DRILL_WORK  scratch: cluster, repositories, results [/var/tmp/pitr-bench-drill]
#   PITR_BENCH_ROUNDS      rounds [2]
#   PITR_BENCH_SCALE       pgbench scale of the cluster [100]
#   PGBIN                  PostgreSQL binaries [/usr/lib/postgresql/15/bin]
#   PITR_BIN               a pitr binary to measure [built from this tree]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PITR_BENCH_DRILL_WORK:-/var/tmp/pitr-bench-drill}
ROUNDS=${PITR_BENCH_ROUNDS:-2}
SCALE=${PITR_BENCH_SCALE:-100}

BENCH=drill.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

cleanup() {
	local d
	for d in "${SRC:-}" "$WORK/restore/pgbackrest"; do
		if [ -n "$d" ] && [ -f "$d/postmaster.pid" ]; then
			as_postgres "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
		fi
	done
}
trap cleanup EXIT

setup() {
	mkdir -p "$WORK/pg" "$WORK/sock" "$WORK/logs" "$WORK/pitr-repo" "$WORK/scratch" "$WORK/restore" \
		"$WORK/pgbackrest/repo" "$WORK/pgbackrest/log" "$WORK/pgbackrest/lock"
	chown postgres "$WORK/pg" "$WORK/sock" "$WORK/logs" "$WORK/pitr-repo" "$WORK/scratch" "$WORK/restore"
	chown -R postgres "$WORK/pgbackrest"
	chmod 755 "$WORK" "$WORK/bin"
	SRC=$WORK/pg/src
	SOCK=$WORK/sock
	PGPORT=$("$H" freeport)

	export PITR_REPO=file://$WORK/pitr-repo PITR_LOG_LEVEL=warn PITR_PG_DSN="host=$SOCK port=$PGPORT user=postgres"
	"$PITR" keygen --output "$WORK/age-identity.txt" >/dev/null 2>&1
	chown postgres "$WORK/age-identity.txt" # restore_command reads it
	export PITR_AGE_IDENTITY_FILE=$WORK/age-identity.txt PITR_AGE_RECIPIENTS
	PITR_AGE_RECIPIENTS=$(grep -o 'age1[0-9a-z]*' "$WORK/age-identity.txt" | head -1)
	cat >"$WORK/pitr.yaml" <<-EOF
		drill:
		  dir: $WORK/scratch
	EOF

	PGBR_CONF=$WORK/pgbackrest.conf
	cat >"$PGBR_CONF" <<-EOF
		[global]
		repo1-path=$WORK/pgbackrest/repo
		repo1-retention-full=9999
		compress-type=zst
		compress-level=1
		process-max=2
		start-fast=y
		log-level-console=warn
		log-path=$WORK/pgbackrest/log
		lock-path=$WORK/pgbackrest/lock

		[bench]
		pg1-path=$SRC
		pg1-port=$PGPORT
		pg1-socket-path=$SOCK
		pg1-user=postgres
	EOF
	chown postgres "$PGBR_CONF"
	PGBR=(runuser -u postgres -- pgbackrest --config="$PGBR_CONF" --stanza=bench)

	as_postgres "$PGBIN/initdb" -D "$SRC" -U postgres -A trust --data-checksums >"$WORK/logs/initdb.log"
	cat >>"$SRC/postgresql.conf" <<-EOF
		port = $PGPORT
		listen_addresses = ''
		unix_socket_directories = '$SOCK'
		archive_mode = on
		archive_command = '/bin/true'   # the wrapper after pgbench -i
		synchronous_commit = off
	EOF
	as_postgres "$PGBIN/pg_ctl" -D "$SRC" -l "$WORK/logs/src.log" -w start >/dev/null
	log "pgbench -i -s $SCALE"
	as_postgres "$PGBIN/pgbench" -h "$SOCK" -p "$PGPORT" -U postgres -i -s "$SCALE" -q postgres >"$WORK/logs/pgbench-init.log" 2>&1
	psql_src -c CHECKPOINT
	DB_MB=$(($(du -sb --exclude=pg_wal "$SRC" | cut -f1) / 1000000))
	log "cluster: $DB_MB MB"

	WRAPPER=$WORK/bin/archive-pitr-pgbackrest.sh
	cat >"$WRAPPER" <<-EOF
		#!/bin/sh
		# archive_command of the bench cluster: pitr wal-push and pgbackrest
		# archive-push in parallel; fails if either fails.
		"$PITR" wal-push "\$1" & a=\$!
		pgbackrest --config="$PGBR_CONF" --stanza=bench archive-push "\$1" & b=\$!
		rc=0
		wait \$a || rc=1
		wait \$b || rc=1
		exit \$rc
	EOF
	chmod 755 "$WRAPPER"
	"${PGBR[@]}" stanza-create
	psql_src -c "ALTER SYSTEM SET archive_command = '$WRAPPER %p'" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 1
	log "backups"
	"$PITR" backup >"$WORK/logs/pitr-backup.log" 2>&1
	"${PGBR[@]}" backup --type=full
	wait_archived "$(psql_src -c "SELECT pg_walfile_name(pg_switch_wal())")"
	as_postgres "$PGBIN/pg_ctl" -D "$SRC" -m fast -w stop >/dev/null
}

round() {
	local r=$1 tool port dir
	port=$("$H" freeport)
	local tools=(pitr pgbackrest)
	[ $((r % 2)) = 0 ] && tools=(pgbackrest pitr)
	for tool in "${tools[@]}"; do
		sync
		case $tool in
		pitr)
			"$H" pitr --round "$r" --out "$RESULTS" -- \
				"$PITR" --config "$WORK/pitr.yaml" verify --restore-drill --json --check 'postgres:SELECT count(*) FROM pgbench_accounts'
			;;
		pgbackrest)
			dir=$WORK/restore/pgbackrest
			rm -rf "$dir"
			install -d -o postgres -m 700 "$dir"
			"$H" pgbackrest --round "$r" --out "$RESULTS" --pgdata "$dir" --pgbin "$PGBIN" --port "$port" --socket-dir "$SOCK" -- \
				"${PGBR[@]}" restore --pg1-path="$dir"
			rm -rf "$dir"
			;;
		esac
	done
}

main() {
	[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL runs as postgres, the rest as root)"
	command -v pgbackrest >/dev/null || die "pgbackrest is not installed"
	rm -rf "$WORK"
	mkdir -p "$WORK"
	build_harness drill
	build_pitr
	RESULTS=$WORK/results.jsonl
	: >"$RESULTS"
	setup
	local r
	for r in $(seq "$ROUNDS"); do round "$r"; done
	{
		echo "- Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, shared with other work; PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), pgBackRest $(pgbackrest version | awk '{print $2}')."
		echo "- Cluster: \`pgbench -i -s $SCALE\`, $DB_MB MB without pg_wal; both repositories on the same local disk (pitr: zstd 1 + age; pgBackRest: zst 1, process-max 2); both restore to the end of the archived WAL."
	} >"$WORK/machine.md"
	local cmd="bash bench/drill.sh"
	[ "$SCALE" != 100 ] && cmd="PITR_BENCH_SCALE=$SCALE $cmd"
	[ "$ROUNDS" != 2 ] && cmd="PITR_BENCH_ROUNDS=$ROUNDS $cmd"
	"$H" report --machine "$WORK/machine.md" --rev "$PITR_REV" --cmd "$cmd" "$RESULTS" >"$WORK/report.md"
	cat "$WORK/report.md"
}

main "$@"
