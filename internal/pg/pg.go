package pg

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// Connect opens a connection configured the libpq way: dsn is a URL or
// key=value string, and PGHOST, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE and
// friends fill in whatever it leaves out (all of it when dsn is "").
//
// With replication set the connection is a physical replication one
// (replication=true), which IDENTIFY_SYSTEM, BASE_BACKUP and START_REPLICATION
// need; a dsn that already asks for replication=database keeps it. Without
// replication, a replication setting in dsn is dropped so that one dsn serves
// both kinds of connection.
func Connect(ctx context.Context, dsn string, replication bool) (*pgconn.PgConn, error) {
	return ConnectAs(ctx, dsn, replication, "")
}

// ConnectAs is Connect with an application_name (what
// synchronous_standby_names matches) that overrides the dsn's.
func ConnectAs(ctx context.Context, dsn string, replication bool, appName string) (*pgconn.PgConn, error) {
	cfg, err := ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	if replication {
		if cfg.RuntimeParams["replication"] != "database" {
			cfg.RuntimeParams["replication"] = "true"
		}
	} else {
		delete(cfg.RuntimeParams, "replication")
	}
	if appName != "" {
		cfg.RuntimeParams["application_name"] = appName
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "pitr"
	}
	return ConnectConfig(ctx, cfg, dsn)
}

// System is what IDENTIFY_SYSTEM reports.
type System struct {
	SystemID string        // the cluster's system identifier, a uint64 in decimal
	Timeline uint32        // current timeline
	XLogPos  pglogrepl.LSN // current WAL flush location
	DBName   string        // database, or "" on a replication=true connection
}

// IdentifySystem runs IDENTIFY_SYSTEM; conn must be a replication connection.
func IdentifySystem(ctx context.Context, conn *pgconn.PgConn) (System, error) {
	r, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return System{}, fmt.Errorf("identify system: %w", err)
	}
	if _, err := strconv.ParseUint(r.SystemID, 10, 64); err != nil {
		return System{}, fmt.Errorf("identify system: system id %q: %w", r.SystemID, err)
	}
	// pglogrepl parses the timeline into an int32; the conversion back is
	// exact for every uint32 timeline.
	return System{SystemID: r.SystemID, Timeline: uint32(r.Timeline), XLogPos: r.XLogPos, DBName: r.DBName}, nil
}

// Server describes the server behind a connection.
type Server struct {
	Version        int    // server_version_num, e.g. 150018 for 15.18
	WALSegmentSize int64  // bytes
	DataDir        string // data_directory; "" unless the role may read it (superuser or pg_read_all_settings)
}

// Major is the major version, e.g. 15.
func (s Server) Major() int { return s.Version / 10000 }

// ServerInfo asks the server for its version, WAL segment size and data
// directory with SHOW, which works on ordinary and (since PostgreSQL 10)
// replication connections alike.
func ServerInfo(ctx context.Context, conn *pgconn.PgConn) (Server, error) {
	var s Server
	v, err := show(ctx, conn, "server_version_num")
	if err != nil {
		return Server{}, err
	}
	if s.Version, err = strconv.Atoi(v); err != nil {
		return Server{}, fmt.Errorf("server_version_num %q: %w", v, err)
	}
	v, err = show(ctx, conn, "wal_segment_size")
	if err != nil {
		return Server{}, err
	}
	if s.WALSegmentSize, err = parseBytes(v); err != nil {
		return Server{}, fmt.Errorf("wal_segment_size: %w", err)
	}
	s.DataDir, err = show(ctx, conn, "data_directory")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == insufficientPrivilege {
		err = nil
	}
	if err != nil {
		return Server{}, err
	}
	return s, nil
}

// insufficientPrivilege is SQLSTATE 42501, what SHOW data_directory raises for
// roles without pg_read_all_settings.
const insufficientPrivilege = "42501"

// show returns the value of one setting.
func show(ctx context.Context, conn *pgconn.PgConn, name string) (string, error) {
	results, err := conn.Exec(ctx, "SHOW "+name).ReadAll()
	if err != nil {
		return "", fmt.Errorf("show %s: %w", name, err)
	}
	if len(results) != 1 || len(results[0].Rows) != 1 || len(results[0].Rows[0]) != 1 {
		return "", fmt.Errorf("show %s: unexpected result shape", name)
	}
	return string(results[0].Rows[0][0]), nil
}

// parseBytes parses a memory setting as SHOW prints it: a whole number and one
// of the units B, kB, MB, GB, TB (PostgreSQL picks the largest unit that
// divides the value), e.g. "16MB".
func parseBytes(s string) (int64, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		return 0, fmt.Errorf("size %q: no number", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	shift, ok := map[string]uint{"B": 0, "kB": 10, "MB": 20, "GB": 30, "TB": 40}[s[i:]]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q", s, s[i:])
	}
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n << shift, nil
}
