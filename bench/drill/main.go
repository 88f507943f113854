// Command drill is bench/drill.sh's measuring program: the time to restore
// (RTO) of `pitr verify --restore-drill` next to `pgbackrest restore` plus a
// server start on the same cluster, both from a repository on local disk.
//
// RTO is measured the same way for both: from the start of the restore
// until the server accepts read-write connections (recovery ended and it
// promoted). For pitr it is the drill's own measurement (rto_seconds of
// its report), which leaves out pg_verifybackup; the drill's whole run
// (pg_verifybackup, pg_amcheck, checks, cleanup) is reported beside it.
//
//	drill freeport
//	drill pitr --round N --out results.jsonl -- pitr verify --restore-drill --json ...
//	drill pgbackrest --round N --out results.jsonl --pgdata DIR --port P --socket-dir S -- pgbackrest ... restore ...
//	drill report --machine FILE --rev REV --cmd CMD results.jsonl
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pitr-dev/pitr/bench/internal/harness"
)

func main() {
	harness.Main("drill",
		harness.Command{Name: "freeport", Run: harness.FreePort},
		harness.Command{Name: "pitr", Run: cmdPitr},
		harness.Command{Name: "pgbackrest", Run: cmdPgbackrest},
		harness.Command{Name: "report", Run: cmdReport},
	)
}

// Result is one measured restore.
type Result struct {
	Tool     string  `json:"tool"`
	Round    int     `json:"round"`
	RTOS     float64 `json:"rto_s"`     // restore + start until read-write
	RestoreS float64 `json:"restore_s"` // pgbackrest: the restore command alone
	TotalS   float64 `json:"total_s"`   // pitr: the whole drill, checks and cleanup included
}

func split(args []string) (flags, cmd []string, err error) {
	for i, a := range args {
		if a == "--" {
			return args[:i], args[i+1:], nil
		}
	}
	return nil, nil, errors.New("want flags -- command")
}

func cmdPitr(args []string) error {
	fa, cmdline, err := split(args)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("pitr", flag.ExitOnError)
	round := fs.Int("round", 0, "round number")
	out := fs.String("out", "", "results file")
	if err := fs.Parse(fa); err != nil {
		return err
	}
	start := time.Now()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(cmdline[0], cmdline[1:]...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	total := time.Since(start)
	var rep struct {
		OK         bool     `json:"ok"`
		Problems   []string `json:"problems"`
		RTOSeconds float64  `json:"rto_seconds"`
	}
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		return fmt.Errorf("%v: %v; stderr: %s", err, jerr, stderr.String())
	}
	if err != nil || !rep.OK {
		return fmt.Errorf("drill failed (%v): %q; stderr: %s", err, rep.Problems, stderr.String())
	}
	r := Result{Tool: "pitr", Round: *round, RTOS: rep.RTOSeconds, TotalS: total.Seconds()}
	fmt.Fprintf(os.Stderr, "pitr round %d: RTO %.1f s, drill %.1f s\n", r.Round, r.RTOS, r.TotalS)
	return harness.AppendJSON(*out, r)
}

