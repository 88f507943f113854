// Package dump takes logical dumps of single databases with pg_dump and
// restores them with pg_restore, streaming through the envelope: neither
// side keeps a local copy of the archive.
//
// Run first reserves the dump's id with a create-only
// dumps/<db>/<id>/reserved.json (catalog.ReserveID): a second dump of the
// database in the same second takes <id>-1. A dump is complete only when
// its entry, dumps/<db>/<id>/dump.json, exists; Run writes it last
// (create-only). What a crash or a failure leaves:
//   - pg_dump failing or printing to stderr, or pitr dying mid-stream: the
//     archive's upload is abandoned before it completes (Put is atomic), so
//     no object at all, and no entry: nothing listed;
//   - pitr dying after the archive is stored but before the entry: an
//     unlisted object under dumps/<db>/<id>/, harmless;
//   - after the entry: a complete dump.
//
// pg_dump writes the custom format (-Fc) uncompressed; zstd in the envelope
// compresses it faster and smaller. Restore runs pg_restore in one
// transaction and holds back the archive's last bytes until the plaintext
// checksum is verified, so a tampered or truncated object is refused
// before pg_restore can commit anything.
package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// Options configures Run.
type Options struct {
	Store       storage.Storage
	Codec       *envelope.Codec
	DSN         string // libpq-style; its database is replaced by Database
	Database    string
	PitrVersion string
	Now         func() time.Time
}

// Run dumps one database and returns its entry once it is stored.
func Run(ctx context.Context, opts Options) (*catalog.Dump, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := zerolog.Ctx(ctx)
	if err := wal.EnsureMarker(ctx, opts.Store, opts.PitrVersion); err != nil {
		return nil, err
	}
	srv, err := serverInfo(ctx, opts.DSN, opts.Database)
	if err != nil {
		return nil, err
	}
	tool, toolVersion, err := findTool(ctx, "pg_dump", srv.Major())
	if err != nil {
		return nil, err
	}
	conn, password, err := connString(opts.DSN, opts.Database)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	start := opts.Now().UTC()
	id, err := catalog.ReserveID(ctx, opts.Store, start, func(id string) (string, error) {
		return catalog.DumpReservationKey(opts.Database, id)
	})
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", opts.Database, err)
	}
	d := &catalog.Dump{
		ID: id, Format: catalog.FormatVersion, Database: opts.Database,
		PGVersion: srv.Version, DumpVersion: toolVersion, PitrVersion: opts.PitrVersion, Host: host,
		StartTime: start, Encrypted: opts.Codec.Encrypt,
	}
	if d.Key, err = catalog.DumpObjectKey(d.Database, d.ID, d.Encrypted); err != nil {
		return nil, err
	}
	entryKey, err := catalog.DumpEntryKey(d.Database, d.ID)
	if err != nil {
		return nil, err
	}
	log.Info().Str("database", d.Database).Str("dump", d.ID).Str("pg_dump", tool).Msg("dump started")
	cmd := exec.CommandContext(ctx, tool, "--format=custom", "--compress=0", "--no-password", "--dbname="+conn)
	cmd.Env = toolEnv(password)
	if err := store(ctx, opts, cmd, d); err != nil {
		// Put never completed, but make sure: an object without an entry
		// is harmless, yet nobody needs it.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_ = opts.Store.Delete(dctx, d.Key)
		cancel()
		if key, err := catalog.DumpReservationKey(d.Database, d.ID); err == nil {
			catalog.ReleaseID(ctx, opts.Store, key)
		}
		return nil, fmt.Errorf("dump %s: %w", d.Database, err)
	}
	d.EndTime = opts.Now().UTC()
	if err := catalog.CreateEntry(ctx, opts.Store, entryKey, catalog.MarshalDump(d)); err != nil {
		return nil, fmt.Errorf("write dump entry: %w", err)
	}
	log.Info().Str("database", d.Database).Str("dump", d.ID).Int64("bytes", d.Bytes).Int64("stored", d.Stored).
		Dur("took", d.EndTime.Sub(d.StartTime).Round(time.Millisecond)).Msg("dump complete")
	return d, nil
}

