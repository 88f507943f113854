// Package envelope turns plaintext into the bytes pitr stores and back:
// compression (zstd, lz4 or S2), then age to every configured recipient. The
// stored object is exactly what `zstd | age -r ...` (or `lz4`, `s2c`) would
// produce, so a user without pitr can still recover a file with
// `age -d -i key.txt OBJECT | zstd -d` (or `lz4 -d`, `s2d`). Open recognises
// each object's codec by the magic bytes of its plaintext stream, so
// nothing else records it and every object stays readable whichever
// `compression` wrote it.
//
// The plaintext's SHA-256 is computed while sealing and checked while
// opening; the catalog records it in the object's key (WAL) or in the
// plaintext entry (dumps, older backup parts), so it is readable without
// the key. Large objects (backup parts, SealLarge) record two cheaper sums
// instead: the SHA-256 of the stored bytes, which pins them exactly (a
// restore or verify hashes about an eighth of the bytes), and the CRC32C
// of the plaintext, which checks the compressor and decompressor end to
// end at a tenth of SHA-256's cost.
package envelope

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sync"

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
	// Compression is the codec for new objects; empty means
	// compress.DefaultAlgorithm. Open reads every codec whatever it says.
	Compression compress.Algorithm
	Level       int // zstd level 1..4; 0 means compress.DefaultLevel
	// Workers > 1 compresses independent frames on that many goroutines
	// (compress.NewParallelWriter): for long streams such as base backups.
	Workers int
}

// Sealer is the writer Seal returns. Write plaintext, then Close; after
// Close, Sum and Size describe the plaintext.
type Sealer struct {
	h      hash.Hash // of the plaintext: SHA-256 (Seal) or CRC32C (SealLarge)
	stored *hashingWriter
	n      int64
	zw     io.WriteCloser
	ew     io.WriteCloser // nil when not encrypting
	closed bool
}

