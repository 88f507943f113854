// Command limit is the measuring half of bench/limit.sh: it checks that a
// bandwidth limit holds, within 10 %, over a 200 MiB transfer to and from
// MinIO. Phases:
//
//	upload    one Put of a non-seekable stream through storage/limit over
//	          storage/s3 (the decorator pitr wraps every store in)
//	download  one Get of that object, read to the end
//	shared    two Puts at once, to two stores (a primary and an off-site
//	          repository) sharing one limiter: together they get the limit
//	pitr-up   `pitr --limit-upload L files backup` of a file of that size
//	pitr-down `pitr --limit-download L files restore` of that snapshot
//	pitr-up-free, pitr-down-free  the same without a limit, into a
//	          repository of their own: the baseline
//
// The rate is the object bytes moved over the wall time of the phase (for
// the pitr phases: the bytes the snapshot stored, over the whole command,
// start-up included). The decorator phases must run within 10 % of the
// limit; a whole pitr command, which also chunks, writes and syncs files,
// must not exceed it.
//
// It is its own main package, not a test, so `go test ./...` never runs it.
// Run bench/limit.sh rather than this directly.
//
// Subcommands:
//
//	freeport                     print a free TCP port on 127.0.0.1
//	mkbucket NAME...             create buckets (BENCH_S3_ENDPOINT, AWS_* credentials)
//	run [flags]                  every phase; appends JSON lines to --out, Markdown to --md
//	splice --file F --section S  put the section into F between the markers
package main

import "github.com/pitr-dev/pitr/bench/internal/harness"

func main() {
	harness.Main("limit",
		harness.Command{Name: "freeport", Run: harness.FreePort},
		harness.Command{Name: "mkbucket", Run: harness.MkBucket},
		harness.Command{Name: "run", Run: cmdRun},
		harness.Command{Name: "splice", Run: harness.Splice("limit.sh")},
	)
}
