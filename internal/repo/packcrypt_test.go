package repo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// storePacked writes cs as one pack with r.BuildPack and returns the
// chunks' refs and the pack's bytes.
func storePacked(t *testing.T, r *Repo, cs []testChunk) ([]BlobRef, []byte) {
	t.Helper()
	var ids []string
	var data [][]byte
	for _, c := range cs {
		ids, data = append(ids, c.id), append(data, c.data)
	}
	body, pi, err := r.BuildPack(ids, data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.UnmarshalPackIndex(catalog.MarshalPackIndex(pi)); err != nil {
		t.Fatalf("index of a built pack: %v", err)
	}
	key, _ := catalog.PackKey(pi.Pack)
	if err := r.Store().Put(t.Context(), key, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	var refs []BlobRef
	for _, b := range pi.Blobs {
		refs = append(refs, BlobRef{Pack: pi.Pack, Header: pi.Header, Blob: b})
	}
	return refs, body
}

// putPack replaces the pack's stored bytes.
func putPack(t *testing.T, st storage.Storage, pack string, body []byte) {
	t.Helper()
	key, _ := catalog.PackKey(pack)
	if err := st.Put(t.Context(), key, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
}

func oneLineErr(t *testing.T, what string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: read without error", what)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\n\r") {
		t.Errorf("%s: error of several lines: %q", what, msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("%s: error %q does not name %q", what, msg, w)
		}
	}
}

// A tampered header or blob, or a blob moved to another chunk's place in
// the index, is a one-line error naming the pack and the chunk.
func TestPackTampered(t *testing.T) {
	cs := chunks(5, 3, 5000)
	for _, tc := range []struct {
		name   string
		tamper func(body []byte, refs []BlobRef) []BlobRef
	}{
		{"header", func(b []byte, refs []BlobRef) []BlobRef { b[refs[0].Header-3] ^= 1; return refs }},
		{"header length", func(b []byte, refs []BlobRef) []BlobRef { b[3] ^= 1; return refs }},
		{"blob", func(b []byte, refs []BlobRef) []BlobRef { b[refs[1].Offset+refs[1].Length-1] ^= 1; return refs }},
		{"nonce", func(b []byte, refs []BlobRef) []BlobRef { b[refs[1].Offset] ^= 1; return refs }},
		{"swapped", func(_ []byte, refs []BlobRef) []BlobRef {
			// The index gives chunk 1 the place (and length) of chunk 0.
			out := append([]BlobRef(nil), refs...)
			out[1].Offset, out[1].Length, out[1].Size = refs[0].Offset, refs[0].Length, refs[0].Size
			return out
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sealingRepo(t, storagetest.NewMemory())
			refs, body := storePacked(t, r, cs)
			bad := append([]byte(nil), body...)
			refs = tc.tamper(bad, refs)
			putPack(t, r.Store(), refs[0].Pack, bad)
			_, err := r.ReadBlob(t.Context(), refs[1], true, cs[1].id)
			oneLineErr(t, tc.name, err, refs[1].Pack[:16], cs[1].id[:16])
			if !errors.Is(err, ErrDamaged) {
				t.Errorf("%s: %v does not wrap ErrDamaged", tc.name, err)
			}
		})
	}
}

// Another identity cannot open a pack and says so.
func TestPackWrongIdentity(t *testing.T) {
	m := storagetest.NewMemory()
	r := sealingRepo(t, m)
	cs := chunks(6, 2, 1000)
	refs, _ := storePacked(t, r, cs)
	other, _ := age.GenerateX25519Identity()
	wrong := New(m, &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{other.Recipient()}, Identities: []age.Identity{other}})
	_, err := wrong.ReadBlob(t.Context(), refs[0], true, cs[0].id)
	oneLineErr(t, "wrong identity", err, refs[0].Pack[:16], cs[0].id[:16])
	if !errors.Is(err, crypto.ErrWrongKey) {
		t.Errorf("wrong identity: %v does not wrap crypto.ErrWrongKey", err)
	}
	none := New(m, &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{other.Recipient()}})
	if _, err := none.ReadBlob(t.Context(), refs[0], true, cs[0].id); !errors.Is(err, crypto.ErrWrongKey) {
		t.Errorf("no identity: %v", err)
	}
	// The right one still reads (a failed unwrap is not cached as good).
	if got, err := r.ReadBlob(t.Context(), refs[0], true, cs[0].id); err != nil || !bytes.Equal(got, cs[0].data) {
		t.Errorf("right identity: %v", err)
	}
}

