#!/usr/bin/env bash
# backup.sh: base backup, restore and PITR replay, pitr against the floors
# and pgBackRest, on one pgbench cluster and one local MinIO over TLS.
#
# One scratch cluster (pgbench -i -s $SCALE) archives every WAL file three
# ways at once: a plain copy (the cp floor's archive), pitr wal-push and
# pgbackrest archive-push. The archive_command is a wrapper running the three
# in parallel; its file name mentions pgbackrest because `pgbackrest backup`
# refuses a cluster whose archive_command does not.
#
# Then, in interleaved rounds (the order of the tools rotated each round):
#   backup   pg_basebackup -Ft -X none -c fast to local disk (floor),
#            pitr backup, pgbackrest backup --type=full (process-max 2, zst 1, bundle)
#   restore  tar -xf of the pg_basebackup tar (floor), the same plus sync,
#            pitr restore --to immediate, pgbackrest restore (unpacking only)
#   pitr     after the last round's backups, about $SEGMENTS segments of
#            pgbench WAL and a restore point 'bench'; per tool, the backup is
#            restored untimed, then the server is timed from pg_ctl start
#            until "ready to accept connections" (recovery reached the
#            restore point and the server promoted): restore_command cp (floor),
#            pitr wal-fetch, pgbackrest archive-get async (process-max 2) and sync.
# Writes the Markdown section to $WORK/report.md and, unless
# PITR_BENCH_WRITE_DOCS=0, into docs/BENCHMARKS.md between this script's
# markers (appended at the end the first time).
#
# pgBackRest is optional: when it is not installed, its rows are skipped (said
# once in the log) and archive_command runs only cp and pitr.
#
# Run as root (PostgreSQL runs as `postgres`):
#   bash bench/backup.sh     about 8 minutes on 2 cores with the defaults (5-6 of measuring)
# Environment (defaults in brackets):
#   PITR_BENCH_BACKUP_WORK  scratch: cluster, MinIO data, backups, results [/var/tmp/pitr-bench-backup]
#   PITR_BENCH_ROUNDS       interleaved rounds [3]
#   PITR_BENCH_SCALE        pgbench scale of the cluster [100]
#   PITR_BENCH_SEGMENTS     WAL segments to replay in the pitr phase [75]
#   PITR_BENCH_PHASES       [backup restore pitr] (restore and pitr need the backups)
#   PITR_BENCH_WRITE_DOCS   1: update docs/BENCHMARKS.md [1]
#   PITR_BENCH_IDLE_MAX     longest wait for an idle machine before each measurement [30s]
#   PGBIN                   PostgreSQL binaries [/usr/lib/postgresql/15/bin]
#   PITR_MINIO_BIN          MinIO binary [minio in PATH, else ~/go/bin/minio]
#   PITR_BIN                a pitr binary to measure [built from this tree]
#   PITR_BIN_B, PITR_BIN_C  more pitr binaries: add tools pitr-b and pitr-c to the restore phase,
#                           in the same rounds as PITR_BIN, to A/B a restore change (they
#                           restore PITR_BIN's backups)
#   WALG_BIN                a wal-g binary: adds wal-g to every phase (wal-push in archive_command,
#                           backup-push, backup-fetch, wal-fetch), with its defaults (lz4)
#   PITR_BENCH_BACKUP_METHODS  pitr backup_method values to measure besides the default, as tools
#                           pitr-direct, pitr-stream [direct stream when `pitr config --doc` lists
#                           backup_method, else none]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PITR_BENCH_BACKUP_WORK:-/var/tmp/pitr-bench-backup}
ROUNDS=${PITR_BENCH_ROUNDS:-3}
SCALE=${PITR_BENCH_SCALE:-100}
SEGMENTS=${PITR_BENCH_SEGMENTS:-75}
PHASES=${PITR_BENCH_PHASES:-backup restore pitr}
WALG=${WALG_BIN:-}

BENCH=backup.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

cleanup() {
	if [ -n "${SRC:-}" ] && [ -f "$SRC/postmaster.pid" ]; then
		as_postgres "$PGBIN/pg_ctl" -D "$SRC" -m immediate stop >/dev/null 2>&1 || true
	fi
	stop_pids
}
trap cleanup EXIT