func cmdPgbackrest(args []string) error {
	fa, cmdline, err := split(args)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("pgbackrest", flag.ExitOnError)
	round := fs.Int("round", 0, "round number")
	out := fs.String("out", "", "results file")
	pgdata := fs.String("pgdata", "", "data directory pgbackrest restores into")
	pgbin := fs.String("pgbin", "/usr/lib/postgresql/15/bin", "PostgreSQL binaries")
	port := fs.Int("port", 0, "port for the server")
	sock := fs.String("socket-dir", "", "socket directory for the server")
	timeout := fs.Duration("timeout", time.Hour, "give up after")
	if err := fs.Parse(fa); err != nil {
		return err
	}
	if *pgdata == "" || *port == 0 || *sock == "" {
		return errors.New("need --pgdata, --port and --socket-dir")
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	start := time.Now()
	if b, err := exec.CommandContext(ctx, cmdline[0], cmdline[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("restore: %v: %s", err, b)
	}
	restored := time.Since(start)
	pgctl := func(a ...string) *exec.Cmd {
		argv := append([]string{filepath.Join(*pgbin, "pg_ctl"), "-D", *pgdata}, a...)
		if os.Geteuid() == 0 {
			argv = append([]string{"runuser", "-u", "postgres", "--"}, argv...)
		}
		return exec.CommandContext(ctx, argv[0], argv[1:]...)
	}
	// The same server settings as the drill's where they matter: no
	// archiving, no TCP.
	opts := fmt.Sprintf("-p %d -c listen_addresses='' -c unix_socket_directories='%s' -c archive_mode=off", *port, *sock)
	if b, err := pgctl("-l", filepath.Join(filepath.Dir(*pgdata), "pgbackrest-server.log"), "-W", "-o", opts, "start").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl start: %v: %s", err, b)
	}
	defer func() { _ = pgctl("-m", "immediate", "-w", "stop").Run() }()
	dsn := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres sslmode=disable", *sock, *port)
	for !readWrite(ctx, dsn) {
		if ctx.Err() != nil {
			return fmt.Errorf("recovery did not end within %s", *timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := Result{Tool: "pgbackrest", Round: *round, RTOS: time.Since(start).Seconds(), RestoreS: restored.Seconds()}
	fmt.Fprintf(os.Stderr, "pgbackrest round %d: RTO %.1f s (restore %.1f s)\n", r.Round, r.RTOS, r.RestoreS)
	return harness.AppendJSON(*out, r)
}

// readWrite says whether the server accepts connections and has left
// recovery.
func readWrite(ctx context.Context, dsn string) bool {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false
	}
	defer c.Close(context.Background())
	var in bool
	return c.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&in) == nil && !in
}

func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	machine := fs.String("machine", "", "Markdown lines about the machine and the data")
	rev := fs.String("rev", "", "pitr revision measured")
	command := fs.String("cmd", "bash bench/drill.sh", "the command that produced the results")
	if err := fs.Parse(args); err != nil {
		return err
	}
	results, err := harness.ReadResults[Result](fs.Arg(0))
	if err != nil {
		return err
	}
	by := map[string]*harness.Series[Result]{}
	for _, r := range results {
		if by[r.Tool] == nil {
			by[r.Tool] = &harness.Series[Result]{ByRound: map[int]Result{}}
		}
		by[r.Tool].ByRound[r.Round] = r
	}
	rto := func(r Result) float64 { return r.RTOS }
	var b strings.Builder
	fmt.Fprintf(&b, "## Restore drill RTO (bench/drill.sh)\n\npitr %s; `%s`.\n\n", *rev, *command)
	if *machine != "" {
		m, err := os.ReadFile(*machine)
		if err != nil {
			return err
		}
		b.Write(m)
		b.WriteString("\n")
	}
	b.WriteString("| tool | RTO, median (s) | runs (s) | also |\n|---|---:|---|---|\n")
	for _, tool := range []string{"pitr", "pgbackrest"} {
		s := by[tool]
		if s == nil {
			continue
		}
		also := ""
		switch tool {
		case "pitr":
			also = fmt.Sprintf("whole drill (pg_verifybackup, pg_amcheck, checks, cleanup): median %.1f s", s.Med(func(r Result) float64 { return r.TotalS }))
		case "pgbackrest":
			also = fmt.Sprintf("`pgbackrest restore` alone: median %.1f s", s.Med(func(r Result) float64 { return r.RestoreS }))
		}
		fmt.Fprintf(&b, "| %s | %.1f | %s | %s |\n", title(tool), s.Med(rto), runs(s.Vals(rto)), also)
	}
	if p, g := by["pitr"], by["pgbackrest"]; p != nil && g != nil {
		fmt.Fprintf(&b, "\npitr's RTO is %.2fx pgBackRest's (median over median; lower is faster).\n", p.Med(rto)/g.Med(rto))
	}
	fmt.Print(b.String())
	return nil
}

func title(tool string) string {
	switch tool {
	case "pitr":
		return "`pitr verify --restore-drill` (restore + recovery until read-write)"
	case "pgbackrest":
		return "`pgbackrest restore` + `pg_ctl start` until read-write"
	}
	return tool
}

func runs(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(parts, ", ")
}