// Sums are the checks an object's reader makes once it has read the whole
// object; the empty ones are not made. Seal's objects record SHA256,
// SealLarge's CRC32C and StoredSHA256.
type Sums struct {
	SHA256       string // of the plaintext, hex
	CRC32C       string // of the plaintext (Castagnoli), 8 hex digits
	StoredSHA256 string // of the stored bytes, hex
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Seal returns a Sealer writing the stored form to w. Close flushes both
// layers but does not close w.
func (c *Codec) Seal(w io.Writer) (*Sealer, error) {
	return c.seal(w, &Sealer{h: sha256.New()})
}

// SealLarge is Seal for large objects: the Sealer computes the CRC32C of
// the plaintext and the SHA-256 of the bytes written to w (Sums) instead
// of the plaintext's SHA-256. On a scale-100 pgbench backup (1.5 GiB,
// stored as 181 MiB) that is 0.3 CPU-seconds of hashing instead of 1.0.
func (c *Codec) SealLarge(w io.Writer) (*Sealer, error) {
	hw := &hashingWriter{w: w, h: sha256.New()}
	return c.seal(hw, &Sealer{h: crc32.New(castagnoli), stored: hw})
}

func (c *Codec) seal(w io.Writer, s *Sealer) (*Sealer, error) {
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
	alg := c.Compression
	if alg == "" {
		alg = compress.DefaultAlgorithm
	}
	var zw io.WriteCloser
	var err error
	if c.Workers > 1 {
		zw, err = compress.NewParallelWriter(dst, alg, level, c.Workers)
	} else {
		zw, err = compress.NewWriter(dst, alg, level)
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

// ReadFrom lets io.Copy hand us large reads: 256 KiB at a time, which
// is hashed and then compressed while it is still in the L2 cache (1 MiB
// reads cost a pushed segment an eighth more CPU; docs/BENCHMARKS.md,
// "Tried, not kept").
func (s *Sealer) ReadFrom(r io.Reader) (int64, error) {
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	buf := (*bp)[:sealRead]
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

// Close finishes the compressed stream and the age stream.
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

// Sum returns the plaintext SHA-256 as lower-case hex (Seal's Sealer).
func (s *Sealer) Sum() string {
	if s.stored != nil {
		return ""
	}
	return hex.EncodeToString(s.h.Sum(nil))
}

// Sums returns what the object's reader checks.
func (s *Sealer) Sums() Sums {
	if s.stored == nil {
		return Sums{SHA256: s.Sum()}
	}
	return Sums{CRC32C: hex.EncodeToString(s.h.Sum(nil)), StoredSHA256: hex.EncodeToString(s.stored.h.Sum(nil))}
}

// hashingWriter hashes what it writes.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	return n, err
}

// hashingReader hashes what it reads.
type hashingReader struct {
	r io.Reader
	h hash.Hash
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	return n, err
}

// Size returns the number of plaintext bytes written.
func (s *Sealer) Size() int64 { return s.n }

// Open returns a reader of the plaintext of a stored object read from r.
// encrypted says whether the object is age-encrypted (the catalog knows it
// from the key). When wantSHA256 is not empty, the reader returns an error
// wrapping ErrChecksum instead of io.EOF if the plaintext differs, so a
// caller that reads to EOF without error has verified bytes.
//
// Decryption and decompression run on one goroutine and hashing on
// another, a few buffers ahead of the caller, so a restore keeps several
// cores busy: decoding, hashing and writing files at once. Close stops
// those goroutines; it does not close r, and the decoder may read from r
// until its current read returns, so close r after Close to stop a read
// blocked on the network.
func (c *Codec) Open(r io.Reader, encrypted bool, wantSHA256 string) (io.ReadCloser, error) {
	return c.OpenSums(r, encrypted, Sums{SHA256: wantSHA256})
}

// OpenSums is Open checking every sum want names: the reader returns an
// error wrapping ErrChecksum instead of io.EOF unless all of them match.
// The stored bytes are read to their end before that final answer, so
// trailing bytes count too.
func (c *Codec) OpenSums(r io.Reader, encrypted bool, want Sums) (io.ReadCloser, error) {
	var stored *hashingReader
	if want.StoredSHA256 != "" {
		stored = &hashingReader{r: r, h: sha256.New()}
		r = stored
	}
	src := r
	if encrypted {
		pr, err := crypto.Decrypt(r, c.Identities...)
		if err != nil {
			return nil, err
		}
		src = pr
	}
	// A plaintext checksum of our own makes the codec's redundant: S2's
	// CRC32C of every block cost a tenth of a WAL segment's decoding.
	newReader := compress.NewReader
	if want.CRC32C != "" || want.SHA256 != "" {
		newReader = compress.NewUncheckedReader
	}
	zr, err := newReader(src)
	if err != nil {
		return nil, err
	}
	o := &opener{
		chunks: make(chan chunk, openAhead),
		free:   make(chan []byte, 2*openAhead+2),
		done:   make(chan struct{}),
	}
	if want.SHA256 == "" {
		// CRC32C and the stored bytes' SHA-256 are cheap enough for the
		// decoding goroutine.
		go o.decode(zr, o.chunks, want, stored)
		return o, nil
	}
	decoded := make(chan chunk, openAhead)
	go o.decode(zr, decoded, want, stored)
	go o.hash(decoded, want.SHA256)
	return o, nil
}

const (
	openAhead = 2       // decoded buffers waiting for the caller
	openBuf   = 1 << 20 // bytes per buffer: an S2 block decodes straight into one
	sealRead  = 256 << 10
)

// bufs are ReadFrom's buffers and the decoded buffers of every opener: a
// long-running process seals an object every second or every segment, a
// prefetcher or a restore opens one object after another, and a fresh
// buffer is zeroed memory (for 256 KiB, a tenth of a WAL segment's read).
// Close hands an opener's idle buffers back.
var bufs = sync.Pool{New: func() any { b := make([]byte, openBuf); return &b }}

// putBuf hands b back at its full length: an opener's buffer holds the
// length of its last chunk, and a zero-length buffer would make
// ReadFrom's reads return nothing forever.
func putBuf(b []byte) {
	b = b[:cap(b)]
	bufs.Put(&b)
}

type chunk struct {
	b   []byte
	err error // set on the last chunk: io.EOF, ErrChecksum or a read error
}

type opener struct {
	chunks chan chunk
	free   chan []byte
	done   chan struct{}
	cur    []byte
	buf    []byte // cur's backing buffer, returned to free when used up
	err    error
	closed bool
}

// decode runs on its own goroutine: decrypt and decompress into buffers,
// checking want's CRC32C and StoredSHA256 (stored hashes what was read).
func (o *opener) decode(zr io.ReadCloser, out chan<- chunk, want Sums, stored *hashingReader) {
	defer zr.Close()
	defer close(out)
	var crc uint32
	for {
		var buf []byte
		select {
		case buf = <-o.free:
		default:
			buf = *bufs.Get().(*[]byte)
		}
		buf = buf[:cap(buf)] // one from free holds its last chunk's length
		n, err := io.ReadFull(zr, buf)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			err = io.EOF
		case err != nil:
			err = fmt.Errorf("open object: %w", err)
		}
		if want.CRC32C != "" {
			crc = crc32.Update(crc, castagnoli, buf[:n])
		}
		if err == io.EOF {
			err = checkSums(want, crc, stored)
		}
		select {
		case out <- chunk{b: buf[:n], err: err}:
		case <-o.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// checkSums is the end of a read: io.EOF when the CRC32C of the plaintext
// and the SHA-256 of the stored bytes (read to their end first) are the
// wanted ones.
func checkSums(want Sums, crc uint32, stored *hashingReader) error {
	if want.CRC32C != "" {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], crc)
		if got := hex.EncodeToString(b[:]); got != want.CRC32C {
			return fmt.Errorf("%w: got crc32c %s, want %s", ErrChecksum, got, want.CRC32C)
		}
	}
	if stored != nil {
		if _, err := io.Copy(io.Discard, stored); err != nil {
			return fmt.Errorf("open object: %w", err)
		}
		if got := hex.EncodeToString(stored.h.Sum(nil)); got != want.StoredSHA256 {
			return fmt.Errorf("%w: got stored sha256 %s, want %s", ErrChecksum, got[:16], want.StoredSHA256[:min(16, len(want.StoredSHA256))])
		}
	}
	return io.EOF
}

// hash runs on a goroutine of its own too (SHA-256 costs about as much as
// zstd decoding): it hashes each buffer and hands it on, and turns the
// final io.EOF into ErrChecksum if the plaintext is not the recorded one.
func (o *opener) hash(in <-chan chunk, want string) {
	defer close(o.chunks)
	h := sha256.New()
	for c := range in {
		h.Write(c.b)
		if c.err == io.EOF && want != "" {
			if got := hex.EncodeToString(h.Sum(nil)); got != want {
				c.err = fmt.Errorf("%w: got sha256 %s, want %s", ErrChecksum, got[:16], want[:min(16, len(want))])
			}
		}
		select {
		case o.chunks <- c:
		case <-o.done:
			return
		}
	}
}

func (o *opener) Read(p []byte) (int, error) {
	for len(o.cur) == 0 {
		if o.err != nil || o.closed {
			if o.err == nil {
				o.err = errors.New("read after close")
			}
			return 0, o.err
		}
		if o.buf != nil {
			select {
			case o.free <- o.buf:
			default:
			}
			o.buf = nil
		}
		c, ok := <-o.chunks
		if !ok {
			o.err = io.ErrUnexpectedEOF
			continue
		}
		o.cur, o.buf, o.err = c.b, c.b, c.err
		if len(p) == 0 {
			return 0, nil
		}
	}
	n := copy(p, o.cur)
	o.cur = o.cur[n:]
	if len(o.cur) == 0 && o.err != nil {
		return n, o.err
	}
	return n, nil
}

// WriteTo hands whole decoded buffers to w without an extra copy.
func (o *opener) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(o.cur) > 0 {
			n, err := w.Write(o.cur)
			total += int64(n)
			o.cur = o.cur[n:]
			if err != nil {
				return total, err
			}
		}
		if o.err != nil {
			if o.err == io.EOF {
				return total, nil
			}
			return total, o.err
		}
		if _, err := o.Read(nil); err != nil && err != io.EOF {
			return total, err
		}
	}
}

// Close stops the decoding goroutine.
func (o *opener) Close() error {
	if !o.closed {
		o.closed = true
		close(o.done)
		// Buffers in free are idle (the decoder takes one at a time and
		// keeps what it took); the caller's own is done with.
		if o.buf != nil {
			putBuf(o.buf)
			o.buf, o.cur = nil, nil
		}
		for {
			select {
			case b := <-o.free:
				putBuf(b)
			default:
				return nil
			}
		}
	}
	return nil
}
