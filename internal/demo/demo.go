// Package demo runs pitr's guided tour on the embedded default: a local
// directory repository and a scratch PostgreSQL cluster that archives its WAL
// through the pitr binary, exactly as a user would configure it.
package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pitr-dev/pitr/internal/scratch"
)

// Options configures Run.
type Options struct {
	Dir  string    // work directory; default a new temp dir
	Keep bool      // keep the work directory (and print where it is)
	Self string    // the pitr binary; copied into Dir so the server can run it
	Out  io.Writer // the narration
}

type tour struct {
	opts     Options
	dir      string
	pitr     string
	cfgFile  string
	cluster  *scratch.Cluster
	restored *scratch.Cluster
	moment   time.Time
}

// Run narrates the tour and returns the first error.
func Run(ctx context.Context, opts Options) (err error) {
	t := &tour{opts: opts}
	if t.dir, err = t.workDir(); err != nil {
		return err
	}
	defer func() {
		for _, c := range []*scratch.Cluster{t.restored, t.cluster} {
			if c != nil {
				_ = c.Stop(context.Background()) // best effort: the demo is over
			}
		}
		if opts.Keep || err != nil {
			t.say("work directory kept: %s", t.dir)
			return
		}
		os.RemoveAll(t.dir)
	}()
	steps := []func(context.Context) error{t.setUp, t.archive, t.fetchBack, t.backup, t.accident, t.restore}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	t.say("done: the rows deleted by accident are back, restored to the moment before the DELETE")
	return nil
}

func (t *tour) say(format string, args ...any) {
	fmt.Fprintf(t.opts.Out, "==> "+format+"\n", args...)
}

func (t *tour) workDir() (string, error) {
	dir := t.opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "pitr-demo-")
		if err != nil {
			return "", err
		}
		dir = d
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o755)
}

// setUp copies pitr where the server's user can run it, creates a key pair
// and a repository, and starts a cluster archiving through pitr.
func (t *tour) setUp(ctx context.Context) error {
	t.pitr = filepath.Join(t.dir, "pitr")
	if err := copyFile(t.opts.Self, t.pitr, 0o755); err != nil {
		return fmt.Errorf("copy pitr binary: %w", err)
	}
	identity := filepath.Join(t.dir, "identity.txt")
	out, err := exec.CommandContext(ctx, t.pitr, "keygen", "--output", identity).Output()
	if err != nil {
		return fmt.Errorf("pitr keygen: %w", err)
	}
	recipient := strings.TrimSpace(string(out))
	t.say("pitr keygen --output %s  -> public key %s", identity, recipient)
	repo := filepath.Join(t.dir, "repo")
	if err := os.MkdirAll(repo, 0o750); err != nil {
		return err
	}
	t.cfgFile = filepath.Join(t.dir, "pitr.yaml")
	cfg := fmt.Sprintf("repo: file://%s\nage_recipients: [%s]\nage_identity_file: %s\nlog_format: json\n", repo, recipient, identity)
	if err := os.WriteFile(t.cfgFile, []byte(cfg), 0o644); err != nil {
		return err
	}
	for _, p := range []string{repo, identity} {
		if err := scratch.ChownToPostgres(p); err != nil {
			return err
		}
	}
	archive := fmt.Sprintf("'%s' --config '%s' wal-push %%p", t.pitr, t.cfgFile)
	t.cluster, err = scratch.Init(ctx, scratch.Options{Dir: filepath.Join(t.dir, "pg"), Settings: map[string]string{
		"archive_mode": "on", "archive_command": archive,
	}})
	if err != nil {
		return err
	}
	t.say("initdb %s with archive_command = %s", t.cluster.DataDir, archive)
	if err := t.cluster.Start(ctx); err != nil {
		return err
	}
	t.say("PostgreSQL started on 127.0.0.1:%d", t.cluster.Port)
	return nil
}

