#!/usr/bin/env bash
# app.sh: `pitr app backup` and `pitr app restore` of the Mastodon example
# (examples/apps/mastodon) at a realistic size, next to the script these
# admins run today: pg_basebackup -Ft -z + tar czf of the uploads + a copy
# of dump.rdb and .env.production into a directory.
#
# Set-up (untimed): a scratch PostgreSQL 15 cluster (pgbench -i -s $SCALE)
# archiving with `pitr wal-push` into a local-directory repository (file://,
# on the same disk as the script's backup directory, so both write to the
# same kind of storage; no MinIO), an uploads tree of $UPLOADS_MB MB of
# incompressible media files (20 KB to 16 MB, log-uniform, Mastodon's
# public/system layout), a .env.production (0600), and a redis-server with
# $REDIS_MB MB of values. Each round, with a new uploads tree and Redis data
# (the same for every round), a new pitr repository and a new script
# directory, the order of the two alternated every round:
#   base     `pitr backup`, the daemon's weekly base backup (pitr only)
#   first    pitr: `pitr app backup mastodon` (restore point, the hook's
#            redis-cli --rdb, snapshots of uploads, secrets and dump.rdb);
#            script: pg_basebackup -Ft -z -c fast + tar czf uploads +
#            redis-cli --rdb + cp -p .env.production
#   night    (untimed) pgbench -t $NIGHT_TX -c 4, about 1 % of the uploads'
#            bytes added or rewritten, 1 MB of Redis writes; then the WAL of
#            the night archived (recorded as pitr's "wal" row)
#   nightly  the same two again (the script copies everything again)
#   restore  pitr: `pitr app restore mastodon --to latest --root DIR
#            --pgdata DIR --archive-mode off`; script: tar xzf base.tar.gz
#            into a new data directory, tar xzf the uploads, cp dump.rdb and
#            .env; then (untimed) both are checked: the uploads tree equal
#            byte for byte, dump.rdb equal to the nightly one, PG_VERSION
#            present. Neither starts the server (recovery time not included).
# For each: wall time, CPU of the command and its children, and the bytes
# the repository or backup directory gained. (Most of pitr's nightly bytes
# are dump.rdb: Redis writes it in hash order, so a night's new keys land
# all over the file and hardly a chunk is shared with the last one; see
# `pitr files list` in $WORK/logs after a run.)
# Writes the Markdown section to $WORK/report.md and prints it; with
# PITR_BENCH_WRITE_DOCS=1, also into docs/BENCHMARKS.md between this
# script's markers.
#
# Run as root, from anywhere:
#   bash bench/app.sh
#   SCALE=20 UPLOADS_MB=512 bash bench/app.sh    a smaller run
# Environment (defaults in brackets):
#   PITR_BENCH_APP_WORK  scratch: cluster, trees, repositories, results [/var/tmp/pitr-bench-app]
#   SCALE                pgbench scale of the database [100]
#   UPLOADS_MB           uploads tree in MB (10^6 bytes) [2048]
#   REDIS_MB             Redis values in MB [100]
#   NIGHT_TX             pgbench transactions per client (4 clients) in a night [5000]
#   ROUNDS               rounds [2]
#   PITR_BENCH_WRITE_DOCS  1: update docs/BENCHMARKS.md [0]
#   PITR_BIN             a pitr binary to measure [built from this tree]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PITR_BENCH_APP_WORK:-/var/tmp/pitr-bench-app}
SCALE=${SCALE:-100}
UPLOADS_MB=${UPLOADS_MB:-2048}
REDIS_MB=${REDIS_MB:-100}
NIGHT_TX=${NIGHT_TX:-5000}
ROUNDS=${ROUNDS:-2}

BENCH=app.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

cleanup() {
	local d
	for d in "${SRC:-}"; do
		if [ -n "$d" ] && [ -f "$d/postmaster.pid" ]; then
			as_postgres "$PGBIN/pg_ctl" -D "$d" -m immediate stop >/dev/null 2>&1 || true
		fi
	done
	stop_pids
	# Keep logs and results; drop the bulk.
	rm -rf "$WORK/app" "$WORK/pitr-repo" "$WORK/script-repo" "$WORK/restore" "$WORK/pg"
}
trap cleanup EXIT

