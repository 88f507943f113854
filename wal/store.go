package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
)

// Sealed is a WAL file or chunk sealed in memory, ready to store.
type Sealed struct {
	SHA256 string
	Bytes  int64 // plaintext
	Body   []byte
}

// Seal compresses (and encrypts) data in memory.
func Seal(codec *envelope.Codec, data []byte) (Sealed, error) {
	var buf bytes.Buffer
	buf.Grow(len(data)/4 + 4096)
	s, err := codec.Seal(&buf)
	if err != nil {
		return Sealed{}, err
	}
	if _, err := s.Write(data); err != nil {
		return Sealed{}, err
	}
	if err := s.Close(); err != nil {
		return Sealed{}, err
	}
	return Sealed{SHA256: s.Sum(), Bytes: s.Size(), Body: buf.Bytes()}, nil
}

// StoreResult reports what StoreBytes did.
type StoreResult struct {
	Key     string
	Stored  int64 // bytes uploaded; 0 if the same content was stored already
	Existed bool
}

// StoreBytes stores a whole WAL file (a segment or a .history file) held in
// memory under the same key wal-push would use, with the same rules: the
// same content stored already is success, different content is ErrConflict.
func StoreBytes(ctx context.Context, st storage.Storage, codec *envelope.Codec, name string, data []byte) (StoreResult, error) {
	sealed, err := Seal(codec, data)
	if err != nil {
		return StoreResult{}, fmt.Errorf("seal %s: %w", name, err)
	}
	return StoreSealed(ctx, st, codec.Encrypt, name, sealed)
}

// StoreSealed is StoreBytes for content sealed already.
func StoreSealed(ctx context.Context, st storage.Storage, encrypted bool, name string, sealed Sealed) (StoreResult, error) {
	if _, err := ParseName(name); err != nil {
		return StoreResult{}, err
	}
	existing, err := ListWAL(ctx, st, name)
	if err != nil {
		return StoreResult{}, fmt.Errorf("check repository for %s: %w", name, err)
	}
	for _, o := range existing {
		if o.SHA256 == sealed.SHA256 {
			return StoreResult{Key: o.Key, Existed: true}, nil
		}
	}
	if len(existing) > 0 {
		return StoreResult{}, fmt.Errorf("%s %w (stored sha256 %.16s, received %.16s); refusing to overwrite", name, ErrConflict, existing[0].SHA256, sealed.SHA256)
	}
	key, err := catalog.WALKey(name, sealed.SHA256, encrypted)
	if err != nil {
		return StoreResult{}, err
	}
	existed, err := CreateObject(ctx, st, key, bytes.NewReader(sealed.Body))
	if err != nil {
		return StoreResult{}, fmt.Errorf("store %s: %w", name, err)
	}
	if existed {
		return StoreResult{Key: key, Existed: true}, nil
	}
	return StoreResult{Key: key, Stored: int64(len(sealed.Body))}, nil
}

// CreateObject stores r under key, a key that carries its content's
// SHA-256 (WAL files and chunks), with a create-only put: nothing stored
// is ever replaced. An existing object under the key holds the same
// content, so it is success (existed true) once Stat confirms the object
// is there: on S3 ErrExist can also mean another create of it is still in
// flight, which may yet fail.
func CreateObject(ctx context.Context, st storage.Storage, key string, r io.Reader) (existed bool, err error) {
	err = st.Create(ctx, key, r)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, storage.ErrExist) {
		return false, err
	}
	if _, serr := st.Stat(ctx, key); serr != nil {
		return false, fmt.Errorf("%w, but it could not be confirmed: %w", err, serr)
	}
	return true, nil
}
