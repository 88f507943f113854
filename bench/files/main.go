// Command files is the measuring half of bench/files.sh: it generates the
// tree of mixed files to snapshot (deterministic from a seed) and its 1 %
// change, times one snapshot, restore or copy command with the CPU and peak
// memory of it and its descendants and what it added to the bucket,
// compares a restored tree with the original byte for byte, copies a
// repository by plain GET and PUT (the floor for `pitr copy`), and turns the
// results into Markdown.
//
// It is its own main package, not a test, so `go test ./...` never runs it.
// Run bench/files.sh rather than this directly: the script starts MinIO,
// sets up both tools and runs the rounds.
//
// Subcommands:
//
//	freeport                          print a free TCP port on 127.0.0.1
//	mkbucket NAME...                  create buckets (BENCH_S3_ENDPOINT, AWS_* credentials)
//	gen [flags] DIR                   write the tree (media files and small text files)
//	change [flags] DIR                change about 1 % of the tree's bytes and files
//	run [flags] -- CMD ARGS...        time one command; record the bucket's growth; append a JSON line
//	verify [flags] WANT GOT           compare a restored tree with the original; fail on any difference
//	s3copy [flags]                    copy every object under a prefix by GET and PUT (the floor)
//	idle [flags]                      wait until the machine is idle (at most --max)
//	report [flags] RESULTS.jsonl      Markdown section from the JSON lines
//	splice --file F --section S       put the section into F between this script's markers
package main

import "github.com/pitr-dev/pitr/bench/internal/harness"

func main() {
	harness.Main("files",
		harness.Command{Name: "freeport", Run: harness.FreePort},
		harness.Command{Name: "mkbucket", Run: harness.MkBucket},
		harness.Command{Name: "gen", Run: cmdGen},
		harness.Command{Name: "change", Run: cmdChange},
		harness.Command{Name: "run", Run: cmdRun},
		harness.Command{Name: "verify", Run: cmdVerify},
		harness.Command{Name: "s3copy", Run: cmdS3Copy},
		harness.Command{Name: "idle", Run: cmdIdle},
		harness.Command{Name: "report", Run: cmdReport},
		harness.Command{Name: "splice", Run: harness.Splice("files.sh")},
	)
}
