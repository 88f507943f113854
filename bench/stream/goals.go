package main

import (
	"fmt"
	"strings"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// Issue 13's streaming goals.
const (
	goalUploadedRatio = 1.2 // uploaded / compressed WAL
	goalDurableP99S   = 1.1 // commit to durable, seconds
	goalRSSMiB        = 64
)

// cmdGoals prints issue 13's streaming goals as a Markdown list, each met
// or not met with the figure it was judged on (bench/speed.sh gathers them),
// and the tps --synchronous sustained against the same load without it.
func cmdGoals(args []string) error {
	phases, err := harness.ResultsArg[Phase]("goals", args)
	if err != nil {
		return err
	}
	met := func(ok bool) string {
		if ok {
			return "**met**"
		}
		return "**not met**"
	}
	var asyncTPS float64
	for _, p := range phases {
		if !p.Synchronous && asyncTPS == 0 {
			asyncTPS = p.TPS
		}
	}
	for _, p := range phases {
		for _, r := range p.Recv {
			if !strings.HasPrefix(r.Label, "pitr") {
				continue
			}
			// The compressed WAL: segments stored whole, and what each sealed
			// one would have stored whole.
			if compressed := r.WholeBytes + r.SealedWhole; compressed > 0 {
				x := float64(r.Uploaded) / float64(compressed)
				fmt.Printf("- streaming (%s): bytes uploaded at most %.1fx the compressed WAL: %s (%.2fx)\n", p.Title, goalUploadedRatio, met(x <= goalUploadedRatio), x)
			}
			if len(r.DurableS) > 0 {
				p99 := percentile(r.DurableS, .99)
				fmt.Printf("- streaming (%s): commit-to-durable p99 at most %.1f s: %s (%.3f s)\n", p.Title, goalDurableP99S, met(p99 <= goalDurableP99S), p99)
			}
			rss := float64(r.MaxRSSKiB) / 1024
			fmt.Printf("- streaming (%s): peak RSS under %d MiB: %s (%.1f MiB)\n", p.Title, goalRSSMiB, met(rss < goalRSSMiB), rss)
		}
		if p.Synchronous && asyncTPS > 0 {
			fmt.Printf("- streaming (%s): sustains %.1f tps against %.1f without it (%.2fx; schedule lag %.1f ms)\n", p.Title, p.TPS, asyncTPS, p.TPS/asyncTPS, p.LagMS)
		}
	}
	return nil
}

// cmdSummary prints issue 13's table row for streaming (bench/speed.sh puts
// it under one header with the other tables' rows).
func cmdSummary(args []string) error {
	phases, err := harness.ResultsArg[Phase]("summary", args)
	if err != nil {
		return err
	}
	var cells []string
	for _, p := range phases {
		for _, r := range p.Recv {
			compressed := r.WholeBytes + r.SealedWhole
			if !strings.HasPrefix(r.Label, "pitr") || compressed == 0 || len(r.DurableS) == 0 {
				continue
			}
			cells = append(cells, fmt.Sprintf("%s: uploaded %.2fx compressed WAL, durable p99 %.2f s, %.0f MiB, %.0f tps",
				r.Label, float64(r.Uploaded)/float64(compressed), percentile(r.DurableS, .99), float64(r.MaxRSSKiB)/1024, p.TPS))
		}
	}
	if len(cells) > 0 {
		fmt.Printf("| streaming (wal-receive) | – | – | – | %s |\n", strings.Join(cells, "; "))
	}
	return nil
}
