package main

// The text pitr status prints for a person (cmd_status.go has the command).

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pitr-dev/pitr/internal/check"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/status"
)

// printStatus writes one repository's status for a person.
func printStatus(w io.Writer, s *status.Status) {
	ago := func(t time.Time) string { return check.Human(s.Checked.Sub(t)) + " ago" }
	fmt.Fprintf(w, "cluster %s: %s", s.Name, s.Repo)
	if s.SystemID != "" {
		fmt.Fprintf(w, " (system identifier %s", s.SystemID)
		if s.PGVersion > 0 {
			fmt.Fprintf(w, ", PostgreSQL %d.%d", s.PGVersion/10000, s.PGVersion%10000)
		}
		fmt.Fprint(w, ")")
	}
	fmt.Fprintln(w)
	if s.Error != "" {
		fmt.Fprintf(w, "  unreadable: %s\n", s.Error)
		return
	}
	if o := s.Offsite; o != nil {
		switch {
		case o.Error != "":
			fmt.Fprintf(w, "off-site %s: unreadable: %s\n", o.Repo, o.Error)
		case o.LagSeconds == 0:
			fmt.Fprintf(w, "off-site %s: up to date\n", o.Repo)
		default:
			fmt.Fprintf(w, "off-site %s: %s behind (lacks %d backups", o.Repo, check.Human(time.Duration(o.LagSeconds*float64(time.Second))), len(o.MissingBackups))
			if o.MissingWAL != "" {
				fmt.Fprintf(w, ", WAL from %s", o.MissingWAL)
			}
			fmt.Fprintln(w, ")")
		}
	}
	if s.WAL.NewestTime != nil {
		fmt.Fprintf(w, "RPO: newest WAL %s stored %s (%s)\n", s.WAL.Newest, ago(*s.WAL.NewestTime), s.WAL.NewestTime.Format(time.RFC3339))
	} else {
		fmt.Fprintln(w, "RPO: no WAL archived")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	if len(s.Backups) > 0 {
		fmt.Fprintln(tw, "BACKUP\tENDED\tAGE\tTIMELINE\tSIZE\tSTORED\tKEPT BY\tSTATUS")
	}
	for _, b := range s.Backups {
		kept := strings.Join(b.KeptBy, ",")
		if kept == "" {
			kept = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", b.ID, b.EndTime.UTC().Format(time.RFC3339), ago(b.EndTime), b.Timeline,
			humanBytes(b.Bytes), humanBytes(b.Stored), kept, b.Status)
	}
	tw.Flush()
	if len(s.Backups) == 0 {
		fmt.Fprintln(w, "no backups")
	}
	for _, d := range s.Damaged {
		fmt.Fprintf(w, "damaged: %s (%s)\n", d.ID, d.Reason)
	}
	desc := repo.Describe(s.Windows)
	if len(s.Timelines) > 1 && s.WindowsTimeline != 0 && len(s.Windows) > 0 {
		desc += fmt.Sprintf(" on timeline %d", s.WindowsTimeline)
	}
	fmt.Fprintln(w, desc)
	if len(s.Timelines) > 0 {
		parts := make([]string, 0, len(s.Timelines))
		for _, t := range s.Timelines {
			p := fmt.Sprintf("%d", t.Timeline)
			if t.Parent != 0 {
				p += fmt.Sprintf(" (from %d, %s)", t.Parent, t.BranchKind)
			}
			if t.WALEndTime != nil {
				p += " to " + t.WALEndTime.Format(time.RFC3339)
			}
			parts = append(parts, p)
		}
		fmt.Fprintf(w, "timelines: %s\n", strings.Join(parts, "; "))
	}
	for _, g := range s.WAL.Gaps {
		fmt.Fprintf(w, "WAL gap: %s is missing; recovery cannot reach the WAL stored after it\n", g)
	}
	for _, c := range s.WAL.Conflicts {
		fmt.Fprintf(w, "WAL conflict: %s is stored twice with different content\n", c)
	}
	fmt.Fprintln(w)
	printReport(w, "verify", s.Verify, ago)
	printReport(w, "drill", s.Drill, ago)
	printNewest(w, "DATABASE\tDUMPS", "dumps", s.Dumps, ago)
	printNewest(w, "FILE SET\tSNAPSHOTS", "file snapshots", s.FileSets, ago)
}

func printReport(w io.Writer, kind string, r *status.Report, ago func(time.Time) string) {
	if r == nil {
		fmt.Fprintf(w, "last %s: none\n", kind)
		return
	}
	result := "passed"
	if !r.OK {
		result = "FAILED"
	}
	fmt.Fprintf(w, "last %s: %s %s (%s)", kind, result, ago(r.Finished), r.ID)
	if r.RTOSeconds > 0 {
		fmt.Fprintf(w, ", RTO %s", time.Duration(r.RTOSeconds*float64(time.Second)).Round(100*time.Millisecond))
	}
	if r.Reached != nil {
		fmt.Fprintf(w, ", reached %s", r.Reached.UTC().Format(time.RFC3339))
	}
	if kind == "verify" && r.OK && !r.Decrypted {
		fmt.Fprint(w, " (without the identity: presence, sizes and ciphertext checksums only)")
	}
	if r.Summary != "" {
		fmt.Fprintf(w, ": %s", r.Summary)
	}
	fmt.Fprintln(w)
	if !r.OK {
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}

func printNewest(w io.Writer, header, none string, ns []status.Newest, ago func(time.Time) string) {
	if len(ns) == 0 {
		fmt.Fprintf(w, "no %s\n", none)
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header+"\tNEWEST\tAGE\tSIZE\tDAMAGED")
	for _, n := range ns {
		newest, age := "-", "-"
		if n.ID != "" {
			newest, age = n.ID, ago(n.EndTime)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\n", n.Name, n.Count, newest, age, humanBytes(n.Bytes), n.Damaged)
	}
	tw.Flush()
}
