package wal

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
)

// ErrCorrupt marks objects that fail authentication or decoding.
var ErrCorrupt = errors.New("stored object is corrupt or was tampered with")

// OpenStored opens a stored object for its verified plaintext. Its error,
// and what classify makes of a read error, tell a broken transport
// (transient: retried) from a wrong key and from stored bytes that fail age
// authentication, zstd decoding or the SHA-256 check (ErrCorrupt).
func OpenStored(ctx context.Context, st storage.Storage, codec *envelope.Codec, key, name string, encrypted bool, sha string) (io.ReadCloser, func(error) error, error) {
	rc, err := st.Get(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		// Listed a moment ago: deleted under us (for chunks: their
		// segment was stored whole). Transient: the listing runs again.
		return nil, nil, fmt.Errorf("get %s: vanished after listing", key)
	}
	if err != nil {
		return nil, nil, err
	}
	body := &transportReader{r: rc}
	classify := func(err error) error {
		switch {
		case errors.Is(err, crypto.ErrWrongKey):
			return fmt.Errorf("%s: %w", name, err)
		case ctx.Err() != nil:
			return ctx.Err()
		case body.err != nil:
			return fmt.Errorf("download %s: %w", key, body.err)
		}
		return fmt.Errorf("%s: %w: %v", name, ErrCorrupt, err)
	}
	pr, err := codec.Open(body, encrypted, sha)
	if err != nil {
		rc.Close()
		return nil, nil, classify(err)
	}
	return both{pr, rc}, classify, nil
}

// both closes the plaintext reader, then the storage body under it.
type both struct {
	io.ReadCloser
	body io.Closer
}

func (b both) Close() error {
	b.ReadCloser.Close()
	return b.body.Close()
}

// transportReader remembers a read error of the storage body itself, to
// tell a broken download from bytes that fail to decode.
type transportReader struct {
	r   io.Reader
	err error
}

func (t *transportReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}
