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

// A non-exclusive low-level backup (pg_backup_start, pg_backup_stop) lets a
// client on the database host copy the data directory itself
// (https://www.postgresql.org/docs/current/continuous-archiving.html#BACKUP-LOWLEVEL-BASE-BACKUP).
// The backup belongs to the session: it must stay open from start to stop,
// and when it ends without pg_backup_stop (the client died, the connection
// broke) the server aborts the backup on its own. PostgreSQL 15 renamed the
// functions and dropped the exclusive mode; 13 and 14 take the old names
// with exclusive = false.

// BackupStopResult is what pg_backup_stop answers.
type BackupStopResult struct {
	EndLSN        pglogrepl.LSN
	Label         string // backup_label's contents, as the server would write it
	TablespaceMap string // tablespace_map's contents; "" without user tablespaces
}

// BackupStart starts a non-exclusive backup on conn, an ordinary (not a
// replication) connection that must stay open until BackupStop. It returns
// the start position.
func BackupStart(ctx context.Context, conn *pgconn.PgConn, label string, fast bool) (pglogrepl.LSN, error) {
	major, err := majorVersion(conn.ParameterStatus("server_version"))
	if err != nil {
		return 0, fmt.Errorf("start backup: %w", err)
	}
	if major < 13 {
		return 0, fmt.Errorf("start backup: PostgreSQL %d is too old, need 13 or later", major)
	}
	if label == "" {
		label = "pitr"
	}
	// The session holds the backup: a timeout set for the role must neither
	// cancel the (possibly spread) checkpoint nor end the idle session
	// between start and stop, which would abort the backup.
	set := "SET statement_timeout = 0"
	if major >= 14 {
		set += "; SET idle_session_timeout = 0"
	}
	if _, err := conn.Exec(ctx, set).ReadAll(); err != nil {
		return 0, fmt.Errorf("start backup: %w", err)
	}
	sql, _ := backupSQL(major)
	row, err := queryRow(ctx, conn, sql, label, strconv.FormatBool(fast))
	if err != nil {
		return 0, fmt.Errorf("start backup: %w", err)
	}
	lsn, err := pglogrepl.ParseLSN(row[0])
	if err != nil {
		return 0, fmt.Errorf("start backup: start position %q: %w", row[0], err)
	}
	return lsn, nil
}

// BackupStop ends the backup BackupStart started on conn, without waiting
// for archive_command (pitr waits for the WAL in the repository itself).
func BackupStop(ctx context.Context, conn *pgconn.PgConn) (BackupStopResult, error) {
	major, err := majorVersion(conn.ParameterStatus("server_version"))
	if err != nil {
		return BackupStopResult{}, fmt.Errorf("stop backup: %w", err)
	}
	_, sql := backupSQL(major)
	row, err := queryRow(ctx, conn, sql)
	if err != nil {
		return BackupStopResult{}, fmt.Errorf("stop backup: %w", err)
	}
	lsn, err := pglogrepl.ParseLSN(row[0])
	if err != nil {
		return BackupStopResult{}, fmt.Errorf("stop backup: end position %q: %w", row[0], err)
	}
	return BackupStopResult{EndLSN: lsn, Label: row[1], TablespaceMap: row[2]}, nil
}

// backupSQL is how a major version spells a non-exclusive start (label,
// fast) and a stop that does not wait for archive_command.
func backupSQL(major int) (start, stop string) {
	if major >= 15 {
		return "SELECT pg_backup_start($1, $2)::text",
			"SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_backup_stop(false)"
	}
	return "SELECT pg_start_backup($1, $2, false)::text", // exclusive = false
		"SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_stop_backup(false, false)" // exclusive, wait_for_archive
}

// InRecovery reports whether the server behind conn (an ordinary
// connection) is a standby.
func InRecovery(ctx context.Context, conn *pgconn.PgConn) (bool, error) {
	row, err := queryRow(ctx, conn, "SELECT pg_is_in_recovery()::text")
	if err != nil {
		return false, fmt.Errorf("pg_is_in_recovery: %w", err)
	}
	return row[0] == "true", nil
}

// LabelTimeline reads START TIMELINE from a backup_label.
func LabelTimeline(label string) (uint32, error) {
	for line := range strings.SplitSeq(label, "\n") {
		if v, ok := strings.CutPrefix(line, "START TIMELINE: "); ok {
			tli, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			if err != nil || tli == 0 {
				return 0, fmt.Errorf("backup_label: START TIMELINE %q", v)
			}
			return uint32(tli), nil
		}
	}
	return 0, errors.New("backup_label has no START TIMELINE")
}

// queryRow runs sql with text parameters and returns its one row, which
// must have no NULLs.
func queryRow(ctx context.Context, conn *pgconn.PgConn, sql string, args ...string) ([]string, error) {
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	res := conn.ExecParams(ctx, sql, params, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	if len(res.Rows) != 1 {
		return nil, fmt.Errorf("%d rows, expected 1", len(res.Rows))
	}
	row := make([]string, len(res.Rows[0]))
	for i, v := range res.Rows[0] {
		if v == nil {
			return nil, fmt.Errorf("column %d is NULL", i+1)
		}
		row[i] = string(v)
	}
	return row, nil
}

// Setting returns a setting's value as SHOW prints it.
func Setting(ctx context.Context, conn *pgconn.PgConn, name string) (string, error) {
	return show(ctx, conn, name)
}

// ParseBytes parses a size as SHOW prints it, e.g. "8kB" or "1GB".
func ParseBytes(s string) (int64, error) { return parseBytes(s) }
