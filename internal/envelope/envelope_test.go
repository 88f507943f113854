package envelope

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/pitr-dev/pitr/internal/compress"
	"github.com/pitr-dev/pitr/internal/crypto"
)

func zstdDecoded(t *testing.T, frames []byte) io.Reader {
	t.Helper()
	d, err := zstd.NewReader(bytes.NewReader(frames))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func seal(t *testing.T, c *Codec, plain []byte) ([]byte, string) {
	t.Helper()
	stored, s := sealWith(t, c.Seal, plain)
	return stored, s.Sum()
}

// sealWith seals plain with c.Seal or c.SealLarge.
func sealWith(t *testing.T, sealer func(io.Writer) (*Sealer, error), plain []byte) ([]byte, *Sealer) {
	t.Helper()
	var buf bytes.Buffer
	s, err := sealer(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(s, bytes.NewReader(plain)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Size() != int64(len(plain)) {
		t.Fatalf("size %d, want %d", s.Size(), len(plain))
	}
	return buf.Bytes(), s
}

func open(c *Codec, stored []byte, encrypted bool, want string) ([]byte, error) {
	r, err := c.Open(bytes.NewReader(stored), encrypted, want)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func newCodec(t *testing.T) *Codec {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return &Codec{Encrypt: true, Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}}
}

func TestRoundTrip(t *testing.T) {
	plain := make([]byte, 3<<20+17)
	rand.Read(plain[:1<<20]) // part random, part zeros: like a WAL segment
	want := sha256.Sum256(plain)
	for _, encrypt := range []bool{true, false} {
		c := newCodec(t)
		c.Encrypt = encrypt
		stored, sum := seal(t, c, plain)
		if sum != hex.EncodeToString(want[:]) {
			t.Fatalf("sum %s", sum)
		}
		if len(stored) >= len(plain) {
			t.Errorf("encrypt=%v: stored %d bytes of %d: not compressed", encrypt, len(stored), len(plain))
		}
		got, err := open(c, stored, encrypt, sum)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("encrypt=%v: open: %v (equal %v)", encrypt, err, bytes.Equal(got, plain))
		}
	}
}

func TestWrongKey(t *testing.T) {
	c := newCodec(t)
	stored, sum := seal(t, c, []byte("hello"))
	other := newCodec(t)
	if _, err := open(other, stored, true, sum); !errors.Is(err, crypto.ErrWrongKey) {
		t.Fatalf("wrong key: err = %v, want ErrWrongKey", err)
	}
	if _, err := open(&Codec{}, stored, true, sum); !errors.Is(err, crypto.ErrWrongKey) {
		t.Fatalf("no key: err = %v, want ErrWrongKey", err)
	}
}

func TestTampered(t *testing.T) {
	c := newCodec(t)
	plain := bytes.Repeat([]byte("wal record "), 100000)
	stored, sum := seal(t, c, plain)
	for _, at := range []int{len(stored) / 2, len(stored) - 1} {
		bad := bytes.Clone(stored)
		bad[at] ^= 0x01
		if got, err := open(c, bad, true, sum); err == nil {
			t.Fatalf("flipped byte %d: opened %d bytes without error", at, len(got))
		}
	}
	if _, err := open(c, stored[:len(stored)-20], true, sum); err == nil {
		t.Fatal("truncated object opened without error")
	}
}

func TestChecksumMismatch(t *testing.T) {
	c := newCodec(t)
	stored, _ := seal(t, c, []byte("hello"))
	other := sha256.Sum256([]byte("other"))
	if _, err := open(c, stored, true, hex.EncodeToString(other[:])); !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
}

// TestCodecs seals and opens with each codec, one stream and parallel
// frames, encrypted and not; Open needs no setting to read any of them.
func TestCodecs(t *testing.T) {
	plain := make([]byte, 9<<20+5)
	rand.Read(plain[:1<<20])
	for _, alg := range compress.Algorithms {
		for _, workers := range []int{0, 2} {
			for _, encrypt := range []bool{true, false} {
				c := newCodec(t)
				c.Encrypt, c.Compression, c.Workers = encrypt, alg, workers
				stored, sum := seal(t, c, plain)
				if len(stored) >= len(plain) {
					t.Errorf("%s: stored %d bytes of %d: not compressed", alg, len(stored), len(plain))
				}
				reader := newCodec(t)
				reader.Identities, reader.Compression = c.Identities, compress.Zstd
				got, err := open(reader, stored, encrypt, sum)
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("%s workers %d encrypt %v: open: %v (equal %v)", alg, workers, encrypt, err, bytes.Equal(got, plain))
				}
				bad := bytes.Clone(stored)
				bad[len(bad)/2] ^= 0x01
				if _, err := open(reader, bad, encrypt, sum); err == nil {
					t.Fatalf("%s workers %d encrypt %v: a flipped byte opened without error", alg, workers, encrypt)
				}
				if _, err := open(reader, stored[:len(stored)*2/3], encrypt, sum); err == nil {
					t.Fatalf("%s workers %d encrypt %v: a truncated object opened without error", alg, workers, encrypt)
				}
			}
		}
	}
}

// TestSealReadFrom: a file read through Sealer.ReadFrom (the compressor
// reading its own blocks) seals what Write would, after a Write and
// across two reads, with the plaintext's SHA-256 and size.
func TestSealReadFrom(t *testing.T) {
	plain := make([]byte, 3<<20+77)
	rand.Read(plain[:1<<20])
	want := sha256.Sum256(plain)
	for _, alg := range compress.Algorithms {
		c := newCodec(t)
		c.Compression = alg
		var buf bytes.Buffer
		s, err := c.Seal(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(plain[:100]); err != nil {
			t.Fatal(err)
		}
		for _, part := range [][]byte{plain[100 : 2<<20], plain[2<<20:]} {
			// A reader without WriterTo, as io.Copy sees an *os.File.
			if n, err := s.ReadFrom(struct{ io.Reader }{bytes.NewReader(part)}); err != nil || n != int64(len(part)) {
				t.Fatalf("%s: ReadFrom: %d of %d bytes, %v", alg, n, len(part), err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if s.Size() != int64(len(plain)) || s.Sum() != hex.EncodeToString(want[:]) {
			t.Fatalf("%s: size %d, sum %.16s; want %d, %x", alg, s.Size(), s.Sum(), len(plain), want[:8])
		}
		got, err := open(c, buf.Bytes(), true, s.Sum())
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%s: open: %v (equal %v)", alg, err, bytes.Equal(got, plain))
		}
	}
}

// TestOldObjects opens objects as earlier pitr stored them: zstd frames
// with content checksums, one frame or parallel frames, encrypted or not.
func TestOldObjects(t *testing.T) {
	c := newCodec(t)
	for _, name := range []string{"old-segment.zst", "old-parallel.zst"} {
		frames, err := os.ReadFile("../compress/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zstdDecoded(t, frames))
		if err != nil {
			t.Fatal(err)
		}
		want := sha256.Sum256(plain)
		var enc bytes.Buffer
		w, err := crypto.Encrypt(&enc, c.Recipients...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(frames); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		for encrypted, stored := range map[bool][]byte{false: frames, true: enc.Bytes()} {
			got, err := open(c, stored, encrypted, hex.EncodeToString(want[:]))
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s encrypted %v: %v", name, encrypted, err)
			}
		}
	}
}

// TestNotCompressed: an object whose plaintext starts with no known magic
// (age around raw bytes) fails with compress.ErrFormat, not garbage.
func TestNotCompressed(t *testing.T) {
	c := newCodec(t)
	var enc bytes.Buffer
	w, err := crypto.Encrypt(&enc, c.Recipients...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("BEGIN raw plaintext, never compressed")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := open(c, enc.Bytes(), true, ""); !errors.Is(err, compress.ErrFormat) {
		t.Fatalf("err = %v, want compress.ErrFormat", err)
	}
}

func sealLarge(t *testing.T, c *Codec, plain []byte) ([]byte, Sums) {
	t.Helper()
	stored, s := sealWith(t, c.SealLarge, plain)
	return stored, s.Sums()
}

func openSums(c *Codec, stored []byte, encrypted bool, want Sums) ([]byte, error) {
	r, err := c.OpenSums(bytes.NewReader(stored), encrypted, want)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// TestSealLarge: a large object records the CRC32C of its plaintext and
// the SHA-256 of its stored bytes, and opening it checks both, with every
// codec: a flipped stored byte, a trailing byte, a truncation or a wrong
// CRC32C fails the read instead of reaching EOF.
func TestSealLarge(t *testing.T) {
	plain := make([]byte, 5<<20+3)
	rand.Read(plain[:1<<20])
	for _, alg := range compress.Algorithms {
		for _, encrypt := range []bool{true, false} {
			c := newCodec(t)
			c.Encrypt, c.Compression, c.Workers = encrypt, alg, 2
			stored, sums := sealLarge(t, c, plain)
			storedSum := sha256.Sum256(stored)
			if sums.SHA256 != "" || sums.StoredSHA256 != hex.EncodeToString(storedSum[:]) || len(sums.CRC32C) != 8 {
				t.Fatalf("%s encrypt %v: sums %+v, want the stored bytes' sha256 %x and a crc32c", alg, encrypt, sums, storedSum)
			}
			got, err := openSums(c, stored, encrypt, sums)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("%s encrypt %v: open: %v (equal %v)", alg, encrypt, err, bytes.Equal(got, plain))
			}
			bad := bytes.Clone(stored)
			bad[len(bad)/2] ^= 0x01
			if _, err := openSums(c, bad, encrypt, sums); err == nil {
				t.Errorf("%s encrypt %v: a flipped byte opened without error", alg, encrypt)
			}
			if _, err := openSums(c, append(bytes.Clone(stored), 0), encrypt, sums); err == nil {
				t.Errorf("%s encrypt %v: a trailing byte opened without error", alg, encrypt)
			}
			if _, err := openSums(c, stored[:len(stored)*2/3], encrypt, sums); err == nil {
				t.Errorf("%s encrypt %v: a truncated object opened without error", alg, encrypt)
			}
			wrong := sums
			wrong.CRC32C = "00000000"
			if _, err := openSums(c, stored, encrypt, wrong); !errors.Is(err, ErrChecksum) {
				t.Errorf("%s encrypt %v: wrong crc32c: err = %v, want ErrChecksum", alg, encrypt, err)
			}
			wrong = sums
			wrong.StoredSHA256 = hex.EncodeToString(make([]byte, 32))
			if _, err := openSums(c, stored, encrypt, wrong); !errors.Is(err, ErrChecksum) {
				t.Errorf("%s encrypt %v: wrong stored sha256: err = %v, want ErrChecksum", alg, encrypt, err)
			}
		}
	}
}

// TestSealLargeCatchesCodec: the plaintext's CRC32C is the end-to-end
// check of the compressor and decompressor, which the stored bytes'
// SHA-256 cannot be: an S2 stream whose block decodes to other bytes than
// were sealed (its own CRC skipped, as OpenSums does) fails the read.
func TestSealLargeCatchesCodec(t *testing.T) {
	c := &Codec{Compression: compress.S2}
	plain := bytes.Repeat([]byte("abcdefgh"), 1<<16)
	stored, sums := sealLarge(t, c, plain)
	other := bytes.Repeat([]byte("abcdefgi"), 1<<16)
	otherStored, _ := sealLarge(t, c, other)
	sum := sha256.Sum256(otherStored)
	wrong := Sums{CRC32C: sums.CRC32C, StoredSHA256: hex.EncodeToString(sum[:])}
	if _, err := openSums(c, otherStored, false, wrong); !errors.Is(err, ErrChecksum) {
		t.Fatalf("other plaintext under this crc32c: err = %v, want ErrChecksum", err)
	}
	if got, err := openSums(c, stored, false, sums); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %v", err)
	}
}

// TestBuffersHandedBackWhole: an opener hands its buffers back to the pool
// that Sealer.ReadFrom draws from too; one holding its last chunk's length
// (here none) must not reach ReadFrom short, whose reads would then return
// nothing forever.
func TestBuffersHandedBackWhole(t *testing.T) {
	c := newCodec(t)
	// A whole number of buffers: the last chunk is empty.
	stored, sum := seal(t, c, make([]byte, openBuf))
	done := make(chan error, 1)
	go func() {
		for range 20 {
			r, err := c.Open(bytes.NewReader(stored), true, sum)
			if err != nil {
				done <- err
				return
			}
			if _, err := io.ReadAll(r); err != nil {
				done <- err
				return
			}
			r.Close()
			var buf bytes.Buffer
			s, err := c.Seal(&buf)
			if err != nil {
				done <- err
				return
			}
			// A reader without WriteTo, so io.Copy uses ReadFrom.
			if _, err := io.Copy(s, struct{ io.Reader }{bytes.NewReader([]byte("hello"))}); err != nil {
				done <- err
				return
			}
			if err := s.Close(); err != nil || s.Size() != 5 {
				done <- fmt.Errorf("seal after open: %v, %d bytes", err, s.Size())
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Seal's ReadFrom hung on a buffer an opener handed back")
	}
}
