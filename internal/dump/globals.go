package dump

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
)

// Globals stores the cluster's globals, pg_dumpall --globals-only (roles
// with their password hashes, tablespaces), as dumps/_globals/<id>/: a
// database dump restored onto a new server needs its owners and grantees
// to exist there first. The SQL is sealed like every object, so with
// encryption on the password hashes are never stored in plaintext.
// opts.Database is ignored; pg_dumpall connects to database postgres.
func Globals(ctx context.Context, opts Options) (*catalog.Dump, error) {
	return take(ctx, opts, job{entryDB: catalog.GlobalsDatabase, connectDB: "postgres", tool: "pg_dumpall",
		args: []string{"--globals-only", "-l", "postgres"}, kind: catalog.KindGlobals})
}

// GlobalsOptions configures RestoreGlobals.
type GlobalsOptions struct {
	Repo *repo.Repo // its codec with Identities for encrypted globals
	DSN  string     // libpq-style, a superuser (CREATE ROLE with password hashes)
	ID   string     // globals id, or "latest"/"" for the newest
}

// GlobalsResult says what RestoreGlobals did.
type GlobalsResult struct {
	Dump        *catalog.Dump
	Created     []string // roles created
	Existing    []string // roles already on the server, left as they are
	Tablespaces []string // tablespaces created
	// ExistingTablespaces were on the server already and left as they are.
	ExistingTablespaces []string
}

// maxGlobals bounds the SQL held in memory: it is verified whole before
// psql sees any of it.
const maxGlobals = 64 << 20

// RestoreGlobals applies stored globals to a server with psql. Roles and
// tablespaces that exist already are left untouched (their CREATE, ALTER
// and COMMENT lines are skipped; memberships are still granted), so an
// existing role's password or attributes never change. The SQL is
// verified before psql starts; without tablespaces to create it runs in
// one transaction (CREATE TABLESPACE cannot).
func RestoreGlobals(ctx context.Context, opts GlobalsOptions) (*GlobalsResult, error) {
	d, err := opts.Repo.Dump(ctx, catalog.GlobalsDatabase, opts.ID)
	if err != nil {
		return nil, err
	}
	plain, err := opts.Repo.OpenSealed(ctx, d.Key, d.Encrypted, d.SHA256)
	if err != nil {
		return nil, fmt.Errorf("globals %s: %w", d.ID, err)
	}
	sql, err := io.ReadAll(io.LimitReader(plain, maxGlobals+1))
	plain.Close()
	if err != nil {
		return nil, fmt.Errorf("globals %s refused, nothing applied: %w", d.ID, err)
	}
	if len(sql) > maxGlobals {
		return nil, fmt.Errorf("globals %s: larger than %d MiB", d.ID, maxGlobals>>20)
	}
	roles, tablespaces, err := existingGlobals(ctx, opts.DSN)
	if err != nil {
		return nil, err
	}
	filtered, res := filterGlobals(string(sql), roles, tablespaces)
	res.Dump = d
	srv, err := serverInfo(ctx, opts.DSN, "postgres")
	if err != nil {
		return nil, err
	}
	tool, _, err := findTool(ctx, "psql", srv.Major())
	if err != nil {
		return nil, err
	}
	conn, password, err := connString(opts.DSN, "postgres")
	if err != nil {
		return nil, err
	}
	args := []string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "--no-password", "--dbname=" + conn, "-f", "-"}
	if len(res.Tablespaces) == 0 {
		args = append(args, "--single-transaction")
	}
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = toolEnv(password)
	cmd.Stdin = strings.NewReader(filtered)
	stderr := &stderrTail{}
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, toolError("psql", err, stderr)
	}
	zerolog.Ctx(ctx).Info().Str("globals", d.ID).Strs("created", res.Created).Strs("existing", res.Existing).
		Strs("tablespaces", res.Tablespaces).Msg("globals applied")
	return res, nil
}

// existingGlobals returns the server's role and tablespace names.
func existingGlobals(ctx context.Context, dsn string) (roles, tablespaces map[string]bool, err error) {
	conn, err := connect(ctx, dsn, "postgres")
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close(context.Background())
	names := func(q string) (map[string]bool, error) {
		res, err := conn.Exec(ctx, q).ReadAll()
		if err != nil {
			return nil, fmt.Errorf("list existing globals: %w", err)
		}
		out := map[string]bool{}
		for _, row := range res[0].Rows {
			out[string(row[0])] = true
		}
		return out, nil
	}
	if roles, err = names(`SELECT rolname FROM pg_roles`); err != nil {
		return nil, nil, err
	}
	if tablespaces, err = names(`SELECT spcname FROM pg_tablespace`); err != nil {
		return nil, nil, err
	}
	return roles, tablespaces, nil
}

// filterGlobals drops the lines of pg_dumpall --globals-only output that
// would create or change a role or tablespace the server has already.
// pg_dumpall writes each of those statements on one line, starting with
// the object's (possibly quoted) name after the prefixes below.
func filterGlobals(sql string, roles, tablespaces map[string]bool) (string, *GlobalsResult) {
	res := &GlobalsResult{}
	seen := map[string]bool{}
	note := func(list *[]string, kind, name string) {
		if !seen[kind+name] {
			seen[kind+name] = true
			*list = append(*list, name)
		}
	}
	var b bytes.Buffer
	for _, line := range strings.SplitAfter(sql, "\n") {
		if name, ok := objectName(line, "CREATE ROLE ", "ALTER ROLE ", "COMMENT ON ROLE "); ok {
			if roles[name] {
				note(&res.Existing, "r", name)
				continue
			}
			if strings.HasPrefix(line, "CREATE ROLE ") {
				note(&res.Created, "r", name)
			}
		}
		if name, ok := objectName(line, "CREATE TABLESPACE ", "ALTER TABLESPACE ", "COMMENT ON TABLESPACE "); ok {
			if tablespaces[name] {
				note(&res.ExistingTablespaces, "t", name)
				continue
			}
			if strings.HasPrefix(line, "CREATE TABLESPACE ") {
				note(&res.Tablespaces, "t", name)
			}
		}
		b.WriteString(line)
	}
	return b.String(), res
}

// objectName returns the identifier after the first matching prefix,
// unquoted.
func objectName(line string, prefixes ...string) (string, bool) {
	for _, p := range prefixes {
		rest, ok := strings.CutPrefix(line, p)
		if !ok {
			continue
		}
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			for i := 1; i < len(rest); i++ {
				if rest[i] == '"' {
					if i+1 < len(rest) && rest[i+1] == '"' {
						b.WriteByte('"')
						i++
						continue
					}
					return b.String(), true
				}
				b.WriteByte(rest[i])
			}
			return "", false
		}
		if i := strings.IndexAny(rest, " ;\n"); i > 0 {
			return rest[:i], true
		}
		return "", false
	}
	return "", false
}