// With encryption off a pack's header is 4 zero bytes and its blobs are
// plain zstd frames, read without any identity.
func TestPackEncryptionOff(t *testing.T) {
	m := storagetest.NewMemory()
	r := New(m, &envelope.Codec{})
	w := r.NewPackWriter(t.Context(), NewChunkIndex(), "")
	cs := append(chunks(7, 3, 3000), testChunk{id: strings.Repeat("e", 64)}) // and an empty chunk
	for _, c := range cs {
		if _, err := w.Add(c.id, c.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ix, err := r.LoadChunkIndex(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		ref, ok := ix.Lookup(c.id)
		if !ok || ref.Header != 4 {
			t.Fatalf("chunk %.8s: %+v %v", c.id, ref, ok)
		}
		want := c.id
		if len(c.data) == 0 {
			want = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
		}
		got, err := r.ReadBlob(t.Context(), ref, false, want)
		if err != nil || !bytes.Equal(got, c.data) {
			t.Errorf("chunk %.8s: %v", c.id, err)
		}
		key, _ := catalog.PackKey(ref.Pack)
		rc, err := m.Get(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(rc)
		rc.Close()
		if !bytes.Equal(b.Bytes()[:4], []byte{0, 0, 0, 0}) {
			t.Errorf("header %x, want 4 zero bytes", b.Bytes()[:4])
		}
	}
}

// Every pack has a key of its own: the same chunk sealed in two packs
// gives two different headers, and a blob copied from one pack into the
// other does not open there.
func TestPackKeyPerPack(t *testing.T) {
	r := sealingRepo(t, storagetest.NewMemory())
	cs := chunks(8, 1, 2000)
	a, bodyA := storePacked(t, r, cs)
	extra := chunks(9, 1, 10)
	b, bodyB := storePacked(t, r, append(extra, cs...))
	if a[0].Pack == b[0].Pack || bytes.Equal(bodyA[:a[0].Header], bodyB[:b[0].Header]) {
		t.Fatal("two packs share a header")
	}
	// Chunk cs[0] of pack A, put in pack B's place for it (same length).
	ra, rb := a[0], b[1]
	if ra.Length != rb.Length {
		t.Fatalf("lengths %d, %d", ra.Length, rb.Length)
	}
	bad := append([]byte(nil), bodyB...)
	copy(bad[rb.Offset:], bodyA[ra.Offset:ra.Offset+ra.Length])
	putPack(t, r.Store(), rb.Pack, bad)
	_, err := r.ReadBlob(t.Context(), rb, true, cs[0].id)
	oneLineErr(t, "blob of another pack", err, rb.Pack[:16])
	if got, err := r.ReadBlob(t.Context(), ra, true, cs[0].id); err != nil || !bytes.Equal(got, cs[0].data) {
		t.Errorf("pack A: %v", err)
	}
}

// A frame that decodes to more than the index's size is refused.
func TestPackBlobLargerThanIndexed(t *testing.T) {
	r := sealingRepo(t, storagetest.NewMemory())
	cs := chunks(10, 1, 4000)
	refs, _ := storePacked(t, r, cs)
	ref := refs[0]
	ref.Size = 100
	_, err := r.ReadBlob(t.Context(), ref, true, "")
	oneLineErr(t, "frame larger than its size", err, ref.Pack[:16], "index says 100")
}

// A chunk opens by hand as docs/FORMAT.md says: age -d on the header's N
// bytes gives the key; the blob is nonce || XChaCha20-Poly1305 with the
// chunk ID as additional data; then zstd -d.
func TestPackByHand(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	r := New(storagetest.NewMemory(), &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{id.Recipient()}})
	cs := chunks(11, 2, 3000)
	refs, body := storePacked(t, r, cs)
	n := binary.BigEndian.Uint32(body[:4])
	kr, err := age.Decrypt(bytes.NewReader(body[4:4+n]), id)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := io.ReadAll(kr)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		t.Fatal(err)
	}
	b := body[refs[1].Offset : refs[1].Offset+refs[1].Length]
	z, err := aead.Open(nil, b[:24], b[24:], []byte(refs[1].ID))
	if err != nil {
		t.Fatal(err)
	}
	zr, _ := zstd.NewReader(bytes.NewReader(z))
	defer zr.Close()
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, cs[1].data) {
		t.Fatalf("by hand: %v", err)
	}
}