build() {
	build_harness backup
	build_pitr
	chmod 755 "$WORK" "$WORK/bin"
	BACKUP_METHODS=${PITR_BENCH_BACKUP_METHODS-$(if "$PITR" config --doc 2>/dev/null | grep '`backup_method`' >/dev/null; then echo direct stream; fi)}
}

setup_walg() {
	WALG_CONF=$WORK/walg.json
	walg_conf bench 127.0.0.1 "$PGPORT" >"$WALG_CONF"
	chown postgres "$WALG_CONF"
	chmod 600 "$WALG_CONF"
	WALGC=(runuser -u postgres -- "$WALG" --config "$WALG_CONF")
}

setup_pitr() {
	export PITR_REPO=s3://pitr/bench PITR_S3_ENDPOINT=$BENCH_S3_ENDPOINT PITR_LOG_LEVEL=warn
	"$PITR" keygen --output "$WORK/age-identity.txt" >/dev/null 2>&1
	chown postgres "$WORK/age-identity.txt" # restore_command reads it
	export PITR_AGE_IDENTITY_FILE=$WORK/age-identity.txt PITR_AGE_RECIPIENTS
	PITR_AGE_RECIPIENTS=$(grep -o 'age1[0-9a-z]*' "$WORK/age-identity.txt" | head -1)
	[ -n "$PITR_AGE_RECIPIENTS" ] || die "no age recipient in $WORK/age-identity.txt"
	# For looking into the results afterwards (start MinIO on $WORK/minio/data with these).
	(umask 077 && export -p | grep -E ' (AWS_|PITR_|BENCH_S3)' >"$WORK/env.sh")
}

setup_pgbackrest() {
	PGBR_CONF=$WORK/pgbackrest.conf
	PGBR_SPOOL=$WORK/pgbackrest/spool
	mkdir -p "$WORK/pgbackrest/log" "$WORK/pgbackrest/lock" "$PGBR_SPOOL"
	cat >"$PGBR_CONF" <<-EOF
		[global]
		$(pgbackrest_repo_conf)
		repo1-bundle=y
		repo1-retention-full=9999
		compress-type=zst
		compress-level=1
		process-max=2
		start-fast=y
		log-level-console=warn
		log-path=$WORK/pgbackrest/log
		lock-path=$WORK/pgbackrest/lock
		spool-path=$PGBR_SPOOL

		[bench]
		pg1-path=$SRC
		pg1-port=$PGPORT
		pg1-socket-path=$SOCK
		pg1-user=postgres
	EOF
	chown -R postgres "$WORK/pgbackrest" "$PGBR_CONF"
	PGBR=(runuser -u postgres -- pgbackrest --config="$PGBR_CONF" --stanza=bench)
}