rcli() { redis-cli -h 127.0.0.1 -p "$RPORT" "$@"; }

wait_archived() {
	local seg=$1
	for _ in $(seq 3000); do
		[ "$(psql_src -c "SELECT coalesce(last_archived_wal, '') >= '$seg' FROM pg_stat_archiver")" = t ] && return
		sleep 0.1
	done
	die "segment $seg was not archived: $(psql_src -c 'SELECT * FROM pg_stat_archiver')"
}

# switch_and_wait closes the current WAL segment and waits until it is archived.
# (A row first: with no WAL since the last switch there is nothing to close.)
switch_and_wait() {
	psql_src -c "INSERT INTO bench_tick VALUES (now())"
	wait_archived "$(psql_src -c "SELECT pg_walfile_name(pg_switch_wal())")"
}

bytes_of() { find "$@" -type f -printf '%s\n' 2>/dev/null | awk '{s += $1} END {printf "%d\n", s}'; }

setup() {
	mkdir -p "$WORK/pg" "$WORK/sock" "$WORK/logs" "$WORK/pitr-repo" "$WORK/script-repo" "$WORK/restore" "$WORK/redis"
	chown postgres "$WORK/pg" "$WORK/sock" "$WORK/logs" "$WORK/pitr-repo"
	chmod 755 "$WORK" "$WORK/bin"
	SRC=$WORK/pg/src
	SOCK=$WORK/sock
	PGPORT=$("$H" freeport)
	RPORT=$("$H" freeport)
	APP=$WORK/app
	LIVE=$APP/home/mastodon/live
	CFG=$WORK/pitr.yaml

	"$PITR" keygen --output "$WORK/age-identity.txt" >/dev/null 2>&1
	grep -o 'age1[0-9a-z]*' "$WORK/age-identity.txt" | head -1 >"$WORK/recipients.txt"
	[ -s "$WORK/recipients.txt" ] || die "no age recipient in $WORK/age-identity.txt"
	chmod 644 "$WORK/recipients.txt"
	chown postgres "$WORK/age-identity.txt" # the restored cluster's restore_command reads it

	redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' --appendonly no \
		>"$WORK/logs/redis.log" 2>&1 &
	PIDS_TO_STOP+=("$!")
	for _ in $(seq 100); do rcli ping >/dev/null 2>&1 && break; sleep 0.1; done
	rcli ping >/dev/null || die "redis-server did not start: $(tail -3 "$WORK/logs/redis.log")"

	as_postgres "$PGBIN/initdb" -D "$SRC" -U postgres -A trust --data-checksums >"$WORK/logs/initdb.log"
	cat >>"$SRC/postgresql.conf" <<-EOF
		port = $PGPORT
		listen_addresses = ''
		unix_socket_directories = '$SOCK'
		archive_mode = on
		archive_command = '/bin/true'   # pitr wal-push after pgbench -i
		synchronous_commit = off
		max_wal_size = 4GB
	EOF
	as_postgres "$PGBIN/pg_ctl" -D "$SRC" -l "$WORK/logs/src.log" -w start >/dev/null
	log "pgbench -i -s $SCALE"
	as_postgres "$PGBIN/pgbench" -h "$SOCK" -p "$PGPORT" -U postgres -i -s "$SCALE" -q postgres >"$WORK/logs/pgbench-init.log" 2>&1
	psql_src -c "CREATE TABLE bench_tick (t timestamptz)" -c CHECKPOINT
	DB_MB=$(($(du -sb --exclude=pg_wal "$SRC" | cut -f1) / 1000000))
	log "cluster: $DB_MB MB"
	psql_src -c "ALTER SYSTEM SET archive_command = '$PITR --config $CFG wal-push %p'" -c "SELECT pg_reload_conf()" >/dev/null

	# The users' script, as they run it today (one directory per run).
	USERS=$WORK/bin/users-backup.sh
	cat >"$USERS" <<-EOF
		#!/bin/sh
		# The backup script of the Mastodon admin today: everything, every night.
		set -e
		d=\$1
		mkdir -p "\$d"
		pg_basebackup -h "$SOCK" -p "$PGPORT" -U postgres -D "\$d/pg" -Ft -z -X fetch -c fast
		tar czf "\$d/uploads.tar.gz" -C "$LIVE/public" system
		redis-cli -h 127.0.0.1 -p "$RPORT" --rdb "\$d/dump.rdb" >/dev/null
		cp -p "$LIVE/.env.production" "\$d/"
	EOF
	USERS_RESTORE=$WORK/bin/users-restore.sh
	cat >"$USERS_RESTORE" <<-EOF
		#!/bin/sh
		# ... and its restore: SRC TARGET-ROOT PGDATA.
		set -e
		s=\$1 r=\$2 pg=\$3
		install -d -o postgres -m 700 "\$pg"
		tar xzf "\$s/pg/base.tar.gz" -C "\$pg"
		chown -R postgres "\$pg"
		mkdir -p "\$r$LIVE/public" "\$r$APP/var/backups/redis"
		tar xzf "\$s/uploads.tar.gz" -C "\$r$LIVE/public"
		cp "\$s/dump.rdb" "\$r$APP/var/backups/redis/"
		cp -p "\$s/.env.production" "\$r$LIVE/"
	EOF
	chmod 755 "$USERS" "$USERS_RESTORE"
	export PATH=$PGBIN:$PATH
}

