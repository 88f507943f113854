// Package restore turns a base backup and the WAL archive into a data
// directory that recovers to a target: it chooses the backup, unpacks its
// parts in parallel into a staging directory next to --pgdata, writes the
// recovery settings, and only then moves the directory into place.
//
// What a crash leaves: before the final rename, only the staging directory
// (".pitr-restore-*" next to --pgdata, removed by the next restore into the
// same place) and, for tablespaces, directories it created; --pgdata itself
// is untouched until the rename, which is atomic.
package restore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/repo"
)

// Options configures Run.
type Options struct {
	Repo     *repo.Repo // its codec with Identities for an encrypted backup
	Target   Target
	BackupID string // "" chooses by target
	DataDir  string
	Force    bool // replace a non-empty DataDir (and non-empty tablespace directories)
	// TablespaceMap moves tablespaces: old location -> new location.
	TablespaceMap map[string]string
	// RestoreCommand is the restore_command written for recovery, e.g.
	// "'/usr/local/bin/pitr' --config '/etc/pitr/pitr.yaml' wal-fetch %f %p".
	RestoreCommand string
	Parallel       int // parts downloaded and unpacked at once; default 4
	Now            func() time.Time
	// Timeline chooses the timeline recovery follows; it is always written
	// as a number into recovery_target_timeline.
	Timeline TimelineChoice
	// ArchiveOff writes archive_mode = off, so the restored copy does not
	// archive into any repository (a rehearsal or drill).
	ArchiveOff bool
	// Out gets the timeline choice and its alternatives; nil: not shown.
	Out io.Writer
	// Progress hears the backup's bytes as they are unpacked, against
	// their total; nil shows nothing.
	Progress progress.Meter

	// durable makes the restored files durable; nil: defaultDurability.
	// Tests replace it to see what is synced and to make it fail.
	durable *durability
}

// Result reports what Run restored.
type Result struct {
	Plan  *Plan
	Files int
	Bytes int64
}