setup_cluster() {
	SRC=$WORK/pg/src
	SOCK=$WORK/sock
	ARCH=$WORK/cp-archive
	mkdir -p "$WORK/pg" "$SOCK" "$ARCH" "$WORK/restore" "$WORK/logs"
	chown postgres "$WORK/pg" "$SOCK" "$ARCH" "$WORK/restore" "$WORK/logs"
	PGPORT=$("$H" freeport)
	export PITR_PG_DSN="host=127.0.0.1 port=$PGPORT user=postgres"
	as_postgres "$PGBIN/initdb" -D "$SRC" -U postgres -A trust >"$WORK/logs/initdb.log"
	cat >>"$SRC/postgresql.conf" <<-EOF
		port = $PGPORT
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$SOCK'
		archive_mode = on
		archive_command = '/bin/true'   # set to the wrapper after pgbench -i
		synchronous_commit = off        # faster pgbench; the WAL is the same
		log_line_prefix = '%m [%p] '
	EOF
	# The server (so archive_command) inherits this environment: AWS_* and PITR_*.
	as_postgres "$PGBIN/pg_ctl" -D "$SRC" -l "$WORK/logs/src.log" -w start >/dev/null
	log "pgbench -i -s $SCALE"
	as_postgres "$PGBIN/pgbench" -h "$SOCK" -p "$PGPORT" -U postgres -i -s "$SCALE" -q postgres >"$WORK/logs/pgbench-init.log" 2>&1
	psql_src -c CHECKPOINT
	DB_BYTES=$(du -sb --exclude=pg_wal "$SRC" | cut -f1)
	DB_FILES=$(find "$SRC" -path "$SRC/pg_wal" -prune -o -type f -print | wc -l)
	log "cluster: $((DB_BYTES / 1000000)) MB, $DB_FILES files"

	local pgbr_push=true walg_push=true
	if have_pgbackrest; then
		setup_pgbackrest
		pgbr_push='pgbackrest --config="'"$PGBR_CONF"'" --stanza=bench archive-push "$p"'
	fi
	if [ -n "$WALG" ]; then
		setup_walg
		walg_push='"'"$WALG"'" --config "'"$WALG_CONF"'" wal-push "$p"'
	fi
	WRAPPER=$WORK/bin/archive-cp-pitr-pgbackrest.sh
	cat >"$WRAPPER" <<-EOF
		#!/bin/sh
		# archive_command of the bench cluster: a plain copy, pitr wal-push,
		# pgbackrest archive-push and wal-g wal-push, in parallel; fails if any of them fails.
		p=\$1
		f=\$(basename "\$p")
		(
			if [ -f "$ARCH/\$f" ]; then cmp -s "\$p" "$ARCH/\$f"
			else cp "\$p" "$ARCH/.\$f.tmp" && mv "$ARCH/.\$f.tmp" "$ARCH/\$f"; fi
		) & a=\$!
		"$PITR" wal-push "\$p" & b=\$!
		$pgbr_push & c=\$!
		$walg_push & d=\$!
		rc=0
		wait \$a || rc=1
		wait \$b || rc=1
		wait \$c || rc=1
		wait \$d || rc=1
		exit \$rc
	EOF
	chmod 755 "$WRAPPER"
	if have_pgbackrest; then "${PGBR[@]}" stanza-create; fi
	psql_src -c "ALTER SYSTEM SET archive_command = '$WRAPPER %p'" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 1
	wait_archived "$(switch_wal)"
}

stop_cluster() {
	[ -f "$SRC/postmaster.pid" ] && as_postgres "$PGBIN/pg_ctl" -D "$SRC" -m fast -w stop >/dev/null
	return 0
}

# rotate prints the tools in the order of round $1.
rotate() {
	local round=$1 i
	shift
	local tools=("$@")
	for i in "${!tools[@]}"; do echo "${tools[$(((i + round - 1) % ${#tools[@]}))]}"; done
}

# quiet syncs and waits (at most 30 s, PITR_BENCH_IDLE_MAX) until the machine is idle, so no
# measurement starts while an earlier step's write-back or someone else's
# work is still running.
quiet() {
	sync
	"$H" idle --max "${PITR_BENCH_IDLE_MAX:-30s}" --out "$RESULTS"
}

measure() { # phase tool round title [run flags...] -- command...
	local phase=$1 tool=$2 round=$3 title=$4
	shift 4
	quiet
	"$H" run --phase "$phase" --tool "$tool" --round "$round" --title "$title" --minio-pid "$MINIO_PID" \
		--out "$RESULTS" --log "$WORK/logs/$phase-$tool-r$round.log" "$@"
}

