// Command walpush is the measuring half of bench/walpush.sh: it plays
// PostgreSQL's archiver against a fake pg_wal and reports wall time, CPU and
// peak memory of the archive_command processes, including any they leave
// running in the background (pgBackRest's async archiver).
//
// It is its own main package, not a test, so `go test ./...` never runs it.
// Run bench/walpush.sh rather than this directly: the script makes the
// segments, starts MinIO and builds the commands.
//
// Subcommands:
//
//	freeport                   print a free TCP port on 127.0.0.1
//	mkbucket NAME...           create buckets (BENCH_S3_ENDPOINT, AWS_* credentials)
//	clean BUCKET PREFIX        delete every object under PREFIX
//	run [flags]                one archiver pass over N segments; prints a JSON line
//	latency [flags]            single-segment push latency, median of N calls
//	startup [flags] -- CMD...  median process start-up of each command
//	report RESULTS.jsonl       Markdown tables from the JSON lines
//	splice --file F --section S  put the section into F between the markers
//	codecs SEGDIR FROM COUNT   CPU per segment of zstd variants, SHA-256, MD5, age
//	goals RESULTS.jsonl        issue 13's wal-push goals, met or not (for bench/speed.sh)
//	summary RESULTS.jsonl      issue 13's table rows for wal-push (for bench/speed.sh)
package main

import "github.com/pitr-dev/pitr/bench/internal/harness"

func main() {
	harness.Main("walpush",
		harness.Command{Name: "freeport", Run: harness.FreePort},
		harness.Command{Name: "mkbucket", Run: harness.MkBucket},
		harness.Command{Name: "clean", Run: cmdClean},
		harness.Command{Name: "run", Run: cmdRun},
		harness.Command{Name: "latency", Run: cmdLatency},
		harness.Command{Name: "startup", Run: cmdStartup},
		harness.Command{Name: "report", Run: cmdReport},
		harness.Command{Name: "splice", Run: harness.Splice("walpush.sh")},
		harness.Command{Name: "codecs", Run: cmdCodecs},
		harness.Command{Name: "goals", Run: cmdGoals},
		harness.Command{Name: "summary", Run: cmdSummary},
	)
}
