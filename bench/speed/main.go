// Command speed is the helper of bench/speed.sh, which runs bench/walpush.sh,
// bench/backup.sh and bench/stream.sh in one go for issue 13's side-by-side
// table: it puts their assembled section into docs/BENCHMARKS.md between
// speed.sh's markers.
//
// It is its own main package, not a test, so `go test ./...` never runs it.
//
// Subcommands:
//
//	splice --file F --section S  put the section into F between the markers
package main

import "github.com/pitr-dev/pitr/bench/internal/harness"

func main() {
	harness.Main("speed",
		harness.Command{Name: "splice", Run: harness.Splice("speed.sh")},
	)
}