phase_backup() {
	local round tool m pitr_tools=(pitr) spid
	for m in $BACKUP_METHODS; do pitr_tools+=("pitr-$m"); done
	spid=$(head -1 "$SRC/postmaster.pid")
	for round in $(seq "$ROUNDS"); do
		for tool in $(rotate "$round" $(available pg_basebackup "${pitr_tools[@]}" pgbackrest walg)); do
			case $tool in
			pg_basebackup)
				rm -rf "$WORK/basebackup"
				measure backup "$tool" "$round" '`pg_basebackup -Ft -X none -c fast` to local disk (floor)' \
					--output-dir "$WORK/basebackup" --server-pid "$spid" -- \
					"$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PGPORT" -U postgres -Ft -X none -c fast -D "$WORK/basebackup"
				chmod -R a+rX "$WORK/basebackup"
				;;
			pitr)
				measure backup "$tool" "$round" '`pitr backup` (default settings) to MinIO' --pitr-backup-log --server-pid "$spid" -- \
					env PITR_LOG_LEVEL=info PITR_LOG_FORMAT=json "$PITR" backup
				;;
			pitr-*)
				measure backup "$tool" "$round" "\`pitr backup\`, PITR_BACKUP_METHOD=${tool#pitr-}, to MinIO" --pitr-backup-log --server-pid "$spid" -- \
					env PITR_LOG_LEVEL=info PITR_LOG_FORMAT=json "PITR_BACKUP_METHOD=${tool#pitr-}" "$PITR" backup
				;;
			pgbackrest)
				measure backup "$tool" "$round" '`pgbackrest backup --type=full` (process-max 2, zst 1, bundle) to MinIO' --server-pid "$spid" -- \
					"${PGBR[@]}" backup --type=full
				;;
			walg)
				measure backup "$tool" "$round" '`wal-g backup-push` (lz4, its defaults) to MinIO' --server-pid "$spid" -- \
					"${WALGC[@]}" backup-push "$SRC"
				;;
			esac
		done
	done
	"$H" stored --tool pitr --per $((ROUNDS * ${#pitr_tools[@]})) --out "$RESULTS" pitr bench/backups/
	if [ -n "$WALG" ]; then
		"$H" stored --tool walg --per "$ROUNDS" --out "$RESULTS" walg bench/basebackups_005/
	fi
	if have_pgbackrest; then
		"$H" stored --tool pgbackrest --per "$ROUNDS" --out "$RESULTS" pgbackrest repo/backup/bench/
	fi
}

# make_wal writes about $SEGMENTS segments of pgbench WAL after the backups,
# then the restore point 'bench', and waits until all of it is archived.
make_wal() {
	local lsn0 seg
	lsn0=$(psql_src -c "SELECT pg_current_wal_lsn()")
	log "writing $SEGMENTS segments of pgbench WAL"
	while [ "$(psql_src -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0') >= ($SEGMENTS - 1) * 16777216")" != t ]; do
		as_postgres "$PGBIN/pgbench" -h "$SOCK" -p "$PGPORT" -U postgres -n -c 4 -j 2 -T 2 postgres >>"$WORK/logs/pgbench.log" 2>&1
	done
	psql_src -c "SELECT pg_create_restore_point('bench')" >/dev/null
	seg=$(switch_wal)
	wait_archived "$seg"
	WAL_MB=$(psql_src -c "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0') / 1000000)")
	log "restore point 'bench' in $seg, ${WAL_MB} MB of WAL after the backups, archived"
}

# level_restore unpacks the pg_basebackup's tar untimed and removes it,
# so that every restore starts from the same state of the page cache and
# of the file system: on ext4 without a journal, as here, each create
# scans past the inodes deleted in the last minute (perf: recently_deleted
# under ext4_create), so a writer pays for whatever ran before it: right after tar's or wal-g's
# tree was removed, pgBackRest took 4.3-5.6 s and 4.2-5.5 s of system
# time here, against 2.8-3.5 s after pitr's; rotating the tools gave each
# a fixed predecessor, and pitr the costly ones (tar, tar+sync, wal-g).
level_restore() {
	local d=$WORK/restore/.level
	rm -rf "$d" && install -d -o postgres -m 700 "$d"
	runuser -u postgres -- tar -xf "$WORK/basebackup/base.tar" -C "$d"
	rm -rf "$d"
}

phase_restore() {
	local round tool dir
	for round in $(seq "$ROUNDS"); do
		for tool in $(rotate "$round" $(available tar tar+sync pitr pitr-b pitr-c pgbackrest walg)); do
			dir=$WORK/restore/$tool
			rm -rf "$dir"
			level_restore
			case $tool in
			tar)
				install -d -o postgres -m 700 "$dir"
				measure restore "$tool" "$round" '`tar -xf base.tar` of the pg_basebackup (floor)' -- \
					runuser -u postgres -- tar -xf "$WORK/basebackup/base.tar" -C "$dir"
				;;
			tar+sync)
				install -d -o postgres -m 700 "$dir"
				measure restore "$tool" "$round" '`tar -xf base.tar && sync` (reference: durable)' -- \
					runuser -u postgres -- sh -c "tar -xf '$WORK/basebackup/base.tar' -C '$dir' && sync"
				;;
			pitr)
				measure restore "$tool" "$round" '`pitr restore --to immediate` (fsyncs the files)' -- \
					"$PITR" restore --to immediate --pgdata "$dir"
				;;
			pitr-b | pitr-c)
				local var=PITR_BIN_${tool#pitr-}
				var=${var^^}
				measure restore "$tool" "$round" "\`pitr restore --to immediate\` by $var (A/B)" -- \
					"${!var}" restore --to immediate --pgdata "$dir"
				;;
			pgbackrest)
				install -d -o postgres -m 700 "$dir"
				measure restore "$tool" "$round" '`pgbackrest restore` (process-max 2, bundle)' -- \
					"${PGBR[@]}" restore --pg1-path="$dir" --type=immediate
				;;
			walg)
				install -d -o postgres -m 700 "$dir"
				# wal-g fsyncs each file it extracts (WALG_TAR_DISABLE_FSYNC is false by default); sync as for tar.
				measure restore "$tool" "$round" '`wal-g backup-fetch DIR LATEST && sync` (fsyncs each file itself)' -- \
					runuser -u postgres -- sh -c "'$WALG' --config '$WALG_CONF' backup-fetch '$dir' LATEST && sync"
				;;
			esac
			rm -rf "$dir"
		done
	done
}