# write_config points pitr at round $1's repository (archive_command reads
# the same file).
write_config() {
	local round=$1
	install -d -o postgres "$WORK/pitr-repo/r$round"
	cat >"$CFG.tmp" <<-EOF
		repo: file://$WORK/pitr-repo/r$round
		age_recipients_file: $WORK/recipients.txt
		age_identity_file: $WORK/age-identity.txt
		files_dedup_key: $WORK/dedup-r$round.key
		pg_dsn: host=$SOCK port=$PGPORT user=postgres
		log_level: warn

		files:
		  - name: mastodon-uploads
		    paths: [$LIVE/public/system]
		  - name: mastodon-secrets
		    kind: secrets
		    paths: [$LIVE/.env.production]
		  - name: mastodon-redis
		    paths: [$APP/var/backups/redis]

		apps:
		  - name: mastodon
		    database:
		      cluster: true
		      pgdata: $SRC
		    files: [mastodon-uploads, mastodon-secrets, mastodon-redis]
		    hooks:
		      before:
		        - name: redis-rdb
		          command: [redis-cli, -h, 127.0.0.1, -p, "$RPORT", --rdb, $APP/var/backups/redis/dump.rdb]
		          timeout: 5m
		    versions:
		      os: [sh, -c, '. /etc/os-release && echo "\$PRETTY_NAME"']
	EOF
	chmod 644 "$CFG.tmp"
	mv "$CFG.tmp" "$CFG"
}

# setup_round writes round $1's application data (the same every round),
# points pitr at a new repository and takes its base backup.
setup_round() {
	local round=$1
	rm -rf "$APP"
	mkdir -p "$LIVE/public" "$APP/var/backups/redis"
	"$H" gen --seed 1 --mb "$UPLOADS_MB" "$LIVE/public/system" 2>"$WORK/logs/gen-r$round.log"
	UPLOADS_BYTES=$(bytes_of "$LIVE/public/system")
	id mastodon >/dev/null 2>&1 || useradd --system --no-create-home mastodon
	printf 'LOCAL_DOMAIN=bench.example\nSECRET_KEY_BASE=%s\nOTP_SECRET=%s\nVAPID_PRIVATE_KEY=%s\n' \
		"$(openssl rand -hex 64)" "$(openssl rand -hex 64)" "$(openssl rand -hex 32)" >"$LIVE/.env.production"
	chown -R mastodon "$APP/home/mastodon"
	chmod 600 "$LIVE/.env.production"
	rcli flushall >/dev/null
	"$H" redis --seed 1 --mb "$REDIS_MB" | rcli --pipe >"$WORK/logs/redis-fill-r$round.log"
	write_config "$round"
	switch_and_wait # the previous round's WAL stays in the previous repository
	INPUT_BYTES=$((UPLOADS_BYTES + DB_MB * 1000000 + REDIS_MB * 1000000))
	measure base pitr "$round" '`pitr backup`' "$WORK/pitr-repo/r$round" -- "$PITR" --config "$CFG" backup
	switch_and_wait
}

