#!/usr/bin/env bash
# speed.sh: every row of issue 13's goals table in one run, pitr side by side
# with the floors, pgBackRest (Debian's, repo1-bundle=y where it applies) and
# wal-g (when WALG_BIN names a binary), in interleaved rounds with the order
# of the tools rotated each round; medians with ranges.
#
# It runs the three harnesses in turn and assembles one section:
#   bench/walpush.sh  rows push (256 pgbench and incompressible segments, one
#                     process each: cp, pitr default, pitr via `pitr daemon`'s
#                     socket, pgBackRest sync and async process-max 2 (zst 1), wal-g),
#                     latency (one segment, process start to exit) and start-up,
#                     codecs (PITR_COMPRESSION zstd, lz4, s2 over 64 segments per
#                     set, when `pitr config --doc` lists compression)
#   bench/backup.sh   rows backup (pg_basebackup -Ft floor, pitr with
#                     backup_method auto and, when the setting exists, direct and
#                     stream, pgBackRest process-max 2 bundle, wal-g backup-push),
#                     restore (tar -xf && sync floor, pitr, pgBackRest, wal-g) and
#                     pitr (replay to a restore point: cp, pitr wal-fetch,
#                     pgBackRest archive-get async and sync, wal-g wal-fetch)
#   bench/stream.sh   row stream (pitr wal-receive, default and --synchronous,
#                     at the same pgbench rate, beside pg_receivewal)
# and writes it, with a goals list judged on this run's ratios, into
# docs/BENCHMARKS.md between this script's markers (unless
# PITR_BENCH_WRITE_DOCS=0); the section is also left in $WORK/report.md.
#
# Run as root (PostgreSQL runs as `postgres`), from anywhere:
#   WALG_BIN=/path/to/wal-g bash bench/speed.sh       about 40 minutes on 2 cores
#   PITR_BENCH_SMOKE=1 bash bench/speed.sh            tiny everything, a few minutes
# Environment (defaults in brackets; smoke defaults after the slash):
#   PITR_BENCH_PHASES      rows to run [push latency codecs backup restore pitr stream]
#                          (restore and pitr take the backups of backup: it runs with either)
#   PITR_BENCH_ROUNDS      interleaved rounds [3 / 1]
#   PITR_BENCH_N           pgbench segments per push run [256 / 4]
#   PITR_BENCH_N_RANDOM    incompressible segments per push run [256 / 4]
#   PITR_BENCH_N_CODEC     segments per codec run [64 / 4]
#   PITR_BENCH_CODECS      codecs to loop over [zstd lz4 s2 when the setting exists, else none]
#   PITR_BENCH_LATENCY_N   timed single-segment calls per probe and round [20 / 2]
#   PITR_BENCH_SCALE       pgbench scale of the backup cluster [100 / 2]
#   PITR_BENCH_SEGMENTS    WAL segments replayed in the pitr row [75 / 3]
#   PITR_BENCH_STREAM_SECONDS  pgbench -T per streaming phase [60 / 5]
#   PITR_BENCH_STREAM_SCALE    pgbench scale of the streaming cluster [20 / 2]
#   PITR_BENCH_RATE        pgbench -R of the streaming phases [300 / 100]
#   PITR_BENCH_IDLE_MAX    longest wait for an idle machine before each backup-row measurement [30s / 0s]
#   PITR_BENCH_SMOKE       1: the smoke defaults above [0]
#   PITR_BENCH_SPEED_WORK  scratch for all three [/var/tmp/pitr-bench-speed]
#   PITR_BENCH_SEGMENTS_DIR  the segment cache of bench/walpush.sh [/var/tmp/pitr-bench/segments]
#   PITR_BIN               a pitr binary to measure [built from this tree]
#   WALG_BIN               a wal-g binary [unset: no wal-g rows]
#   PITR_BENCH_WRITE_DOCS  1: update docs/BENCHMARKS.md [1]
#   PGBIN, PITR_MINIO_BIN  as for the other scripts
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PITR_BENCH_SPEED_WORK:-/var/tmp/pitr-bench-speed}
SMOKE=${PITR_BENCH_SMOKE:-0}
# smoke_or FULL SMOKE prints the default for this run.
smoke_or() { if [ "$SMOKE" = 1 ]; then echo "$2"; else echo "$1"; fi; }
PHASES=${PITR_BENCH_PHASES:-push latency codecs backup restore pitr stream}
ROUNDS=${PITR_BENCH_ROUNDS:-$(smoke_or 3 1)}
N=${PITR_BENCH_N:-$(smoke_or 256 4)}
N_RANDOM=${PITR_BENCH_N_RANDOM:-$(smoke_or 256 4)}
N_CODEC=${PITR_BENCH_N_CODEC:-$(smoke_or 64 4)}
LATENCY_N=${PITR_BENCH_LATENCY_N:-$(smoke_or 20 2)}
SCALE=${PITR_BENCH_SCALE:-$(smoke_or 100 2)}
SEGMENTS=${PITR_BENCH_SEGMENTS:-$(smoke_or 75 3)}
STREAM_SECONDS=${PITR_BENCH_STREAM_SECONDS:-$(smoke_or 60 5)}
STREAM_SCALE=${PITR_BENCH_STREAM_SCALE:-$(smoke_or 20 2)}
RATE=${PITR_BENCH_RATE:-$(smoke_or 300 100)}
IDLE_MAX=${PITR_BENCH_IDLE_MAX:-$(smoke_or 30s 0s)}
WALG=${WALG_BIN:-}

