// Package storagetest helps test storage backends and the code above them:
// Run is the conformance suite every storage.Storage passes, Memory is an
// in-memory store, and Faulty wraps a store to inject failures.
package storagetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pitr-dev/pitr/storage"
)

var _ storage.Storage = (*Memory)(nil)

// Memory is a storage.Storage in memory, safe for concurrent use.
type Memory struct {
	// Now gives the ModTime of objects Put from now on; time.Now if nil.
	// Set it before the store is shared.
	Now func() time.Time
	// LockFor, if positive, locks every object Put from now on for that
	// long, as a bucket with S3 Object Lock does: Delete refuses it with
	// storage.ErrLocked until then. Set it before the store is shared.
	LockFor time.Duration

	mu      sync.Mutex
	objects map[string]memObject
}

type memObject struct {
	data    []byte // never modified once stored
	modTime time.Time
	locked  time.Time // retention lock until; zero for none
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{objects: make(map[string]memObject)}
}

// Put reads all of r before storing it, so a failed read stores nothing.
func (m *Memory) Put(ctx context.Context, key string, r io.Reader) error {
	if err := m.put(ctx, key, r, false); err != nil {
		return fmt.Errorf("put: %w", err)
	}
	return nil
}

// Create is Put that refuses an existing key with storage.ErrExist.
func (m *Memory) Create(ctx context.Context, key string, r io.Reader) error {
	if err := m.put(ctx, key, r, true); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	return nil
}

func (m *Memory) put(ctx context.Context, key string, r io.Reader, create bool) error {
	if !storage.ValidKey(key) {
		return fmt.Errorf("invalid key %q", key)
	}
	data, err := io.ReadAll(ctxReader{ctx: ctx, r: r})
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[key]; ok && create {
		return fmt.Errorf("%s: %w", key, storage.ErrExist)
	}
	o := memObject{data: data, modTime: m.now()}
	if m.LockFor > 0 {
		o.locked = o.modTime.Add(m.LockFor)
	}
	m.objects[key] = o
	return nil
}

func (m *Memory) now() time.Time {
	if m.Now != nil {
		return m.Now().UTC()
	}
	return time.Now().UTC()
}

// Get returns a reader over the object's bytes.
func (m *Memory) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	o, err := m.lookup(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return io.NopCloser(bytes.NewReader(o.data)), nil
}

// GetRange returns a reader over part of the object's bytes.
func (m *Memory) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := storage.CheckRange(offset, length); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	o, err := m.lookup(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	data := o.data[min(offset, int64(len(o.data))):]
	if length >= 0 && length < int64(len(data)) {
		data = data[:length]
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// Stat reports the object's size and time of Put.
func (m *Memory) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	o, err := m.lookup(ctx, key)
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	return storage.ObjectInfo{Key: key, Size: int64(len(o.data)), ModTime: o.modTime}, nil
}

func (m *Memory) lookup(ctx context.Context, key string) (memObject, error) {
	if !storage.ValidKey(key) {
		return memObject{}, fmt.Errorf("invalid key %q", key)
	}
	if err := ctx.Err(); err != nil {
		return memObject{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return memObject{}, storage.ErrNotExist
	}
	return o, nil
}

// List calls fn for a snapshot of the matching objects taken at the start,
// without holding the lock, so fn may use the store.
func (m *Memory) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	m.mu.Lock()
	var infos []storage.ObjectInfo
	for k, o := range m.objects {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, storage.ObjectInfo{Key: k, Size: int64(len(o.data)), ModTime: o.modTime})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(infos, func(a, b storage.ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	for _, info := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the object if it exists.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if !storage.ValidKey(key) {
		return fmt.Errorf("delete: invalid key %q", key)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.objects[key]; ok && o.locked.After(m.now()) {
		return storage.Permanent(fmt.Errorf("delete %s: %w until %s", key, storage.ErrLocked, o.locked.Format(time.RFC3339)))
	}
	delete(m.objects, key)
	return nil
}

var _ storage.Locker = (*Memory)(nil)

// LockedUntil reports the object's retention lock (see LockFor).
func (m *Memory) LockedUntil(ctx context.Context, key string) (time.Time, error) {
	o, err := m.lookup(ctx, key)
	if err != nil {
		return time.Time{}, fmt.Errorf("locked until %s: %w", key, err)
	}
	return o.locked, nil
}

// ExtendLock locks the object until at least until; it never shortens.
func (m *Memory) ExtendLock(ctx context.Context, key string, until time.Time) error {
	if _, err := m.lookup(ctx, key); err != nil {
		return fmt.Errorf("extend lock of %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objects[key]
	if !ok {
		return fmt.Errorf("extend lock of %s: %w", key, storage.ErrNotExist)
	}
	if until.After(o.locked) {
		o.locked = until.UTC()
		m.objects[key] = o
	}
	return nil
}

// ctxReader stops a read once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
