// Package check turns repository states (internal/status) into a
// Nagios/Icinga plugin result: a state (OK, WARNING, CRITICAL, UNKNOWN,
// which is also the exit status), one status line with performance data,
// and one line per problem. It is pure: no I/O, the clock is the
// statuses' Checked time.
//
// The output follows the Nagios plugin guidelines
// (https://nagios-plugins.org/doc/guidelines.html#AEN200):
//
//	PITR OK - last backup 7h ago, WAL 12s behind, last drill passed 20h ago | backup_age=25200s;93600;172800 wal_age=12s;300;900
//
// check_pgbackrest reports only OK or CRITICAL; every age here has a
// warning and a critical threshold of its own.
package check

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pitr-dev/pitr/internal/status"
)

// State is a plugin state; its value is the plugin's exit status.
type State int

// The plugin states, in order of severity but for Unknown, which sorts
// between Warning and Critical when picking the worst (a cluster that
// cannot be read must not hide another's CRITICAL, nor be hidden by a
// WARNING).
const (
	OK       State = 0
	Warning  State = 1
	Critical State = 2
	Unknown  State = 3
)

func (s State) String() string {
	switch s {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	}
	return "UNKNOWN"
}

// rank orders states for Worst: OK < WARNING < UNKNOWN < CRITICAL.
func (s State) rank() int {
	switch s {
	case OK:
		return 0
	case Warning:
		return 1
	case Unknown:
		return 2
	}
	return 3
}

// Worst returns the more severe of a and b.
func Worst(a, b State) State {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Pair is a warning and a critical limit for one age; 0 leaves that level
// out, and a Pair of two zeros is not checked.
type Pair struct {
	Warn, Crit time.Duration
}

// Off says the pair checks nothing.
func (p Pair) Off() bool { return p.Warn <= 0 && p.Crit <= 0 }

// state is the level age reaches; limit is the limit it passed.
func (p Pair) state(age time.Duration) (State, time.Duration) {
	switch {
	case p.Crit > 0 && age > p.Crit:
		return Critical, p.Crit
	case p.Warn > 0 && age > p.Warn:
		return Warning, p.Warn
	}
	return OK, 0
}

// Thresholds are the limits pitr check applies to each repository.
type Thresholds struct {
	BackupAge Pair // newest usable base backup's end
	WALAge    Pair // newest WAL stored: the current RPO
	DumpAge   Pair // newest dump, per database
	FilesAge  Pair // newest snapshot, per file set
	VerifyAge Pair // newest pitr verify report
	DrillAge  Pair // newest restore drill report
	CopyLag   Pair // off-site copy, when one is configured
}

// Defaults are pitr check's default thresholds.
func Defaults() Thresholds {
	day := pair(26*time.Hour, 48*time.Hour)
	return Thresholds{
		BackupAge: day,
		WALAge:    pair(5*time.Minute, 15*time.Minute),
		DumpAge:   day,
		FilesAge:  day,
		VerifyAge: pair(8*24*time.Hour, 15*24*time.Hour),
		DrillAge:  pair(8*24*time.Hour, 15*24*time.Hour),
		CopyLag:   pair(time.Hour, 6*time.Hour),
	}
}

func pair(w, c time.Duration) Pair { return Pair{Warn: w, Crit: c} }

// Target is one repository to judge: its state (Status.Error set when it
// could not be read) and what it should hold: a dump of each of
// Databases and a snapshot of each of FileSets (the config's
// dump_databases and files:), on top of what it does hold.
type Target struct {
	Status    *status.Status
	Databases []string
	FileSets  []string
}

// Problem is one finding worse than OK.
type Problem struct {
	State   State  `json:"state"`
	Cluster string `json:"cluster,omitempty"` // set when several clusters are checked
	Text    string `json:"text"`
}

func (p Problem) String() string {
	if p.Cluster != "" {
		return fmt.Sprintf("%s %s: %s", p.State, p.Cluster, p.Text)
	}
	return fmt.Sprintf("%s: %s", p.State, p.Text)
}

// Perf is one performance data value.
type Perf struct {
	Label      string
	Value      float64
	UOM        string  // "s", or "" for a count
	Warn, Crit float64 // 0: none
}

// String formats p as label=value[UOM];[warn];[crit], quoting the label
// when it needs it.
func (p Perf) String() string {
	label := p.Label
	if strings.ContainsAny(label, " '=") {
		label = "'" + strings.ReplaceAll(label, "'", "''") + "'"
	}
	num := func(v float64) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	s := label + "=" + strconv.FormatFloat(p.Value, 'f', -1, 64) + p.UOM
	if w, c := num(p.Warn), num(p.Crit); w != "" || c != "" {
		s += ";" + w + ";" + c
	}
	return s
}

// Result is the plugin's result.
type Result struct {
	State    State
	Summary  string // the status line's text after "PITR STATE - "
	Perf     []Perf
	Problems []Problem // worst first, then in the order found
}

// String is the plugin's output: the status line with performance data,
// then one line per problem.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "PITR %s - %s", r.State, r.Summary)
	if len(r.Perf) > 0 {
		b.WriteString(" |")
		for _, p := range r.Perf {
			b.WriteString(" " + p.String())
		}
	}
	b.WriteString("\n")
	for _, p := range r.Problems {
		b.WriteString(p.String() + "\n")
	}
	return b.String()
}

