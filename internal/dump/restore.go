package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
)

// RestoreOptions configures Restore.
type RestoreOptions struct {
	Repo     *repo.Repo // its codec with Identities for an encrypted dump
	DSN      string     // libpq-style; its database is replaced by TargetDB
	Database string     // the dumped database
	ID       string     // dump id, or "latest"/"" for the newest
	TargetDB string     // the database to restore into
	// Create makes TargetDB first (CREATE DATABASE, connected to database
	// postgres) and drops it again if the restore fails.
	Create bool
	// Clean drops objects before recreating them (pg_restore --clean
	// --if-exists), for restoring over an existing copy.
	Clean bool
}

// holdBack is how many bytes of the archive pg_restore gets only after the
// whole plaintext matched its SHA-256: the archive's last data block ends
// in them, so pg_restore cannot finish (and commit) on unverified bytes.
const holdBack = 64 << 10

// Restore pipes a dump into pg_restore, in one transaction, and returns its
// entry. A failure of any kind leaves TargetDB as it was (or absent, with
// Create).
func Restore(ctx context.Context, opts RestoreOptions) (*catalog.Dump, error) {
	log := zerolog.Ctx(ctx)
	d, err := opts.Repo.Dump(ctx, opts.Database, opts.ID)
	if err != nil {
		return nil, err
	}
	if opts.TargetDB == "" {
		return nil, errors.New("no target database")
	}
	if d.Kind == catalog.KindGlobals {
		return nil, fmt.Errorf("dump %s of %s holds roles and tablespaces, not a database: apply it with restore-dump --globals", d.ID, d.Database)
	}
	if opts.Create {
		if err := createDB(ctx, opts.DSN, opts.TargetDB); err != nil {
			return nil, err
		}
	}
	err = restore(ctx, opts, d)
	if err != nil && opts.Create {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		if derr := dropDB(dctx, opts.DSN, opts.TargetDB); derr != nil {
			log.Warn().Err(derr).Str("database", opts.TargetDB).Msg("could not drop the database created for the failed restore")
		}
		cancel()
	}
	if err != nil {
		return nil, err
	}
	log.Info().Str("dump", d.ID).Str("database", d.Database).Str("target", opts.TargetDB).Msg("dump restored")
	return d, nil
}

func restore(ctx context.Context, opts RestoreOptions, d *catalog.Dump) error {
	srv, err := serverInfo(ctx, opts.DSN, opts.TargetDB)
	if err != nil {
		return err
	}
	tool, _, err := findTool(ctx, "pg_restore", srv.Major())
	if err != nil {
		return err
	}
	conn, password, err := connString(opts.DSN, opts.TargetDB)
	if err != nil {
		return err
	}
	plain, err := opts.Repo.OpenSealed(ctx, d.Key, d.Encrypted, d.SHA256)
	if err != nil {
		return fmt.Errorf("dump %s of %s: %w", d.ID, d.Database, err)
	}
	defer plain.Close()

	args := []string{"--dbname=" + conn, "--no-password", "--exit-on-error", "--single-transaction"}
	if opts.Clean {
		args = append(args, "--clean", "--if-exists")
	}
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = toolEnv(password)
	stderr := &stderrTail{}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pg_restore: %w", err)
	}
	hb := &holdBackWriter{w: stdin, keep: holdBack}
	_, err = io.Copy(hb, readOnly{plain})
	var werr writeError
	switch {
	case errors.As(err, &werr):
		// pg_restore stopped reading: it failed, and says why.
		stdin.Close()
		return toolError("pg_restore", cmd.Wait(), stderr)
	case err != nil:
		// Unverified bytes: stop pg_restore before it could commit; the
		// server rolls the transaction back.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("dump %s of %s refused, nothing restored: %w", d.ID, d.Database, err)
	}
	if err := hb.flush(); err != nil {
		stdin.Close()
		return toolError("pg_restore", cmd.Wait(), stderr)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return toolError("pg_restore", err, stderr)
	}
	return nil
}

// readOnly hides the opener's WriteTo so that io.Copy's errors from the
// writer come wrapped in writeError.
type readOnly struct{ io.Reader }

type writeError struct{ error }

func (e writeError) Unwrap() error { return e.error }

// holdBackWriter passes everything but the last keep bytes on; flush
// sends those.
type holdBackWriter struct {
	w    io.Writer
	keep int
	buf  []byte
}

func (h *holdBackWriter) Write(p []byte) (int, error) {
	h.buf = append(h.buf, p...)
	if over := len(h.buf) - h.keep; over > 0 {
		if _, err := h.w.Write(h.buf[:over]); err != nil {
			return 0, writeError{err}
		}
		n := copy(h.buf, h.buf[over:])
		h.buf = h.buf[:n]
	}
	return len(p), nil
}

func (h *holdBackWriter) flush() error {
	_, err := h.w.Write(h.buf)
	h.buf = h.buf[:0]
	return err
}

func createDB(ctx context.Context, dsn, db string) error {
	conn, err := connect(ctx, dsn, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+quoteIdent(db)).ReadAll(); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	return nil
}

func dropDB(ctx context.Context, dsn, db string) error {
	conn, err := connect(ctx, dsn, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+quoteIdent(db)).ReadAll(); err != nil {
		return fmt.Errorf("drop database %s: %w", db, err)
	}
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
