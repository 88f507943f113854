# lib.sh: what bench/backup.sh, bench/walpush.sh and bench/stream.sh share,
# sourced by them (not run): logging, building the measuring program
# (bench/NAME on bench/internal/harness) and pitr, and a local MinIO over
# TLS. The sourcing script sets ROOT, WORK and BENCH before calling.

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
MINIO=${PITR_MINIO_BIN:-$(command -v minio || echo "$HOME/go/bin/minio")}

log() { printf '%s %s: %s\n' "$(date +%T)" "$BENCH" "$*" >&2; }
die() {
	log "$*"
	exit 1
}

as_postgres() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# PIDS_TO_STOP are killed and waited for by stop_pids (call it from the EXIT trap).
PIDS_TO_STOP=()
stop_pids() {
	local pid
	for pid in "${PIDS_TO_STOP[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
}

# build_harness builds bench/$1 into $WORK/bin as $H.
build_harness() {
	mkdir -p "$WORK/bin"
	(cd "$ROOT" && go build -o "$WORK/bin/$1" "./bench/$1")
	H=$WORK/bin/$1
}

# build_pitr builds pitr from this tree as $PITR, or uses $PITR_BIN as
# given, and sets $PITR_REV to the revision measured.
build_pitr() {
	PITR_REV=$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [ -n "$(cd "$ROOT" && git status --porcelain -- cmd wal storage internal go.mod 2>/dev/null)" ]; then
		PITR_REV="$PITR_REV+uncommitted"
	fi
	if [ -n "${PITR_BIN:-}" ]; then
		PITR=$PITR_BIN
		PITR_REV="$PITR_REV ($PITR_BIN)"
		return
	fi
	log "building pitr"
	(cd "$ROOT" && go build -o "$WORK/bin/pitr" ./cmd/pitr)
	PITR=$WORK/bin/pitr
}

# start_minio starts MinIO over TLS on loopback with data in $WORK/minio,
# exports AWS_* and BENCH_S3_ENDPOINT for it, sets MINIO_PORT and MINIO_PID,
# and creates the buckets named by the arguments.
start_minio() {
	local m=$WORK/minio console
	rm -rf "$m"
	mkdir -p "$m/data" "$m/certs"
	# pgBackRest 2.45 checks the certificate's DNS name, not IP SANs.
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$m/certs/private.key" -out "$m/certs/public.crt" 2>/dev/null
	# The CA bundle is read by archive_command and restore_command, as postgres.
	chmod 755 "$m" "$m/certs"
	chmod 644 "$m/certs/public.crt"
	MINIO_PORT=$("$H" freeport)
	console=$("$H" freeport)
	export AWS_ACCESS_KEY_ID=benchadmin AWS_REGION=us-east-1 AWS_CA_BUNDLE=$m/certs/public.crt
	export AWS_SECRET_ACCESS_KEY
	AWS_SECRET_ACCESS_KEY=$(openssl rand -hex 20)
	export BENCH_S3_ENDPOINT=https://localhost:$MINIO_PORT
	MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off \
		MINIO_UPDATE=off "$MINIO" server --quiet --address "127.0.0.1:$MINIO_PORT" \
		--console-address "127.0.0.1:$console" --certs-dir "$m/certs" "$m/data" >"$m/minio.log" 2>&1 &
	MINIO_PID=$!
	PIDS_TO_STOP+=("$MINIO_PID")
	for _ in $(seq 100); do
		curl -sf --cacert "$AWS_CA_BUNDLE" "$BENCH_S3_ENDPOINT/minio/health/live" && break
		sleep 0.1
	done
	curl -sf --cacert "$AWS_CA_BUNDLE" "$BENCH_S3_ENDPOINT/minio/health/live" || die "MinIO did not start: $(tail "$m/minio.log")"
	"$H" mkbucket "$@"
	log "MinIO (pid $MINIO_PID) on $BENCH_S3_ENDPOINT"
}

