package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
)

// RestoreTo says which app point a restore brings back (--to): the zero
// value is the newest; ID names one; Time picks the newest app point at or
// before it for the files, while the database recovers to Time itself.
type RestoreTo struct {
	ID   string
	Time time.Time
}

func (t RestoreTo) String() string {
	switch {
	case t.ID != "":
		return t.ID
	case !t.Time.IsZero():
		return t.Time.UTC().Format(time.RFC3339Nano)
	}
	return "latest"
}

// PointTime is the moment an app point stands for: its restore point's
// time (the server's clock), or its start without one.
func PointTime(a *catalog.App) time.Time {
	if a.RestorePoint != nil && !a.RestorePoint.Time.IsZero() {
		return a.RestorePoint.Time.UTC()
	}
	return a.StartTime.UTC()
}

// Choice is the app point a restore uses and where its database goes.
type Choice struct {
	Point *catalog.App
	// DBTime is the time the database recovers to (--to TIME); zero means
	// exactly to the app point's restore point.
	DBTime time.Time
	// Apart is how far the database's time lies after the files' point
	// (DBTime - PointTime), zero without DBTime.
	Apart time.Duration
}

// ChoosePoint picks from points (one app's, oldest first, as
// repo.ListApps returns them) the app point for to.
func ChoosePoint(points []*catalog.App, app string, to RestoreTo) (Choice, error) {
	if len(points) == 0 {
		return Choice{}, fmt.Errorf("no app points of %s in the repository (run 'pitr app backup %s' first)", app, app)
	}
	switch {
	case to.ID != "":
		for _, p := range points {
			if p.ID == to.ID {
				return Choice{Point: p}, nil
			}
		}
		return Choice{}, fmt.Errorf("no complete app point %s of %s (see 'pitr app list --app %s')", to.ID, app, app)
	case !to.Time.IsZero():
		var pick *catalog.App
		for _, p := range points {
			if !PointTime(p).After(to.Time) && (pick == nil || !PointTime(p).Before(PointTime(pick))) {
				pick = p
			}
		}
		if pick == nil {
			first := points[0]
			for _, p := range points {
				if PointTime(p).Before(PointTime(first)) {
					first = p
				}
			}
			return Choice{}, fmt.Errorf("no app point of %s at or before %s: the first is %s at %s",
				app, to.Time.UTC().Format(time.RFC3339), first.ID, PointTime(first).Format(time.RFC3339))
		}
		return Choice{Point: pick, DBTime: to.Time.UTC(), Apart: to.Time.Sub(PointTime(pick))}, nil
	}
	return Choice{Point: points[len(points)-1]}, nil
}

