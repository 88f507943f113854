// Command app is the measuring half of bench/app.sh: it generates the
// Mastodon-like uploads tree (incompressible media files, deterministic from
// a seed) and its nightly change, writes Redis commands for redis-cli
// --pipe, times one backup or restore command with what it added to its
// repository directory, and turns the results into Markdown.
//
// It is its own main package, not a test, so `go test ./...` never runs it.
// Run bench/app.sh rather than this directly.
//
// Subcommands:
//
//	freeport                          print a free TCP port on 127.0.0.1
//	gen [flags] DIR                   write the uploads tree
//	change [flags] DIR                add and replace about 1 % of the tree's bytes
//	redis [flags]                     print SET commands (RESP) for redis-cli --pipe
//	run [flags] -- CMD ARGS...        time one command; record its repository's growth; append a JSON line
//	report [flags] RESULTS.jsonl      Markdown section from the JSON lines
//	splice --file F --section S       put the section into F between this script's markers
package main

import "github.com/pitr-dev/pitr/bench/internal/harness"

func main() {
	harness.Main("app",
		harness.Command{Name: "freeport", Run: harness.FreePort},
		harness.Command{Name: "gen", Run: cmdGen},
		harness.Command{Name: "change", Run: cmdChange},
		harness.Command{Name: "redis", Run: cmdRedis},
		harness.Command{Name: "run", Run: cmdRun},
		harness.Command{Name: "report", Run: cmdReport},
		harness.Command{Name: "splice", Run: harness.Splice("app.sh")},
	)
}
