// Package backup takes base backups and streams them into the repository
// (internal/repo lists them), by one of two methods (Options.Method) that
// store the same parts: stream asks the server for BASE_BACKUP over the
// replication protocol; direct, on the database host, reads the data
// directory itself between pg_backup_start and pg_backup_stop (direct.go,
// with sendDir's rules in datadir.go, the manifest in manifest.go and data
// checksum verification in pagecheck.go), which saves the walsender's tar
// work and reads with several readers.
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
//   - direct: killed or failed before pg_backup_stop answered, the
//     session's end aborts the backup on the server; the parts stored are
//     the same leftovers;
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

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
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
	// Method is MethodAuto (also ""), MethodDirect or MethodStream: see direct.go.
	Method string
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
	d, err := chooseMethod(ctx, opts, srv, sys.SystemID)
	if err != nil {
		return nil, err
	}
	if d != nil {
		defer d.conn.Close(context.Background()) // without pg_backup_stop, the server aborts the backup
		conn.Close(ctx)                          // the walsender is not needed: its slot is free for others
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
	var end pglogrepl.LSN
	var tli uint32
	if d != nil {
		end, tli, err = runDirect(ctx, d, opts, parts, b)
	} else {
		end, tli, err = runStream(ctx, conn, opts, parts, b)
	}
	if err != nil {
		return nil, err
	}
	b.EndLSN, b.EndTime = end.String(), opts.Now().UTC()
	startLSN, err := pglogrepl.ParseLSN(b.StartLSN)
	if err != nil {
		return nil, fmt.Errorf("backup: start position %q: %w", b.StartLSN, err)
	}
	b.StartWAL = wal.SegmentOf(wal.Timeline(b.Timeline), uint64(startLSN), srv.WALSegmentSize, false)
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

// chooseMethod picks how to read the cluster (Options.Method) and logs why;
// a direct backup comes with its session.
func chooseMethod(ctx context.Context, opts Options, srv pg.Server, systemID string) (*direct, error) {
	log := zerolog.Ctx(ctx)
	switch opts.Method {
	case MethodStream:
		log.Info().Str("method", MethodStream).Str("reason", "backup_method: stream").Msg("backup method")
		return nil, nil
	case "", MethodAuto, MethodDirect:
	default:
		return nil, fmt.Errorf("backup: unknown backup_method %q (auto, direct or stream)", opts.Method)
	}
	d, err := prepareDirect(ctx, opts, srv, systemID)
	switch {
	case err == nil:
		log.Info().Str("method", MethodDirect).Str("pgdata", srv.DataDir).Str("reason", "the data directory is readable here").Msg("backup method")
		return d, nil
	case opts.Method == MethodDirect:
		return nil, fmt.Errorf("backup_method direct: %w", err)
	case errors.Is(err, ErrNotLocal):
		log.Info().Str("method", MethodStream).Str("reason", err.Error()).Msg("backup method")
		return nil, nil
	default:
		return nil, err
	}
}

// runStream reads the cluster with BASE_BACKUP on conn.
func runStream(ctx context.Context, conn *pgconn.PgConn, opts Options, parts *repo.Repo, b *catalog.Backup) (pglogrepl.LSN, uint32, error) {
	log := zerolog.Ctx(ctx)
	bb, err := pg.StartBaseBackup(ctx, conn, pg.BaseBackupOptions{Label: b.Label, Fast: opts.Fast, Manifest: true, Progress: serverProgress(opts.Progress)})
	if err != nil {
		return 0, 0, err
	}
	b.StartLSN, b.Timeline = bb.StartLSN.String(), bb.Timeline
	log.Info().Str("backup", b.ID).Str("start_lsn", b.StartLSN).Uint32("timeline", b.Timeline).Msg("backup started")
	for {
		part, err := bb.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, err
		}
		var ts *catalog.Tablespace
		if part.Tablespace != nil && part.Tablespace.OID != 0 {
			ts = &catalog.Tablespace{OID: part.Tablespace.OID, Location: part.Tablespace.Location}
		}
		if err := addPart(ctx, parts, b, part.Name, bb, ts); err != nil {
			return 0, 0, err
		}
	}
	return bb.Finish(ctx)
}

// runDirect reads the data directory itself (direct.go).
func runDirect(ctx context.Context, d *direct, opts Options, parts *repo.Repo, b *catalog.Backup) (pglogrepl.LSN, uint32, error) {
	res, err := d.run(ctx, b.Label, opts.Fast, opts.Progress, func(start pglogrepl.LSN) {
		b.StartLSN = start.String()
		zerolog.Ctx(ctx).Info().Str("backup", b.ID).Str("start_lsn", b.StartLSN).Msg("backup started")
	}, func(name string, src io.Reader, ts *catalog.Tablespace) error {
		return addPart(ctx, parts, b, name, src, ts)
	})
	if err != nil {
		return 0, 0, err
	}
	// A primary's timeline does not change during the backup.
	b.Timeline = res.timeline
	return res.end, res.timeline, nil
}

// addPart stores one part and records it in b.
func addPart(ctx context.Context, parts *repo.Repo, b *catalog.Backup, name string, src io.Reader, ts *catalog.Tablespace) error {
	p, err := storePart(ctx, parts, b.ID, name, src)
	if err != nil {
		return err
	}
	if ts != nil {
		b.Tablespaces = append(b.Tablespaces, *ts)
	}
	b.Parts = append(b.Parts, p)
	b.Bytes += p.Bytes
	b.Stored += p.Stored
	zerolog.Ctx(ctx).Info().Str("backup", b.ID).Str("part", p.Name).Int64("bytes", p.Bytes).Int64("stored", p.Stored).Msg("backup part stored")
	return nil
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
	w, err := r.PutLarge(ctx, key, src)
	if err != nil {
		return catalog.Part{}, fmt.Errorf("backup part %s: %w", name, err)
	}
	return catalog.Part{Name: name, Key: key, CRC32C: w.CRC32C, StoredSHA256: w.StoredSHA256, Bytes: w.Bytes, Stored: w.Stored}, nil
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
