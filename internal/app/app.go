package app

import (
	"context"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
)

// Hook is one command run before or after an app point's file snapshots.
type Hook struct {
	Name    string
	Command []string      // argv, run without a shell
	Timeout time.Duration // 0: DefaultHookTimeout
}

// Version is one command whose trimmed output is recorded in an app point.
type Version struct {
	Name    string
	Command []string
}

// DefaultHookTimeout bounds a hook without a timeout of its own.
const DefaultHookTimeout = 5 * time.Minute

// Options says what one app backup takes and how. The jobs come as
// functions (cmd/pitr wires them to internal/files, internal/dump and
// PostgreSQL), so internal/app imports no job package, the way
// internal/daemon takes its jobs.
type Options struct {
	Repo        *repo.Repo
	App         string // the app's name (file-set name rules)
	PitrVersion string
	Now         func() time.Time // nil: time.Now

	// Cluster says the app's data is in the cluster pitr protects with
	// WAL and base backups: the backup takes a restore point in it.
	Cluster bool
	// DSN connects to that cluster for the restore point and the server's
	// version (libpq style; "" uses PGHOST and the rest).
	DSN string
	// WALTimeout bounds the wait for the restore point's segment to be in
	// the repository (backup_wal_timeout); 0: 5m.
	WALTimeout time.Duration

	// RestorePoint creates the restore point name in the cluster and
	// returns it, with the server's version string (server_version).
	// nil: CreateRestorePoint over DSN.
	RestorePoint func(ctx context.Context, name string) (*catalog.AppRestorePoint, string, error)
	// WaitWAL returns once the WAL segment holding the restore point is in
	// the repository. nil: WaitWAL polling Repo's WAL index for WALTimeout.
	WaitWAL func(ctx context.Context, segment string) error
	// ServerVersion returns server_version and server_version_num, for an
	// app without the cluster but with dumps (nil: over DSN).
	ServerVersion func(ctx context.Context) (string, int, error)

	Sets     []string                                                         // file sets, in order
	Snapshot func(ctx context.Context, set string) (*catalog.Snapshot, error) // takes one set's snapshot
	Dumps    []string                                                         // databases, in order
	Dump     func(ctx context.Context, db string) (*catalog.Dump, error)      // takes one database's dump
	// Globals stores the cluster's roles and tablespaces (pg_dumpall
	// --globals-only), once, after the dumps, when there are dumps: a
	// dump restored onto a new server needs its owners and grantees
	// there. The app point lists it among its Dumps, as database
	// catalog.GlobalsDatabase. nil: not stored (dump_globals: false).
	Globals func(ctx context.Context) (*catalog.Dump, error)

	Before, After []Hook
	Versions      []Version
}

// RestorePointName is the name of an app point's PostgreSQL restore point.
func RestorePointName(app, id string) string { return "pitr_app_" + app + "_" + id }

// SplitGlobals returns an app point's database dumps, in order, and its
// globals (the dump of catalog.GlobalsDatabase), nil when it has none.
func SplitGlobals(dumps []catalog.AppDump) (dbs []catalog.AppDump, globals *catalog.AppDump) {
	for i, d := range dumps {
		if d.Database == catalog.GlobalsDatabase {
			globals = &dumps[i]
			continue
		}
		dbs = append(dbs, d)
	}
	return dbs, globals
}
