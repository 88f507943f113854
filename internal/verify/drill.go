package verify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/restore"
	"github.com/pitr-dev/pitr/internal/scratch"
)

// DrillCheck is one SQL check of a restore drill: the first column of the
// first row SQL returns in DB must be a number of at least Min, or, if it
// is not a number, a row must come back.
type DrillCheck struct {
	DB, SQL string
	Min     int64
}

func (c DrillCheck) String() string { return c.DB + ": " + c.SQL }

// DrillOptions configures Drill.
type DrillOptions struct {
	Repo     *repo.Repo // with the identity, for an encrypted repository
	Target   restore.Target
	Timeline restore.TimelineChoice
	// RestoreCommand is the restore_command of the restored copy: this
	// pitr's wal-fetch, as pitr restore writes it. CommandReads and
	// CommandExecs are the files it reads and runs; the server's user must
	// be able to (restore.Preflight checks before anything is restored).
	RestoreCommand string
	CommandReads   []string
	CommandExecs   []string
	Checks         []DrillCheck
	// FileSets are the file sets whose newest snapshot is restored and
	// compared with its entry too.
	FileSets []string
	// Dir is where the scratch directory is made; "" is os.TempDir().
	Dir string
	// BinDir holds the server's programs; default: those of the restored
	// data directory's major (see scratch.FindBinDir).
	BinDir string
	// User is the role the checks connect as; default postgres.
	User string
	// Env is added to the server's environment (and so restore_command's).
	Env []string
	// Timeout bounds the whole drill; 0: only ctx does.
	Timeout time.Duration
	// Tool names the program in the report, e.g. "pitr 1.4.0".
	Tool string
	Now  func() time.Time
	// Progress, if set, gives a meter for each restore (the backup, each
	// file set), named by label; a nil one shows nothing. The drill ends
	// each one.
	Progress func(label string) progress.Meter
}

// DrillResult is what a drill found. Problems is empty when it passed.
type DrillResult struct {
	Started, Finished time.Time
	Backup            string // the backup restored
	Target            string // as asked for, e.g. "latest"
	Timeline          uint32 // the timeline the copy ran on after recovery
	// Reached is the commit time of the last transaction recovery replayed
	// (zero if none was), ReachedLSN the end of the replayed WAL.
	Reached    time.Time
	ReachedLSN string
	// RTO is the time to restore: unpacking the backup plus starting the
	// server and recovering until it accepts read-write connections
	// (pg_verifybackup, which a real restore does not run, is not
	// counted). Total is the whole drill, checks and cleanup included.
	RTO, Total time.Duration
	// VerifyBackup is "ok", or why pg_verifybackup did not run.
	VerifyBackup string
	Databases    []string // checked with pg_amcheck
	AmcheckOK    bool
	ChecksOK     int
	Checks       int
	FileSets     []DrillFileSet
	Problems     []string
	ReportID     string // "" when the report could not be saved (a warning was logged)
}

// DrillFileSet is one file set a drill restored.
type DrillFileSet struct {
	Set, Snapshot string
	Files, Bytes  int64 // found in the restored tree
	OK            bool
}

// OK reports whether the drill passed.
func (r *DrillResult) OK() bool { return len(r.Problems) == 0 }

// Summary is the drill's one-line result, e.g. "drill passed: backup X
// restored to 2026-11-22T14:01:00Z in 41.2 s (RTO); amcheck ok on 3
// databases; 2 checks ok".
func (r *DrillResult) Summary() string {
	if !r.OK() {
		s := fmt.Sprintf("drill failed: %d problem", len(r.Problems))
		if len(r.Problems) > 1 {
			s += "s"
		}
		if r.Backup != "" {
			s += " (backup " + r.Backup + ")"
		}
		return s
	}
	point := "LSN " + r.ReachedLSN
	if !r.Reached.IsZero() {
		point = r.Reached.UTC().Format(time.RFC3339Nano)
	}
	s := fmt.Sprintf("drill passed: backup %s restored to %s in %.1f s (RTO); amcheck ok on %d database%s; %d check%s ok",
		r.Backup, point, r.RTO.Seconds(), len(r.Databases), drillPlural(len(r.Databases)), r.ChecksOK, drillPlural(r.ChecksOK))
	if n := len(r.FileSets); n > 0 {
		s += fmt.Sprintf("; %d file set%s restored and matching", n, drillPlural(n))
	}
	if r.VerifyBackup != "ok" && r.VerifyBackup != "" {
		s += "; pg_verifybackup " + r.VerifyBackup
	}
	return s
}

func drillPlural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// Report is the result as the repository keeps it.
func (r *DrillResult) Report(tool string) *catalog.Report {
	rep := &catalog.Report{
		Kind: catalog.ReportDrill, Started: r.Started.UTC(), Finished: r.Finished.UTC(), Tool: tool,
		OK: r.OK(), Problems: r.Problems, Summary: r.Summary(),
		Backup: r.Backup, Target: r.Target, RTOSeconds: r.RTO.Seconds(),
	}
	if !r.Reached.IsZero() {
		t := r.Reached.UTC()
		rep.Reached = &t
	}
	return rep
}

