#!/usr/bin/env bash
# files.sh: file snapshots, pitr against restic, on one generated tree of
# mixed files and one local MinIO over TLS; and `pitr copy` of the whole
# repository against plain GET+PUT of the same objects.
#
# The tree (bench/files gen, the same for a given seed): incompressible
# media files of 100 KB to 20 MB (log-uniform) and $SMALL small text files
# (100 B to 4 KB), $MB MB in all, plus a few entries that test exactness (a
# 0600 secret in a 0700 directory, an executable, a symlink, an empty
# directory, non-ASCII names). Each round, with a new tree and new,
# empty repositories, the order of the tools rotated in every phase:
#   first    first snapshot of the tree
#   incr     after `bench/files change`: about 1 % of the bytes changed (a third
#            overwritten in place inside media files, a third appended to
#            them, a third new media files) and 1 % of the small files (half
#            edited, half only touched), a second snapshot
#   restore  the second snapshot into an empty directory, then (untimed)
#            compared with the tree: paths, types, modes, owners, sizes,
#            symlink targets and content byte for byte; any difference fails
#            the benchmark
#   copy     `pitr copy --to` a second bucket, and the floor: GET and PUT of
#            every object under pitr's prefix to a third bucket, 4 at once
#   profile  (not by default) after the last round, untimed: pitr's first
#            snapshot, a second after another 1 % change, and the restore,
#            under `perf record`; perf's top functions in $WORK/logs/perf-*.txt
# For each: wall time, MB/s of the tree, upload requests and bytes MinIO
# received (its API metrics, before and after), objects and bytes the
# tool's prefix gained (listings before and after), CPU and peak RSS of the
# tool and its children, MinIO's CPU and everyone else's.
# Writes the Markdown section to $WORK/report.md and, unless
# PITR_BENCH_WRITE_DOCS=0, into docs/BENCHMARKS.md between this script's
# markers (appended at the end the first time).
#
# restic (the Debian package) is installed with apt-get when missing. When
# this tree's pitr has no `files` command (or no `copy`), its rows are left
# out and the report says they were not measured.
#
# Run as root, from anywhere:
#   bash bench/files.sh     about 10 minutes per round on 2 cores with the defaults
# Environment (defaults in brackets):
#   PITR_BENCH_FILES_WORK   scratch: tree, MinIO data, restores, results [/var/tmp/pitr-bench-files]
#   PITR_BENCH_FILES_MB     tree size in MB (10^6 bytes) [2000]
#   PITR_BENCH_FILES_SMALL  small text files in it [100000]
#   PITR_BENCH_SEED         seed of the tree and its change [1]
#   PITR_BENCH_ROUNDS       rounds [1]
#   PITR_BENCH_TOOLS        [restic pitr]
#   PITR_BENCH_PHASES       [first incr restore copy] (incr, restore and copy need first), or add profile
#   PITR_BENCH_RESTIC_CONNECTIONS  restic -o s3.connections [5, restic's default]
#   PITR_BENCH_WRITE_DOCS   1: update docs/BENCHMARKS.md [1]
#   PITR_MINIO_BIN          MinIO binary [minio in PATH, else ~/go/bin/minio]
#   PITR_BIN                a pitr binary to measure [built from this tree]
#   PITR_BENCH_REV          what to call the pitr measured in the report [this tree's revision]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PITR_BENCH_FILES_WORK:-/var/tmp/pitr-bench-files}
MB=${PITR_BENCH_FILES_MB:-2000}
SMALL=${PITR_BENCH_FILES_SMALL:-100000}
SEED=${PITR_BENCH_SEED:-1}
ROUNDS=${PITR_BENCH_ROUNDS:-1}
TOOLS=${PITR_BENCH_TOOLS:-restic pitr}
PHASES=${PITR_BENCH_PHASES:-first incr restore copy}
RESTIC_CONNECTIONS=${PITR_BENCH_RESTIC_CONNECTIONS:-5}

BENCH=files.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

cleanup() {
	stop_pids
	# Keep logs and results; drop the bulk.
	rm -rf "$WORK/tree" "$WORK/restore" "$WORK/minio/data"
}
trap cleanup EXIT

