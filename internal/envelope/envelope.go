// Package envelope turns plaintext into the bytes pitr stores and back:
// zstd, then age to every configured recipient. The stored object is exactly
// what `zstd | age -r ...` would produce, so a user without pitr can still
// recover a file with `age -d -i key.txt OBJECT | zstd -d`.
//
// The plaintext's SHA-256 is computed while sealing and checked while
// opening; the catalog records it in the object's key (WAL) or in the
// plaintext backup entry (backup parts), so it is readable without the key.
package envelope

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"filippo.io/age"

	"github.com/pitr-dev/pitr/internal/compress"
	"github.com/pitr-dev/pitr/internal/crypto"
)

// ErrChecksum is wrapped when opened plaintext does not match its recorded
// SHA-256.
var ErrChecksum = errors.New("plaintext checksum mismatch")

// Codec holds what sealing and opening need. Recipients are required to seal
// an encrypted object; Identities only to open one.
type Codec struct {
	Encrypt    bool
	Recipients []age.Recipient
	Identities []age.Identity
	Level      int // zstd level 1..4; 0 means compress.DefaultLevel
	// Workers > 1 compresses independent frames on that many goroutines
	// (compress.NewParallelWriter): for long streams such as base backups.
	Workers int
}

// Sealer is the writer Seal returns. Write plaintext, then Close; after
// Close, Sum and Size describe the plaintext.
type Sealer struct {
	h      hash.Hash
	n      int64
	zw     io.WriteCloser
	ew     io.WriteCloser // nil when not encrypting
	closed bool
}

// Seal returns a Sealer writing the stored form to w. Close flushes both
// layers but does not close w.
func (c *Codec) Seal(w io.Writer) (*Sealer, error) {
	s := &Sealer{h: sha256.New()}
	dst := w
	if c.Encrypt {
		ew, err := crypto.Encrypt(w, c.Recipients...)
		if err != nil {
			return nil, err
		}
		s.ew = ew
		dst = ew
	}
	level := c.Level
	if level == 0 {
		level = compress.DefaultLevel
	}
	var zw io.WriteCloser
	var err error
	if c.Workers > 1 {
		zw, err = compress.NewParallelWriter(dst, level, c.Workers)
	} else {
		zw, err = compress.NewWriter(dst, level)
	}
	if err != nil {
		return nil, err
	}
	s.zw = zw
	return s, nil
}

func (s *Sealer) Write(p []byte) (int, error) {
	n, err := s.zw.Write(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	return n, err
}

// ReadFrom lets io.Copy hand us large reads.
func (s *Sealer) ReadFrom(r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := s.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close finishes the zstd frame and the age stream.
func (s *Sealer) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.zw.Close(); err != nil {
		return fmt.Errorf("compress: %w", err)
	}
	if s.ew != nil {
		if err := s.ew.Close(); err != nil {
			return fmt.Errorf("encrypt: %w", err)
		}
	}
	return nil
}

// Sum returns the plaintext SHA-256 as lower-case hex.
func (s *Sealer) Sum() string { return hex.EncodeToString(s.h.Sum(nil)) }

// Size returns the number of plaintext bytes written.
func (s *Sealer) Size() int64 { return s.n }

// Open returns a reader of the plaintext of a stored object read from r.
// encrypted says whether the object is age-encrypted (the catalog knows it
// from the key). When wantSHA256 is not empty, the reader returns an error
// wrapping ErrChecksum instead of io.EOF if the plaintext differs, so a
// caller that reads to EOF without error has verified bytes. Close releases
// the decoder; it does not close r.
func (c *Codec) Open(r io.Reader, encrypted bool, wantSHA256 string) (io.ReadCloser, error) {
	src := r
	if encrypted {
		pr, err := crypto.Decrypt(r, c.Identities...)
		if err != nil {
			return nil, err
		}
		src = pr
	}
	zr, err := compress.NewReader(src)
	if err != nil {
		return nil, err
	}
	return &opener{zr: zr, h: sha256.New(), want: wantSHA256}, nil
}

type opener struct {
	zr   io.ReadCloser
	h    hash.Hash
	want string
	n    int64
}

func (o *opener) Read(p []byte) (int, error) {
	n, err := o.zr.Read(p)
	o.h.Write(p[:n])
	o.n += int64(n)
	if err == io.EOF && o.want != "" {
		if got := hex.EncodeToString(o.h.Sum(nil)); got != o.want {
			return n, fmt.Errorf("%w: got sha256 %s, want %s", ErrChecksum, got[:16], o.want[:min(16, len(o.want))])
		}
	}
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("open object: %w", err)
	}
	return n, err
}

func (o *opener) Close() error { return o.zr.Close() }
