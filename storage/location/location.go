// Package location turns a repository URL into a storage.Storage:
// file:///dir (storage/local) or s3://bucket/prefix (storage/s3). It holds
// no state, so one process may open several repositories at once, as
// `pitr copy` does with a source and a target.
package location

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/local"
	"github.com/pitr-dev/pitr/storage/s3"
)

// Options configures Open.
type Options struct {
	// Create makes a missing local repository directory; only writers
	// set it, readers never create a repository.
	Create bool
	// S3 configures s3:// URLs; Open fills in Bucket and Prefix.
	S3 s3.Options
}

// UsageError is a URL that can never name a repository: the caller's
// mistake, not the store's.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// NoRepositoryError says there is no repository at URL, and why; readers
// get it where a writer would create one.
type NoRepositoryError struct{ URL, Why string }

func (e *NoRepositoryError) Error() string {
	return fmt.Sprintf("no repository at %s (%s)", e.URL, e.Why)
}

// Open returns the store url names. A file:// URL opens (or, with Create,
// creates) a local directory; anything else is an S3 URL. The filesystem
// root is refused as a repository.
func Open(ctx context.Context, url string, opts Options) (storage.Storage, error) {
	if strings.HasPrefix(url, "file://") {
		dir, err := local.ParseURL(url)
		if err != nil {
			return nil, &UsageError{Msg: "repo: " + err.Error()}
		}
		st, err := openLocal(url, dir, opts.Create)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	bucket, prefix, err := s3.ParseURL(url)
	if err != nil {
		return nil, &UsageError{Msg: "repo: " + err.Error()}
	}
	o := opts.S3
	o.Bucket, o.Prefix = bucket, prefix
	st, err := s3.New(ctx, o)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// openLocal opens a file:// repository; only writers create its directory.
func openLocal(url, dir string, create bool) (*local.Store, error) {
	switch {
	case dir == "/" && create:
		return nil, &UsageError{Msg: fmt.Sprintf("repo %s is the filesystem root; name a directory of its own", url)}
	case dir == "/":
		return nil, &NoRepositoryError{URL: url, Why: "the filesystem root is never one"}
	case create:
		return local.Create(dir)
	}
	st, err := local.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &NoRepositoryError{URL: url, Why: dir + " does not exist"}
	}
	return st, err
}
