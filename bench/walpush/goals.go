package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// cmdGoals prints issue 13's wal-push goals as a Markdown list, each met or
// not met with the ratio it was judged on (bench/speed.sh gathers them).
func cmdGoals(args []string) error {
	fs := flag.NewFlagSet("goals", flag.ExitOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: goals RESULTS.jsonl")
	}
	results, err := harness.ReadResults[Result](fs.Arg(0))
	if err != nil {
		return err
	}
	for _, l := range walGoals(results) {
		fmt.Fprintln(os.Stdout, l)
	}
	return nil
}

// perRound is one mode's runs of one set by round.
type perRound map[int]Result

func clientMinIOPerSeg(r Result) float64 { return (r.UserS + r.SysS + r.MinIOCPUS) / float64(r.N) }

// walGoals judges pitr (default settings) and, when it ran, pitr with its
// daemon, against pgBackRest async and wal-g on each segment set, then the
// single-segment latency and the memory goal.
func walGoals(results []Result) []string {
	runs := map[string]map[string]perRound{} // set -> label -> round
	var sets []string
	na := map[string]string{}
	lat := map[string][]float64{}
	for _, r := range results {
		switch r.Kind {
		case "run":
			if strings.HasPrefix(r.Set, "codec-") {
				continue
			}
			if runs[r.Set] == nil {
				runs[r.Set] = map[string]perRound{}
				sets = append(sets, r.Set)
			}
			if runs[r.Set][r.Label] == nil {
				runs[r.Set][r.Label] = perRound{}
			}
			runs[r.Set][r.Label][r.Round] = r
		case "latency":
			lat[r.Label] = append(lat[r.Label], r.CallsMS...)
		case "na":
			na[r.Label] = r.Note
		}
	}
	var out []string
	for _, set := range sets {
		m := runs[set]
		for _, mine := range []string{"pitr", "pitr-daemon"} {
			a := m[mine]
			if a == nil {
				if why, ok := na[mine]; ok {
					out = append(out, fmt.Sprintf("- wal-push, %s WAL, %s: not available (%s)", set, mine, why))
				}
				continue
			}
			for _, peer := range []string{"pgbackrest-async", "walg"} {
				b := m[peer]
				if b == nil {
					continue
				}
				ratios, wins := []float64{}, 0
				for rnd, ra := range a {
					if rb, ok := b[rnd]; ok {
						ratios = append(ratios, ra.WallS/rb.WallS)
						if ra.WallS < rb.WallS {
							wins++
						}
					}
				}
				med := harness.Median(ratios)
				out = append(out, fmt.Sprintf("- wal-push, %s WAL, %s faster than %s: %s (%.2fx its time, faster in %d of %d rounds)",
					set, mine, peerName(peer), metIf(med < 1), med, wins, len(ratios)))
			}
			if b := m["pgbackrest-async"]; b != nil {
				ca, cb := medOf(a, clientMinIOPerSeg), medOf(b, clientMinIOPerSeg)
				out = append(out, fmt.Sprintf("- wal-push, %s WAL, %s client + MinIO CPU per segment at or below pgBackRest async's: %s (%.3f against %.3f s, %.2fx)",
					set, mine, metIf(ca <= cb), ca, cb, ca/cb))
			}
		}
	}
	peer := harness.Median(lat["pgbackrest-sync"])
	for _, mine := range []string{"pitr-c4", "pitr-daemon"} {
		if why, ok := na[mine]; ok && len(lat[mine]) == 0 {
			out = append(out, fmt.Sprintf("- one segment, %s: not available (%s)", mine, why))
			continue
		}
		if len(lat[mine]) == 0 {
			continue
		}
		med := harness.Median(lat[mine])
		if peer > 0 {
			out = append(out, fmt.Sprintf("- one segment, %s at or below pgBackRest sync's median: %s (%.1f against %.1f ms, %.2fx; goal on the way: %d ms, %.2fx)",
				mine, metIf(med <= peer), med, peer, med/peer, goalLatencyMS, med/goalLatencyMS))
		} else {
			out = append(out, fmt.Sprintf("- one segment, %s under %d ms: %s (%.1f ms)", mine, goalLatencyMS, metIf(med < goalLatencyMS), med))
		}
	}
	var worst int64
	var where string
	for _, r := range results {
		if r.Kind == "run" && strings.HasPrefix(r.Label, "pitr") && r.MaxRSSKiB > worst {
			worst, where = r.MaxRSSKiB, r.Label+", "+r.Set
		}
	}
	if worst > 0 {
		mib := float64(worst) / 1024
		out = append(out, fmt.Sprintf("- memory, wal-push peak RSS under %d MiB: %s (largest %.1f MiB, %s)", goalRSSMiB, metIf(mib < goalRSSMiB), mib, where))
	}
	return out
}

func medOf(p perRound, f func(Result) float64) float64 {
	var xs []float64
	for _, r := range p {
		xs = append(xs, f(r))
	}
	return harness.Median(xs)
}

func peerName(label string) string {
	switch label {
	case "pgbackrest-async":
		return "pgBackRest async (process-max 2)"
	case "walg":
		return "wal-g"
	}
	return label
}
