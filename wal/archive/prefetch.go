package archive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// The prefetch directory holds, besides the segments:
//
//   - "<segment>.<sha256>.<boot>": a verified segment. <boot> is the
//     kernel's boot id (dashes dropped) when the copy was not fsynced:
//     within one boot the page cache serves what was written even if it
//     never reached the disk, and after a crash of the machine the boot id
//     differs and the copy is removed unread. "synced" marks a copy
//     fsynced because the boot id was not readable. Not fsyncing spares
//     the disk 16 MiB per segment while recovery writes its own pages
//     (restore_command = cp does not fsync either; PostgreSQL fsyncs a
//     restored segment it keeps).
//   - ".inflight-<segment>": a download in progress.
//   - ".wanted": the last segment restore_command asked for, which the
//     resident prefetcher reads to know where recovery is.
//   - ".lock": flock(2)ed by the one resident prefetcher.
const (
	wantedFile   = ".wanted"
	lockFile     = ".lock"
	syncedTag    = "synced"
	prefetchIdle = 20 * time.Second // a prefetcher with nothing asked for this long exits
	wantedPoll   = 5 * time.Millisecond
	relistEvery  = time.Second
)

// bootTag is this boot's tag for unsynced prefetched copies, or "" when
// the boot id cannot be read (the copies are then fsynced).
func bootTag() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	id := strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
	if len(id) != 32 {
		return ""
	}
	return id
}

// setWanted records that restore_command asked for name.
func setWanted(dir, name string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp := filepath.Join(dir, wantedFile+".tmp")
	if err := os.WriteFile(tmp, []byte(name), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, wantedFile))
}

func readWanted(dir string) (wal.Name, bool) {
	b, err := os.ReadFile(filepath.Join(dir, wantedFile))
	if err != nil {
		return wal.Name{}, false
	}
	n, err := wal.ParseName(strings.TrimSpace(string(b)))
	if err != nil || n.Kind != wal.KindSegment {
		return wal.Name{}, false
	}
	return n, true
}

// lockPrefetch takes the prefetch directory's lock without waiting; ok
// false when another prefetcher holds it.
func lockPrefetch(dir string) (f *os.File, ok bool, err error) {
	return tryLock(dir, lockFile, os.O_RDWR, 0o600)
}

// prefetcherRunning says whether a resident prefetcher holds dir's lock.
func prefetcherRunning(dir string) bool {
	f, ok, err := lockPrefetch(dir)
	if err != nil {
		return false
	}
	if ok {
		f.Close() // releases the lock
		return false
	}
	return true
}

// PrefetchResident keeps the n segments after the one restore_command
// last asked for (".wanted", starting at after) downloaded into dir,
// until nothing new was asked for in prefetchIdle: one process, one
// connection and one listing per WAL directory for a whole recovery,
// instead of a process per segment. It returns at once when another
// prefetcher runs for dir.
func PrefetchResident(ctx context.Context, after string, segSize int64, n int, dir string, opts FetchOptions) error {
	cur, err := wal.ParseName(after)
	if err != nil || cur.Kind != wal.KindSegment {
		return fmt.Errorf("prefetch: %q is not a segment name", after)
	}
	if !wal.ValidSegmentSize(segSize) {
		return fmt.Errorf("prefetch: bad segment size %d", segSize)
	}
	lock, ok, err := lockPrefetch(dir)
	if err != nil || !ok {
		return err
	}
	defer lock.Close()
	p := newPrefetcher(segSize, n, dir, opts)
	last, checked := time.Now(), time.Now()
	var filledFor string
	var filledAt time.Time
	did := true
	for ctx.Err() == nil {
		if w, ok := readWanted(dir); ok && (w.Timeline != cur.Timeline || w.String() > cur.String()) {
			cur, last = w, time.Now()
		}
		if time.Since(last) > prefetchIdle {
			return nil
		}
		if time.Since(checked) > 100*time.Millisecond {
			// Recovery ended (its process is gone), or the data directory
			// was removed (a drill's scratch cluster): stop at once.
			if _, err := os.Stat(dir); err != nil || opts.While != nil && !opts.While() {
				return nil
			}
			checked = time.Now()
		}
		// The window changes only when recovery asks for another segment
		// or a download ends; a segment not archived yet is looked for
		// again after relistEvery.
		if cur.String() != filledFor || did || time.Since(filledAt) > relistEvery {
			if did, err = p.fill(ctx, cur); err != nil {
				return err
			}
			filledFor, filledAt = cur.String(), time.Now()
		}
		if !did {
			time.Sleep(wantedPoll)
		}
	}
	return nil
}

