package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/wal"
)

// Sealed is a WAL file or chunk sealed in memory, ready to store.
type Sealed struct {
	SHA256 string
	Bytes  int64 // plaintext
	Body   []byte
}

// Seal compresses (and encrypts) data in memory.
func (r *Repo) Seal(data []byte) (Sealed, error) {
	var buf bytes.Buffer
	buf.Grow(len(data)/4 + 4096)
	s, err := r.codec.Seal(&buf)
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

// StoreWAL stores a whole WAL file (a segment or a .history file) held in
// memory under the same key wal-push would use, with the same rules: the
// same content stored already is success, different content is
// wal.ErrConflict.
func (r *Repo) StoreWAL(ctx context.Context, name string, data []byte) (StoreResult, error) {
	sealed, err := r.Seal(data)
	if err != nil {
		return StoreResult{}, fmt.Errorf("seal %s: %w", name, err)
	}
	return r.StoreSealedWAL(ctx, name, sealed)
}

// StoreSealedWAL is StoreWAL for content sealed already (with this
// repository's codec).
func (r *Repo) StoreSealedWAL(ctx context.Context, name string, sealed Sealed) (StoreResult, error) {
	if _, err := wal.ParseName(name); err != nil {
		return StoreResult{}, err
	}
	existing, err := wal.ListWAL(ctx, r.st, name)
	if err != nil {
		return StoreResult{}, fmt.Errorf("check repository for %s: %w", name, err)
	}
	for _, o := range existing {
		if o.SHA256 == sealed.SHA256 {
			return StoreResult{Key: o.Key, Existed: true}, nil
		}
	}
	if len(existing) > 0 {
		return StoreResult{}, fmt.Errorf("%s %w (stored sha256 %.16s, received %.16s); refusing to overwrite", name, wal.ErrConflict, existing[0].SHA256, sealed.SHA256)
	}
	key, err := catalog.WALKey(name, sealed.SHA256, r.Encrypted())
	if err != nil {
		return StoreResult{}, err
	}
	existed, err := r.CreateObject(ctx, key, bytes.NewReader(sealed.Body))
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
func (r *Repo) CreateObject(ctx context.Context, key string, body io.Reader) (existed bool, err error) {
	err = r.st.Create(ctx, key, body)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, storage.ErrExist) {
		return false, err
	}
	if _, serr := r.st.Stat(ctx, key); serr != nil {
		return false, fmt.Errorf("%w, but it could not be confirmed: %w", err, serr)
	}
	return true, nil
}

// Written is what PutSealed stored.
type Written struct {
	Key    string
	SHA256 string // of the plaintext (PutSealed)
	// CRC32C of the plaintext and SHA-256 of the stored bytes (PutLarge).
	CRC32C, StoredSHA256 string
	Bytes                int64 // plaintext
	Stored               int64 // bytes stored, after compression and encryption
}

// PutSealed streams src through the codec into key. The object exists
// only if src was read to its end without error and the seal closed: an
// error from src (a tool that failed, a cancelled backup) aborts the
// upload, so nothing half-written is ever stored. The key must be one no
// one else writes (under an ID reserved with ReserveID).
func (r *Repo) PutSealed(ctx context.Context, key string, src io.Reader) (Written, error) {
	return r.putSealed(ctx, key, src, r.codec.Seal)
}

// PutLarge is PutSealed for backup parts: Written records the CRC32C of
// the plaintext and the SHA-256 of the stored bytes instead of the
// plaintext's SHA-256 (envelope.SealLarge), and OpenPart checks them.
func (r *Repo) PutLarge(ctx context.Context, key string, src io.Reader) (Written, error) {
	return r.putSealed(ctx, key, src, r.codec.SealLarge)
}

func (r *Repo) putSealed(ctx context.Context, key string, src io.Reader, seal func(io.Writer) (*envelope.Sealer, error)) (Written, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := r.st.Put(ctx, key, pr)
		pr.CloseWithError(err) // unblocks the writer if Put gave up early
		done <- err
	}()
	cw := &countingWriter{w: pw}
	s, err := seal(cw)
	if err == nil {
		_, err = io.Copy(s, src)
		if err == nil {
			err = s.Close()
		}
	}
	if err != nil {
		pw.CloseWithError(err)
		<-done //nolint:errcheck // the uploader fails on the closed pipe; err says why
		return Written{}, err
	}
	_ = pw.Close()
	if err := <-done; err != nil {
		return Written{}, fmt.Errorf("store %s: %w", key, err)
	}
	sums := s.Sums()
	return Written{Key: key, SHA256: sums.SHA256, CRC32C: sums.CRC32C, StoredSHA256: sums.StoredSHA256, Bytes: s.Size(), Stored: cw.n}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// OpenSealed opens the sealed object key for reading its plaintext; a
// read fails unless the content matches wantSHA256 (the recorded SHA-256
// of the plaintext) when the whole object has been read.
func (r *Repo) OpenSealed(ctx context.Context, key string, encrypted bool, wantSHA256 string) (io.ReadCloser, error) {
	return r.openSums(ctx, key, encrypted, envelope.Sums{SHA256: wantSHA256})
}

// OpenPart opens part p of backup b for reading its plaintext, checking
// the sums the part records (see PutLarge; older parts record the
// plaintext's SHA-256) once the whole part has been read.
func (r *Repo) OpenPart(ctx context.Context, b *catalog.Backup, p catalog.Part) (io.ReadCloser, error) {
	return r.openSums(ctx, p.Key, b.Encrypted, PartSums(p))
}

func (r *Repo) openSums(ctx context.Context, key string, encrypted bool, want envelope.Sums) (io.ReadCloser, error) {
	rc, err := r.st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	pr, err := r.codec.OpenSums(rc, encrypted, want)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return both{pr, rc}, nil
}

// PartSums are the checks a read of part p makes.
func PartSums(p catalog.Part) envelope.Sums {
	return envelope.Sums{SHA256: p.SHA256, CRC32C: p.CRC32C, StoredSHA256: p.StoredSHA256}
}

// both closes the plaintext reader, then the stored object.
type both struct {
	io.ReadCloser
	obj io.Closer
}

func (b both) Close() error {
	err := b.ReadCloser.Close()
	if cerr := b.obj.Close(); err == nil {
		err = cerr
	}
	return err
}
