#!/usr/bin/env bash
# limit.sh: does a bandwidth limit hold? One local MinIO over TLS; with a
# limit of $LIMIT MiB/s, $SIZE MiB move in each phase (see bench/limit/main.go):
#   upload    one Put through storage/limit over storage/s3
#   download  one Get of it
#   shared    two Puts at once to two stores sharing one limiter
#   pitr-up   pitr --limit-upload ${LIMIT}MiB files backup of a $SIZE MiB file
#   pitr-down pitr --limit-download ${LIMIT}MiB files restore of it
#   pitr-up-free, pitr-down-free: the same without a limit (the baseline)
# The decorator phases must run within 10 % of the limit; the pitr commands
# (which also chunk, write and sync files) must not exceed it. The script
# fails otherwise.
# Writes the Markdown section to $WORK/report.md and, unless
# PITR_BENCH_WRITE_DOCS=0, into docs/BENCHMARKS.md between this script's markers.
#
# About a minute and a half (each phase takes SIZE/LIMIT seconds):
#   bash bench/limit.sh
# Environment (defaults in brackets):
#   PITR_BENCH_LIMIT_WORK  scratch: MinIO data, the file, results [/var/tmp/pitr-bench-limit]
#   PITR_BENCH_LIMIT_MIB   the limit, MiB/s [20]
#   PITR_BENCH_SIZE_MIB    MiB per phase [200]
#   PITR_BENCH_WRITE_DOCS  1: update docs/BENCHMARKS.md [1]
#   PITR_MINIO_BIN         MinIO binary [minio in PATH, else ~/go/bin/minio]
#   PITR_BIN               a pitr binary to measure [built from this tree]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${PITR_BENCH_LIMIT_WORK:-/var/tmp/pitr-bench-limit}
LIMIT=${PITR_BENCH_LIMIT_MIB:-20}
SIZE=${PITR_BENCH_SIZE_MIB:-200}
BENCH=limit
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

cleanup() {
	stop_pids
	rm -rf "$WORK/pitr-limit/src" "$WORK/pitr-limit/restored" "$WORK/minio/data"
}
trap cleanup EXIT
mkdir -p "$WORK"
rm -f "$WORK/results.jsonl" "$WORK/report.md"
build_harness limit
build_pitr
start_minio limit
log "limit ${LIMIT} MiB/s, ${SIZE} MiB per phase"
status=0
"$H" run --limit-mib "$LIMIT" --size-mib "$SIZE" --bucket limit --pitr "$PITR" --work "$WORK" \
	--rev "$PITR_REV" --out "$WORK/results.jsonl" --md "$WORK/report.md" || status=$?
[ -s "$WORK/report.md" ] && cat "$WORK/report.md"
if [ "${PITR_BENCH_WRITE_DOCS:-1}" = 1 ] && [ -s "$WORK/report.md" ]; then
	"$H" splice --file "$ROOT/docs/BENCHMARKS.md" --section "$WORK/report.md"
	log "docs/BENCHMARKS.md updated"
fi
exit "$status"
