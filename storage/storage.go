// Package storage defines the small interface pitr needs from an object store.
//
// It knows nothing about PostgreSQL, encryption or key layout (that is
// internal/catalog's job). Implementations: storage/local (a directory, the
// embedded default) and storage/s3 (AWS S3, MinIO and other S3-compatible
// stores). Every implementation passes storagetest.Run.
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotExist is wrapped by Get and Stat when the key is absent. Check it
// with errors.Is: it means the store answered and confirmed the absence,
// never that the store could not be reached.
var ErrNotExist = errors.New("object does not exist")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key     string    // relative, "/"-separated
	Size    int64     // stored bytes
	ModTime time.Time // UTC
}

// Storage is implemented by s3.Store and local.Store. Keys are relative,
// "/"-separated, without leading "/" or ".." elements (see ValidKey). A key
// must not also be a directory of other keys (both "a" and "a/b"): the
// local store and MinIO cannot hold both. Every method rejects an invalid
// key with an error that does not wrap ErrNotExist.
type Storage interface {
	// Put stores everything read from r under key. It returns nil only once
	// the object is durable and the store has confirmed its integrity; a
	// failed Put never leaves a partial object under key. Put is atomic:
	// readers see the old object or the new one, never a mix.
	Put(ctx context.Context, key string, r io.Reader) error
	// Get opens the object for reading. It wraps ErrNotExist if absent.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat wraps ErrNotExist if absent.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List calls fn once per object whose key starts with prefix, in key
	// order, on the caller's goroutine. An error from fn stops the listing
	// and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes the object; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// ValidKey reports whether key is acceptable to every backend: non-empty,
// relative, "/"-separated, with no empty, "." or ".." elements.
func ValidKey(key string) bool {
	if key == "" || len(key) > 1024 {
		return false
	}
	start := 0
	for i := 0; i <= len(key); i++ {
		if i == len(key) || key[i] == '/' {
			elem := key[start:i]
			if elem == "" || elem == "." || elem == ".." {
				return false
			}
			start = i + 1
			continue
		}
		if key[i] == '\\' || key[i] == 0 {
			return false
		}
	}
	return true
}