// store runs pg_dump and streams its output into d.Key. The upload is
// completed only after pg_dump exited 0 with nothing on stderr.
func store(ctx context.Context, opts Options, cmd *exec.Cmd, d *catalog.Dump) error {
	stderr := &stderrTail{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pg_dump: %w", err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := opts.Store.Put(ctx, d.Key, pr)
		pr.CloseWithError(err) // unblocks the writer if Put gave up early
		done <- err
	}()
	cw := &countingWriter{w: pw}
	s, err := opts.Codec.Seal(cw)
	if err == nil {
		_, err = io.Copy(s, out)
		if err == nil {
			err = s.Close()
		}
	}
	if err != nil {
		_ = cmd.Process.Kill()
	}
	werr := cmd.Wait()
	switch {
	case err != nil:
	case ctx.Err() != nil:
		err = ctx.Err()
	case werr != nil || len(stderr.buf) > 0:
		err = toolError("pg_dump", werr, stderr)
	}
	if err != nil {
		pw.CloseWithError(err)
		<-done //nolint:errcheck // the uploader fails on the closed pipe; err says why
		return err
	}
	pw.Close()
	if err := <-done; err != nil {
		return fmt.Errorf("store dump: %w", err)
	}
	d.SHA256, d.Bytes, d.Stored = s.Sum(), s.Size(), cw.n
	return nil
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

// List returns the complete dumps of db (every database when db is ""),
// by database, oldest first. Damaged entries are skipped (Load names them).
func List(ctx context.Context, st storage.Storage, db string) ([]*catalog.Dump, error) {
	dumps, _, err := Load(ctx, st, db)
	return dumps, err
}

// Damaged names a dump whose entry exists but cannot be read.
type Damaged struct {
	Database string `json:"database"`
	ID       string `json:"id"`
	Reason   string `json:"reason"`
}

// ErrDamaged is wrapped when a dump's entry exists but cannot be read as
// one.
var ErrDamaged = errors.New("damaged entry")

// Load is List that also names the damaged entries it skipped (never nil).
func Load(ctx context.Context, st storage.Storage, db string) ([]*catalog.Dump, []Damaged, error) {
	prefix := catalog.DumpsPrefix
	if db != "" {
		prefix = catalog.DumpDatabasePrefix(db)
	}
	type ref struct{ db, id string }
	var refs []ref
	err := st.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if d, id, ok := catalog.ParseDumpEntryKey(oi.Key); ok {
			refs = append(refs, ref{d, id})
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list dumps: %w", err)
	}
	sort.Slice(refs, func(i, j int) bool {
		if refs[i].db != refs[j].db {
			return refs[i].db < refs[j].db
		}
		return refs[i].id < refs[j].id
	})
	out := make([]*catalog.Dump, 0, len(refs))
	damaged := []Damaged{}
	for _, r := range refs {
		d, reason, err := read(ctx, st, r.db, r.id)
		if err != nil {
			return nil, nil, err
		}
		if reason != "" {
			damaged = append(damaged, Damaged{Database: r.db, ID: r.id, Reason: reason})
			continue
		}
		out = append(out, d)
	}
	return out, damaged, nil
}

// Get reads one dump's entry; id "latest" (or "") picks the newest
// readable one.
func Get(ctx context.Context, st storage.Storage, db, id string) (*catalog.Dump, error) {
	if id == "" || id == "latest" {
		all, err := List(ctx, st, db)
		if err != nil {
			return nil, err
		}
		if len(all) == 0 {
			return nil, fmt.Errorf("no dumps of database %s in the repository", db)
		}
		return all[len(all)-1], nil
	}
	d, reason, err := read(ctx, st, db, id)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		key, _ := catalog.DumpEntryKey(db, id)
		return nil, fmt.Errorf("dump %s of %s: %w %s: %s", id, db, ErrDamaged, key, reason)
	}
	return d, nil
}

// read returns an entry, or why it is damaged, or a storage error.
func read(ctx context.Context, st storage.Storage, db, id string) (d *catalog.Dump, damaged string, err error) {
	key, err := catalog.DumpEntryKey(db, id)
	if err != nil {
		return nil, "", err
	}
	rc, err := st.Get(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, "", fmt.Errorf("dump %s of %s: no such complete dump", id, db)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read dump %s: %w", id, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20+1))
	if err != nil {
		return nil, "", fmt.Errorf("read dump %s: %w", id, err)
	}
	if len(data) > 1<<20 {
		return nil, "larger than 1 MiB", nil
	}
	d, err = catalog.UnmarshalDump(data)
	if err != nil {
		return nil, err.Error(), nil
	}
	if d.ID != id || d.Database != db {
		return nil, fmt.Sprintf("entry names %s of %s", d.ID, d.Database), nil
	}
	return d, "", nil
}
