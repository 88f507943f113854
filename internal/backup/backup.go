// Package backup takes base backups over the replication protocol and
// streams them into the repository, and lists the backups there.
//
// Run first reserves the backup's id with a create-only
// backups/<id>/reserved.json (catalog.ReserveID): a second backup started in
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
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/pg"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// Options configures Run.
type Options struct {
	Store storage.Storage
	Codec *envelope.Codec
	DSN   string // libpq-style; "" uses PGHOST, PGPORT, PGUSER, PGPASSWORD
	Fast  bool   // checkpoint at once instead of spreading it
	// WALTimeout bounds the wait for the backup's WAL to reach the
	// repository through archive_command.
	WALTimeout time.Duration
	// StaleAfter is the age after which an incomplete backup's leftovers
	// are removed by a later Run. 0 keeps them.
	StaleAfter  time.Duration
	PitrVersion string
	Now         func() time.Time
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
	if err := wal.EnsureMarker(ctx, opts.Store, opts.PitrVersion); err != nil {
		return nil, err
	}
	cluster := wal.Cluster{SystemID: sys.SystemID, PGVersion: srv.Version, By: "backup", Version: opts.PitrVersion}
	if err := wal.EnsureCluster(ctx, opts.Store, cluster); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if opts.StaleAfter > 0 {
		if n, err := CleanIncomplete(ctx, opts.Store, opts.Now().Add(-opts.StaleAfter)); err != nil {
			log.Warn().Err(err).Msg("could not remove leftovers of interrupted backups")
		} else if n > 0 {
			log.Info().Int("objects", n).Msg("removed leftovers of interrupted backups")
		}
	}
	host, _ := os.Hostname()
	start := opts.Now().UTC()
	id, err := catalog.ReserveID(ctx, opts.Store, start, catalog.BackupReservationKey)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	b := &catalog.Backup{
		ID: id, Format: catalog.FormatVersion, StartTime: start,
		PGVersion: srv.Version, SystemID: sys.SystemID, WALSegmentSize: srv.WALSegmentSize,
		PitrVersion: opts.PitrVersion, Host: host, Encrypted: opts.Codec.Encrypt,
	}
	b.Label = "pitr " + b.ID
	defer func() {
		if err != nil && len(b.Parts) == 0 { // nothing stored under the id but its reservation
			key, _ := catalog.BackupReservationKey(b.ID)
			catalog.ReleaseID(ctx, opts.Store, key)
		}
	}()
	bb, err := pg.StartBaseBackup(ctx, conn, pg.BaseBackupOptions{Label: b.Label, Fast: opts.Fast, Manifest: true})
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
		p, err := storePart(ctx, opts, b.ID, part.Name, bb)
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
	if err := catalog.CreateEntry(ctx, opts.Store, catalog.BackupEntryKey(b.ID), entry); err != nil {
		return nil, fmt.Errorf("write backup entry: %w", err)
	}
	log.Info().Str("backup", b.ID).Str("end_lsn", b.EndLSN).Int64("bytes", b.Bytes).Int64("stored", b.Stored).
		Dur("took", b.EndTime.Sub(b.StartTime).Round(time.Millisecond)).Msg("backup complete")
	return b, nil
}

// storePart streams one part through the envelope into storage.
func storePart(ctx context.Context, opts Options, id, name string, r io.Reader) (catalog.Part, error) {
	key, err := catalog.BackupPartKey(id, name, opts.Codec.Encrypt)
	if err != nil {
		return catalog.Part{}, err
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := opts.Store.Put(ctx, key, pr)
		pr.CloseWithError(err) // unblocks the writer if Put gave up early
		done <- err
	}()
	cw := &countingWriter{w: pw}
	codec := *opts.Codec
	if codec.Workers == 0 {
		// Each worker holds about 13 MiB; more than 4 gained nothing in
		// the benchmark and would break the 256 MiB goal on big hosts.
		codec.Workers = min(runtime.NumCPU(), 4)
	}
	s, err := codec.Seal(cw)
	if err == nil {
		_, err = io.Copy(s, r)
		if err == nil {
			err = s.Close()
		}
	}
	if err != nil {
		pw.CloseWithError(err)
		<-done //nolint:errcheck // the uploader fails on the closed pipe; err says why
		return catalog.Part{}, fmt.Errorf("backup part %s: %w", name, err)
	}
	pw.Close()
	if err := <-done; err != nil {
		return catalog.Part{}, fmt.Errorf("store backup part %s: %w", name, err)
	}
	return catalog.Part{Name: name, Key: key, SHA256: s.Sum(), Bytes: s.Size(), Stored: cw.n}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// waitForWAL waits until every segment from the backup's start to its end
// is archived. BASE_BACKUP ended with a WAL switch, so archive_command is
// already on its way with the last one.
func waitForWAL(ctx context.Context, opts Options, b *catalog.Backup) error {
	deadline := time.Now().Add(opts.WALTimeout)
	for {
		ix, err := wal.LoadIndex(ctx, opts.Store)
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
			if objs, err := wal.ListWAL(ctx, opts.Store, c.Missing); err == nil && len(objs) > 0 {
				break
			}
		}
	}
}