measure() { # phase tool round title repo -- command...
	local phase=$1 tool=$2 round=$3 title=$4 repo=$5
	shift 5
	sync
	"$H" run --phase "$phase" --tool "$tool" --round "$round" --title "$title" --repo "$repo" \
		--input-bytes "$INPUT_BYTES" --out "$RESULTS" --log "$WORK/logs/$phase-$tool-r$round.log" "$@"
}

backup() { # phase tool round
	local phase=$1 tool=$2 round=$3
	case $tool in
	pitr)
		measure "$phase" pitr "$round" '`pitr app backup mastodon`' "$WORK/pitr-repo/r$round" -- \
			"$PITR" --config "$CFG" app backup mastodon
		;;
	script)
		measure "$phase" script "$round" '`pg_basebackup -Ft -z` + `tar czf` + `cp`' "$WORK/script-repo/r$round" -- \
			"$USERS" "$WORK/script-repo/r$round/$phase"
		;;
	esac
}

night() { # round
	local round=$1 before
	before=$(bytes_of "$WORK/pitr-repo/r$round")
	log "night of round $round: pgbench -t $NIGHT_TX -c 4, 1 % of the uploads, Redis writes"
	as_postgres "$PGBIN/pgbench" -h "$SOCK" -p "$PGPORT" -U postgres -c 4 -j 2 -t "$NIGHT_TX" postgres >"$WORK/logs/pgbench-night-r$round.log" 2>&1
	"$H" change --seed "$((round + 1))" --pct 1 "$LIVE/public/system" 2>"$WORK/logs/change-r$round.log"
	chown -R mastodon "$LIVE/public/system"
	"$H" redis --seed "$((round + 100))" --mb 1 --prefix "sidekiq:night$round" | rcli --pipe >>"$WORK/logs/redis-fill-r$round.log"
	switch_and_wait
	"$H" run --phase wal --tool pitr --round "$round" --title '`pitr wal-push` (archive_command)' \
		--repo "$WORK/pitr-repo/r$round" --since "$before" --out "$RESULTS" -- true
}

restore() { # tool round
	local tool=$1 round=$2 dir=$WORK/restore/$1
	rm -rf "$dir"
	mkdir -p "$dir"
	case $tool in
	pitr)
		measure restore pitr "$round" '`pitr app restore mastodon --to latest`' "$dir" -- \
			"$PITR" --config "$CFG" app restore mastodon --to latest --root "$dir/root" --pgdata "$dir/pg" --archive-mode off
		;;
	script)
		measure restore script "$round" '`tar xzf` + `tar xzf` + `cp`' "$dir" -- \
			"$USERS_RESTORE" "$WORK/script-repo/r$round/nightly" "$dir/root" "$dir/pg"
		;;
	esac
	# Untimed: what came back is what was backed up.
	diff -r "$LIVE/public/system" "$dir/root$LIVE/public/system" >"$WORK/logs/diff-$tool-r$round.log" ||
		die "$tool: restored uploads differ (see $WORK/logs/diff-$tool-r$round.log)"
	# The dump.rdb of the nightly backup: the hook's (pitr) or the script's copy.
	local rdb=$APP/var/backups/redis/dump.rdb
	[ "$tool" = script ] && rdb=$WORK/script-repo/r$round/nightly/dump.rdb
	cmp "$rdb" "$dir/root$APP/var/backups/redis/dump.rdb" || die "$tool: restored dump.rdb differs"
	cmp "$LIVE/.env.production" "$dir/root$LIVE/.env.production" || die "$tool: .env.production differs"
	[ "$(stat -c %a "$dir/root$LIVE/.env.production")" = 600 ] || die "$tool: .env.production lost its mode"
	[ -f "$dir/pg/PG_VERSION" ] || die "$tool: no PG_VERSION in the restored data directory"
	rm -rf "$dir"
}

