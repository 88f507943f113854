package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[int(math.Ceil(q*float64(len(s))))-1+boolInt(q == 0)]
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

const mib = 1 << 20

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	header := fs.String("header", "", "file with the section's opening Markdown (title, machine, method)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: report [--header F] RESULTS.jsonl")
	}
	phases, err := harness.ReadResults[Phase](fs.Arg(0))
	if err != nil {
		return err
	}
	w := os.Stdout
	if *header != "" {
		h, err := os.ReadFile(*header)
		if err != nil {
			return err
		}
		if _, err := w.Write(h); err != nil {
			return err
		}
	}
	writeReport(w, phases)
	return nil
}

func writeReport(w io.Writer, phases []Phase) {
	fmt.Fprintln(w, "### Commit to durable, CPU and memory")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Seconds from a probe commit returning until the receiver reports its WAL flushed "+
		"(pitr: stored in MinIO; pg_receivewal: fsynced to local disk). With `--synchronous` the commit itself waits for pitr: see the commit column.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| phase | receiver | probes | p50 s | p90 s | p99 s | max s | probe commit ms p50 / p99 / max | CPU % of one core | peak RSS MiB |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, p := range phases {
		for _, r := range p.Recv {
			d := r.DurableS
			commit := "–"
			if strings.HasPrefix(r.Label, "pitr") {
				commit = fmt.Sprintf("%.1f / %.1f / %.1f", percentile(p.CommitMS, .5), percentile(p.CommitMS, .99), percentile(p.CommitMS, 1))
			}
			unres := ""
			if r.Unresolved > 0 {
				unres = fmt.Sprintf(" (+%d never)", r.Unresolved)
			}
			fmt.Fprintf(w, "| %s | %s | %d%s | %.3f | %.3f | %.3f | %.3f | %s | %.1f | %.1f |\n", p.Title, r.Label, len(d), unres,
				percentile(d, .5), percentile(d, .9), percentile(d, .99), percentile(d, 1), commit, r.CPUPct, float64(r.MaxRSSKiB)/1024)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "### pitr: bytes uploaded")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "WAL received and uploaded: from pitr's stop line (`wal_bytes`, `uploaded`). Compressed WAL: the whole-segment objects the run left in MinIO, "+
		"plus for each sealed segment the size it would have stored whole (the log's `wal segment sealed` line, `whole`) "+
		"(the run ends with `pg_switch_wal()`, so every byte received is in one). Chunks: the debug log's `wal chunk streamed` lines; "+
		"chunk objects in the store: kept by seals, or left over.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| phase | WAL received MiB | uploaded MiB | compressed WAL MiB (segments) | uploaded / WAL | uploaded / compressed WAL | chunks: count, median KiB, store ms p50 / p99 / max | segment store ms p50 / max | chunk objects in the store | warnings in log |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, p := range phases {
		for _, r := range p.Recv {
			if !strings.HasPrefix(r.Label, "pitr") {
				continue
			}
			fmt.Fprintf(w, "| %s | %.1f | %.1f | %.2f (%d) | %.3f | %.2fx | %d, %.1f, %.0f / %.0f / %.0f | %.0f / %.0f | %d | %d |\n", p.Title,
				float64(r.WALBytes)/mib, float64(r.Uploaded)/mib, float64(r.WholeBytes+r.SealedWhole)/mib, r.WholeObjects+r.Sealed,
				float64(r.Uploaded)/float64(r.WALBytes), float64(r.Uploaded)/float64(r.WholeBytes+r.SealedWhole),
				len(r.ChunkStored), percentile(r.ChunkStored, .5)/1024,
				percentile(r.ChunkTookMS, .5), percentile(r.ChunkTookMS, .99), percentile(r.ChunkTookMS, 1),
				percentile(r.SegTookMS, .5), percentile(r.SegTookMS, 1), r.LeftoverChunks, len(r.Warnings))
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "### Load")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| phase | pgbench tps | pgbench latency avg ms (of it schedule lag) | MinIO CPU % of one core | machine busy % (all CPUs) | receivers' CPU s / wall s, whole run |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	for _, p := range phases {
		var whole []string
		for _, r := range p.Recv {
			whole = append(whole, fmt.Sprintf("%s %.1f / %.0f", r.Label, r.CPUS, r.WallS))
		}
		fmt.Fprintf(w, "| %s | %.1f | %.1f (%.1f) | %.1f | %.0f | %s |\n", p.Title, p.TPS, p.LatencyMS, p.LagMS, p.MinIOCPUPct, p.BusyPct, strings.Join(whole, "; "))
	}
	fmt.Fprintln(w)
	for _, p := range phases {
		for _, r := range p.Recv {
			for i, l := range r.Warnings {
				if i == 0 {
					fmt.Fprintf(w, "Warnings and errors in %s's log, phase %s (%d):\n\n", r.Label, p.Title, len(r.Warnings))
				}
				if i == 5 {
					fmt.Fprintf(w, "    ... %d more\n", len(r.Warnings)-5)
					break
				}
				fmt.Fprintf(w, "    %s\n", l)
			}
			if len(r.Warnings) > 0 {
				fmt.Fprintln(w)
			}
		}
	}
	// The commands, for the record.
	fmt.Fprintln(w, "Commands per phase (`$PITR` the binary built from this tree):")
	fmt.Fprintln(w)
	for _, p := range phases {
		fmt.Fprintf(w, "- %s: load `%s`\n", p.Title, p.Load)
		for _, r := range p.Recv {
			fmt.Fprintf(w, "  - %s: `%s`\n", r.Label, r.Cmd)
		}
	}
}