ensure_restic() {
	if ! command -v restic >/dev/null; then
		log "installing restic (apt-get)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y restic >"$WORK/logs/apt-restic.log" 2>&1 ||
			die "apt-get install restic failed: $(tail -3 "$WORK/logs/apt-restic.log")"
	fi
	RESTIC_VERSION=$(restic version | awk '{print $2}')
}

# has_tool says whether tool $1 can be measured; pitr needs `files`.
has_tool() {
	case $1 in
	restic) return 0 ;;
	pitr) "$PITR" files --help 2>&1 | grep -qE "^ +pitr files" ;;
	esac
}

has_restore() { "$PITR" files restore --help 2>&1 | grep -qE "^ +pitr files restore"; }

has_copy() { "$PITR" copy --help 2>&1 | grep -qE "^ +pitr copy"; }

setup() {
	export RESTIC_PASSWORD
	RESTIC_PASSWORD=$(openssl rand -hex 16)
	export PITR_S3_ENDPOINT=$BENCH_S3_ENDPOINT PITR_LOG_LEVEL=warn PITR_AGE_RECIPIENTS
	"$PITR" keygen --output "$WORK/age-identity.txt" >/dev/null 2>&1
	export PITR_AGE_IDENTITY_FILE=$WORK/age-identity.txt
	PITR_AGE_RECIPIENTS=$(grep -o 'age1[0-9a-z]*' "$WORK/age-identity.txt" | head -1)
	[ -n "$PITR_AGE_RECIPIENTS" ] || die "no age recipient in $WORK/age-identity.txt"
	METRICS=$BENCH_S3_ENDPOINT/minio/metrics/v3/api/requests
	# For looking into the results afterwards (start MinIO on $WORK/minio/data with these).
	(umask 077 && export -p | grep -E ' (AWS_|PITR_|RESTIC_|BENCH_S3)' >"$WORK/env.sh")
}

# set_round points RESTIC and PITRX (arrays: command and global flags) at
# round $1's repositories, so each round's first snapshot starts empty.
set_round() {
	local round=$1
	RESTIC=(restic --repo "s3:$BENCH_S3_ENDPOINT/restic/r$round" --cacert "$AWS_CA_BUNDLE"
		--cache-dir "$WORK/restic-cache/r$round" -o "s3.connections=$RESTIC_CONNECTIONS")
	PITRX=(env "PITR_REPO=s3://pitr/r$round" "PITR_SPOOL_DIR=$WORK/pitr-spool/r$round"
		"PITR_FILES_DEDUP_KEY=$WORK/pitr-spool/r$round/dedup.key" "$PITR")
}

prefix_of() { # tool round -> bucket prefix
	case $1 in
	restic) echo "restic r$2/" ;;
	pitr) echo "pitr r$2/" ;;
	esac
}

setup_round() {
	local round=$1
	set_round "$round"
	mkdir -p "$WORK/pitr-spool/r$round"
	if has_tool restic; then
		"${RESTIC[@]}" init >"$WORK/logs/restic-init-r$round.log" 2>&1 ||
			die "restic init: $(tail -3 "$WORK/logs/restic-init-r$round.log")"
	fi
}

# rotate prints the tools in the order of round $1.
rotate() {
	local round=$1 i
	shift
	local tools=("$@")
	for i in "${!tools[@]}"; do echo "${tools[$(((i + round - 1) % ${#tools[@]}))]}"; done
}

tools() {
	local t
	for t in $TOOLS; do
		if has_tool "$t"; then echo "$t"; fi
	done
}

# quiet syncs and waits (at most 10 s) until the machine is idle; on a
# shared machine it often is not, which the others' CPU column shows.
quiet() {
	sync
	"$H" idle --max 10s --out "$RESULTS"
}

measure() { # phase tool round title [run flags...] -- command...
	local phase=$1 tool=$2 round=$3 title=$4 bucket prefix
	shift 4
	read -r bucket prefix < <(prefix_of "$tool" "$round")
	quiet
	"$H" run --phase "$phase" --tool "$tool" --round "$round" --title "$title" --minio-pid "$MINIO_PID" \
		--metrics "$METRICS" --bucket "$bucket" --prefix "$prefix" \
		--input-bytes "$TREE_BYTES" --input-files "$TREE_FILES" \
		--out "$RESULTS" --log "$WORK/logs/$phase-$tool-r$round.log" "$@"
}

