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
	"fmt"
	"io"
	"time"
)

// ErrNotExist is wrapped by Get and Stat when the key is absent. Check it
// with errors.Is: it means the store answered and confirmed the absence,
// never that the store could not be reached.
var ErrNotExist = errors.New("object does not exist")

// ErrExist is wrapped by Create when an object with the key exists already
// (or, on S3, another create of the key is in flight). Check it with
// errors.Is. Create leaves the existing object untouched.
var ErrExist = errors.New("object already exists")

// ErrPermanent is wrapped by errors that retrying cannot fix: the store
// refused the credentials or the request (403, a wrong secret or unknown
// access key, access denied, a missing bucket). Check it with errors.Is;
// callers that retry stop at once on it. Implementations mark such errors
// with Permanent, where they map the store's answers.
var ErrPermanent = errors.New("permanent storage error")

// Permanent marks err as wrapping ErrPermanent, keeping its message.
func Permanent(err error) error {
	if err == nil || errors.Is(err, ErrPermanent) {
		return err
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string        { return e.err.Error() }
func (e permanentError) Unwrap() error        { return e.err }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

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
	// Create is Put that stores the object only if no object has key, and
	// otherwise fails with an error wrapping ErrExist, leaving the existing
	// object as it was. Two Creates of one key racing: at most one
	// succeeds. Repository objects that must never be overwritten (WAL,
	// catalog entries, the marker, cluster bindings, ID reservations) are
	// written with it.
	//
	// ErrExist does not promise the other object is complete: on S3 a
	// concurrent create still in flight (409 ConditionalRequestConflict)
	// gives it too, and a request retried after its answer was lost finds
	// its own object. Callers that go on to rely on the object confirm it
	// (Stat, or Get and compare).
	Create(ctx context.Context, key string, r io.Reader) error
	// Get opens the object for reading. It wraps ErrNotExist if absent.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange opens length bytes of the object from offset (length -1:
	// to its end). A range reaching past the end is cut short there; an
	// offset at or past the end gives an empty reader. It wraps
	// ErrNotExist if absent; a negative offset, or a length below -1, is
	// an error.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Stat wraps ErrNotExist if absent.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// List calls fn once per object whose key starts with prefix, in key
	// order, on the caller's goroutine. An error from fn stops the listing
	// and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
	// Delete removes the object; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// Upload is an incomplete multipart upload: invisible to Get and List, and
// billed until it is completed or aborted. A process killed during a Put
// leaves one behind.
type Upload struct {
	Key       string    // relative, like every key
	ID        string    // the store's upload id
	Initiated time.Time // UTC
}

// Uploads is implemented by stores whose Put can leave an incomplete
// multipart upload behind when the process dies (s3.Store), so that a later
// call can remove what a killed one left. The local store has no such
// leftovers and does not implement it.
type Uploads interface {
	// ListUploads calls fn once per incomplete upload whose key starts with
	// prefix, on the caller's goroutine. Some S3-compatible stores (MinIO)
	// list only the uploads of one whole key: callers that must work there
	// pass a whole key.
	ListUploads(ctx context.Context, prefix string, fn func(Upload) error) error
	// AbortUpload removes an incomplete upload and its parts; an upload
	// that is gone already (aborted, or completed) is not an error.
	AbortUpload(ctx context.Context, key, id string) error
}

// UploadsOf returns st's Uploads, looking through wrappers (such as the
// daemon's store monitor) that reveal the store they wrap with
// Unwrap() Storage.
func UploadsOf(st Storage) (Uploads, bool) {
	for st != nil {
		if up, ok := st.(Uploads); ok {
			return up, true
		}
		w, ok := st.(interface{ Unwrap() Storage })
		if !ok {
			break
		}
		st = w.Unwrap()
	}
	return nil, false
}

type uploadStartedKey struct{}

// WithUploadStarted returns a context whose Puts call fn as soon as the
// store has started a multipart upload, before any part is sent, so the
// caller can record it and a later process can abort it with
// Uploads.AbortUpload should this one die before Put returns. fn runs on
// Put's goroutine and must be quick.
func WithUploadStarted(ctx context.Context, fn func(Upload)) context.Context {
	return context.WithValue(ctx, uploadStartedKey{}, fn)
}

// UploadStarted calls the function WithUploadStarted put in ctx, if any.
// Implementations call it after creating a multipart upload.
func UploadStarted(ctx context.Context, u Upload) {
	if fn, ok := ctx.Value(uploadStartedKey{}).(func(Upload)); ok && fn != nil {
		fn(u)
	}
}

// CheckRange rejects what GetRange refuses for every store: a negative
// offset, or a length below -1.
func CheckRange(offset, length int64) error {
	if offset < 0 || length < -1 {
		return fmt.Errorf("invalid range: offset %d, length %d", offset, length)
	}
	return nil
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

// ErrLocked is wrapped by Delete when the store refuses to remove an object
// still under a retention lock (S3 Object Lock). Check it with errors.Is:
// the object stays, and retrying before its lock ends cannot help.
var ErrLocked = errors.New("object is locked")

// Locker is implemented by stores that hold objects under a retention lock
// (s3.Store on a bucket with Object Lock). Wrappers reveal it through
// Unwrap() Storage, as for Uploads (see LockerOf).
type Locker interface {
	// LockedUntil reports the end of key's retention lock; the zero time
	// means none. It wraps ErrNotExist if absent.
	LockedUntil(ctx context.Context, key string) (time.Time, error)
	// ExtendLock makes key's retention last at least until until; a lock
	// already reaching further is left as it is (locks never shorten).
	ExtendLock(ctx context.Context, key string, until time.Time) error
}

// LockerOf returns st's Locker, looking through wrappers that reveal the
// store they wrap with Unwrap() Storage.
func LockerOf(st Storage) (Locker, bool) {
	for st != nil {
		if l, ok := st.(Locker); ok {
			return l, true
		}
		w, ok := st.(interface{ Unwrap() Storage })
		if !ok {
			break
		}
		st = w.Unwrap()
	}
	return nil, false
}
