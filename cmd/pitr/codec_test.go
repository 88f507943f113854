package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pitr-dev/pitr/internal/compress"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// TestWALCodecs pushes one segment with each compression setting into one
// repository and fetches every segment back with each setting: an object's
// codec is recognised from the object, whatever the reader's setting says,
// and a duplicate push of the same bytes under another codec is still a
// duplicate.
func TestWALCodecs(t *testing.T) {
	m := storagetest.NewMemory()
	key := newWALKey(t)
	want := map[string][]byte{}
	for i, alg := range compress.Algorithms {
		name := fmt.Sprintf("0000000100000000000000%02X", 0x10+i)
		path, body := walSegment(t, name)
		e, _ := walEnv(m, &key)
		e.cfg.Compression = string(alg)
		if err := runWALPush(t.Context(), e, path); err != nil {
			t.Fatalf("wal-push with %s: %v", alg, err)
		}
		rc, err := m.Get(t.Context(), storedWAL(t, m, name))
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := io.ReadAll(rc)
		rc.Close()
		ids, err := crypto.LoadIdentities(key.identityFile)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := crypto.Decrypt(bytes.NewReader(stored), ids...)
		if err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 10)
		if _, err := io.ReadFull(plain, head); err != nil {
			t.Fatal(err)
		}
		if got, err := compress.Detect(head); got != alg {
			t.Fatalf("compression %s: stored %s (%v)", alg, got, err)
		}
		want[name] = body
		other := compress.Algorithms[(i+1)%len(compress.Algorithms)]
		e, _ = walEnv(m, &key)
		e.cfg.Compression = string(other)
		if err := runWALPush(t.Context(), e, path); err != nil {
			t.Fatalf("second wal-push of %s (%s, then %s): %v", name, alg, other, err)
		}
		storedWAL(t, m, name) // still one copy
	}
	for _, alg := range compress.Algorithms {
		for name, body := range want {
			e, _ := walEnv(m, &key)
			e.cfg.Compression = string(alg)
			dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
			if err := runWALFetch(t.Context(), e, name, dest); err != nil {
				t.Fatalf("wal-fetch %s with compression %s: %v", name, alg, err)
			}
			if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, body) {
				t.Fatalf("wal-fetch %s with compression %s: %d bytes (%v), want the %d pushed", name, alg, len(got), err, len(body))
			}
		}
	}
}
