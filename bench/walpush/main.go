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
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: walpush freeport|mkbucket|clean|run|latency|startup|report|splice|codecs ...")
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "freeport":
		err = cmdFreePort()
	case "mkbucket":
		err = cmdMkBucket(args)
	case "clean":
		err = cmdClean(args)
	case "run":
		err = cmdRun(args)
	case "latency":
		err = cmdLatency(args)
	case "startup":
		err = cmdStartup(args)
	case "report":
		err = cmdReport(args)
	case "splice":
		err = cmdSplice(args)
	case "codecs":
		err = cmdCodecs(args)
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "walpush %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