# prepare_pitr restores the backup for tool $1 into $2, recovery to 'bench'.
prepare_pitr() {
	local tool=$1 dir=$2
	rm -rf "$dir" "${PGBR_SPOOL:-$WORK/pgbackrest/spool}/archive"
	case $tool in
	cp)
		install -d -o postgres -m 700 "$dir"
		as_postgres tar -xf "$WORK/basebackup/base.tar" -C "$dir"
		as_postgres touch "$dir/recovery.signal"
		cat >>"$dir/postgresql.auto.conf" <<-EOF
			restore_command = 'cp $ARCH/%f %p'
			recovery_target_name = 'bench'
			recovery_target_action = 'promote'
			recovery_target_timeline = 'latest'
		EOF
		;;
	pitr)
		"$PITR" restore --to name:bench --pgdata "$dir" >"$WORK/logs/pitr-prepare-$tool.log" 2>&1
		;;
	pgbackrest-sync)
		install -d -o postgres -m 700 "$dir"
		"${PGBR[@]}" restore --pg1-path="$dir" --type=name --target=bench --target-action=promote
		;;
	pgbackrest-async)
		install -d -o postgres -m 700 "$dir"
		"${PGBR[@]}" restore --pg1-path="$dir" --type=name --target=bench --target-action=promote \
			"--recovery-option=restore_command=pgbackrest --config=$PGBR_CONF --pg1-path=$dir --stanza=bench --archive-async --process-max=2 archive-get %f \"%p\""
		;;
	walg)
		install -d -o postgres -m 700 "$dir"
		"${WALGC[@]}" backup-fetch "$dir" LATEST >"$WORK/logs/walg-prepare.log" 2>&1
		as_postgres touch "$dir/recovery.signal"
		cat >>"$dir/postgresql.auto.conf" <<-EOF
			restore_command = '$WALG --config $WALG_CONF wal-fetch %f %p'
			recovery_target_name = 'bench'
			recovery_target_action = 'promote'
			recovery_target_timeline = 'latest'
		EOF
		;;
	esac
	grep -h '^restore_command' "$dir/postgresql.auto.conf" | tail -1 >"$WORK/logs/restore_command-$tool.txt"
}

