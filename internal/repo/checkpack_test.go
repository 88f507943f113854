package repo

import (
	"errors"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// CheckPack: a good pack passes with and without opening its blobs; a
// flipped byte fails the stored bytes' SHA-256 without the identity, and
// the blob's authentication with it; a wrong plaintext SHA-256 from the
// manifest is named; PackIndexes goes on past a damaged index object.
func TestCheckPack(t *testing.T) {
	mem := storagetest.NewMemory()
	r := sealingRepo(t, mem)
	cs := chunks(7, 3, 5000)
	refs, body := storePacked(t, r, cs)
	pi := &catalog.PackIndex{Format: catalog.FormatVersion, Pack: refs[0].Pack, Size: int64(len(body)), Header: refs[0].Header}
	for _, ref := range refs {
		pi.Blobs = append(pi.Blobs, ref.Blob)
	}
	sums := map[string]string{}
	for _, c := range cs {
		sums[c.id] = c.id // chunks() makes the ID the plaintext's SHA-256
	}
	sum := func(id string) string { return sums[id] }
	noID := New(mem, &envelope.Codec{Encrypt: true, Recipients: r.Codec().Recipients})
	for name, open := range map[string]bool{"closed": false, "opened": true} {
		rr := r
		if !open {
			rr = noID
		}
		n, err := rr.CheckPack(t.Context(), pi, open, sum)
		if err != nil || n != int64(len(body)) {
			t.Fatalf("%s: CheckPack of a good pack: %d bytes, %v", name, n, err)
		}
	}
	sums[cs[1].id] = strings.Repeat("0", 64)
	if _, err := r.CheckPack(t.Context(), pi, true, sum); !errors.Is(err, envelope.ErrChecksum) {
		t.Errorf("CheckPack with another plaintext SHA-256: %v", err)
	}
	sums[cs[1].id] = cs[1].id

	bad := append([]byte(nil), body...)
	bad[len(bad)-3] ^= 1
	putPack(t, mem, pi.Pack, bad)
	if _, err := noID.CheckPack(t.Context(), pi, false, nil); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Errorf("closed CheckPack of a flipped pack: %v", err)
	}
	if _, err := r.CheckPack(t.Context(), pi, true, sum); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "does not authenticate") {
		t.Errorf("opened CheckPack of a flipped pack: %v", err)
	}
	putPack(t, mem, pi.Pack, body[:len(body)-1])
	if _, err := noID.CheckPack(t.Context(), pi, false, nil); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "bytes stored, index says") {
		t.Errorf("CheckPack of a truncated pack: %v", err)
	}

	goodKey, _ := catalog.IndexKey(strings.Repeat("a", 64))
	put := func(key string, data []byte) {
		if err := mem.Put(t.Context(), key, strings.NewReader(string(data))); err != nil {
			t.Fatal(err)
		}
	}
	put(goodKey, []byte("not the content its name says"))
	good, badIx, err := r.PackIndexes(t.Context(), t.TempDir())
	if err != nil || len(good) != 0 || len(badIx) != 1 {
		t.Fatalf("PackIndexes: %d good, %v bad, %v", len(good), badIx, err)
	}
}