type prefetcher struct {
	segSize int64
	n       int
	dir     string
	opts    FetchOptions
	boot    string
	listed  map[string]time.Time // WAL directory prefix -> last listing
	found   map[string]catalog.WALObject
	chunks  map[string][]catalog.StreamChunk
	mu      sync.Mutex
	failed  map[string]bool // downloads that failed: left to restore_command
}

func newPrefetcher(segSize int64, n int, dir string, opts FetchOptions) *prefetcher {
	return &prefetcher{segSize: segSize, n: n, dir: dir, opts: opts, boot: bootTag(), listed: map[string]time.Time{},
		found: map[string]catalog.WALObject{}, chunks: map[string][]catalog.StreamChunk{}, failed: map[string]bool{}}
}

func (p *prefetcher) hasFailed(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed[name]
}

// fill downloads the missing segments of the window after cur, two at a
// time; did says whether it downloaded anything.
func (p *prefetcher) fill(ctx context.Context, cur wal.Name) (did bool, err error) {
	have := prefetched(p.dir)
	var want []string
	next := cur
	for i := 0; i < p.n; i++ {
		next, _ = wal.ParseName(next.Next(p.segSize))
		if !have[next.String()] && !p.hasFailed(next.String()) {
			want = append(want, next.String())
		}
	}
	if len(want) == 0 {
		return false, nil
	}
	var objs []catalog.WALObject
	for _, name := range want {
		o, ok := p.found[name]
		if !ok {
			if err := p.list(ctx, name); err != nil {
				return false, err
			}
			if o, ok = p.found[name]; !ok {
				break // not archived yet (or in another directory): fetched on demand
			}
		}
		objs = append(objs, o)
	}
	if len(objs) == 0 {
		return false, nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(2)
	for _, o := range objs {
		g.Go(func() error { return p.download(gctx, o) })
	}
	return true, g.Wait()
}

// list lists name's WAL directory, at most once every relistEvery.
func (p *prefetcher) list(ctx context.Context, name string) error {
	prefix, err := catalog.WALDirPrefix(name)
	if err != nil {
		return err
	}
	if t, ok := p.listed[prefix]; ok && time.Since(t) < relistEvery {
		return nil
	}
	p.listed[prefix] = time.Now()
	return p.opts.Store.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		if c, ok := catalog.ParseStreamChunkKey(oi.Key); ok {
			p.chunks[c.Name] = append(p.chunks[c.Name], c)
		} else if o, ok := catalog.ParseWALKey(oi.Key); ok {
			p.found[o.Name] = o
		} else if o, ok := catalog.ParseSealKey(oi.Key); ok && p.found[o.Name].Key == "" {
			p.found[o.Name] = o // sorts before a whole copy, which replaces it
		}
		return nil
	})
}

// download fetches one segment into the directory under its trusted name,
// unless another prefetcher is already at it.
func (p *prefetcher) download(ctx context.Context, o catalog.WALObject) error {
	name := o.Name
	lock := filepath.Join(p.dir, ".inflight-"+name)
	f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		if fi, serr := os.Stat(lock); serr == nil && time.Since(fi.ModTime()) > 2*time.Minute {
			os.Remove(lock) // a prefetcher died; the next one takes over
		}
		return nil
	}
	f.Close()
	defer os.Remove(lock)
	tmpDest := filepath.Join(p.dir, ".part-"+name)
	if _, err := download(ctx, p.opts.Store, p.opts.Codec, o, p.chunks[name], tmpDest); err != nil {
		os.Remove(tmpDest)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.mu.Lock()
		p.failed[name] = true
		p.mu.Unlock()
		zerolog.Ctx(ctx).Warn().Err(err).Str("segment", name).Msg("prefetch failed")
		return nil
	}
	// Verified while downloading. Without a boot id, made durable before
	// it gets the name restore_command trusts, so a crash cannot leave a
	// verified-looking file with unwritten blocks.
	tag := p.boot
	if tag == "" {
		if err := syncFile(tmpDest); err != nil {
			os.Remove(tmpDest)
			return err
		}
		tag = syncedTag
	}
	return os.Rename(tmpDest, filepath.Join(p.dir, name+"."+o.SHA256+"."+tag))
}
