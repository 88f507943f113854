package files

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/restic/chunker"
)

// DedupKeySize is the length of a dedup key in bytes.
const DedupKeySize = 32

// DedupKey is the repository's dedup key: chunk IDs are HMAC-SHA-256 of
// chunk plaintext under it, and the chunker's polynomial derives from it,
// so a reader of the repository can neither name a chunk of a known file
// nor recognise one by where its boundaries fall. It prints as
// "redacted"; it never goes into a log or the repository (only its
// fingerprint, KeyID, does).
type DedupKey struct{ b [DedupKeySize]byte }

// NewDedupKey returns a key with the given bytes (tests, and
// LoadOrCreateDedupKey).
func NewDedupKey(b [DedupKeySize]byte) DedupKey { return DedupKey{b: b} }

func (k DedupKey) String() string { return "redacted" }

// GoString keeps %#v from printing the key.
func (k DedupKey) GoString() string { return "files.DedupKey{redacted}" }

// MarshalText keeps the key out of JSON and YAML.
func (k DedupKey) MarshalText() ([]byte, error) { return []byte("redacted"), nil }

// IsZero says whether k was never set.
func (k DedupKey) IsZero() bool { return k.b == [DedupKeySize]byte{} }

// keyIDLabel is what the fingerprint is the HMAC of: a fixed label, so the
// fingerprint names the key without revealing it or any chunk ID.
const keyIDLabel = "pitr dedup key id v1"

// KeyID is the key's fingerprint, recorded in the repository
// (catalog.DedupKeyIDKey): hex HMAC-SHA-256 of a fixed label.
func (k DedupKey) KeyID() string { return k.mac([]byte(keyIDLabel)) }

// ChunkID is the chunk ID of plaintext data: hex HMAC-SHA-256 under k.
func (k DedupKey) ChunkID(data []byte) string { return k.mac(data) }

func (k DedupKey) mac(data []byte) string {
	h := hmac.New(sha256.New, k.b[:])
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// polynomial is the chunker's Rabin polynomial, derived from the key: a
// stream of HMAC-SHA-256 blocks of a label and a counter feeds
// chunker.DerivePolynomial, which draws until it finds an irreducible one.
func (k DedupKey) polynomial() (chunker.Pol, error) {
	return chunker.DerivePolynomial(&keyStream{k: k})
}

type keyStream struct {
	k   DedupKey
	n   uint64
	buf []byte
}

func (s *keyStream) Read(p []byte) (int, error) {
	if len(s.buf) == 0 {
		var label [8 + 24]byte
		copy(label[:], "pitr chunker polynomial\x00")
		binary.BigEndian.PutUint64(label[24:], s.n)
		s.n++
		h := hmac.New(sha256.New, s.k.b[:])
		h.Write(label[:])
		s.buf = h.Sum(nil)
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// LoadOrCreateDedupKey reads the dedup key at path (64 hex digits and a
// newline), or, when there is no file there, generates one and writes it
// with mode 0600 (its directory 0700 if it has to be made). Two processes
// creating it at once agree: the file appears whole with a hard link that
// fails if another got there first, and the loser reads the winner's.
// created says it was generated now.
func LoadOrCreateDedupKey(path string) (k DedupKey, created bool, err error) {
	k, err = readDedupKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	var b [DedupKeySize]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return k, false, fmt.Errorf("generate dedup key: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return k, false, fmt.Errorf("create dedup key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".dedup-key-*")
	if err != nil {
		return k, false, fmt.Errorf("create dedup key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(b[:]) + "\n")
	if err == nil {
		err = tmp.Chmod(0o600) // CreateTemp's mode is 0600 already; say so
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return k, false, fmt.Errorf("create dedup key %s: %w", path, err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			k, err = readDedupKey(path)
			return k, false, err
		}
		return k, false, fmt.Errorf("create dedup key %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return NewDedupKey(b), true, nil
}

func readDedupKey(path string) (DedupKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return DedupKey{}, fmt.Errorf("read dedup key: %w", err)
	}
	var b [DedupKeySize]byte
	s := strings.TrimSpace(string(data))
	if len(s) != 2*DedupKeySize {
		return DedupKey{}, fmt.Errorf("dedup key %s: want %d hex digits", path, 2*DedupKeySize)
	}
	if _, err := hex.Decode(b[:], []byte(s)); err != nil {
		return DedupKey{}, fmt.Errorf("dedup key %s: want %d hex digits", path, 2*DedupKeySize)
	}
	k := NewDedupKey(b)
	if k.IsZero() {
		return DedupKey{}, fmt.Errorf("dedup key %s: all zero", path)
	}
	return k, nil
}