// Evaluate judges every target against th. With more than one target,
// problems name their cluster and performance labels start with
// "<cluster>.".
func Evaluate(targets []Target, th Thresholds) Result {
	var res Result
	multi := len(targets) > 1
	var facts []string
	states := map[State]int{}
	for _, t := range targets {
		c := evaluate(t, th)
		name := ""
		if multi {
			name = t.Status.Name
		}
		worst := OK
		for _, p := range c.problems {
			p.Cluster = name
			res.Problems = append(res.Problems, p)
			worst = Worst(worst, p.State)
		}
		states[worst]++
		res.State = Worst(res.State, worst)
		for _, p := range c.perf {
			if multi {
				p.Label = name + "." + p.Label
			}
			res.Perf = append(res.Perf, p)
		}
		facts = c.facts
	}
	if len(targets) == 0 {
		res.State, res.Summary = Unknown, "no repository to check"
		return res
	}
	slices.SortStableFunc(res.Problems, func(a, b Problem) int { return b.State.rank() - a.State.rank() })
	switch {
	case !multi && res.State == OK:
		res.Summary = strings.Join(facts, ", ")
	case !multi:
		res.Summary = worstTexts(res.Problems, res.State)
	default:
		res.Summary = fmt.Sprintf("%d clusters: %d ok, %d warning, %d critical, %d unknown",
			len(targets), states[OK], states[Warning], states[Critical], states[Unknown])
		if res.State != OK {
			res.Summary += "; " + worstTexts(res.Problems, res.State)
		}
	}
	return res
}

// worstTexts joins the problems of state s for the status line.
func worstTexts(ps []Problem, s State) string {
	var out []string
	for _, p := range ps {
		if p.State == s {
			t := p.Text
			if p.Cluster != "" {
				t = p.Cluster + ": " + t
			}
			out = append(out, t)
		}
	}
	return strings.Join(out, "; ")
}

type cluster struct {
	problems []Problem
	perf     []Perf
	facts    []string
}

func (c *cluster) add(s State, format string, args ...any) {
	c.problems = append(c.problems, Problem{State: s, Text: fmt.Sprintf(format, args...)})
}

// age checks one age against p: a problem past a limit, and perfdata.
// what is the problem's text, "%s" standing for the age.
func (c *cluster) age(label, what string, age time.Duration, p Pair) {
	if p.Off() {
		return
	}
	c.perf = append(c.perf, Perf{Label: label, Value: math.Round(age.Seconds()), UOM: "s", Warn: p.Warn.Seconds(), Crit: p.Crit.Seconds()})
	if s, limit := p.state(age); s != OK {
		c.add(s, "%s (more than %s)", fmt.Sprintf(what, Human(age)), Limit(limit))
	}
}

