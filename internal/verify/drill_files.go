package verify

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/files"
	"github.com/pitr-dev/pitr/internal/progress"
)

// files restores the newest snapshot of each of opts.FileSets into the
// scratch directory and compares the regular files and bytes found there
// with what the snapshot's entry recorded; each set is removed again
// before the next one, so the scratch area holds one set at a time.
func (d *drill) files(ctx context.Context) {
	for _, set := range d.opts.FileSets {
		if ctx.Err() != nil {
			return
		}
		d.fileSet(ctx, set)
	}
}

func (d *drill) fileSet(ctx context.Context, set string) {
	snap, err := d.opts.Repo.Snapshot(ctx, set, "latest")
	if err != nil {
		d.problem("files %s: %v", set, err)
		return
	}
	target := d.scratchPath("files", set)
	defer os.RemoveAll(target)
	bar := d.meter("drill: files " + set)
	_, err = files.Restore(ctx, d.opts.Repo, files.RestoreOptions{Snapshot: snap, Target: target, Progress: bar})
	progress.Done(bar)
	if err != nil {
		if ctx.Err() == nil {
			d.problem("files %s: restore snapshot %s: %v", set, snap.ID, err)
		}
		return
	}
	n, bytes, err := drillCountTree(target)
	if err != nil {
		d.problem("files %s: count restored files: %v", set, err)
		return
	}
	got := DrillFileSet{Set: set, Snapshot: snap.ID, Files: n, Bytes: bytes, OK: n == snap.Files && bytes == snap.Bytes}
	d.res.FileSets = append(d.res.FileSets, got)
	if !got.OK {
		d.problem("files %s: snapshot %s lists %d files of %d bytes; restored %d files of %d bytes", set, snap.ID, snap.Files, snap.Bytes, n, bytes)
		return
	}
	zerolog.Ctx(ctx).Info().Str("set", set).Str("snapshot", snap.ID).Int64("files", n).Int64("bytes", bytes).Msg("drill: file set restored")
}

// drillCountTree counts the regular files under dir, a file with several
// hard links once, as snapshots count them, and their bytes.
func drillCountTree(dir string) (n, bytes int64, err error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		n++
		bytes += fi.Size()
		return nil
	})
	return n, bytes, err
}
