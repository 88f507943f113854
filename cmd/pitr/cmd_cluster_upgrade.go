package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/pg"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

func newClusterUpgradeCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "cluster-upgrade",
		Short: "Hand the repository over to a new cluster after pg_upgrade or a new initdb",
		Long: `A repository belongs to one cluster (its system identifier): wal-push, backup and
wal-receive of any other cluster are refused. After pg_upgrade or a new initdb
the server is a new cluster. Run this once against the new, running server
(pg_dsn, or PGHOST/PGPORT/PGUSER/PGPASSWORD): it shows the old and the new
cluster and records the new one as the repository's current cluster. The old
cluster's backups and WAL stay listed and restorable; take a new base backup
at once, since the old backups cannot be rolled forward with the new WAL.

It refuses when the repository already holds WAL under names the new server
will archive (a new initdb starts again at 000000010000000000000001): stop the
new server, move its WAL past them with the pg_resetwal -l it names, or use a
new repository.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runClusterUpgrade(c.Context(), e) },
	}
}

func runClusterUpgrade(ctx context.Context, e *env) error {
	r, err := e.OpenRepo(ctx)
	if err != nil {
		return err
	}
	st := r.Store()
	conn, err := pg.Connect(ctx, e.cfg.PGDSN.Reveal(), true)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	sys, err := pg.IdentifySystem(ctx, conn)
	if err != nil {
		return err
	}
	srv, err := pg.ServerInfo(ctx, conn)
	if err != nil {
		return err
	}
	objs, err := r.Bindings(ctx)
	if err != nil {
		return err
	}
	cur, bound := catalog.CurrentBinding(objs)
	if bound && cur.SystemID == sys.SystemID {
		fmt.Fprintf(e.stdout, "the repository belongs to cluster %s (PostgreSQL %s) already; nothing to do\n", sys.SystemID, pgVersion(srv.Version))
		return nil
	}
	first := oldestWAL(ctx, e.cfg.PGDSN.Reveal(), sys, srv)
	// An unbound repository (made before bindings) may hold this very
	// cluster's WAL: binding it is what its next write would do anyway.
	if bound {
		if err := walNamesFree(ctx, st, first, srv.WALSegmentSize); err != nil {
			return fmt.Errorf("cluster-upgrade: cluster %s: %w", sys.SystemID, err)
		}
	}
	c := repo.Cluster{SystemID: sys.SystemID, PGVersion: srv.Version, By: "cluster-upgrade", Version: version}
	prev, err := r.RebindCluster(ctx, c)
	if err != nil {
		return err
	}
	if prev == nil {
		fmt.Fprintf(e.stdout, "the repository was bound to no cluster; it belongs to cluster %s (PostgreSQL %s) now\n", sys.SystemID, pgVersion(srv.Version))
		return nil
	}
	old := prev.PGVersion
	if old == 0 {
		old = newestBackupVersion(ctx, r, prev.SystemID)
	}
	fmt.Fprintf(e.stdout, "old cluster: %s, PostgreSQL %s (bound %s by %s)\n", prev.SystemID, pgVersion(old), prev.Bound.Format("2006-01-02T15:04:05Z"), prev.By)
	fmt.Fprintf(e.stdout, "new cluster: %s, PostgreSQL %s, WAL from %s\n", sys.SystemID, pgVersion(srv.Version), first)
	fmt.Fprintf(e.stdout, "the repository belongs to cluster %s now; the backups and WAL of cluster %s stay listed and restorable\n", sys.SystemID, prev.SystemID)
	fmt.Fprintln(e.stdout, "take a base backup of the new cluster now (pitr backup): the old backups cannot replay its WAL")
	return nil
}

// oldestWAL is the first segment the server may still archive: the oldest
// segment of its timeline in pg_wal (segments wait there until archived),
// or, where the role may not list pg_wal, the current one.
func oldestWAL(ctx context.Context, dsn string, sys pg.System, srv pg.Server) string {
	cur := wal.SegmentOf(wal.Timeline(sys.Timeline), uint64(sys.XLogPos), srv.WALSegmentSize, false)
	conn, err := pg.Connect(ctx, dsn, false)
	if err != nil {
		return cur
	}
	defer conn.Close(context.Background())
	q := fmt.Sprintf(`SELECT coalesce(min(name), '') FROM pg_ls_waldir() WHERE name ~ '^%08X[0-9A-F]{16}$'`, sys.Timeline)
	res, err := conn.Exec(ctx, q).ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 {
		return cur
	}
	if name := string(res[0].Rows[0][0]); name != "" && name < cur {
		return name
	}
	return cur
}

// walNamesFree refuses when the repository holds a segment the new cluster
// would archive under the same name: its push would be refused as a
// conflict, and a backup needing it would find the old cluster's copy.
func walNamesFree(ctx context.Context, st storage.Storage, first string, segSize int64) error {
	var last string
	err := st.List(ctx, "wal/"+first[:8], func(oi storage.ObjectInfo) error {
		o, ok := catalog.ParseWALKey(oi.Key)
		if !ok {
			o, ok = catalog.ParseSealKey(oi.Key)
		}
		if ok && len(o.Name) >= 24 && !strings.HasSuffix(o.Name, ".backup") && o.Name[:24] >= first && o.Name[:24] > last {
			last = o.Name[:24]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list stored WAL: %w", err)
	}
	if last == "" {
		return nil
	}
	n, _ := wal.ParseName(last)
	next := wal.SegmentFileName(n.Timeline, n.SegNo(segSize)+1, segSize)
	return fmt.Errorf("it would archive WAL from %s on, and the repository holds WAL of another cluster under those names up to %s: "+
		"stop the new server and run pg_resetwal -l %s on its data directory, or use a new repository", first, last, next)
}

// newestBackupVersion is the PostgreSQL version of the newest backup of the
// cluster, 0 if none can be read.
func newestBackupVersion(ctx context.Context, r *repo.Repo, systemID string) int {
	l, err := r.ListBackups(ctx)
	if err != nil {
		return 0
	}
	bs := l.Backups
	for i := len(bs) - 1; i >= 0; i-- {
		if bs[i].SystemID == systemID {
			return bs[i].PGVersion
		}
	}
	return 0
}

// pgVersion formats server_version_num: 150004 is 15.4, 90624 is 9.6.24.
func pgVersion(v int) string {
	switch {
	case v == 0:
		return "unknown"
	case v >= 100000:
		return fmt.Sprintf("%d.%d", v/10000, v%10000)
	}
	return fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
}