// ErrDrillFailed is wrapped by Drill's error when the drill ran and found
// problems (the result lists them).
var ErrDrillFailed = errors.New("restore drill failed")

// Drill restores the newest backup (or the one opts.Target needs) into a
// new scratch directory, starts PostgreSQL on it with archiving off, on a
// free port of 127.0.0.1 and a private socket directory, waits for
// recovery to end, then runs pg_verifybackup (on the unpacked directory,
// before the start), pg_amcheck on every database and opts.Checks, and
// restores the newest snapshot of each of opts.FileSets. It then stops the
// server and removes the scratch directory, whatever happened, and saves
// the result as a drill report (a failure to save is logged, not the
// verdict; an interrupted drill saves none).
//
// The repository is only read, but for the report: the copy runs with
// archive_mode = off, so the timeline its promotion creates, and any WAL
// it writes, stay in the scratch directory.
//
// The error wraps ErrDrillFailed when the drill found problems; the result
// is then non-nil too, with one line per problem.
func Drill(ctx context.Context, opts DrillOptions) (*DrillResult, error) {
	if opts.Repo == nil || opts.RestoreCommand == "" {
		return nil, errors.New("restore drill: no repository or restore_command")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.User == "" {
		opts.User = "postgres"
	}
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	res := &DrillResult{Started: opts.Now(), Target: opts.Target.String()}
	d := &drill{opts: opts, res: res}
	d.run(ctx)
	res.Finished = opts.Now()
	res.Total = res.Finished.Sub(res.Started)
	log := zerolog.Ctx(ctx)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("restore drill interrupted: %w", err)
	}
	rep := res.Report(opts.Tool)
	if err := opts.Repo.SaveReport(ctx, rep); err != nil {
		log.Warn().Err(err).Msg("drill report not saved")
	} else {
		res.ReportID = rep.ID
	}
	if !res.OK() {
		log.Error().Str("backup", res.Backup).Strs("problems", res.Problems).Msg("restore drill failed")
		msg := res.Problems[0]
		if n := len(res.Problems) - 1; n > 0 {
			msg += fmt.Sprintf(" (and %d more)", n)
		}
		return res, fmt.Errorf("%w: %s", ErrDrillFailed, msg)
	}
	log.Info().Str("backup", res.Backup).Float64("rto_seconds", res.RTO.Seconds()).Msg("restore drill passed")
	return res, nil
}

// drill is one run of Drill.
type drill struct {
	opts DrillOptions
	res  *DrillResult
	root string // the scratch directory
}

func (d *drill) problem(format string, args ...any) {
	d.res.Problems = append(d.res.Problems, drillOneLine(fmt.Sprintf(format, args...)))
}

// run does the drill, noting each failure as a problem; it removes the
// scratch directory before it returns.
func (d *drill) run(ctx context.Context) {
	root, err := os.MkdirTemp(d.opts.Dir, "pitr-drill-")
	if err != nil {
		d.problem("create scratch directory: %v", err)
		return
	}
	d.root = root
	defer func() {
		if err := drillRemoveAll(root); err != nil {
			d.problem("remove scratch directory %s: %v", root, err)
		}
	}()
	// Only the server's user (and root) may enter: the copy holds all of
	// production's data.
	if err := os.Chmod(root, 0o700); err != nil {
		d.problem("scratch directory: %v", err)
		return
	}
	if err := scratch.ChownToPostgres(root); err != nil {
		d.problem("scratch directory: %v", err)
		return
	}
	zerolog.Ctx(ctx).Info().Str("dir", root).Str("target", d.res.Target).Msg("restore drill started")
	d.database(ctx)
	d.files(ctx)
}

// drillOneLine keeps a problem on one line: a tool's output or a server log
// tail joined with " | ".
func drillOneLine(s string) string {
	var parts []string
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, strings.ReplaceAll(line, "\t", " "))
		}
	}
	return strings.Join(parts, " | ")
}

// meter returns the progress meter of one restore, or nil.
func (d *drill) meter(label string) progress.Meter {
	if d.opts.Progress == nil {
		return nil
	}
	return d.opts.Progress(label)
}

// scratchPath returns a path in the scratch directory.
func (d *drill) scratchPath(elem ...string) string {
	return filepath.Join(append([]string{d.root}, elem...)...)
}

// drillRemoveAll removes the scratch directory. The wal-prefetch that a
// wal-fetch of the copy started runs detached and may still be finishing a
// download into its pg_wal when the server has stopped: try for a while.
func drillRemoveAll(dir string) error {
	var err error
	for range 50 {
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}
