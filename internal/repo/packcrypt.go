package repo

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/compress"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/internal/envelope"
)

// Pack framing (docs/FORMAT.md, "File snapshots"): a pack is a header,
// then its blobs end to end. The header is a 4-byte big-endian length N,
// then N bytes of age encryption (to the codec's recipients) of a fresh
// random 32-byte pack key: one X25519 key exchange a pack, not a chunk.
// With encryption off N is 0 and there is no key. A blob is the chunk as
// one zstd frame; encrypted, it is a random 24-byte nonce followed by the
// frame sealed with XChaCha20-Poly1305 under the pack key, the chunk ID
// (its 64 hex digits) as additional data, so a blob read under another
// ID, or moved to another place in the index, fails to open.

const (
	packKeySize     = chacha20poly1305.KeySize
	blobOverhead    = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	maxPackHeader   = 1 << 20 // an age header to a few hundred recipients
	maxBlobPlain    = 64 << 20
	packKeysCached  = 1024 // pack keys a Repo keeps (about 100 bytes each)
	blobEncoderJobs = 4    // blobs compressed at once per level
)

// packSealer seals the blobs of one pack under its key.
type packSealer struct {
	header []byte      // the pack's header: length, then the wrapped key
	aead   cipher.AEAD // nil: encryption off
}

// newPackSealer returns a sealer for a new pack: a fresh key, wrapped
// to the codec's recipients, or none with encryption off.
func (r *Repo) newPackSealer() (*packSealer, error) {
	if r.codec == nil || !r.codec.Encrypt {
		return &packSealer{header: make([]byte, 4)}, nil
	}
	key := make([]byte, packKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("pack key: %w", err)
	}
	var hdr bytes.Buffer
	hdr.Write([]byte{0, 0, 0, 0})
	ew, err := crypto.Encrypt(&hdr, r.codec.Recipients...)
	if err != nil {
		return nil, fmt.Errorf("pack key: %w", err)
	}
	if _, err := ew.Write(key); err != nil {
		return nil, fmt.Errorf("pack key: %w", err)
	}
	if err := ew.Close(); err != nil {
		return nil, fmt.Errorf("pack key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("pack key: %w", err)
	}
	h := hdr.Bytes()
	binary.BigEndian.PutUint32(h, uint32(len(h)-4))
	return &packSealer{header: h, aead: aead}, nil
}

// sealedLen is how long a blob of a zstd frame of n bytes is.
func (s *packSealer) sealedLen(n int) int {
	if s.aead == nil {
		return n
	}
	return n + blobOverhead
}

// seal appends the blob of frame z (chunk id) to dst.
func (s *packSealer) seal(dst []byte, id string, z []byte) ([]byte, error) {
	if s.aead == nil {
		return append(dst, z...), nil
	}
	var nonce [chacha20poly1305.NonceSizeX]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("blob nonce: %w", err)
	}
	dst = append(dst, nonce[:]...)
	return s.aead.Seal(dst, nonce[:], z, []byte(id)), nil
}

// Blob compression: one zstd frame a chunk, with an encoder shared by
// every PackWriter (EncodeAll is safe for concurrent use and keeps its
// state between calls), and one decoder for every restore.
var (
	blobEncMu  sync.Mutex
	blobEnc    [5]*zstd.Encoder // by level
	blobDecErr error
	blobDec    = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(blobEncoderJobs),
			zstd.WithDecoderMaxMemory(maxBlobPlain), zstd.WithDecoderMaxWindow(maxBlobPlain))
		blobDecErr = err
		return d
	})
)

func (r *Repo) blobEncoder() (*zstd.Encoder, error) {
	level := compress.DefaultLevel
	if r.codec != nil && r.codec.Level != 0 {
		level = r.codec.Level
	}
	if level < 1 || level > 4 {
		return nil, fmt.Errorf("zstd level %d out of range 1..4", level)
	}
	blobEncMu.Lock()
	defer blobEncMu.Unlock()
	if blobEnc[level] == nil {
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
			zstd.WithEncoderConcurrency(blobEncoderJobs), zstd.WithLowerEncoderMem(true),
			zstd.WithEncoderCRC(true), zstd.WithZeroFrames(true))
		if err != nil {
			return nil, fmt.Errorf("zstd encoder: %w", err)
		}
		blobEnc[level] = enc
	}
	return blobEnc[level], nil
}

