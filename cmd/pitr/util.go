package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// usageArgs marks argument-count errors as usage errors (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return fmt.Errorf("%w: %s: %v (usage: pitr %s)", errUsage, c.Name(), err, c.Use)
		}
		return nil
	}
}

func baseName(path string) string { return filepath.Base(path) }

// longRunningGC makes the garbage collector keep the heap closer to live
// data (GOGC=25, unless GOGC is set) in the commands that run for months.
// Their live heap is small; what grows is garbage between collections (a
// push's or a chunk's buffers). bench/stream measured wal-receive's peak
// RSS at 64.5 MiB with the default and 57.3 MiB at GOGC=50, for 10.3 ->
// 12.5 % of a core; bench/walpush measured pitr daemon serving wal-push
// (64 incompressible segments, push_concurrency 4) at 73.8 MiB at 50 and
// 47.5 MiB at 25, for the same CPU (7.2 and 7.4 s).
func longRunningGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(25)
	}
}

// writeJSON prints v as indented JSON, the --json output of the listing
// commands.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
