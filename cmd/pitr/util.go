package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"

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

// tightGC keeps the heap close to live data (GOGC=25, unless GOGC is
// set): pitr files backup, whose live heap is mostly pack buffers and the
// chunk index, and the daemon's jobs (withJobMemory).
func tightGC() {
	if _, ok := os.LookupEnv("GOGC"); !ok {
		debug.SetGCPercent(25)
	}
}

// residentMemoryLimit is the soft memory limit of the commands that run
// for months (pitr daemon, pitr wal-receive) while no job runs: their live
// heap is a few MiB; what grows is garbage between collections (a push's
// or a chunk's buffers). Against GOGC=25 (what they ran with before),
// bench/walpush measured the daemon serving wal-push (128 incompressible
// and 256 pgbench segments, push_concurrency 4, two rounds each) at 44-46
// MiB peak RSS against 42-54, for about 7 % less CPU, and bench/stream measured
// wal-receive (1 s ship interval, 300 tps) at 49.8 MiB and 9.3 % of a
// core against 56.2 MiB and 12.4 %: the collector runs less often, and the
// runtime hands freed memory back as the heap nears the limit.
const residentMemoryLimit = 32 << 20

// jobMemory is the resident limit, lifted while a daemon job runs.
var jobMemory struct {
	sync.Mutex
	limit   int64 // 0: residentGC set none (GOGC or GOMEMLIMIT given)
	running int
}

// residentGC sets residentMemoryLimit with the default GOGC, unless GOGC
// or GOMEMLIMIT is set.
func residentGC() {
	_, gogc := os.LookupEnv("GOGC")
	_, limit := os.LookupEnv("GOMEMLIMIT")
	if gogc || limit {
		return
	}
	jobMemory.Lock()
	defer jobMemory.Unlock()
	jobMemory.limit = residentMemoryLimit
	debug.SetMemoryLimit(residentMemoryLimit)
}

// withJobMemory runs a daemon job (a backup, a dump, a file snapshot, a
// drill, a copy, retention) with the memory limit lifted and tightGC's
// GOGC: a job's live heap can pass the limit, and the collector would
// then run all along (up to half the CPU) to hold it.
func withJobMemory(fn func() error) error {
	jobMemory.Lock()
	if jobMemory.limit == 0 {
		jobMemory.Unlock()
		return fn()
	}
	if jobMemory.running++; jobMemory.running == 1 {
		debug.SetMemoryLimit(math.MaxInt64)
		debug.SetGCPercent(25)
	}
	jobMemory.Unlock()
	defer func() {
		jobMemory.Lock()
		defer jobMemory.Unlock()
		if jobMemory.running--; jobMemory.running == 0 {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(jobMemory.limit)
		}
	}()
	return fn()
}

// writeJSON prints v as indented JSON, the --json output of the listing
// commands.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