// Describe is the line saying what a restore brings back and, for --to
// TIME, how far apart the files and the database are.
func (c Choice) Describe() string {
	at := PointTime(c.Point).Format(time.RFC3339)
	if c.DBTime.IsZero() {
		if rp := c.Point.RestorePoint; rp != nil {
			return fmt.Sprintf("app point %s at %s: files from it, database to its restore point %s (LSN %s, timeline %d)", c.Point.ID, at, rp.Name, rp.LSN, rp.Timeline)
		}
		return fmt.Sprintf("app point %s at %s", c.Point.ID, at)
	}
	if c.Point.RestorePoint == nil {
		return fmt.Sprintf("app point %s at %s, the newest at or before %s (it holds no cluster: nothing recovers to that time)",
			c.Point.ID, at, c.DBTime.Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("files from app point %s at %s, database to %s: %s apart",
		c.Point.ID, at, c.DBTime.Format(time.RFC3339Nano), c.Apart.Round(time.Millisecond))
}

// RecordedMajor is the PostgreSQL major an app point was taken on, from
// its recorded postgresql_num (server_version_num) or its restore point;
// "" when neither is recorded.
func RecordedMajor(a *catalog.App) string {
	var num int
	if s := strings.TrimSpace(a.Versions["postgresql_num"]); s != "" {
		if _, err := fmt.Sscanf(s, "%d", &num); err != nil {
			num = 0
		}
	}
	if num == 0 && a.RestorePoint != nil {
		num = a.RestorePoint.PGVersion
	}
	return MajorOf(num)
}

// MajorOf returns the major of a server_version_num: 150010 -> "15",
// 90624 -> "9.6" (before PostgreSQL 10, the first two parts); "" for 0.
func MajorOf(num int) string {
	switch {
	case num <= 0:
		return ""
	case num >= 100000:
		return fmt.Sprint(num / 10000)
	}
	return fmt.Sprintf("%d.%d", num/10000, num/100%100)
}

// CheckPostgreSQL refuses an app point whose cluster was taken on a
// PostgreSQL major that installed does not hold: a physical backup
// restores only on the same major.
func CheckPostgreSQL(a *catalog.App, installed []string) error {
	want := RecordedMajor(a)
	if want == "" {
		return nil // nothing recorded; restore's own start fails clearly
	}
	for _, m := range installed {
		if m == want {
			return nil
		}
	}
	have := "no PostgreSQL server found"
	if len(installed) > 0 {
		have = "this machine has PostgreSQL " + strings.Join(installed, ", ")
	}
	return fmt.Errorf("app point %s was taken on PostgreSQL %s; a physical backup restores only on the same major: install PostgreSQL %s or restore the logical dumps (%s)",
		a.ID, want, want, have)
}

// builtinVersions are recorded automatically and checked by
// CheckPostgreSQL, not compared as application versions.
var builtinVersions = map[string]bool{"postgresql": true, "postgresql_num": true}

// VersionWarnings compares the versions recorded in an app point with the
// same commands run now; each difference is one line, sorted by name.
// Names not run now (no such command configured any more) are left out.
func VersionWarnings(recorded, now map[string]string) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(recorded)) {
		cur, ok := now[name]
		if builtinVersions[name] || !ok {
			continue
		}
		if was := strings.TrimSpace(recorded[name]); was != strings.TrimSpace(cur) {
			out = append(out, fmt.Sprintf("version %s differs: recorded %q, now %q", name, firstLine(was), firstLine(cur)))
		}
	}
	return out
}

// DBRequest is what RestoreOptions.RestoreDB restores.
type DBRequest struct {
	PGData string
	Force  bool // replace a stopped cluster at PGData
	// RestorePoint is the app point's; the database recovers exactly to
	// it, on its timeline, unless Time is set.
	RestorePoint *catalog.AppRestorePoint
	Time         time.Time // recovery_target_time, --to TIME
}

// DBResult is what RestoreDB restored.
type DBResult struct {
	Backup string // the base backup's id
	Files  int
	Bytes  int64
}

// FilesRequest is one file set's snapshot for RestoreOptions.RestoreFiles.
type FilesRequest struct {
	Snapshot *catalog.Snapshot
	Target   string // the root: each path P goes to Target/P
	Force    bool
	// Exclude are path patterns (files.RestoreOptions.Exclude) left as
	// the target holds them: --keep-settings paths that exist there.
	Exclude []string
}

// GlobalsResult is what RestoreGlobals did.
type GlobalsResult struct {
	Created  []string // roles created
	Existing []string // roles the server had, left as they are
}

// FilesResult is what RestoreFiles restored.
type FilesResult struct {
	Files, Bytes int64
}

// RestoreOptions configures Restore. The jobs are functions, wired by
// cmd/pitr to restore.Run, files.Restore and dump.Restore.
type RestoreOptions struct {
	Repo *repo.Repo
	App  string
	To   RestoreTo
	// Root is the directory the file sets go under (their original paths
	// below it); "/" puts them back in place.
	Root  string
	Force bool // replace what exists: files under Root, a stopped cluster at PGData
	// KeepSettings are original absolute paths: one that exists under
	// Root is left as it is (with what is under it), not restored.
	KeepSettings []string
	// PGData is where the cluster goes; needed when the app point has a
	// restore point, unless SkipCluster.
	PGData      string
	SkipCluster bool // restore no cluster (e.g. only the dumps)
	// Dumps restores the app point's logical dumps (RestoreDump).
	Dumps bool
	// Installed lists the PostgreSQL majors this machine can run
	// (InstalledMajors); checked against the app point's.
	Installed func() []string
	// Versions are the app's version commands, run now and compared with
	// the recorded outputs: differences are warnings.
	Versions []Version

	RestoreDB    func(ctx context.Context, req DBRequest) (DBResult, error)
	RestoreFiles func(ctx context.Context, req FilesRequest) (FilesResult, error)
	RestoreDump  func(ctx context.Context, d catalog.AppDump) error
	// RestoreGlobals applies the app point's globals (roles, tablespaces)
	// with Dumps, before the databases, so their owners exist; roles the
	// server has already are left as they are.
	RestoreGlobals func(ctx context.Context, d catalog.AppDump) (GlobalsResult, error)
	// NoGlobals skips the globals (the roles exist on the server, or the
	// role restoring may not create roles).
	NoGlobals bool

	// Out gets the choice and the warnings as they come; nil: not shown.
	Out io.Writer
}

