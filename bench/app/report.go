package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// cmdReport prints the Markdown section: per phase, pitr next to the
// users' script, medians over the rounds.
func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	machine := fs.String("machine", "", "Markdown file of facts about the machine and the data")
	rev := fs.String("rev", "", "pitr revision measured")
	cmdLine := fs.String("cmd", "bash bench/app.sh", "the command that produced the results")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return fmt.Errorf("want report [flags] RESULTS.jsonl")
	}
	rs, err := harness.ReadResults[result](fs.Arg(0))
	if err != nil {
		return err
	}
	series := map[string]*harness.Series[result]{} // phase/tool
	rounds := map[int]bool{}
	for _, r := range rs {
		k := r.Phase + "/" + r.Tool
		if series[k] == nil {
			series[k] = &harness.Series[result]{Title: r.Title, ByRound: map[int]result{}}
		}
		series[k].ByRound[r.Round] = r
		rounds[r.Round] = true
	}
	wall := func(r result) float64 { return r.WallS }
	stored := func(r result) float64 { return float64(r.StoredBytes) }
	cpu := func(r result) float64 { return r.UserS + r.SysS }
	var b strings.Builder
	fmt.Fprintf(&b, "## Application backup and restore (bench/app.sh)\n\n")
	fmt.Fprintf(&b, "The Mastodon example (examples/apps/mastodon) against the script its admins run today, "+
		"medians of %d rounds, the order of the two alternated. pitr %s. Command: `%s`.\n\n", len(rounds), *rev, *cmdLine)
	if *machine != "" {
		m, err := os.ReadFile(*machine)
		if err != nil {
			return err
		}
		b.Write(m)
		b.WriteString("\n")
	}
	b.WriteString("| step | pitr | wall s | stored MB | CPU s | users' script | wall s | stored MB | CPU s |\n")
	b.WriteString("|---|---|---:|---:|---:|---|---:|---:|---:|\n")
	steps := []struct{ phase, name string }{
		{"base", "base backup (once, the daemon's weekly job)"},
		{"first", "first backup"},
		{"wal", "WAL archived during the night"},
		{"nightly", "nightly backup"},
		{"restore", "restore of the latest point"},
	}
	cell := func(s *harness.Series[result]) string {
		if s == nil {
			return "| — | | | "
		}
		return fmt.Sprintf("| %s | %.1f | %.0f | %.1f ", s.Title, s.Med(wall), s.Med(stored)/1e6, s.Med(cpu))
	}
	for _, st := range steps {
		p, s := series[st.phase+"/pitr"], series[st.phase+"/script"]
		if p == nil && s == nil {
			continue
		}
		fmt.Fprintf(&b, "| %s %s%s|\n", st.name, cell(p), cell(s))
	}
	if pb, p1 := series["base/pitr"], series["first/pitr"]; pb != nil && p1 != nil {
		fmt.Fprintf(&b, "\nThe script's first backup includes the database; pitr has it in the base backup: "+
			"base backup and first app point together took %.1f s and stored %.0f MB.\n", pb.Med(wall)+p1.Med(wall), (pb.Med(stored)+p1.Med(stored))/1e6)
	}
	p1, pn := series["first/pitr"], series["nightly/pitr"]
	s1, sn := series["first/script"], series["nightly/script"]
	if p1 != nil && pn != nil && s1 != nil && sn != nil {
		pw := series["wal/pitr"]
		walMB := 0.0
		if pw != nil {
			walMB = pw.Med(stored) / 1e6
		}
		fmt.Fprintf(&b, "\nA week of nights after the first backup stores %.0f MB with pitr (7 nightly app points and "+
			"the WAL of 7 nights, which also gives every moment in between) and %.0f MB with the script (7 full copies).\n",
			7*(pn.Med(stored)/1e6+walMB), 7*sn.Med(stored)/1e6)
	}
	_, err = os.Stdout.WriteString(b.String())
	return err
}