// Run restores into opts.DataDir.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Parallel < 1 {
		opts.Parallel = defaultParallel
	}
	if opts.RestoreCommand == "" {
		return nil, errors.New("restore: no restore_command")
	}
	if opts.durable == nil {
		opts.durable = defaultDurability()
	}
	log := zerolog.Ctx(ctx)
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	existing, err := checkTarget(dataDir, opts.Force)
	if err != nil {
		return nil, err
	}
	plan, err := Choose(ctx, opts.Repo, opts.Target, opts.BackupID, opts.Timeline)
	if err != nil {
		return nil, err
	}
	if opts.Out != nil {
		plan.DescribeTimelines(opts.Out)
	}
	if plan.Warning != "" {
		log.Warn().Msg(plan.Warning)
	}
	b := plan.Backup
	log.Info().Str("backup", b.ID).Str("target", opts.Target.String()).Str("end_lsn", b.EndLSN).Uint32("timeline", uint32(plan.Timeline)).Msg("restoring backup")
	tss, err := tablespaceTargets(b, opts.TablespaceMap)
	if err != nil {
		return nil, err
	}
	if err := checkTargets(dataDir, tss, opts.Force); err != nil {
		return nil, err
	}

	owner, err := chooseOwner(dataDir)
	if err != nil {
		return nil, err
	}
	parent := filepath.Dir(dataDir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	removeStale(parent)
	staging, err := os.MkdirTemp(parent, ".pitr-restore-")
	if err != nil {
		return nil, fmt.Errorf("create staging directory: %w", err)
	}
	var created []string // tablespace directories we made, removed on failure
	// What the parts unpack into and the directories above new tablespace
	// directories, opened now for the syncfs at the end.
	fss := &fileSystems{d: opts.durable}
	defer fss.close()
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(staging)
			for _, d := range created {
				os.RemoveAll(d)
			}
		}
	}()
	if err := os.Chmod(staging, 0o700); err != nil {
		return nil, err
	}
	if err := fss.add(staging, true); err != nil {
		return nil, err
	}
	if err := owner.chown(staging); err != nil {
		return nil, err
	}

	dirs := map[string]string{} // part name -> directory it unpacks into
	tsMap := map[uint32]string{}
	for _, ts := range tss {
		if ts.dir != ts.from {
			tsMap[ts.oid] = ts.dir
		}
		made, changed, err := prepareTablespace(ts.dir, opts.Force, owner)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ts.flag(), err)
		}
		if made {
			created = append(created, ts.dir)
		}
		for _, d := range changed {
			if err := fss.add(d, false); err != nil {
				return nil, err
			}
		}
		if err := fss.add(ts.dir, true); err != nil {
			return nil, err
		}
		dirs[strconv.FormatUint(uint64(ts.oid), 10)+".tar"] = ts.dir
	}

	res := &Result{Plan: plan}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Parallel)
	stats := make([]ExtractStats, len(b.Parts))
	progress.SetTotal(opts.Progress, b.Bytes)
	// All parts start at once (up to Parallel), each on its own pipeline
	// of download, decryption, decompression, hashing and extraction; the
	// largest first, so that a big tablespace does not start last.
	order := make([]int, len(b.Parts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(b.Parts[j].Bytes, b.Parts[i].Bytes) })
	for _, i := range order {
		p := b.Parts[i]
		g.Go(func() error {
			var err error
			stats[i], err = restorePart(gctx, opts, b, p, staging, dirs, owner)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, s := range stats {
		res.Files += s.Files
		res.Bytes += s.Bytes
	}
	// A backup taken from a standby carries standby.signal; recovery to a
	// target must end in promotion, not in standby mode.
	if err := os.Remove(filepath.Join(staging, "standby.signal")); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if len(tsMap) > 0 {
		if err := RewriteTablespaceMap(staging, tsMap); err != nil {
			return nil, err
		}
	}
	settings := append([]Setting{{Name: "restore_command", Value: opts.RestoreCommand}}, opts.Target.Settings()...)
	if opts.Target.Kind != Latest {
		settings = append(settings, Setting{Name: "recovery_target_action", Value: "promote"})
	}
	settings = append(settings, Setting{Name: "recovery_target_timeline", Value: strconv.FormatUint(uint64(plan.Timeline), 10)})
	if opts.ArchiveOff {
		settings = append(settings, Setting{Name: "archive_mode", Value: "off"})
	}
	if err := WriteRecoveryConfig(staging, settings, opts.Now()); err != nil {
		return nil, err
	}
	// Durable before the rename: every file and directory written, in the
	// data directory and in every tablespace directory, and the directories
	// above new tablespace directories (see durability).
	if err := fss.sync(); err != nil {
		return nil, fmt.Errorf("sync restored files: %w", err)
	}
	if err := swapIn(staging, dataDir, existing); err != nil {
		return nil, err
	}
	ok = true
	log.Info().Str("backup", b.ID).Str("pgdata", dataDir).Int("files", res.Files).Int64("bytes", res.Bytes).Msg("restore unpacked; recovery configured")
	return res, nil
}

// defaultParallel is how many parts restore at once unless told: a backup
// has base.tar, backup_manifest and one part per tablespace. Each costs
// about 10 MiB (decoded buffers, the decoder, a write buffer).
const defaultParallel = 4

// restorePart downloads one part and unpacks (or writes) it.
func restorePart(ctx context.Context, opts Options, b *catalog.Backup, p catalog.Part, staging string, dirs map[string]string, owner owner) (ExtractStats, error) {
	r, err := opts.Repo.OpenPart(ctx, b, p)
	if err != nil {
		return ExtractStats{}, fmt.Errorf("backup %s part %s: %w", b.ID, p.Name, err)
	}
	defer r.Close()
	src := progress.Reader(opts.Progress, r)
	if !strings.HasSuffix(p.Name, ".tar") {
		// backup_manifest: kept for pg_verifybackup.
		f, err := os.OpenFile(filepath.Join(staging, p.Name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return ExtractStats{}, err
		}
		n, err := io.Copy(f, src)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return ExtractStats{}, fmt.Errorf("backup %s part %s: %w", b.ID, p.Name, err)
		}
		return ExtractStats{Files: 1, Bytes: n}, owner.chown(f.Name())
	}
	dir := staging
	if d, ok := dirs[p.Name]; ok {
		dir = d
	} else if p.Name != "base.tar" {
		return ExtractStats{}, fmt.Errorf("backup %s: unexpected part %s", b.ID, p.Name)
	}
	st, err := Extract(ctx, src, dir, ExtractOptions{Owner: owner.ptr(), Name: p.Name})
	if err != nil {
		return st, fmt.Errorf("backup %s part %s: %w", b.ID, p.Name, err)
	}
	return st, nil
}

// checkTarget refuses a non-empty data directory unless forced, and even
// then anything but a stopped PostgreSQL data directory (see force.go); it
// reports whether the directory exists.
func checkTarget(dir string, force bool) (exists bool, err error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("--pgdata %s: %w", dir, err)
	}
	if len(entries) == 0 {
		return true, nil
	}
	if !force {
		return true, fmt.Errorf("--pgdata %s is not empty; refusing to restore over it (use --force to replace a stopped cluster's data directory)", dir)
	}
	return true, replaceableData(dir)
}

// prepareTablespace creates a tablespace directory, or empties one that
// checkTargets found safe to replace; it checks again right before
// deleting. changed lists the directories above dir that got new entries
// (the parents of the directories it created), for the final fsync.
func prepareTablespace(dir string, force bool, o owner) (created bool, changed []string, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Lstat(d); err == nil || filepath.Dir(d) == d {
				break
			}
			changed = append(changed, filepath.Dir(d))
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, nil, err
		}
		return true, changed, o.chown(dir)
	case err != nil:
		return false, nil, err
	case len(entries) > 0 && !force:
		return false, nil, fmt.Errorf("directory %s is not empty (use --force, or --tablespace-map to move it)", dir)
	case len(entries) > 0:
		if err := notLive(dir, resolve(dir), liveDirs()); err != nil {
			return false, nil, err
		}
		if err := replaceableTablespace(dir, entries); err != nil {
			return false, nil, err
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return false, nil, err
			}
		}
	}
	return false, nil, nil
}