// RestoreResult says what came back, one Part per database, file set and
// dump, in the order restored.
type RestoreResult struct {
	Choice   Choice
	Warnings []string
	Parts    []RestoredPart
	// Kept are the --keep-settings paths left as the target held them.
	Kept []string
}

// RestoredPart is one part of a restore.
type RestoredPart struct {
	Kind  string // "database", "files", "globals" or "dump"
	Name  string // the file set or database; "" for the cluster, catalog.GlobalsDatabase
	ID    string // the backup, snapshot or dump id
	Files int64
	Bytes int64
	At    time.Time // the point in time it stands for
	Into  string    // data directory, root or database
	// Globals is what applying the globals did (Kind "globals").
	Globals GlobalsResult
}

// Restore brings an application back to one of its app points: the
// cluster (to the restore point, or to --to TIME), each file set's
// snapshot under Root and, with Dumps, the logical dumps, their roles
// (the globals) first. It checks
// everything it can before writing: the app point, the PostgreSQL major,
// the snapshots named. It reads the repository only.
//
// What a failure or crash leaves: each part is written by its own job,
// safely (restore.Run's staging directory renamed into place, files under
// temporary names, each dump in one transaction), so a part is there
// whole or not at all; parts are restored in order (cluster, file sets,
// globals, dumps), and those before the failure stay. A rerun with --force
// replaces them.
func Restore(ctx context.Context, opts RestoreOptions) (*RestoreResult, error) {
	log := zerolog.Ctx(ctx)
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	if opts.Root == "" {
		return nil, errors.New("app restore: no root directory")
	}
	points, damaged, err := opts.Repo.ListApps(ctx, opts.App)
	if err != nil {
		return nil, err
	}
	for _, d := range damaged {
		log.Warn().Str("app", d.App).Str("id", d.ID).Str("reason", d.Reason).Msg("damaged app point skipped")
	}
	choice, err := ChoosePoint(points, opts.App, opts.To)
	if err != nil {
		return nil, err
	}
	a := choice.Point
	res := &RestoreResult{Choice: choice}
	fmt.Fprintln(out, choice.Describe())

	cluster := a.RestorePoint != nil && !opts.SkipCluster
	if cluster && opts.PGData == "" {
		return nil, fmt.Errorf("app point %s holds the cluster (restore point %s): say where it goes with --pgdata DIR or apps[].database.pgdata, or skip it with --no-cluster", a.ID, a.RestorePoint.Name)
	}
	if opts.PGData != "" && a.RestorePoint == nil {
		res.warn(out, fmt.Sprintf("app point %s has no restore point (the app has no cluster): no database restored into %s", a.ID, opts.PGData))
	}
	if cluster {
		var installed []string
		if opts.Installed != nil {
			installed = opts.Installed()
		}
		if err := CheckPostgreSQL(a, installed); err != nil {
			return nil, err
		}
	}
	if len(opts.Versions) > 0 {
		now := map[string]string{}
		for _, v := range opts.Versions {
			now[v.Name] = runVersion(ctx, v)
		}
		for _, w := range VersionWarnings(a.Versions, now) {
			res.warn(out, w)
		}
	}
	dbs, globals := SplitGlobals(a.Dumps)
	if opts.NoGlobals {
		globals = nil
	}
	switch {
	case opts.Dumps && len(dbs) == 0:
		res.warn(out, fmt.Sprintf("app point %s has no logical dumps", a.ID))
	case opts.Dumps && globals == nil && !opts.NoGlobals:
		res.warn(out, fmt.Sprintf("app point %s stores no roles (taken with dump_globals: false, or by an older pitr): the databases' owners must exist on the server", a.ID))
	case opts.Dumps && globals != nil && opts.RestoreGlobals == nil:
		return nil, fmt.Errorf("app point %s: globals without a job to apply them", a.ID)
	}
	// Every snapshot entry is read before anything is written.
	snaps := make([]*catalog.Snapshot, len(a.Snapshots))
	for i, s := range a.Snapshots {
		if snaps[i], err = opts.Repo.Snapshot(ctx, s.Set, s.ID); err != nil {
			return nil, fmt.Errorf("app point %s: file set %s: %w", a.ID, s.Set, err)
		}
	}
	exclude, kept, err := keptPaths(opts.Root, opts.KeepSettings)
	if err != nil {
		return nil, err
	}
	res.Kept = kept

	if cluster {
		req := DBRequest{PGData: opts.PGData, Force: opts.Force, RestorePoint: a.RestorePoint, Time: choice.DBTime}
		db, err := opts.RestoreDB(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("app point %s: database: %w", a.ID, err)
		}
		at := a.RestorePoint.Time.UTC()
		if !choice.DBTime.IsZero() {
			at = choice.DBTime
		}
		res.Parts = append(res.Parts, RestoredPart{Kind: "database", ID: db.Backup, Files: int64(db.Files), Bytes: db.Bytes, At: at, Into: opts.PGData})
	}
	for _, s := range snaps {
		fr, err := opts.RestoreFiles(ctx, FilesRequest{Snapshot: s, Target: opts.Root, Force: opts.Force, Exclude: exclude})
		if err != nil {
			return nil, fmt.Errorf("app point %s: file set %s: %w", a.ID, s.Set, err)
		}
		res.Parts = append(res.Parts, RestoredPart{Kind: "files", Name: s.Set, ID: s.ID, Files: fr.Files, Bytes: fr.Bytes,
			At: s.StartTime.UTC(), Into: opts.Root})
	}
	if opts.Dumps && globals != nil && len(dbs) > 0 {
		// The roles first: each database's objects name their owners.
		g, err := opts.RestoreGlobals(ctx, *globals)
		if err != nil {
			return nil, fmt.Errorf("app point %s: roles and tablespaces (--no-globals skips them): %w", a.ID, err)
		}
		res.Parts = append(res.Parts, RestoredPart{Kind: "globals", Name: globals.Database, ID: globals.ID, Bytes: globals.Bytes,
			At: PointTime(a), Globals: g})
	}
	if opts.Dumps {
		for _, d := range dbs {
			if err := opts.RestoreDump(ctx, d); err != nil {
				return nil, fmt.Errorf("app point %s: dump of %s: %w", a.ID, d.Database, err)
			}
			res.Parts = append(res.Parts, RestoredPart{Kind: "dump", Name: d.Database, ID: d.ID, Bytes: d.Bytes, At: PointTime(a), Into: d.Database})
		}
	}
	log.Info().Str("app", a.App).Str("app_point", a.ID).Int("parts", len(res.Parts)).Msg("app restored")
	return res, nil
}

func (r *RestoreResult) warn(out io.Writer, w string) {
	r.Warnings = append(r.Warnings, w)
	fmt.Fprintln(out, "warning: "+w)
}

// keptPaths returns, for the --keep-settings paths that exist under root,
// the exclude patterns (metacharacters escaped) and the paths.
func keptPaths(root string, keep []string) (patterns, kept []string, err error) {
	for _, p := range keep {
		if !path.IsAbs(p) {
			return nil, nil, fmt.Errorf("--keep-settings %q: want an absolute path, as the application uses it", p)
		}
		p = path.Clean(p)
		_, err := os.Lstat(filepath.Join(root, filepath.FromSlash(p)))
		if errors.Is(err, fs.ErrNotExist) {
			continue // not in the target: restored from the snapshot
		}
		if err != nil {
			return nil, nil, fmt.Errorf("--keep-settings %s: %w", p, err)
		}
		patterns = append(patterns, escapePattern(p))
		kept = append(kept, p)
	}
	return patterns, kept, nil
}

// escapePattern makes p a path.Match pattern matching only itself.
func escapePattern(p string) string {
	var b strings.Builder
	for _, c := range p {
		if strings.ContainsRune(`\*?[`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
