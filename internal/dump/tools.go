package dump

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pitr-dev/pitr/internal/pg"
)

// debianBinDir is where Debian and Ubuntu install each major's client
// tools side by side.
var debianBinDir = func(major int) string { return fmt.Sprintf("/usr/lib/postgresql/%d/bin", major) }

// findTool returns a pg_dump or pg_restore able to talk to a server of the
// given major version: the one in PATH if it is at least that new, else
// the one under /usr/lib/postgresql/<major>/bin. pg_dump refuses servers
// newer than itself, so the PATH one is checked first, not trusted.
func findTool(ctx context.Context, name string, major int) (path, version string, err error) {
	var tried []string
	candidates := []string{}
	if p, err := exec.LookPath(name); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, filepath.Join(debianBinDir(major), name))
	for _, p := range candidates {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		out, err := exec.CommandContext(ctx, p, "--version").Output()
		if err != nil {
			tried = append(tried, p+" (does not run)")
			continue
		}
		v := strings.TrimSpace(string(out))
		if m := toolMajor(v); m < major {
			tried = append(tried, fmt.Sprintf("%s (%s)", p, v))
			continue
		}
		return p, v, nil
	}
	if len(tried) == 0 {
		return "", "", fmt.Errorf("%s not found in PATH or %s (install the PostgreSQL %d client tools)", name, debianBinDir(major), major)
	}
	return "", "", fmt.Errorf("no %s for PostgreSQL %d: found only %s", name, major, strings.Join(tried, ", "))
}

// toolMajor parses "pg_dump (PostgreSQL) 15.18 (Debian 15.18-1.pgdg120+1)".
func toolMajor(version string) int {
	f := strings.Fields(version)
	if len(f) < 3 {
		return 0
	}
	v := f[2]
	if i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		v = v[:i]
	}
	n, _ := strconv.Atoi(v)
	return n
}

// connString returns dsn with its database replaced by db, for the tools'
// --dbname (which takes a whole connection string), and the password it
// held, taken out: a command line is visible to every local user in ps, so
// the password goes to the tool in PGPASSWORD instead. Whatever dsn leaves
// out comes from PGHOST, PGPORT, PGUSER and PGPASSWORD, as for backups.
func connString(dsn, db string) (conn, password string, err error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// net/url's error holds the whole URL, password included.
			return "", "", fmt.Errorf("parse pg_dsn %s: %s", pg.RedactDSN(dsn), pg.Scrub(err.Error(), dsn))
		}
		u.Path, u.RawPath = "/"+db, ""
		q := u.Query()
		q.Del("replication")
		if pw := q.Get("password"); pw != "" {
			password = pw
			q.Del("password")
		}
		if u.User != nil {
			if pw, ok := u.User.Password(); ok {
				password = pw
				u.User = url.User(u.User.Username())
			}
		}
		u.RawQuery = q.Encode()
		return u.String(), password, nil
	}
	pairs, err := pg.KeywordValues(dsn)
	if err != nil {
		return "", "", fmt.Errorf("parse pg_dsn %s: %w", pg.RedactDSN(dsn), err)
	}
	var out []string
	for _, kv := range pairs {
		switch kv[0] {
		case "password":
			password = kv[1]
		case "replication", "dbname":
		default:
			out = append(out, kv[0]+"="+quoteConnValue(kv[1]))
		}
	}
	out = append(out, "dbname="+quoteConnValue(db))
	return strings.Join(out, " "), password, nil
}

// toolEnv is the environment for pg_dump and pg_restore: ours, with the
// password from pg_dsn, if it had one, in PGPASSWORD.
func toolEnv(password string) []string {
	env := os.Environ()
	if password != "" {
		env = append(env, "PGPASSWORD="+password)
	}
	return env
}

// quoteConnValue quotes a libpq keyword/value value.
func quoteConnValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// serverInfo connects to database db and asks for the server's version.
func serverInfo(ctx context.Context, dsn, db string) (pg.Server, error) {
	conn, err := connect(ctx, dsn, db)
	if err != nil {
		return pg.Server{}, err
	}
	defer conn.Close(context.Background())
	return pg.ServerInfo(ctx, conn)
}

func connect(ctx context.Context, dsn, db string) (*pgconn.PgConn, error) {
	cfg, err := pg.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.Database = db
	delete(cfg.RuntimeParams, "replication")
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "pitr"
	}
	conn, err := pg.ConnectConfig(ctx, cfg, dsn)
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", db, err)
	}
	return conn, nil
}

// stderrTail keeps the first line a tool printed on stderr, for a one-line
// error, and whether it printed anything.
type stderrTail struct {
	buf []byte
}

func (s *stderrTail) Write(p []byte) (int, error) {
	if room := 64<<10 - len(s.buf); room > 0 {
		s.buf = append(s.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (s *stderrTail) firstLine() string {
	line, _, _ := strings.Cut(strings.TrimSpace(string(s.buf)), "\n")
	return strings.TrimSpace(line)
}

// toolError makes one line of a tool's failure: its exit status and the
// first thing it said.
func toolError(name string, err error, stderr *stderrTail) error {
	msg := stderr.firstLine()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && msg != "":
		return fmt.Errorf("%s failed (%s): %s", name, ee.ProcessState, msg)
	case err != nil:
		return fmt.Errorf("%s failed: %w", name, err)
	default:
		return fmt.Errorf("%s printed an error: %s", name, msg)
	}
}
