// Command backup is the measuring half of bench/backup.sh: it times one
// command (a base backup or a restore) with the CPU and peak memory of it
// and its descendants, times a server's recovery from start until it
// accepts connections, and turns the results into Markdown.
//
// It is its own main package, not a test, so `go test ./...` never runs it.
// Run bench/backup.sh rather than this directly: the script builds the
// cluster, starts MinIO and prepares the data directories.
//
// Subcommands:
//
//	freeport                     print a free TCP port on 127.0.0.1
//	mkbucket NAME...             create buckets (BENCH_S3_ENDPOINT, AWS_* credentials)
//	stored [flags] BUCKET PREFIX record bytes and objects under PREFIX
//	run [flags] -- CMD ARGS...   time one command; append a JSON line
//	recover [flags]              start a server on a prepared data directory, time its recovery
//	idle [flags]                 wait until the machine is idle (at most --max)
//	profile [flags] backup|restore  pitr's backup or restore in-process under the CPU profiler
//	report [flags] RESULTS.jsonl Markdown section from the JSON lines
//	goals RESULTS.jsonl          issue 13's goals, met or not (for bench/speed.sh)
//	summary RESULTS.jsonl        issue 13's table rows (for bench/speed.sh)
//	splice --file F --section S  put the section into F between this script's markers
package main

import "github.com/pitr-dev/pitr/bench/internal/harness"

func main() {
	harness.Main("backup",
		harness.Command{Name: "freeport", Run: harness.FreePort},
		harness.Command{Name: "mkbucket", Run: harness.MkBucket},
		harness.Command{Name: "stored", Run: cmdStored},
		harness.Command{Name: "run", Run: cmdRun},
		harness.Command{Name: "recover", Run: cmdRecover},
		harness.Command{Name: "idle", Run: cmdIdle},
		harness.Command{Name: "profile", Run: cmdProfile},
		harness.Command{Name: "report", Run: cmdReport},
		harness.Command{Name: "goals", Run: cmdGoals},
		harness.Command{Name: "summary", Run: cmdSummary},
		harness.Command{Name: "splice", Run: harness.Splice("backup.sh")},
	)
}
