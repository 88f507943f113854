// Package backup takes base backups over the replication protocol and
// streams them into the repository (internal/repo lists them).
//
// Run first reserves the backup's id with a create-only
// backups/<id>/reserved.json (repo.ReserveID): a second backup started in
// the same second takes <id>-1. A backup is complete only when its entry,
// backups/<id>/backup.json, exists. Run writes it last (create-only), after every part is stored and the WAL from the
// backup's start to its end is in the repository. What a crash leaves at
// each step:
//   - during a part's upload: no object for that part (Put is atomic; an
//     S3 multipart upload is invisible until completed) and earlier parts
//     under backups/<id>/ without an entry: not listed, removed by a later
//     Run once older than Options.StaleAfter;
//   - while waiting for WAL: all parts, no entry: the same;
//   - after the entry: a complete backup.
package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/pg"
	"github.com/pitr-dev/pitr/internal/progress"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/wal"
)

// Options configures Run.
type Options struct {
	Repo *repo.Repo
	DSN  string // libpq-style; "" uses PGHOST, PGPORT, PGUSER, PGPASSWORD
	Fast bool   // checkpoint at once instead of spreading it
	// WALTimeout bounds the wait for the backup's WAL to reach the
	// repository through archive_command.
	WALTimeout time.Duration
	// StaleAfter is the age after which an incomplete backup's leftovers
	// are removed by a later Run. 0 keeps them.
	StaleAfter  time.Duration
	PitrVersion string
	Now         func() time.Time
	// Progress hears the bytes the server has sent, against its estimate
	// of the total; nil shows nothing (and asks the server for no estimate).
	Progress progress.Meter
}

// ErrWALTimeout is wrapped when the backup's WAL did not arrive in time.
var ErrWALTimeout = errors.New("WAL needed by the backup was not archived in time")

// Run takes a base backup and returns its entry once it is complete.
func Run(ctx context.Context, opts Options) (_ *catalog.Backup, err error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.WALTimeout == 0 {
		opts.WALTimeout = 5 * time.Minute
	}
	log := zerolog.Ctx(ctx)
	conn, err := pg.Connect(ctx, opts.DSN, true)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	sys, err := pg.IdentifySystem(ctx, conn)
	if err != nil {
		return nil, err
	}
	srv, err := pg.ServerInfo(ctx, conn)
	if err != nil {
		return nil, err
	}
	// Before anything is stored: the WAL this backup needs is only
	// archived into a repository that belongs to its cluster, so another
	// cluster's backup would be listed without any of its WAL.
	r := opts.Repo
	if err := r.Ensure(ctx, opts.PitrVersion); err != nil {
		return nil, err
	}
	cluster := repo.Cluster{SystemID: sys.SystemID, PGVersion: srv.Version, By: "backup", Version: opts.PitrVersion}
	if err := r.EnsureCluster(ctx, cluster); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if opts.StaleAfter > 0 {
		if n, err := r.CleanIncompleteBackups(ctx, opts.Now().Add(-opts.StaleAfter)); err != nil {
			log.Warn().Err(err).Msg("could not remove leftovers of interrupted backups")
		} else if n > 0 {
			log.Info().Int("objects", n).Msg("removed leftovers of interrupted backups")
		}
	}
	host, _ := os.Hostname()
	start := opts.Now().UTC()
	id, err := r.ReserveID(ctx, start, catalog.BackupReservationKey)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	b := &catalog.Backup{
		ID: id, Format: catalog.FormatVersion, StartTime: start,
		PGVersion: srv.Version, SystemID: sys.SystemID, WALSegmentSize: srv.WALSegmentSize,
		PitrVersion: opts.PitrVersion, Host: host, Encrypted: r.Encrypted(),
	}
	b.Label = "pitr " + b.ID
	defer func() {
		if err != nil && len(b.Parts) == 0 { // nothing stored under the id but its reservation
			key, _ := catalog.BackupReservationKey(b.ID)
			r.ReleaseID(ctx, key)
		}
	}()
	// Each worker holds about 13 MiB; more than 4 gained nothing in the
	// benchmark and would break the 256 MiB goal on big hosts.
	parts := r
	if r.Codec().Workers == 0 {
		parts = r.WithWorkers(min(runtime.NumCPU(), 4))
	}
	bb, err := pg.StartBaseBackup(ctx, conn, pg.BaseBackupOptions{Label: b.Label, Fast: opts.Fast, Manifest: true, Progress: serverProgress(opts.Progress)})
	if err != nil {
		return nil, err
	}
	b.StartLSN, b.Timeline = bb.StartLSN.String(), bb.Timeline
	log.Info().Str("backup", b.ID).Str("start_lsn", b.StartLSN).Uint32("timeline", b.Timeline).Msg("backup started")
	for {
		part, err := bb.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		p, err := storePart(ctx, parts, b.ID, part.Name, bb)
		if err != nil {
			return nil, err
		}
		if part.Tablespace != nil && part.Tablespace.OID != 0 {
			b.Tablespaces = append(b.Tablespaces, catalog.Tablespace{OID: part.Tablespace.OID, Location: part.Tablespace.Location})
		}
		b.Parts = append(b.Parts, p)
		b.Bytes += p.Bytes
		b.Stored += p.Stored
		log.Info().Str("backup", b.ID).Str("part", p.Name).Int64("bytes", p.Bytes).Int64("stored", p.Stored).Msg("backup part stored")
	}
	end, tli, err := bb.Finish(ctx)
	if err != nil {
		return nil, err
	}
	b.EndLSN, b.EndTime = end.String(), opts.Now().UTC()
	b.StartWAL = wal.SegmentOf(wal.Timeline(b.Timeline), uint64(bb.StartLSN), srv.WALSegmentSize, false)
	b.EndWAL = wal.SegmentOf(wal.Timeline(tli), uint64(end), srv.WALSegmentSize, true)
	if err := waitForWAL(ctx, opts, b); err != nil {
		return nil, err
	}
	entry := catalog.MarshalBackup(b)
	if err := r.SaveEntry(ctx, catalog.BackupEntryKey(b.ID), entry); err != nil {
		return nil, fmt.Errorf("write backup entry: %w", err)
	}
	log.Info().Str("backup", b.ID).Str("end_lsn", b.EndLSN).Int64("bytes", b.Bytes).Int64("stored", b.Stored).
		Dur("took", b.EndTime.Sub(b.StartTime).Round(time.Millisecond)).Msg("backup complete")
	return b, nil
}

