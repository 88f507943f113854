package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

// cmdGoals prints issue 13's base backup, restore, replay and memory goals
// as a Markdown list, each met or not met with the ratio it was judged on
// (bench/speed.sh gathers them).
func cmdGoals(args []string) error {
	results, err := harness.ResultsArg[Result]("goals", args)
	if err != nil {
		return err
	}
	data := map[string]map[string]*series{}
	for _, r := range results {
		if r.Kind != "run" && r.Kind != "recover" {
			continue
		}
		if data[r.Phase] == nil {
			data[r.Phase] = map[string]*series{}
		}
		s := data[r.Phase][r.Tool]
		if s == nil {
			s = &series{Title: r.Title, ByRound: map[int]Result{}}
			data[r.Phase][r.Tool] = s
		}
		s.ByRound[r.Round] = r
	}
	var out []string
	add := func(format string, a ...any) { out = append(out, "- "+fmt.Sprintf(format, a...)) }
	clientServer := func(r Result) float64 { return r.UserS + r.SysS + r.ServerCPUS }
	peers := func(d map[string]*series, mine *series, what string, names ...string) {
		for _, peer := range names {
			ps := d[peer]
			if ps == nil {
				continue
			}
			m, _ := ratio(mine, ps, wall)
			add("%s faster than %s: %s (%.2fx its time)", what, toolName(peer), metWord(m < 1), m)
		}
	}
	rssMax, rssWhere := 0.0, ""
	if d := data["backup"]; d != nil {
		for _, t := range []string{"pitr", "pitr-direct", "pitr-stream"} {
			s := d[t]
			if s == nil {
				continue
			}
			what := "base backup, " + toolName(t)
			if f := d["pg_basebackup"]; f != nil {
				m, _ := ratio(s, f, wall)
				add("%s at most %.2fx `pg_basebackup -Ft`: %s (%.2fx)", what, goalBackup, metWord(m <= goalBackup), m)
			}
			peers(d, s, what, "pgbackrest", "walg")
			for _, peer := range []string{"pgbackrest", "walg"} {
				if ps := d[peer]; ps != nil {
					a, b := s.Med(clientServer), ps.Med(clientServer)
					add("%s client + server CPU at or below %s's: %s (%.2f against %.2f s, %.2fx)", what, toolName(peer), metWord(a <= b), a, b, a/b)
				}
			}
			if maxRSS(s) > rssMax {
				rssMax, rssWhere = maxRSS(s), toolName(t)+" backup"
			}
		}
	}
	if d := data["restore"]; d != nil && d["pitr"] != nil {
		s := d["pitr"]
		if f := d["tar+sync"]; f != nil {
			m, _ := ratio(s, f, wall)
			add("restore + durable, pitr at most %.1fx `tar -xf && sync`: %s (%.2fx)", goalDurable, metWord(m <= goalDurable), m)
		}
		peers(d, s, "restore + durable, pitr", "pgbackrest", "walg")
		if maxRSS(s) > rssMax {
			rssMax, rssWhere = maxRSS(s), "pitr restore"
		}
	}
	if d := data["pitr"]; d != nil && d["pitr"] != nil && d["cp"] != nil {
		m, _ := ratio(d["pitr"], d["cp"], wall)
		add("PITR replay, pitr wal-fetch at most %.1fx `restore_command = cp` (start to ready): %s (%.2fx)", goalPITR, metWord(m <= goalPITR), m)
		peers(d, d["pitr"], "PITR replay, pitr wal-fetch", "pgbackrest-async", "walg")
	}
	if rssWhere != "" {
		add("memory, backup and restore peak RSS under %d MiB: %s (largest %.0f MiB, %s)", goalRSSMiB, metWord(rssMax < goalRSSMiB), rssMax, rssWhere)
	}
	_, err = fmt.Fprint(os.Stdout, strings.Join(append(out, ""), "\n"))
	return err
}

func metWord(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

func toolName(t string) string {
	switch t {
	case "pitr":
		return "pitr"
	case "pitr-direct":
		return "pitr (backup_method direct)"
	case "pitr-stream":
		return "pitr (backup_method stream)"
	case "pitr-b":
		return "pitr (PITR_BIN_B)"
	case "pitr-c":
		return "pitr (PITR_BIN_C)"
	case "pgbackrest":
		return "pgBackRest (process-max 2, bundle)"
	case "pgbackrest-async":
		return "pgBackRest archive-get async"
	case "walg":
		return "wal-g"
	}
	return t
}

// cmdSummary prints issue 13's table rows for base backup, restore and
// replay: | work | floor | pgBackRest | wal-g | pitr |, medians with the
// rounds' range (bench/speed.sh puts them under one header).
func cmdSummary(args []string) error {
	results, err := harness.ResultsArg[Result]("summary", args)
	if err != nil {
		return err
	}
	data := map[string]map[string]*series{}
	for _, r := range results {
		if r.Kind != "run" && r.Kind != "recover" {
			continue
		}
		if data[r.Phase] == nil {
			data[r.Phase] = map[string]*series{}
		}
		if data[r.Phase][r.Tool] == nil {
			data[r.Phase][r.Tool] = &series{Title: r.Title, ByRound: map[int]Result{}}
		}
		data[r.Phase][r.Tool].ByRound[r.Round] = r
	}
	cell := func(phase, tool, prefix string) string {
		s := data[phase][tool]
		if s == nil {
			return ""
		}
		xs := s.Vals(wall)
		lo, hi := xs[0], xs[0]
		for _, x := range xs {
			lo, hi = min(lo, x), max(hi, x)
		}
		return fmt.Sprintf("%s%.2f s (%.2f–%.2f)", prefix, s.Med(wall), lo, hi)
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
	rows := []struct{ phase, work, floor, floorName, pgbr, pgbrName string }{
		{"backup", "base backup", "pg_basebackup", "`pg_basebackup -Ft` ", "pgbackrest", "bundle p2 "},
		{"restore", "restore + durable", "tar+sync", "`tar -xf && sync` ", "pgbackrest", "bundle p2 "},
		{"pitr", "PITR replay to a restore point", "cp", "`cp` ", "pgbackrest-async", "async p2 "},
	}
	for _, r := range rows {
		if data[r.phase] == nil {
			continue
		}
		pitr := []string{cell(r.phase, "pitr", "")}
		if r.phase == "backup" {
			pitr = append(pitr, cell(r.phase, "pitr-direct", "direct "), cell(r.phase, "pitr-stream", "stream "))
		}
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.work, join(cell(r.phase, r.floor, r.floorName)),
			join(cell(r.phase, r.pgbr, r.pgbrName)), join(cell(r.phase, "walg", "")), join(pitr...))
	}
	return nil
}
