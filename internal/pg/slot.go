package pg

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// Slot is a physical replication slot's position.
type Slot struct {
	Exists     bool
	Physical   bool
	RestartLSN pglogrepl.LSN // 0 if the slot reserves no WAL yet
	RestartTLI uint32        // 0 if unknown
}

// duplicateObject is SQLSTATE 42710, raised when the slot exists already.
const duplicateObject = "42710"

// EnsurePhysicalSlot returns the slot's position, creating the slot with
// RESERVE_WAL first if it does not exist. conn must be a replication
// connection to PostgreSQL 15 or later (READ_REPLICATION_SLOT); for older
// servers, sql must be an ordinary connection to the same server.
func EnsurePhysicalSlot(ctx context.Context, conn, sql *pgconn.PgConn, name string) (slot Slot, created bool, err error) {
	s, err := readSlot(ctx, conn, sql, name)
	if err != nil || s.Exists {
		return s, false, err
	}
	_, err = pglogrepl.CreateReplicationSlot(ctx, conn, name, "", pglogrepl.CreateReplicationSlotOptions{
		Mode: pglogrepl.PhysicalReplication, SnapshotAction: "RESERVE_WAL",
	})
	var pgErr *pgconn.PgError
	if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == duplicateObject) {
		return Slot{}, false, fmt.Errorf("create replication slot %s: %w", name, err)
	}
	s, err = readSlot(ctx, conn, sql, name)
	if err == nil && !s.Exists {
		err = fmt.Errorf("replication slot %s vanished after it was created", name)
	}
	return s, err == nil, err
}

func readSlot(ctx context.Context, conn, sql *pgconn.PgConn, name string) (Slot, error) {
	var results []*pgconn.Result
	var err error
	if sql == nil {
		results, err = conn.Exec(ctx, "READ_REPLICATION_SLOT "+name).ReadAll()
	} else {
		r := sql.ExecParams(ctx, "SELECT slot_type, restart_lsn::text, NULL FROM pg_replication_slots WHERE slot_name = $1",
			[][]byte{[]byte(name)}, nil, nil, nil).Read()
		results, err = []*pgconn.Result{r}, r.Err
	}
	if err != nil {
		return Slot{}, fmt.Errorf("read replication slot %s: %w", name, err)
	}
	if len(results) != 1 {
		return Slot{}, fmt.Errorf("read replication slot %s: unexpected result shape", name)
	}
	if len(results[0].Rows) == 0 || results[0].Rows[0][0] == nil {
		return Slot{}, nil
	}
	row := results[0].Rows[0]
	if len(row) != 3 {
		return Slot{}, fmt.Errorf("read replication slot %s: unexpected result shape", name)
	}
	s := Slot{Exists: true, Physical: string(row[0]) == "physical"}
	if row[1] != nil {
		if s.RestartLSN, err = pglogrepl.ParseLSN(string(row[1])); err != nil {
			return Slot{}, fmt.Errorf("read replication slot %s: %w", name, err)
		}
	}
	if row[2] != nil {
		tli, err := strconv.ParseUint(string(row[2]), 10, 32)
		if err != nil {
			return Slot{}, fmt.Errorf("read replication slot %s: timeline %q", name, row[2])
		}
		s.RestartTLI = uint32(tli)
	}
	return s, nil
}