BENCH=speed.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

has_phase() { case " $PHASES " in *" $1 "*) return 0 ;; esac; return 1; }

# setting_exists says whether this pitr documents setting $1 (grep reads
# it all: with -q, pitr could die of SIGPIPE and pipefail say "no").
setting_exists() { "$PITR" config --doc 2>/dev/null | grep "\`$1\`" >/dev/null; }

# estimate prints the expected minutes of the run, from figures of a 2-core
# machine (seconds per segment and tool, per backup round at scale 100, ...).
estimate() {
	local push_modes=5 s=0
	[ -n "$WALG" ] && push_modes=6
	have_phase_s() { has_phase "$1" && echo 1 || echo 0; }
	# push: cp + pitr + daemon + pgBackRest sync and async (+ wal-g); about
	# 0.07 s a pgbench segment and 0.2 s an incompressible one per tool.
	s=$((s + $(have_phase_s push) * ROUNDS * push_modes * (N * 7 + N_RANDOM * 20) / 100))
	# codecs: cp, 3 codecs, pgBackRest async over both sets.
	[ -n "$CODECS" ] && s=$((s + $(have_phase_s codecs) * ROUNDS * 5 * N_CODEC * 27 / 100))
	# latency: 4-5 probes of LATENCY_N calls at about 0.5 s each with set-up, and start-up.
	s=$((s + $(have_phase_s latency) * ROUNDS * (push_modes * LATENCY_N / 2 + 10)))
	# backup, restore, pitr: cluster set-up, then per round and tool about
	# 6 s + 4 s + 8 s at scale 100.
	if has_phase backup; then
		local tools=$((3 + ${#BACKUP_METHODS_LIST[@]}))
		[ -n "$WALG" ] && tools=$((tools + 1))
		s=$((s + 60 + SCALE * 3 / 2 + ROUNDS * tools * (18 * SCALE / 100 + 8)))
	fi
	# stream: two phases of STREAM_SECONDS, plus set-up.
	has_phase stream && s=$((s + 2 * STREAM_SECONDS + 40 + STREAM_SCALE))
	echo $(((s + 59) / 60))
}

# section_of prints a sub-report with its headings one level deeper and
# without its own goals list (this section judges issue 13's goals).
section_of() {
	awk '
		/^#+ Goals/ { skip = 1; next }
		/^#/ { skip = 0 }
		skip { next }
		/^#/ { print "#" $0; next }
		{ print }
	' "$1"
}

versions() {
	local pgbr walg minio
	pgbr=$(pgbackrest version 2>/dev/null | awk '{print $2}') || true
	walg=$([ -n "$WALG" ] && "$WALG" --version 2>/dev/null | head -1 | awk '{print $3}') || true
	minio=$("$MINIO" --version 2>/dev/null | head -1 | awk '{print $3}') || true
	echo "- Versions: pitr $PITR_REV; PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'); pgBackRest ${pgbr:-not installed}; wal-g ${walg:-not measured (WALG_BIN unset)}${WALG:+ (\`$WALG\`)}; MinIO ${minio:-unknown} (\`DEVELOPMENT\` is a \`go install\` build); $(go version | awk '{print $3}')."
}

main() {
	[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL runs as postgres, the rest as root)"
	mkdir -p "$WORK/bin"
	build_pitr
	local rev=$PITR_REV
	export PITR_BIN=$PITR
	CODECS=${PITR_BENCH_CODECS-$(if setting_exists compression; then echo zstd lz4 s2; fi)}
	BACKUP_METHODS_LIST=()
	if setting_exists backup_method; then BACKUP_METHODS_LIST=(direct stream); fi
	if [ -n "${PITR_BENCH_BACKUP_METHODS+x}" ]; then read -r -a BACKUP_METHODS_LIST <<<"$PITR_BENCH_BACKUP_METHODS"; fi
	if [ -n "$WALG" ] && ! "$WALG" --version >/dev/null 2>&1; then die "WALG_BIN=$WALG does not run"; fi
	[ -n "$WALG" ] || log "WALG_BIN is not set: no wal-g rows"
	have_pgbackrest || true # installs it on a fresh machine before the version line
	[ -n "$CODECS" ] || log "this pitr has no compression setting: no codec rows"
	[ ${#BACKUP_METHODS_LIST[@]} -gt 0 ] || log "this pitr has no backup_method setting: backup_method auto only"
	log "rows: $PHASES; $ROUNDS rounds; estimated $(estimate) minutes on 2 cores (plus about 5 the first time, to make the segment cache)"
	local started=$SECONDS
	local docs=(PITR_BENCH_WRITE_DOCS=0)
	local parts=()

	if has_phase push || has_phase latency || has_phase codecs; then
		local modes="" lat_modes="" codecs=""
		has_phase push && modes="cp pitr pitr-daemon pgbackrest-sync pgbackrest-async walg"
		has_phase latency && lat_modes="pitr-c4 pitr-inproc pitr-daemon pgbackrest-sync walg"
		has_phase codecs && codecs=$CODECS
		local sets="pgbench random"
		has_phase push || sets=""
		log "walpush.sh: rows ${modes:+push }${lat_modes:+latency }${codecs:+codecs}"
		env "${docs[@]}" PITR_BENCH_WORK="$WORK/walpush" PITR_BENCH_ROUNDS="$ROUNDS" \
			PITR_BENCH_N="$N" PITR_BENCH_N_RANDOM="$N_RANDOM" PITR_BENCH_N_CODEC="$N_CODEC" \
			PITR_BENCH_SETS="$sets" PITR_BENCH_MODES="$modes" PITR_BENCH_LATENCY_MODES="$lat_modes" \
			PITR_BENCH_LATENCY="$(has_phase latency && echo 1 || echo 0)" PITR_BENCH_LATENCY_N="$LATENCY_N" \
			PITR_BENCH_CODECS="$codecs" bash "$ROOT/bench/walpush.sh"
		parts+=(walpush)
	fi
	if has_phase backup || has_phase restore || has_phase pitr; then
		local bphases=backup
		has_phase restore && bphases+=" restore"
		has_phase pitr && bphases+=" pitr"
		log "backup.sh: rows $bphases"
		env "${docs[@]}" PITR_BENCH_BACKUP_WORK="$WORK/backup" PITR_BENCH_ROUNDS="$ROUNDS" PITR_BENCH_IDLE_MAX="$IDLE_MAX" \
			PITR_BENCH_SCALE="$SCALE" PITR_BENCH_SEGMENTS="$SEGMENTS" PITR_BENCH_PHASES="$bphases" \
			PITR_BENCH_BACKUP_METHODS="${BACKUP_METHODS_LIST[*]}" bash "$ROOT/bench/backup.sh"
		parts+=(backup)
	fi
	if has_phase stream; then
		log "stream.sh: row stream"
		env "${docs[@]}" PITR_BENCH_STREAM_WORK="$WORK/stream" PITR_BENCH_SCALE="$STREAM_SCALE" \
			PITR_BENCH_RATE="$RATE" PITR_BENCH_SECONDS="$STREAM_SECONDS" PITR_BENCH_PHASES="1s sync" \
			bash "$ROOT/bench/stream.sh"
		parts+=(stream)
	fi
	local elapsed=$((SECONDS - started))

	local report=$WORK/report.md p
	PGBR_VERSION=$(pgbackrest version 2>/dev/null | awk '{print $2}') || true
	{
		echo "## Side by side: every row of issue 13 (bench/speed.sh)"
		echo
		echo "Generated by \`bash bench/speed.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); $((elapsed / 60)) min $((elapsed % 60)) s."
		echo
		echo "Reproduce (as root, from the repository root; \`WALG_BIN\` names a wal-g binary, see README):"
		echo
		echo '```sh'
		local v envs=()
		for v in PITR_BENCH_SMOKE PITR_BENCH_PHASES PITR_BENCH_ROUNDS PITR_BENCH_N PITR_BENCH_N_RANDOM PITR_BENCH_N_CODEC PITR_BENCH_CODECS \
			PITR_BENCH_LATENCY_N PITR_BENCH_SCALE PITR_BENCH_SEGMENTS PITR_BENCH_STREAM_SECONDS PITR_BENCH_STREAM_SCALE PITR_BENCH_RATE WALG_BIN; do
			[ -n "${!v:-}" ] && envs+=("$v='${!v}'")
		done
		echo "${envs[*]}${envs[*]:+ }bash bench/speed.sh"
		echo '```'
		echo
		echo "- Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/ {print $2}') GiB RAM, Linux $(uname -r); one local disk; MinIO over TLS on loopback."
		versions | sed "s#(\`$WORK/bin/pitr\`)##; s#$WORK/bin/pitr#this tree#"
		echo "- Run: $ROUNDS interleaved rounds per table (the order of the tools rotated each round); push $N pgbench and $N_RANDOM incompressible segments, codecs ${CODECS:+$CODECS over $N_CODEC segments each}${CODECS:-none (this pitr has no compression setting)}, $LATENCY_N single-segment calls per probe and round; backup cluster \`pgbench -i -s $SCALE\`, $SEGMENTS segments replayed; streaming at $RATE tps for $STREAM_SECONDS s per phase (scale $STREAM_SCALE). Other people's CPU during each table: the others' CPU, machine CPU and machine busy columns."
		echo "- pgBackRest: zst level 1 everywhere (archive-push sync and async process-max 2; backup process-max 2 with \`repo1-bundle=y\`). wal-g: its defaults (lz4, upload concurrency 16, download concurrency 10, wal-fetch prefetch on); it fsyncs what backup-fetch writes (\`WALG_TAR_DISABLE_FSYNC\` is off by default), and the restore row adds \`sync\` for it as for tar."
		echo
		echo "### Issue 13's table, this run"
		echo
		echo "Medians of the rounds (min–max), wall seconds; the tables below have CPU, memory and bytes."
		echo
		echo "| work | floor | pgBackRest ${PGBR_VERSION:-(not installed)} | wal-g | pitr |"
		echo "|---|---|---|---|---|"
		case " ${parts[*]} " in *" walpush "*) "$WORK/walpush/bin/walpush" summary "$WORK/walpush/results.jsonl" ;; esac
		case " ${parts[*]} " in *" backup "*) "$WORK/backup/bin/backup" summary "$WORK/backup/results.jsonl" ;; esac
		case " ${parts[*]} " in *" stream "*) "$WORK/stream/bin/stream" summary "$WORK/stream/results.jsonl" ;; esac
		echo
		echo "### Goals (issue 13), judged on this run"
		echo
		case " ${parts[*]} " in *" walpush "*) "$WORK/walpush/bin/walpush" goals "$WORK/walpush/results.jsonl" ;; esac
		case " ${parts[*]} " in *" backup "*) "$WORK/backup/bin/backup" goals "$WORK/backup/results.jsonl" ;; esac
		case " ${parts[*]} " in *" stream "*) "$WORK/stream/bin/stream" goals "$WORK/stream/results.jsonl" ;; esac
		echo
		for p in "${parts[@]}"; do
			section_of "$WORK/$p/report.md"
			echo
		done
	} >"$report"
	if [ "${PITR_BENCH_WRITE_DOCS:-1}" = 1 ]; then
		(cd "$ROOT" && go build -o "$WORK/bin/speed" ./bench/speed)
		"$WORK/bin/speed" splice --file "$ROOT/docs/BENCHMARKS.md" --section "$report"
		log "updated docs/BENCHMARKS.md"
	fi
	cat "$report"
	log "done in $((elapsed / 60)) min $((elapsed % 60)) s (rev $rev)"
}

main "$@"