// BuildPack lays chunks (IDs and plaintexts, in order) out as one pack
// the way a PackWriter does and returns its bytes and index, storing
// nothing: for tests and tools that make a repository by hand.
func (r *Repo) BuildPack(ids []string, chunks [][]byte) ([]byte, *catalog.PackIndex, error) {
	if len(ids) != len(chunks) {
		return nil, nil, fmt.Errorf("build pack: %d ids for %d chunks", len(ids), len(chunks))
	}
	enc, err := r.blobEncoder()
	if err != nil {
		return nil, nil, err
	}
	ps, err := r.newPackSealer()
	if err != nil {
		return nil, nil, err
	}
	body := append([]byte(nil), ps.header...)
	pi := &catalog.PackIndex{Format: catalog.FormatVersion, Header: int64(len(ps.header))}
	for i, c := range chunks {
		off := len(body)
		if body, err = ps.seal(body, ids[i], enc.EncodeAll(c, nil)); err != nil {
			return nil, nil, err
		}
		pi.Blobs = append(pi.Blobs, catalog.Blob{ID: ids[i], Offset: int64(off), Length: int64(len(body) - off), Size: int64(len(c))})
	}
	sum := sha256.Sum256(body)
	pi.Pack, pi.Size = hex.EncodeToString(sum[:]), int64(len(body))
	return body, pi, nil
}

// packKeys caches the keys of packs read (a restore reads each pack's
// header once), at most packKeysCached of them.
type packKeys struct {
	mu sync.Mutex
	m  map[string]*packKeyEntry
}

type packKeyEntry struct {
	done chan struct{}
	aead cipher.AEAD // nil: the pack is not encrypted
	err  error
}

func newPackKeys() *packKeys { return &packKeys{m: map[string]*packKeyEntry{}} }

// packAEAD returns the key of ref's pack (nil for a pack stored with
// encryption off), reading and unwrapping its header the first time.
func (r *Repo) packAEAD(ctx context.Context, ref BlobRef) (cipher.AEAD, error) {
	c := r.packKeys
	if c == nil {
		return r.readPackKey(ctx, ref)
	}
	c.mu.Lock()
	e, ok := c.m[ref.Pack]
	if !ok {
		if len(c.m) >= packKeysCached {
			for k, old := range c.m { // any one: packs are read about in order
				select {
				case <-old.done:
					delete(c.m, k)
				default:
					continue
				}
				break
			}
		}
		e = &packKeyEntry{done: make(chan struct{})}
		c.m[ref.Pack] = e
	}
	c.mu.Unlock()
	if ok {
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err == nil {
			return e.aead, nil
		}
		return r.readPackKey(ctx, ref) // the first reader failed: try again, uncached
	}
	e.aead, e.err = r.readPackKey(ctx, ref)
	if e.err != nil {
		c.mu.Lock()
		delete(c.m, ref.Pack)
		c.mu.Unlock()
	}
	close(e.done)
	return e.aead, e.err
}

// readPackKey reads ref's pack header with a ranged GET and unwraps its
// key with the codec's identities.
func (r *Repo) readPackKey(ctx context.Context, ref BlobRef) (cipher.AEAD, error) {
	if ref.Header < 4 || ref.Header > maxPackHeader {
		return nil, fmt.Errorf("pack %.16s: index says its header is %d bytes", ref.Pack, ref.Header)
	}
	key, err := catalog.PackKey(ref.Pack)
	if err != nil {
		return nil, err
	}
	rc, err := r.st.GetRange(ctx, key, 0, ref.Header)
	if err != nil {
		return nil, fmt.Errorf("read header of pack %.16s: %w", ref.Pack, err)
	}
	defer rc.Close()
	hdr, err := io.ReadAll(io.LimitReader(rc, ref.Header+1))
	if err != nil {
		return nil, fmt.Errorf("read header of pack %.16s: %w", ref.Pack, err)
	}
	return r.packKeyOf(hdr, ref)
}