// archive writes some data and switches WAL so segments get archived.
func (t *tour) archive(ctx context.Context) error {
	c := t.cluster
	if err := c.Exec(ctx, `CREATE TABLE notes (id serial PRIMARY KEY, body text, at timestamptz DEFAULT now())`); err != nil {
		return err
	}
	for i := 0; i < 3; i++ {
		if err := c.Exec(ctx, `INSERT INTO notes (body) SELECT md5(g::text) FROM generate_series(1, 20000) g`); err != nil {
			return err
		}
		if err := c.Exec(ctx, `SELECT pg_switch_wal()`); err != nil {
			return err
		}
	}
	t.say("inserted 60000 rows and switched WAL 3 times")
	deadline := time.Now().Add(60 * time.Second)
	for {
		n, err := c.QueryInt(ctx, `SELECT archived_count FROM pg_stat_archiver`)
		if err != nil {
			return err
		}
		failed, _ := c.QueryInt(ctx, `SELECT failed_count FROM pg_stat_archiver`)
		if n >= 3 {
			t.say("pg_stat_archiver: %d archived, %d failed", n, failed)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d segments archived after 60s (%d failures); see %s", n, failed, c.LogPath())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fetchBack restores the last archived segment with wal-fetch, as
// restore_command would, and compares it with pg_wal's copy.
func (t *tour) fetchBack(ctx context.Context) error {
	name, err := t.cluster.QueryString(ctx, `SELECT last_archived_wal FROM pg_stat_archiver`)
	if err != nil {
		return err
	}
	dest := filepath.Join(t.dir, "fetched-"+name)
	cmd := exec.CommandContext(ctx, t.pitr, "--config", t.cfgFile, "--log-level", "warn", "wal-fetch", name, dest)
	cmd.Stderr = t.opts.Out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pitr wal-fetch %s: %w", name, err)
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		return err
	}
	t.say("pitr wal-fetch %s %s  -> %d bytes", name, dest, len(got))
	orig, err := os.ReadFile(filepath.Join(t.cluster.DataDir, "pg_wal", name))
	if err == nil {
		if string(orig) != string(got) {
			return fmt.Errorf("fetched %s differs from pg_wal's copy", name)
		}
		t.say("identical to pg_wal/%s", name)
	}
	return nil
}

// pitrCmd runs the pitr binary with the tour's config, narrating the call.
func (t *tour) pitrCmd(ctx context.Context, env []string, args ...string) (string, error) {
	t.say("pitr %s", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, t.pitr, append([]string{"--config", t.cfgFile, "--log-level", "warn"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = t.opts.Out
	out, err := cmd.Output()
	fmt.Fprint(t.opts.Out, indent(string(out)))
	if err != nil {
		return "", fmt.Errorf("pitr %s: %w", args[0], err)
	}
	return string(out), nil
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

// backup takes a base backup over the replication protocol.
func (t *tour) backup(ctx context.Context) error {
	_, err := t.pitrCmd(ctx, []string{"PITR_PG_DSN=" + t.cluster.DSN("postgres")}, "backup")
	return err
}

// accident writes more rows, records a moment, then deletes by mistake.
func (t *tour) accident(ctx context.Context) error {
	c := t.cluster
	if err := c.Exec(ctx, `INSERT INTO notes (body) VALUES ('written after the backup')`); err != nil {
		return err
	}
	time.Sleep(1100 * time.Millisecond)
	t.moment = time.Now().UTC().Truncate(time.Millisecond)
	n, _ := c.QueryInt(ctx, `SELECT count(*) FROM notes`)
	t.say("%d rows in notes at %s (the moment to come back to)", n, t.moment.Format(time.RFC3339Nano))
	time.Sleep(1100 * time.Millisecond)
	if err := c.Exec(ctx, `DELETE FROM notes WHERE id % 2 = 0`); err != nil {
		return err
	}
	n, _ = c.QueryInt(ctx, `SELECT count(*) FROM notes`)
	t.say("DELETE FROM notes WHERE id %% 2 = 0 by accident: %d rows left", n)
	last, err := c.QueryString(ctx, `SELECT pg_walfile_name(pg_switch_wal())`)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		got, _ := c.QueryString(ctx, `SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver`)
		if got >= last {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not archived after a minute; see %s", last, c.LogPath())
		}
	}
	_, err = t.pitrCmd(ctx, nil, "list")
	return err
}

// restore brings the data back as of the recorded moment into a new data
// directory and starts it.
func (t *tour) restore(ctx context.Context) error {
	dir := filepath.Join(t.dir, "restored")
	port, err := scratch.FreePort()
	if err != nil {
		return err
	}
	if _, err := t.pitrCmd(ctx, nil, "restore", "--to", t.moment.Format(time.RFC3339Nano), "--pgdata", dir, "--start", "--archive-mode", "off", "--port", fmt.Sprint(port)); err != nil {
		return err
	}
	t.restored = scratch.Open(scratch.Options{Dir: filepath.Join(t.dir, "restored-run"), Port: port}, dir)
	n, err := t.restored.QueryInt(ctx, `SELECT count(*) FROM notes`)
	if err != nil {
		return err
	}
	t.say("restored server on port %d: %d rows in notes", port, n)
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
