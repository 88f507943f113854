// Package dump takes logical dumps of single databases with pg_dump and
// restores them with pg_restore, streaming through the envelope: neither
// side keeps a local copy of the archive.
//
// Run first reserves the dump's id with a create-only
// dumps/<db>/<id>/reserved.json (repo.ReserveID): a second dump of the
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
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
)

// Options configures Run.
type Options struct {
	Repo        *repo.Repo
	DSN         string // libpq-style; its database is replaced by Database
	Database    string
	PitrVersion string
	Now         func() time.Time
}

// Run dumps one database and returns its entry once it is stored.
func Run(ctx context.Context, opts Options) (*catalog.Dump, error) {
	if opts.Database == catalog.GlobalsDatabase {
		return nil, fmt.Errorf("database name %s is reserved for the globals pitr dump stores with every run", catalog.GlobalsDatabase)
	}
	return take(ctx, opts, job{entryDB: opts.Database, connectDB: opts.Database, tool: "pg_dump",
		args: []string{"--format=custom", "--compress=0"}})
}

// job is what Run and Globals store: tool's output, under entryDB.
type job struct {
	entryDB, connectDB string
	tool               string
	args               []string // before --no-password and --dbname
	kind               string
}

func take(ctx context.Context, opts Options, j job) (*catalog.Dump, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := zerolog.Ctx(ctx)
	r := opts.Repo
	if err := r.Ensure(ctx, opts.PitrVersion); err != nil {
		return nil, err
	}
	srv, err := serverInfo(ctx, opts.DSN, j.connectDB)
	if err != nil {
		return nil, err
	}
	tool, toolVersion, err := findTool(ctx, j.tool, srv.Major())
	if err != nil {
		return nil, err
	}
	conn, password, err := connString(opts.DSN, j.connectDB)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	start := opts.Now().UTC()
	id, err := r.ReserveID(ctx, start, func(id string) (string, error) {
		return catalog.DumpReservationKey(j.entryDB, id)
	})
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", j.entryDB, err)
	}
	d := &catalog.Dump{
		ID: id, Format: catalog.FormatVersion, Database: j.entryDB, Kind: j.kind,
		PGVersion: srv.Version, DumpVersion: toolVersion, PitrVersion: opts.PitrVersion, Host: host,
		StartTime: start, Encrypted: r.Encrypted(),
	}
	if d.Key, err = catalog.DumpObjectKey(d.Database, d.ID, d.Encrypted); err != nil {
		return nil, err
	}
	entryKey, err := catalog.DumpEntryKey(d.Database, d.ID)
	if err != nil {
		return nil, err
	}
	log.Info().Str("database", d.Database).Str("dump", d.ID).Str(j.tool, tool).Msg("dump started")
	args := append(append([]string{}, j.args...), "--no-password", "--dbname="+conn)
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = toolEnv(password)
	if err := store(ctx, r, cmd, j.tool, d); err != nil {
		// Put never completed, but make sure: an object without an entry
		// is harmless, yet nobody needs it.
		r.Discard(ctx, d.Key)
		if key, err := catalog.DumpReservationKey(d.Database, d.ID); err == nil {
			r.ReleaseID(ctx, key)
		}
		return nil, fmt.Errorf("dump %s: %w", d.Database, err)
	}
	d.EndTime = opts.Now().UTC()
	if err := r.SaveEntry(ctx, entryKey, catalog.MarshalDump(d)); err != nil {
		return nil, fmt.Errorf("write dump entry: %w", err)
	}
	log.Info().Str("database", d.Database).Str("dump", d.ID).Int64("bytes", d.Bytes).Int64("stored", d.Stored).
		Dur("took", d.EndTime.Sub(d.StartTime).Round(time.Millisecond)).Msg("dump complete")
	return d, nil
}

// store runs pg_dump (or pg_dumpall, name) and streams its output into
// d.Key. The upload is completed only after the tool exited 0 with nothing
// on stderr.
func store(ctx context.Context, r *repo.Repo, cmd *exec.Cmd, name string, d *catalog.Dump) error {
	stderr := &stderrTail{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	w, err := r.PutSealed(ctx, d.Key, &exitReader{r: out, cmd: cmd, name: name, stderr: stderr, ctx: ctx})
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait() // reaped already when pg_dump's exit was the error
		return err
	}
	d.SHA256, d.Bytes, d.Stored = w.SHA256, w.Bytes, w.Stored
	return nil
}

// exitReader reads pg_dump's output and, at its end, waits for pg_dump:
// the end of the stream is io.EOF only when pg_dump exited 0 with nothing
// on stderr, so a failed dump is never stored as if it were whole.
type exitReader struct {
	r      io.Reader
	cmd    *exec.Cmd
	name   string
	stderr *stderrTail
	ctx    context.Context
	err    error
}

func (e *exitReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.r.Read(p)
	if err != io.EOF {
		return n, err
	}
	werr := e.cmd.Wait()
	switch {
	case e.ctx.Err() != nil:
		e.err = e.ctx.Err()
	case werr != nil || len(e.stderr.buf) > 0:
		e.err = toolError(e.name, werr, e.stderr)
	default:
		e.err = io.EOF
	}
	return n, e.err
}
