package retention

// Lock extension (S3 Object Lock, docs/STORAGE.md). Uploads are locked for
// s3_object_lock_days from their upload; a base backup that retention keeps
// for months would lose its lock, and so its protection, long before it
// stops being needed (kopia's users found this: locking only N days from
// upload leaves the older objects of a chain unprotected). So each retain
// run extends the locks of everything the kept backups need: their own
// objects, all WAL from the oldest kept backup's start to the newest
// segment (for consistency, and for point-in-time recovery from each one to
// the present), every timeline history, and the repository marker and
// cluster bindings, which every restore reads.
//
// A crash part-way leaves some locks extended and some not: nothing is
// lost, and the next run extends the rest (extending is idempotent and
// never shortens a lock).

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// lockConcurrency is how many objects ExtendLocks handles at once: two
// small requests each on S3.
const lockConcurrency = 8

// ExtendLocks makes the objects of each kept backup and all WAL from its
// start up to the next kept backup's start (and to the newest WAL after the
// newest one) locked until at least until. WAL is chosen by segment
// position, on every timeline; timeline histories, the repository marker
// and the cluster bindings are always locked. It returns how many objects
// had a shorter lock. An object gone since ix was loaded is skipped. st
// must have a storage.Locker (see storage.LockerOf).
func ExtendLocks(ctx context.Context, st storage.Storage, kept []*catalog.Backup, ix *wal.Index, until time.Time) (extended int, err error) {
	locker, ok := storage.LockerOf(st)
	if !ok {
		return 0, errors.New("extend locks: the store has no object lock")
	}
	keys, err := lockKeys(ctx, st, kept, ix)
	if err != nil {
		return 0, fmt.Errorf("extend locks: %w", err)
	}
	var n atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(lockConcurrency)
	for _, key := range keys {
		g.Go(func() error {
			cur, err := locker.LockedUntil(gctx, key)
			if errors.Is(err, storage.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			if !cur.Before(until) {
				return nil
			}
			if err := locker.ExtendLock(gctx, key, until); err != nil && !errors.Is(err, storage.ErrNotExist) {
				return err
			}
			n.Add(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return int(n.Load()), fmt.Errorf("extend locks: %w", err)
	}
	return int(n.Load()), nil
}

// lockKeys lists the keys ExtendLocks covers.
func lockKeys(ctx context.Context, st storage.Storage, kept []*catalog.Backup, ix *wal.Index) ([]string, error) {
	keys := []string{}
	add := func(oi storage.ObjectInfo) error {
		keys = append(keys, oi.Key)
		return nil
	}
	if len(kept) == 0 {
		return keys, nil
	}
	if _, err := st.Stat(ctx, catalog.MarkerKey); err == nil {
		keys = append(keys, catalog.MarkerKey)
	} else if !errors.Is(err, storage.ErrNotExist) {
		return nil, err
	}
	if err := st.List(ctx, catalog.ClustersPrefix, add); err != nil {
		return nil, err
	}
	// The WAL from the oldest kept backup's start on: the union of each
	// kept backup's range up to the next one's start, and the newest
	// one's to the newest WAL.
	var from uint64
	for i, b := range kept {
		n, err := wal.ParseName(b.StartWAL)
		if err != nil || n.Kind != wal.KindSegment {
			return nil, fmt.Errorf("backup %s: start wal %q is not a segment name", b.ID, b.StartWAL)
		}
		if pos := position(n); i == 0 || pos < from {
			from = pos
		}
		if err := st.List(ctx, catalog.BackupPrefix(b.ID), add); err != nil {
			return nil, err
		}
	}
	for _, o := range ix.Keys() {
		n, err := wal.ParseName(o.Name)
		if err != nil {
			continue // not a WAL file name: nothing the catalog wrote
		}
		if n.Kind == wal.KindHistory || position(n) >= from {
			keys = append(keys, o.Key)
		}
	}
	return keys, nil
}

// position orders segments (and .partial and .backup files) by where they
// are in the WAL, whatever the segment size and timeline.
func position(n wal.Name) uint64 { return uint64(n.Log)<<32 | uint64(n.Seg) }
