package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// cmdGoals prints issue 13's wal-push goals as a Markdown list, each met or
// not met with the ratio it was judged on (bench/speed.sh gathers them).
func cmdGoals(args []string) error {
	results, err := harness.ResultsArg[Result]("goals", args)
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
			name := map[string]string{"pitr": "pitr (default settings)", "pitr-daemon": "pitr via pitr daemon"}[mine]
			a := m[mine]
			if a == nil {
				if why, ok := na[mine]; ok {
					out = append(out, fmt.Sprintf("- wal-push, %s WAL, %s: not available (%s)", set, name, why))
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
					set, name, peerName(peer), metIf(med < 1), med, wins, len(ratios)))
			}
			if b := m["pgbackrest-async"]; b != nil {
				ca, cb := medOf(a, clientMinIOPerSeg), medOf(b, clientMinIOPerSeg)
				out = append(out, fmt.Sprintf("- wal-push, %s WAL, %s client + MinIO CPU per segment at or below pgBackRest async's: %s (%.3f against %.3f s, %.2fx)",
					set, name, metIf(ca <= cb), ca, cb, ca/cb))
			}
		}
	}
	peer := harness.Median(lat["pgbackrest-sync"])
	latName := map[string]string{"pitr-c4": "pitr (default settings: resident pusher)", "pitr-inproc": "pitr in-process (push_resident false)", "pitr-daemon": "pitr via pitr daemon"}
	for _, mine := range []string{"pitr-c4", "pitr-inproc", "pitr-daemon"} {
		if why, ok := na[mine]; ok && len(lat[mine]) == 0 {
			out = append(out, fmt.Sprintf("- one segment, %s: not available (%s)", latName[mine], why))
			continue
		}
		if len(lat[mine]) == 0 {
			continue
		}
		med := harness.Median(lat[mine])
		if peer > 0 {
			out = append(out, fmt.Sprintf("- one segment, %s at or below pgBackRest sync's median: %s (%.1f against %.1f ms, %.2fx; goal on the way: %d ms, %.2fx)",
				latName[mine], metIf(med <= peer), med, peer, med/peer, goalLatencyMS, med/goalLatencyMS))
		} else {
			out = append(out, fmt.Sprintf("- one segment, %s under %d ms: %s (%.1f ms)", latName[mine], goalLatencyMS, metIf(med < goalLatencyMS), med))
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

// cmdSummary prints issue 13's table rows for wal-push, one segment,
// start-up and the codecs: | work | floor | pgBackRest | wal-g | pitr |,
// medians over the rounds (bench/speed.sh puts them under one header).
func cmdSummary(args []string) error {
	results, err := harness.ResultsArg[Result]("summary", args)
	if err != nil {
		return err
	}
	walls := map[string]map[string][]float64{} // set -> label -> walls
	n := map[string]int{}
	var sets []string
	calls := map[string][]float64{} // kind/label -> ms
	na := map[string]bool{}
	for _, r := range results {
		switch r.Kind {
		case "run":
			if walls[r.Set] == nil {
				walls[r.Set] = map[string][]float64{}
				sets = append(sets, r.Set)
			}
			walls[r.Set][r.Label] = append(walls[r.Set][r.Label], r.WallS)
			n[r.Set] = max(n[r.Set], r.N)
		case "latency", "startup":
			calls[r.Kind+"/"+r.Label] = append(calls[r.Kind+"/"+r.Label], r.CallsMS...)
		case "na":
			na[r.Label] = true
		}
	}
	sec := func(set, label, prefix string) string {
		xs := walls[set][label]
		if len(xs) == 0 {
			if label == "pitr-daemon" && na[label] {
				return prefix + "not available"
			}
			return ""
		}
		lo, hi := minMax(xs)
		return fmt.Sprintf("%s%.2f s (%.2f–%.2f)", prefix, harness.Median(xs), lo, hi)
	}
	ms := func(key, prefix string) string {
		xs := calls[key]
		if len(xs) == 0 {
			if strings.HasSuffix(key, "/pitr-daemon") && na["pitr-daemon"] {
				return prefix + "not available"
			}
			return ""
		}
		return fmt.Sprintf("%s%.1f ms (p10–p90 %.1f–%.1f)", prefix, harness.Median(xs), percentile(xs, .1), percentile(xs, .9))
	}
	join := func(parts ...string) string {
		var out []string
		for _, p := range parts {
			if p != "" {
				out = append(out, p)
			}
		}
		if len(out) == 0 {
			return "–"
		}
		return strings.Join(out, "; ")
	}
	for _, set := range sets {
		kind := map[string]string{"pgbench": "pgbench", "random": "incompressible", "codec-pgbench": "pgbench", "codec-random": "incompressible"}[set]
		if strings.HasPrefix(set, "codec-") {
			fmt.Printf("| push %d %s segments, by `PITR_COMPRESSION` | %s | %s | – | %s |\n", n[set], kind,
				join(sec(set, "cp", "cp ")), join(sec(set, "pgbackrest-async", "async p2 ")),
				join(sec(set, "pitr-zstd", "zstd "), sec(set, "pitr-lz4", "lz4 "), sec(set, "pitr-s2", "s2 ")))
			continue
		}
		fmt.Printf("| push %d %s segments, one process each | %s | %s | %s | %s |\n", n[set], kind,
			join(sec(set, "cp", "cp ")), join(sec(set, "pgbackrest-async", "async p2 "), sec(set, "pgbackrest-sync", "sync ")),
			join(sec(set, "walg", "")), join(sec(set, "pitr", ""), sec(set, "pitr-daemon", "via daemon ")))
	}
	if len(calls) > 0 || na["pitr-daemon"] {
		fmt.Printf("| one segment, process start to exit | – | %s | %s | %s |\n", join(ms("latency/pgbackrest-sync", "sync ")),
			join(ms("latency/walg", "")), join(ms("latency/pitr-c4", ""), ms("latency/pitr-inproc", "in-process "), ms("latency/pitr-daemon", "via daemon ")))
	}
	if len(calls["startup/true"]) > 0 {
		fmt.Printf("| process start-up | %s | %s | %s | %s |\n", join(ms("startup/true", "`true` ")), join(ms("startup/pgbackrest", "")),
			join(ms("startup/wal-g", "")), join(ms("startup/pitr", "")))
	}
	return nil
}