tree_size() {
	TREE_BYTES=$(find "$TREE" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
	TREE_FILES=$(find "$TREE" -type f | wc -l)
}

snapshot() { # phase tool round
	local phase=$1 tool=$2 round=$3
	case $tool in
	restic)
		measure "$phase" restic "$round" '`restic backup`' -- "${RESTIC[@]}" backup --host bench "$TREE"
		;;
	pitr)
		measure "$phase" pitr "$round" '`pitr files backup --set bench`' -- "${PITRX[@]}" files backup --set bench "$TREE"
		;;
	esac
}

restore() { # tool round
	local tool=$1 round=$2 dir=$WORK/restore/$1
	if [ "$tool" = pitr ] && ! has_restore; then
		log "pitr has no files restore command: its restore is not measured"
		return
	fi
	rm -rf "$dir"
	mkdir -p "$dir"
	case $tool in
	restic)
		measure restore restic "$round" '`restic restore latest` (no fsync)' -- "${RESTIC[@]}" restore latest --target "$dir"
		;;
	pitr)
		measure restore pitr "$round" '`pitr files restore --snapshot latest`' -- \
			"${PITRX[@]}" files restore --set bench --snapshot latest --target "$dir"
		;;
	esac
	"$H" verify --phase restore --tool "$tool" --round "$round" --out "$RESULTS" "$TREE" "$dir" ||
		die "$tool: the restored tree differs from the original (see above); $dir kept"
	rm -rf "$dir"
}

copy_phase() { # round
	local round=$1 t
	if ! has_tool pitr || ! has_copy; then
		log "pitr has no copy command: copy not measured"
		return
	fi
	for t in $(rotate "$round" floor pitr); do
		case $t in
		floor)
			quiet
			"$H" run --phase copy --tool floor --round "$round" --title 'GET + PUT of each object, 4 at once (floor)' \
				--minio-pid "$MINIO_PID" --metrics "$METRICS" --bucket floor --prefix "r$round/" \
				--out "$RESULTS" --log "$WORK/logs/copy-floor-r$round.log" -- \
				"$H" s3copy --from-bucket pitr --from-prefix "r$round/" --to-bucket floor --to-prefix "r$round/" --concurrency 4
			;;
		pitr)
			quiet
			"$H" run --phase copy --tool pitr --round "$round" --title '`pitr copy --to` (verifies each object)' \
				--minio-pid "$MINIO_PID" --metrics "$METRICS" --bucket pitr-copy --prefix "r$round/" \
				--out "$RESULTS" --log "$WORK/logs/copy-pitr-r$round.log" -- \
				"${PITRX[@]}" copy --to "s3://pitr-copy/r$round"
			;;
		esac
	done
}

# profile_phase runs pitr's first snapshot of the tree into a new
# repository, a second one after another 1 % change, and the restore of
# that, under `perf record` (pitr has no profiling switch), and writes
# perf's top functions to $WORK/logs/perf-{first,incr,restore}.txt. Not timed.
profile_phase() {
	if ! has_tool pitr || ! command -v perf >/dev/null; then
		log "no pitr files command or no perf: no profile"
		return
	fi
	set_round prof
	mkdir -p "$WORK/pitr-spool/rprof"
	local dir=$WORK/restore/prof what argv
	rm -rf "$dir"
	mkdir -p "$dir"
	for what in first incr restore; do
		case $what in
		first | incr) argv=("${PITRX[@]}" files backup --set bench "$TREE") ;;
		restore)
			has_restore || break
			argv=("${PITRX[@]}" files restore --set bench --snapshot latest --target "$dir")
			;;
		esac
		[ "$what" = incr ] && "$H" change --seed "$((SEED + 1))" "$TREE" >"$WORK/logs/perf-change.log"
		perf record -F 499 -g -o "$WORK/perf-$what.data" -- "${argv[@]}" >"$WORK/logs/perf-$what.log" 2>&1 ||
			die "perf record pitr files $what: $(tail -3 "$WORK/logs/perf-$what.log")"
		perf report -i "$WORK/perf-$what.data" --stdio --no-children --sort symbol --percent-limit 0.7 -g none 2>/dev/null |
			sed 's/ *$//' >"$WORK/logs/perf-$what.txt"
		log "profile of pitr files $what: $WORK/logs/perf-$what.txt"
	done
	rm -rf "$dir"
}