// Limit renders a threshold as the flags take it: 26h, 90s, 1h30m.
func Limit(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func evaluate(t Target, th Thresholds) cluster {
	var c cluster
	s := t.Status
	if s.Error != "" {
		c.add(Unknown, "repository %s unreadable: %s", s.Repo, s.Error)
		return c
	}
	now := s.Checked

	// Base backups.
	if nb := s.NewestBackup(); nb == nil {
		if len(s.Backups) == 0 {
			c.add(Critical, "no backup")
		} else {
			c.add(Critical, "no usable backup (newest %s: %s)", s.Backups[len(s.Backups)-1].ID, s.Backups[len(s.Backups)-1].Status)
		}
	} else {
		age := now.Sub(nb.EndTime)
		c.age("backup_age", "last backup %s ago", age, th.BackupAge)
		c.facts = append(c.facts, "last backup "+Human(age)+" ago")
		if last := s.Backups[len(s.Backups)-1]; !last.Usable {
			c.add(Warning, "newest backup %s is not restorable: %s", last.ID, last.Status)
		}
	}
	for _, d := range s.Damaged {
		c.add(Warning, "damaged backup entry %s: %s", d.ID, d.Reason)
	}

	// WAL.
	switch {
	case s.WAL.NewestTime == nil && !th.WALAge.Off() && len(s.Backups) > 0: // else "no backup" says it
		c.add(Critical, "no WAL archived")
	case s.WAL.NewestTime != nil:
		age := time.Duration(s.WAL.AgeSeconds * float64(time.Second))
		c.age("wal_age", "newest WAL stored %s ago", age, th.WALAge)
		c.facts = append(c.facts, "WAL "+Human(age)+" behind")
	}
	c.perf = append(c.perf, Perf{Label: "wal_gaps", Value: float64(len(s.WAL.Gaps)), Crit: 0})
	for _, g := range s.WAL.Gaps {
		c.add(Critical, "WAL gap: %s is missing, recovery cannot pass it", g)
	}
	for _, name := range s.WAL.Conflicts {
		c.add(Critical, "WAL conflict: %s is stored twice with different content", name)
	}

	// Dumps and file sets: each one stored, and each one expected.
	entries(&c, "dump", "dump_age", "database", s.Dumps, t.Databases, th.DumpAge, now)
	entries(&c, "snapshot", "files_age", "file set", s.FileSets, t.FileSets, th.FilesAge, now)

	// Verify and drill reports.
	report(&c, "verify", "verify_age", "verified", "never verified (pitr verify)", s.Verify, th.VerifyAge)
	report(&c, "drill", "drill_age", "drill passed", "no restore drill yet (pitr verify --restore-drill)", s.Drill, th.DrillAge)
	if d := s.Drill; d != nil && d.OK && d.RTOSeconds > 0 {
		c.perf = append(c.perf, Perf{Label: "drill_rto", Value: math.Round(d.RTOSeconds*10) / 10, UOM: "s"})
	}

	// Off-site copy.
	if o := s.Offsite; o != nil && !th.CopyLag.Off() {
		if o.Error != "" {
			c.add(Critical, "off-site repository %s unreadable: %s", o.Repo, o.Error)
		} else {
			lag := time.Duration(o.LagSeconds * float64(time.Second))
			c.age("copy_lag", "off-site copy %s behind", lag, th.CopyLag)
			if lag > 0 {
				c.facts = append(c.facts, "off-site "+Human(lag)+" behind")
			} else {
				c.facts = append(c.facts, "off-site up to date")
			}
		}
	}
	return c
}

// entries checks the newest dump of each database or snapshot of each
// set.
func entries(c *cluster, kind, label, what string, have []status.Newest, want []string, p Pair, now time.Time) {
	if p.Off() {
		return
	}
	seen := map[string]bool{}
	for _, n := range have {
		seen[n.Name] = true
		if n.ID == "" {
			c.add(Critical, "no readable %s of %s %s (%d damaged)", kind, what, n.Name, n.Damaged)
			continue
		}
		age := now.Sub(n.EndTime)
		c.age(label+"."+n.Name, "last "+kind+" of "+strings.ReplaceAll(n.Name, "%", "%%")+" %s ago", age, p)
		if n.Damaged > 0 {
			c.add(Warning, "%d damaged %s entries of %s %s, newer than the newest readable one", n.Damaged, kind, what, n.Name)
		}
	}
	for _, name := range want {
		if !seen[name] {
			c.add(Critical, "no %s of %s %s", kind, what, name)
		}
	}
}

// report checks the newest verify or drill report: a failed one is
// CRITICAL, a missing one a WARNING (turn the check off with both
// thresholds 0).
func report(c *cluster, kind, label, passed, none string, r *status.Report, p Pair) {
	if p.Off() {
		return
	}
	if r == nil {
		c.add(Warning, "%s", none)
		return
	}
	age := time.Duration(r.AgeSeconds * float64(time.Second))
	if !r.OK {
		what := r.Summary
		if what == "" && len(r.Problems) > 0 {
			what = r.Problems[0]
		}
		if what == "" {
			what = "failed"
		}
		c.add(Critical, "last %s failed %s ago: %s", kind, Human(age), what)
	}
	c.age(label, "last "+kind+" %s ago", age, p)
	if r.OK {
		c.facts = append(c.facts, fmt.Sprintf("last %s %s ago", passed, Human(age)))
	}
}

// Human renders a duration the way the status line does: 12s, 45m, 7h,
// 3d; under two of a unit, the next smaller one (90s, 100m, 36h).
func Human(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int64(d.Round(time.Second)/time.Second))
	case d < 2*time.Hour:
		return fmt.Sprintf("%dm", int64(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int64(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int64(d/(24*time.Hour)))
}
