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
//	splice --file F --section S  put the section into F between this script's markers
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: backup freeport|mkbucket|stored|run|recover|idle|profile|report|splice ...")
		os.Exit(2)
	}
	var err error
	args := os.Args[2:]
	switch os.Args[1] {
	case "freeport":
		err = cmdFreePort()
	case "mkbucket":
		err = cmdMkBucket(args)
	case "stored":
		err = cmdStored(args)
	case "run":
		err = cmdRun(args)
	case "recover":
		err = cmdRecover(args)
	case "idle":
		err = cmdIdle(args)
	case "profile":
		err = cmdProfile(args)
	case "report":
		err = cmdReport(args)
	case "splice":
		err = cmdSplice(args)
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "backup %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