phase_pitr() {
	local round tool dir port
	port=$("$H" freeport)
	for round in $(seq "$ROUNDS"); do
		for tool in $(rotate "$round" $(available cp pitr pgbackrest-async pgbackrest-sync walg)); do
			dir=$WORK/restore/pitr-$tool
			prepare_pitr "$tool" "$dir"
			local title
			case $tool in
			cp) title='`cp ARCHIVE/%f %p` (floor)' ;;
			pitr) title='`pitr wal-fetch` (default settings)' ;;
			pgbackrest-async) title='`pgbackrest archive-get`, async, process-max 2' ;;
			pgbackrest-sync) title='`pgbackrest archive-get`, sync' ;;
			walg) title='`wal-g wal-fetch` (its default prefetch)' ;;
			esac
			quiet
			"$H" recover --phase pitr --tool "$tool" --round "$round" --title "$title" --minio-pid "$MINIO_PID" \
				--out "$RESULTS" --pgbin "$PGBIN" --pgdata "$dir" --port "$port" --socket-dir "$SOCK" \
				--log "$WORK/logs/pitr-$tool-r$round.server.log" --target-name bench
			rm -rf "$dir"
		done
	done
}

machine_facts() {
	local f=$WORK/machine.md
	{
		echo "- Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, Linux $(uname -r); everything on one disk, page cache warm (no cache drops); each restore follows an untimed \`tar -xf\` of the floor's tar and its removal, so that every tool starts from the same page-cache state."
		echo "- PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), pgBackRest $(pgbackrest version 2>/dev/null | awk '{print $2}' || echo "not installed"), wal-g $([ -n "$WALG" ] && "$WALG" --version 2>/dev/null | awk '{print $3}' || echo "not measured (WALG_BIN unset)"), MinIO $("$MINIO" --version | head -1 | awk '{print $3}') over TLS on 127.0.0.1, $(go version | awk '{print $3}')."
		echo "- Cluster: \`pgbench -i -s $SCALE\`, ${DB_MB:-?} MB in ${DB_FILES:-?} files (without pg_wal); default shared_buffers and max_wal_size; synchronous_commit off (for pgbench only)."
		echo "- archive_command: a wrapper running cp, \`pitr wal-push\`, \`pgbackrest archive-push\` and (with WALG_BIN) \`wal-g wal-push\` in parallel (one cluster for all tools). Restored servers run with archive_mode off. Server CPU: the postmaster and its children (walsender or backend, checkpointer) during the backup, from \`/proc\`."
		echo "- PITR: ${WAL_MB:-?} MB of pgbench WAL (\`pgbench -c 4 -j 2\`) after the last round's backups, then \`pg_create_restore_point('bench')\`; each tool restores its last backup untimed and recovers to \`recovery_target_name = 'bench'\`, \`recovery_target_action = promote\`."
	} >"$f"
}

main() {
	[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL runs as postgres, the rest as root)"
	if [ -f "$WORK/pg/src/postmaster.pid" ]; then
		"$PGBIN/pg_ctl" status -D "$WORK/pg/src" >/dev/null 2>&1 && die "a cluster from an earlier run is still running in $WORK/pg/src"
	fi
	rm -rf "$WORK"
	mkdir -p "$WORK"
	build
	start_minio pitr pgbackrest walg
	setup_pitr
	RESULTS=$WORK/results.jsonl
	: >"$RESULTS"
	setup_cluster
	DB_MB=$((DB_BYTES / 1000000))
	local started=$SECONDS
	case " $PHASES " in *" backup "*) phase_backup ;; esac
	make_wal
	stop_cluster
	case " $PHASES " in *" restore "*) phase_restore ;; esac
	case " $PHASES " in *" pitr "*) phase_pitr ;; esac
	local elapsed=$((SECONDS - started)) v env=()
	for v in PITR_BENCH_ROUNDS PITR_BENCH_SCALE PITR_BENCH_SEGMENTS PITR_BENCH_PHASES PITR_BIN PITR_BIN_B PITR_BIN_C WALG_BIN PITR_BENCH_BACKUP_METHODS; do
		[ -n "${!v:-}" ] && env+=("$v='${!v}'")
	done
	machine_facts
	"$H" report --machine "$WORK/machine.md" --rev "$PITR_REV" --elapsed "$elapsed" --env "${env[*]}" --scale "$SCALE" \
		"$RESULTS" >"$WORK/report.md"
	if [ "${PITR_BENCH_WRITE_DOCS:-1}" = 1 ]; then
		"$H" splice --file "$ROOT/docs/BENCHMARKS.md" --section "$WORK/report.md"
		log "updated docs/BENCHMARKS.md"
	fi
	cat "$WORK/report.md"
}

main "$@"