machine_facts() {
	local f=$WORK/machine.md
	{
		echo "- Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, Linux $(uname -r); tree, restores and MinIO's data on one disk, page cache warm (no cache drops). Shared with other work: see the others' CPU column."
		echo "- restic $RESTIC_VERSION (Debian package): repository format 2, compression auto, default pack size, \`-o s3.connections=$RESTIC_CONNECTIONS\`, its local cache on. pitr: zstd and age to one X25519 recipient, as always. MinIO $("$MINIO" --version | head -1 | awk '{print $3}') over TLS on 127.0.0.1 (one drive), $(go version | awk '{print $3}')."
	} >"$f"
}

main() {
	[ "$(id -u)" = 0 ] || die "run as root (the trees keep owners and modes)"
	rm -rf "$WORK"
	mkdir -p "$WORK/logs"
	ensure_restic
	build_harness files
	build_pitr
	PITR_REV=${PITR_BENCH_REV:-$PITR_REV}
	# MinIO's API metrics (request counts, bytes received) without a token.
	export MINIO_PROMETHEUS_AUTH_TYPE=public
	start_minio restic pitr pitr-copy floor
	setup
	RESULTS=$WORK/results.jsonl
	: >"$RESULTS"
	TREE=$WORK/tree
	local started=$SECONDS round tool measured
	measured=$(tools | xargs)
	case " $measured " in *" pitr "*) ;; *) log "pitr has no files command: its rows are not measured" ;; esac
	for round in $(seq "$ROUNDS"); do
		rm -rf "$TREE"
		"$H" gen --seed "$SEED" --mb "$MB" --small "$SMALL" --round "$round" --out "$RESULTS" "$TREE"
		tree_size
		setup_round "$round"
		case " $PHASES " in *" first "*)
			for tool in $(rotate "$round" $measured); do snapshot first "$tool" "$round"; done
			;;
		esac
		case " $PHASES " in *" incr "*)
			"$H" change --seed "$SEED" --round "$round" --out "$RESULTS" "$TREE"
			tree_size
			for tool in $(rotate "$round" $measured); do snapshot incr "$tool" "$round"; done
			;;
		esac
		case " $PHASES " in *" restore "*)
			for tool in $(rotate "$round" $measured); do restore "$tool" "$round"; done
			;;
		esac
		case " $PHASES " in *" copy "*) copy_phase "$round" ;; esac
	done
	case " $PHASES " in *" profile "*) profile_phase ;; esac
	local elapsed=$((SECONDS - started)) v env=() copy=0
	for v in PITR_BENCH_FILES_MB PITR_BENCH_FILES_SMALL PITR_BENCH_SEED PITR_BENCH_ROUNDS PITR_BENCH_TOOLS \
		PITR_BENCH_PHASES PITR_BENCH_RESTIC_CONNECTIONS PITR_BIN; do
		if [ -n "${!v:-}" ]; then
			case ${!v} in *' '*) env+=("$v='${!v}'") ;; *) env+=("$v=${!v}") ;; esac
		fi
	done
	has_tool pitr && has_copy && copy=1
	machine_facts
	"$H" report --machine "$WORK/machine.md" --rev "$PITR_REV" --elapsed "$elapsed" --env "${env[*]}" \
		--tools "$measured" --copy="$copy" "$RESULTS" >"$WORK/report.md"
	if [ "${PITR_BENCH_WRITE_DOCS:-1}" = 1 ]; then
		"$H" splice --file "$ROOT/docs/BENCHMARKS.md" --section "$WORK/report.md"
		log "updated docs/BENCHMARKS.md"
	fi
	cat "$WORK/report.md"
}

main "$@"