// swapIn moves the staging directory to dataDir. With an existing
// directory (empty, or forced), the old one is moved aside first and
// removed only after the new one is in place.
func swapIn(staging, dataDir string, exists bool) error {
	var old string
	if exists {
		old = dataDir + ".pitr-old-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		if err := os.Rename(dataDir, old); err != nil {
			return fmt.Errorf("move old --pgdata aside: %w", err)
		}
	}
	if err := os.Rename(staging, dataDir); err != nil {
		if old != "" {
			_ = os.Rename(old, dataDir) // best effort: the error below says what failed
		}
		return fmt.Errorf("move restored directory into place: %w", err)
	}
	if err := syncDir(filepath.Dir(dataDir)); err != nil {
		return err
	}
	if old != "" {
		return os.RemoveAll(old)
	}
	return nil
}

// removeStale removes staging directories of restores that died.
func removeStale(parent string) {
	matches, _ := filepath.Glob(filepath.Join(parent, ".pitr-restore-*"))
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(m)
		}
	}
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// owner is who the restored files belong to: when pitr runs as root, the
// owner of --pgdata (if it exists and is not root), else the postgres user;
// otherwise whoever runs pitr (no chown).
type owner struct {
	set      bool
	uid, gid int
}

func (o owner) chown(path string) error {
	if !o.set {
		return nil
	}
	return os.Lchown(path, o.uid, o.gid)
}

func (o owner) ptr() *Owner {
	if !o.set {
		return nil
	}
	return &Owner{UID: o.uid, GID: o.gid}
}

func chooseOwner(dataDir string) (owner, error) {
	if os.Geteuid() != 0 {
		return owner{}, nil
	}
	for _, d := range []string{dataDir, filepath.Dir(dataDir)} {
		if fi, err := os.Stat(d); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
				return owner{set: true, uid: int(st.Uid), gid: int(st.Gid)}, nil
			}
		}
	}
	uid, gid, ok := postgresUser()
	if !ok {
		return owner{}, errors.New("running as root: no postgres user to own the restored files (create --pgdata owned by the server's user)")
	}
	return owner{set: true, uid: uid, gid: gid}, nil
}

func postgresUser() (uid, gid int, ok bool) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, false
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	return uid, gid, err1 == nil && err2 == nil
}