# have_pgbackrest says whether pgBackRest is installed, installing Debian's
# package first (as bench/files.sh does restic) so that a fresh machine's
# run is side by side too; when that fails the scripts measure the other
# tools and say so once.
have_pgbackrest() {
	if command -v pgbackrest >/dev/null; then return 0; fi
	if [ -z "${PGBR_MISSING_SAID:-}" ]; then
		PGBR_MISSING_SAID=1
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
			log "installing pgbackrest (apt-get)"
			if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbackrest >"$WORK/apt-pgbackrest.log" 2>&1; then
				return 0
			fi
			log "apt-get install pgbackrest failed: $(tail -1 "$WORK/apt-pgbackrest.log")"
		fi
		log "pgbackrest is not installed: skipping its rows"
	fi
	return 1
}

# available prints its arguments (tools or modes), one a line, without
# pgBackRest's when it is not installed and wal-g's when WALG_BIN is not set.
available() {
	local t
	for t in "$@"; do
		case $t in
		pgbackrest*) have_pgbackrest || continue ;;
		walg*) [ -n "${WALG_BIN:-}" ] || continue ;;
		pitr-b) [ -n "${PITR_BIN_B:-}" ] || continue ;;
		pitr-c) [ -n "${PITR_BIN_C:-}" ] || continue ;;
		esac
		echo "$t"
	done
}

# pgbackrest_repo_conf prints the [global] lines of a pgbackrest.conf that
# point repo1 at the pgbackrest bucket of start_minio's MinIO.
pgbackrest_repo_conf() {
	cat <<-EOF
		repo1-type=s3
		repo1-path=/repo
		repo1-s3-bucket=pgbackrest
		repo1-s3-endpoint=localhost
		repo1-storage-port=$MINIO_PORT
		repo1-s3-region=us-east-1
		repo1-s3-uri-style=path
		repo1-s3-key=$AWS_ACCESS_KEY_ID
		repo1-s3-key-secret=$AWS_SECRET_ACCESS_KEY
		repo1-storage-ca-file=$AWS_CA_BUNDLE
	EOF
}

# psql_src runs psql on the scripts' source cluster ($PGBIN, $SOCK, $PGPORT, set by each script).
psql_src() { as_postgres "$PGBIN/psql" -h "$SOCK" -p "$PGPORT" -U postgres -X -q -t -A -v ON_ERROR_STOP=1 "$@"; }

# wait_archived waits until archive_command has stored segment $1.
wait_archived() {
	local seg=$1
	for _ in $(seq 1200); do
		[ "$(psql_src -c "SELECT coalesce(last_archived_wal, '') >= '$seg' FROM pg_stat_archiver")" = t ] && return
		sleep 0.1
	done
	die "segment $seg was not archived: $(psql_src -c 'SELECT * FROM pg_stat_archiver')"
}

# switch_wal switches to a new WAL segment and prints the one it ended.
switch_wal() { psql_src -c "SELECT pg_walfile_name(pg_switch_wal())"; }

# walg_conf prints wal-g's JSON config for start_minio's MinIO, bucket walg
# under prefix $1, connecting to PostgreSQL at $2 (host) and $3 (port) when given.
walg_conf() {
	local pg=""
	[ -n "${2:-}" ] && pg=", \"PGHOST\": \"$2\", \"PGPORT\": \"$3\", \"PGUSER\": \"postgres\""
	cat <<-EOF
		{"AWS_ACCESS_KEY_ID": "$AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "$AWS_SECRET_ACCESS_KEY",
		 "AWS_ENDPOINT": "$BENCH_S3_ENDPOINT", "AWS_REGION": "us-east-1", "AWS_S3_FORCE_PATH_STYLE": "true",
		 "WALG_S3_CA_CERT_FILE": "$AWS_CA_BUNDLE", "WALG_S3_PREFIX": "s3://walg/$1"$pg}
	EOF
}
