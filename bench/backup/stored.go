package main

import (
	"errors"
	"flag"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// cmdStored records what one tool keeps in the bucket for its backups:
// --per divides by the number of backups taken.
func cmdStored(args []string) error {
	fs := flag.NewFlagSet("stored", flag.ExitOnError)
	tool := fs.String("tool", "", "tool label")
	per := fs.Int("per", 1, "number of backups under the prefix")
	out := fs.String("out", "", "results file to append a JSON line to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("usage: stored [flags] BUCKET PREFIX")
	}
	b, n, err := harness.StoredS3(fs.Arg(0), fs.Arg(1))
	if err != nil {
		return err
	}
	return appendResult(*out, Result{Kind: "stored", Tool: *tool, StoredBytes: b / int64(*per), Objects: n / *per})
}