// serverProgress passes BASE_BACKUP's progress on to m (nil for none).
func serverProgress(m progress.Meter) func(done, total int64) {
	if m == nil {
		return nil
	}
	var last atomic.Int64
	return func(done, total int64) {
		m.SetTotal(max(total, 0))
		m.Add(done - last.Swap(done))
	}
}

// storePart streams one part through the envelope into storage.
func storePart(ctx context.Context, r *repo.Repo, id, name string, src io.Reader) (catalog.Part, error) {
	key, err := catalog.BackupPartKey(id, name, r.Encrypted())
	if err != nil {
		return catalog.Part{}, err
	}
	w, err := r.PutSealed(ctx, key, src)
	if err != nil {
		return catalog.Part{}, fmt.Errorf("backup part %s: %w", name, err)
	}
	return catalog.Part{Name: name, Key: key, SHA256: w.SHA256, Bytes: w.Bytes, Stored: w.Stored}, nil
}

// waitForWAL waits until every segment from the backup's start to its end
// is archived. BASE_BACKUP ended with a WAL switch, so archive_command is
// already on its way with the last one.
func waitForWAL(ctx context.Context, opts Options, b *catalog.Backup) error {
	deadline := time.Now().Add(opts.WALTimeout)
	for {
		ix, err := opts.Repo.WALIndex(ctx)
		if err != nil {
			return err
		}
		c := ix.OwnChain(b.StartWAL, b.WALSegmentSize)
		if c.CoversWhole(b.EndWAL, b.WALSegmentSize) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: segment %s still missing after %s (is archive_command = 'pitr wal-push %%p' or pitr wal-receive running? see pg_stat_archiver)",
				ErrWALTimeout, c.Missing, opts.WALTimeout)
		}
		// The missing segment is usually being uploaded right now: watch
		// its name closely (one small listing), and list all WAL again
		// once it is there, or every few seconds for other timelines.
		next := time.Now().Add(3 * time.Second)
		for time.Now().Before(next) && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
			if objs, err := wal.ListWAL(ctx, opts.Repo.Store(), c.Missing); err == nil && len(objs) > 0 {
				break
			}
		}
	}
}