# order prints the two tools in round $1's order.
order() { if [ $(($1 % 2)) = 1 ]; then echo pitr script; else echo script pitr; fi; }

main() {
	[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL runs as postgres, the files keep owners)"
	command -v redis-server >/dev/null || die "redis-server is not installed (apt-get install redis-server)"
	rm -rf "$WORK"
	mkdir -p "$WORK"
	build_harness app
	build_pitr
	RESULTS=$WORK/results.jsonl
	: >"$RESULTS"
	local started=$SECONDS r t
	setup
	for r in $(seq "$ROUNDS"); do
		setup_round "$r"
		for t in $(order "$r"); do backup first "$t" "$r"; done
		night "$r"
		for t in $(order "$r"); do backup nightly "$t" "$r"; done
		"$PITR" --config "$CFG" app show mastodon >"$WORK/logs/app-show-r$r.txt" 2>&1 || true # untimed, for reading
		for t in $(order "$r"); do restore "$t" "$r"; done
	done
	local rdb_mb
	rdb_mb=$(($(stat -c %s "$APP/var/backups/redis/dump.rdb") / 1000000))
	{
		echo "- Machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB RAM, shared with other work; PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), Redis $(redis-server --version | grep -o 'v=[0-9.]*' | cut -c3-), $(go version | awk '{print $3}'); took $(((SECONDS - started) / 60)) minutes."
		echo "- Data: \`pgbench -i -s $SCALE\` ($DB_MB MB without pg_wal), $((UPLOADS_BYTES / 1000000)) MB of uploads (incompressible media files, 20 KB to 16 MB), a $rdb_mb MB dump.rdb, a 0600 .env.production. A night: \`pgbench -c 4 -t $NIGHT_TX\`, about 1 % of the uploads' bytes added or replaced, 1 MB of Redis writes."
		echo "- Both write to the same local disk: pitr to a local-directory repository (zstd + age), the script to a directory (gzip). \"stored MB\" is what the repository or directory gained (for a restore: what it wrote). Restores are checked after the clock stops (uploads byte for byte, dump.rdb, .env.production and its mode); neither starts PostgreSQL, so WAL replay is not included."
		cat <<-'EOF'
			- Both take dump.rdb with `redis-cli --rdb`, which waits Redis's `repl-diskless-sync-delay` (5 s by default) before the transfer: about 5 s of each backup in both columns.
		EOF
	} >"$WORK/machine.md"
	local cmd="bash bench/app.sh" v
	for v in SCALE UPLOADS_MB REDIS_MB NIGHT_TX ROUNDS; do
		case $v in
		SCALE) [ "$SCALE" = 100 ] && continue ;;
		UPLOADS_MB) [ "$UPLOADS_MB" = 2048 ] && continue ;;
		REDIS_MB) [ "$REDIS_MB" = 100 ] && continue ;;
		NIGHT_TX) [ "$NIGHT_TX" = 5000 ] && continue ;;
		ROUNDS) [ "$ROUNDS" = 2 ] && continue ;;
		esac
		cmd="$v=${!v} $cmd"
	done
	"$H" report --machine "$WORK/machine.md" --rev "$PITR_REV" --cmd "$cmd" "$RESULTS" >"$WORK/report.md"
	if [ "${PITR_BENCH_WRITE_DOCS:-0}" = 1 ]; then
		"$H" splice --file "$ROOT/docs/BENCHMARKS.md" --section "$WORK/report.md"
		log "updated docs/BENCHMARKS.md"
	fi
	cat "$WORK/report.md"
}

main "$@"