// packKeyOf unwraps the key in hdr, ref's pack header as read.
func (r *Repo) packKeyOf(hdr []byte, ref BlobRef) (cipher.AEAD, error) {
	if int64(len(hdr)) != ref.Header || int64(binary.BigEndian.Uint32(hdr))+4 != ref.Header {
		return nil, fmt.Errorf("pack %.16s: %w: header length does not match its index", ref.Pack, ErrDamaged)
	}
	if ref.Header == 4 {
		return nil, nil // stored with encryption off
	}
	var ids []age.Identity
	if r.codec != nil {
		ids = r.codec.Identities
	}
	pr, err := crypto.Decrypt(bytes.NewReader(hdr[4:]), ids...)
	if err != nil {
		return nil, fmt.Errorf("pack %.16s: key: %w", ref.Pack, oneLine(err))
	}
	k, err := io.ReadAll(io.LimitReader(pr, packKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("pack %.16s: %w: key: %v", ref.Pack, ErrDamaged, oneLine(err))
	}
	if len(k) != packKeySize {
		return nil, fmt.Errorf("pack %.16s: %w: key of %d bytes", ref.Pack, ErrDamaged, len(k))
	}
	return chacha20poly1305.NewX(k)
}

// openBlob returns the plaintext of ref's blob, sealed (all its Length
// bytes), opened under aead (nil: not encrypted), checked against the
// index's Size and wantSHA256 (the manifest's; "" checks none).
func openBlob(sealed []byte, ref BlobRef, aead cipher.AEAD, wantSHA256 string) ([]byte, error) {
	z := sealed
	if aead != nil {
		if len(sealed) < blobOverhead {
			return nil, fmt.Errorf("chunk %.16s in pack %.16s: %w: %d bytes, shorter than a sealed blob", ref.ID, ref.Pack, ErrDamaged, len(sealed))
		}
		nonce, ct := sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:]
		var err error
		if z, err = aead.Open(ct[:0], nonce, ct, []byte(ref.ID)); err != nil {
			return nil, fmt.Errorf("chunk %.16s in pack %.16s: %w: does not authenticate under its pack key and ID (tampered, or another chunk's)", ref.ID, ref.Pack, ErrDamaged)
		}
	}
	var h zstd.Header
	if err := h.Decode(z); err != nil {
		return nil, fmt.Errorf("chunk %.16s in pack %.16s: %w: %v", ref.ID, ref.Pack, ErrDamaged, err)
	}
	if h.HasFCS && h.FrameContentSize > uint64(ref.Size) {
		return nil, fmt.Errorf("chunk %.16s in pack %.16s: %w: frame of %d bytes, index says %d", ref.ID, ref.Pack, ErrDamaged, h.FrameContentSize, ref.Size)
	}
	dec := blobDec()
	if dec == nil {
		return nil, fmt.Errorf("zstd decoder: %w", blobDecErr)
	}
	data, err := dec.DecodeAll(z, make([]byte, 0, ref.Size))
	if err != nil {
		return nil, fmt.Errorf("chunk %.16s in pack %.16s: %w: decompress: %v", ref.ID, ref.Pack, ErrDamaged, err)
	}
	if int64(len(data)) != ref.Size {
		return nil, fmt.Errorf("chunk %.16s in pack %.16s: %d bytes, index says %d", ref.ID, ref.Pack, len(data), ref.Size)
	}
	if wantSHA256 != "" {
		s := sha256.Sum256(data)
		if got := hex.EncodeToString(s[:]); got != wantSHA256 {
			return nil, fmt.Errorf("chunk %.16s in pack %.16s: %w: got sha256 %.16s, want %.16s", ref.ID, ref.Pack, envelope.ErrChecksum, got, wantSHA256)
		}
	}
	return data, nil
}

// oneLine keeps an error's chain but not its line breaks.
func oneLine(err error) error {
	msg := err.Error()
	if !bytes.ContainsAny([]byte(msg), "\n\r") {
		return err
	}
	return &lineErr{msg: string(bytes.Join(bytes.Fields([]byte(msg)), []byte(" "))), err: err}
}

type lineErr struct {
	msg string
	err error
}

func (e *lineErr) Error() string { return e.msg }
func (e *lineErr) Unwrap() error { return e.err }
