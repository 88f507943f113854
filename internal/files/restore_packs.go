package files

import (
	"container/list"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage"
)

// A restore of many small files would cost one ranged GET per file (and
// as many requests for the store to serve: 101,258 GETs for restic's 117
// in bench/files.sh). Packs most of whose chunks a restore needs are
// therefore downloaded whole, once, into a spool directory next to the
// target, and their chunks read from there; a restore of one file still
// reads only its own ranges.

// Whole-pack thresholds: a pack is fetched whole when the restore needs
// at least wholeMinBlobs of its chunks and wholeMinBytes of its bytes.
var (
	wholeMinBlobs       = 4
	wholeMinBytes int64 = 2 << 20
)

const (
	// spoolPacks is how many whole packs stay on disk at once (about
	// 16 MiB each); files are restored in manifest order, which is the
	// order their chunks were packed in, so a few suffice.
	spoolPacks = 8
)

// packNeed counts what a restore needs of each pack.
type packNeed struct {
	blobs int
	bytes int64
}

// packSpool is a storage.Storage whose ranged reads of chosen packs are
// served from whole copies on local disk; every other call goes to the
// store.
type packSpool struct {
	storage.Storage
	dir   string
	whole map[string]bool // pack keys to fetch whole

	mu    sync.Mutex
	files map[string]*spooled // by key
	lru   *list.List          // of keys, most recent first
}

type spooled struct {
	ready chan struct{} // closed once path is complete, or err set
	path  string
	err   error
	elem  *list.Element
	users int
}

// newPackSpool spools the packs need says are worth it into a new
// directory under parent; Close removes it.
func newPackSpool(st storage.Storage, need map[string]packNeed, parent string) (*packSpool, error) {
	whole := map[string]bool{}
	for pack, n := range need {
		if n.blobs >= wholeMinBlobs && n.bytes >= wholeMinBytes {
			key, err := catalog.PackKey(pack)
			if err != nil {
				return nil, err
			}
			whole[key] = true
		}
	}
	s := &packSpool{Storage: st, whole: whole, files: map[string]*spooled{}, lru: list.New()}
	if len(whole) == 0 {
		return s, nil
	}
	dir, err := os.MkdirTemp(parent, ".pitr-restore-packs-")
	if err != nil {
		return nil, fmt.Errorf("restore: pack spool: %w", err)
	}
	s.dir = dir
	return s, nil
}

// Close removes the spool directory.
func (s *packSpool) Close() error {
	if s.dir == "" {
		return nil
	}
	return os.RemoveAll(s.dir)
}

// GetRange serves a chosen pack's range from its spooled copy.
func (s *packSpool) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if !s.whole[key] {
		return s.Storage.GetRange(ctx, key, offset, length)
	}
	sp, err := s.acquire(ctx, key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(sp.path)
	if err != nil {
		s.release(key, sp)
		return nil, err
	}
	return &spoolReader{SectionReader: io.NewSectionReader(f, offset, length), f: f, done: func() { s.release(key, sp) }}, nil
}

// acquire returns key's spooled copy, downloading it if needed (one
// download per key at a time), and holds it until release.
func (s *packSpool) acquire(ctx context.Context, key string) (*spooled, error) {
	s.mu.Lock()
	sp, ok := s.files[key]
	if ok {
		sp.users++
		s.lru.MoveToFront(sp.elem)
		s.mu.Unlock()
		select {
		case <-sp.ready:
		case <-ctx.Done():
			s.release(key, sp)
			return nil, ctx.Err()
		}
		if sp.err != nil {
			s.release(key, sp)
			return nil, sp.err
		}
		return sp, nil
	}
	sp = &spooled{ready: make(chan struct{}), path: filepath.Join(s.dir, filepath.Base(key)), users: 1}
	sp.elem = s.lru.PushFront(key)
	s.files[key] = sp
	s.evictLocked()
	s.mu.Unlock()

	sp.err = s.download(ctx, key, sp.path)
	close(sp.ready)
	if sp.err != nil {
		s.mu.Lock()
		if s.files[key] == sp { // the next reader tries again
			delete(s.files, key)
			s.lru.Remove(sp.elem)
		}
		s.mu.Unlock()
		s.release(key, sp)
		return nil, sp.err
	}
	return sp, nil
}

func (s *packSpool) download(ctx context.Context, key, path string) error {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("download %s: %w", key, err)
	}
	return nil
}

// release drops a hold; an evicted copy no one holds is removed.
func (s *packSpool) release(key string, sp *spooled) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp.users--
	if sp.users == 0 && s.files[key] != sp {
		_ = os.Remove(sp.path)
	}
}

// evictLocked forgets the least recently used copies past spoolPacks;
// their files go once no reader holds them.
func (s *packSpool) evictLocked() {
	for s.lru.Len() > spoolPacks {
		e := s.lru.Back()
		key := e.Value.(string)
		sp := s.files[key]
		s.lru.Remove(e)
		delete(s.files, key)
		if sp.users == 0 {
			_ = os.Remove(sp.path)
		}
	}
}

type spoolReader struct {
	*io.SectionReader
	f    *os.File
	done func()
	once sync.Once
}

func (r *spoolReader) Close() error {
	err := r.f.Close()
	r.once.Do(r.done)
	return err
}
