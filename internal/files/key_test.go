package files

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/restic/chunker"
)

func TestLoadOrCreateDedupKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dedup.key")
	k, created, err := LoadOrCreateDedupKey(path)
	if err != nil || !created || k.IsZero() {
		t.Fatalf("create: %v %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %v, want 0700", di.Mode())
	}
	again, created, err := LoadOrCreateDedupKey(path)
	if err != nil || created || again != k {
		t.Fatalf("reload: %v %v, same %v", created, err, again == k)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".dedup-key-*")); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
	for _, bad := range []string{"short\n", strings.Repeat("zz", 32), strings.Repeat("00", 32)} {
		p := filepath.Join(t.TempDir(), "k")
		if err := os.WriteFile(p, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadOrCreateDedupKey(p); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}

func TestLoadOrCreateDedupKeyRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dedup.key")
	keys := make([]DedupKey, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, _, err := LoadOrCreateDedupKey(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys {
		if k != keys[0] {
			t.Fatal("processes creating the key at once got different keys")
		}
	}
}

func TestDedupKeyNeverPrints(t *testing.T) {
	k := testKey(9)
	raw := hex.EncodeToString(k.b[:])
	j, _ := json.Marshal(struct{ K DedupKey }{k})
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), string(j)} {
		if strings.Contains(s, raw) {
			t.Errorf("key printed: %s", s)
		}
	}
}

func TestDedupKeyDerivations(t *testing.T) {
	a, b := testKey(1), testKey(2)
	mac := hmac.New(sha256.New, a.b[:])
	mac.Write([]byte("chunk"))
	if a.ChunkID([]byte("chunk")) != hex.EncodeToString(mac.Sum(nil)) {
		t.Error("chunk ID is not HMAC-SHA-256 under the key")
	}
	if a.KeyID() == b.KeyID() || a.KeyID() == a.ChunkID(nil) {
		t.Error("fingerprints collide")
	}
	pa1, err1 := a.polynomial()
	pa2, err2 := a.polynomial()
	pb, err3 := b.polynomial()
	if err1 != nil || err2 != nil || err3 != nil || pa1 != pa2 || pa1 == pb || !pa1.Irreducible() {
		t.Errorf("polynomials %v %v %v (%v %v %v): want one irreducible per key", pa1, pa2, pb, err1, err2, err3)
	}
}

// TestChunkBoundariesFollowTheKey: the same content is cut elsewhere
// under another dedup key, so boundaries do not fingerprint known files.
func TestChunkBoundariesFollowTheKey(t *testing.T) {
	data := randomBytes(5, 24<<20)
	cuts := func(k DedupKey) []uint {
		pol, err := k.polynomial()
		if err != nil {
			t.Fatal(err)
		}
		c := chunker.NewWithBoundaries(bytes.NewReader(data), pol, minChunk, maxChunk)
		c.SetAverageBits(averageBits)
		buf := make([]byte, maxChunk)
		var out []uint
		for {
			ch, err := c.Next(buf)
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ch.Start)
		}
	}
	a1, a2, b := cuts(testKey(1)), cuts(testKey(1)), cuts(testKey(2))
	if !slices.Equal(a1, a2) {
		t.Fatal("one key cuts the same content differently twice")
	}
	if slices.Equal(a1, b) || len(a1) < 5 {
		t.Fatalf("cuts %v and %v: want several, different under another key", a1, b)
	}
}