// List returns the readable backup entries, oldest first. Damaged entries
// are skipped (Load names them); one bad entry does not hide the others.
func List(ctx context.Context, st storage.Storage) ([]*catalog.Backup, error) {
	l, err := Load(ctx, st)
	if err != nil {
		return nil, err
	}
	return l.Backups, nil
}

// ErrDamaged is wrapped when a backup's entry exists but cannot be read as
// one (truncated, edited, or written by a newer pitr).
var ErrDamaged = errors.New("damaged entry")

// Get reads one backup's entry.
func Get(ctx context.Context, st storage.Storage, id string) (*catalog.Backup, error) {
	if !catalog.ValidBackupID(id) {
		return nil, fmt.Errorf("%q is not a backup id (want e.g. 20261122T020000Z)", id)
	}
	b, reason, err := read(ctx, st, id)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		return nil, fmt.Errorf("backup %s: %w %s: %s", id, ErrDamaged, catalog.BackupEntryKey(id), reason)
	}
	return b, nil
}

// read returns an entry, or why it is damaged, or a storage error.
func read(ctx context.Context, st storage.Storage, id string) (b *catalog.Backup, damaged string, err error) {
	rc, err := st.Get(ctx, catalog.BackupEntryKey(id))
	if errors.Is(err, storage.ErrNotExist) {
		return nil, "", fmt.Errorf("backup %s: no such complete backup", id)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read backup %s: %w", id, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxEntryBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("read backup %s: %w", id, err)
	}
	if len(data) > maxEntryBytes {
		return nil, fmt.Sprintf("larger than %d bytes", maxEntryBytes), nil
	}
	b, err = catalog.UnmarshalBackup(data)
	if err != nil {
		return nil, err.Error(), nil
	}
	if b.ID != id {
		return nil, "entry names id " + b.ID, nil
	}
	return b, "", nil
}

const maxEntryBytes = 16 << 20

// Incomplete returns the ids of backups with objects but no entry, and the
// time of their newest object.
func Incomplete(ctx context.Context, st storage.Storage) (map[string]time.Time, error) {
	objs, err := listObjects(ctx, st)
	if err != nil {
		return nil, err
	}
	return objs.incomplete(), nil
}

// CleanIncomplete deletes the objects of incomplete backups whose id (start
// time) and newest object are both before cutoff, and aborts the multipart
// uploads a killed backup left (see abortStaleUploads). It returns how many
// objects it deleted and uploads it aborted.
func CleanIncomplete(ctx context.Context, st storage.Storage, cutoff time.Time) (int, error) {
	inc, err := Incomplete(ctx, st)
	if err != nil {
		return 0, err
	}
	n := 0
	for id, newest := range inc {
		started, _ := catalog.BackupIDTime(id)
		if !started.Before(cutoff) || !newest.Before(cutoff) {
			continue
		}
		var keys []string
		if err := st.List(ctx, catalog.BackupPrefix(id), func(oi storage.ObjectInfo) error {
			keys = append(keys, oi.Key)
			return nil
		}); err != nil {
			return n, err
		}
		for _, k := range keys {
			if err := st.Delete(ctx, k); err != nil {
				return n, err
			}
			n++
		}
	}
	aborted, err := abortStaleUploads(ctx, st, cutoff)
	return n + aborted, err
}
