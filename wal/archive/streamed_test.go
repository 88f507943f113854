package archive

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/wal"
)

// storeChunk stores seg[from:to] of segment name as wal-receive does.
func (f *fixture) storeChunk(name string, seg []byte, from, to int64) string {
	f.t.Helper()
	s, err := repo.New(nil, f.codec).Seal(seg[from:to])
	if err != nil {
		f.t.Fatal(err)
	}
	key, err := catalog.StreamChunkKey(name, from, to, int64(len(seg)), s.SHA256, f.codec.Encrypt)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.store.Put(f.t.Context(), key, bytes.NewReader(s.Body)); err != nil {
		f.t.Fatal(err)
	}
	return key
}

func TestCoverage(t *testing.T) {
	c := func(start, end int64) catalog.StreamChunk {
		return catalog.StreamChunk{Start: start, End: end, SegSize: 100}
	}
	tests := []struct {
		name   string
		chunks []catalog.StreamChunk
		end    int64
		used   int
	}{
		{"none", nil, 0, 0},
		{"contiguous", []catalog.StreamChunk{c(30, 60), c(0, 30), c(60, 70)}, 70, 3},
		{"overlap after a restart", []catalog.StreamChunk{c(0, 40), c(20, 50), c(50, 80)}, 80, 3},
		{"longest wins", []catalog.StreamChunk{c(0, 40), c(0, 90), c(40, 60)}, 90, 1},
		{"hole", []catalog.StreamChunk{c(0, 40), c(50, 80)}, 40, 1},
		{"not from zero", []catalog.StreamChunk{c(10, 40)}, 0, 0},
	}
	for _, tt := range tests {
		use, end := wal.Coverage(tt.chunks)
		if end != tt.end || len(use) != tt.used {
			t.Errorf("%s: end %d using %d chunks, want %d using %d", tt.name, end, len(use), tt.end, tt.used)
		}
	}
}

// TestFetchStreamed: a segment stored only as overlapping chunks is handed
// over as the bytes received, zero-padded; a whole segment wins over chunks;
// a tampered chunk is refused and leaves nothing.
func TestFetchStreamed(t *testing.T) {
	f := newFixture(t, nil)
	name := "000000010000000000000005"
	seg := make([]byte, testSegSize)
	rand.Read(seg[:300000])
	f.storeChunk(name, seg, 0, 100000)
	f.storeChunk(name, seg, 50000, 200000) // a receiver restarted before reporting
	tampered := f.storeChunk(name, seg, 200000, 300000)
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")

	want := bytes.Clone(seg)
	if err := Fetch(t.Context(), name, dest, f.fetchOpts()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) {
		t.Fatalf("assembled segment differs (%d bytes)", len(got))
	}

	tamper(t, f.store, tampered, func(b []byte) { b[len(b)-20] ^= 1 })
	os.Remove(dest)
	err := Fetch(t.Context(), name, dest, f.fetchOpts())
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("tampered chunk: %v", err)
	}
	if _, serr := os.Stat(dest); serr == nil {
		t.Fatal("tampered chunk: a file was handed over")
	}
	assertNoTemp(t, filepath.Dir(dest))

	// The whole segment arrives: it wins.
	f.write(name, seg)
	f.push(name)
	if err := Fetch(t.Context(), name, dest, f.fetchOpts()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, seg) {
		t.Fatal("whole segment not preferred over chunks")
	}

	// Chunks that do not start at byte 0 are not a segment.
	other := "000000010000000000000006"
	f.storeChunk(other, seg, 4096, 8192)
	if err := Fetch(t.Context(), other, dest, f.fetchOpts()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("chunks from the middle: %v, want ErrNotFound", err)
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name()[0] == '.' {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
}

// TestChainEndsOnStreamedSegment: a restore chain may end on a segment
// stored only in part; a backup's end segment must be whole.
func TestChainEndsOnStreamedSegment(t *testing.T) {
	f := newFixture(t, nil)
	for _, n := range []string{"000000010000000000000001", "000000010000000000000002"} {
		f.segment(n)
		f.push(n)
	}
	seg := make([]byte, testSegSize)
	f.storeChunk("000000010000000000000003", seg, 0, 5000)
	ix, err := wal.LoadIndex(t.Context(), f.store)
	if err != nil {
		t.Fatal(err)
	}
	c := ix.Chain("000000010000000000000001", testSegSize)
	if c.Last != "000000010000000000000003" || !c.LastPartial || c.Missing != "000000010000000000000004" || c.MoreAfter {
		t.Fatalf("chain %+v", c)
	}
	if !c.CoversWhole("000000010000000000000002", testSegSize) || c.CoversWhole("000000010000000000000003", testSegSize) {
		t.Fatal("CoversWhole must exclude the streamed segment")
	}
	if e, ok := ix.Get("000000010000000000000003"); !ok || e.Partial != 5000 {
		t.Fatalf("Get streamed segment: %+v %v", e, ok)
	}
}

// TestChainCompleteChunks: chunks covering a whole segment make it whole.
func TestChainCompleteChunks(t *testing.T) {
	f := newFixture(t, nil)
	seg := make([]byte, testSegSize)
	rand.Read(seg)
	f.storeChunk("000000010000000000000001", seg, 0, 1000)
	f.storeChunk("000000010000000000000001", seg, 1000, testSegSize)
	f.segment("000000010000000000000002")
	f.push("000000010000000000000002")
	ix, err := wal.LoadIndex(t.Context(), f.store)
	if err != nil {
		t.Fatal(err)
	}
	c := ix.Chain("000000010000000000000001", testSegSize)
	if c.Last != "000000010000000000000002" || c.LastPartial || !c.CoversWhole("000000010000000000000001", testSegSize) {
		t.Fatalf("chain %+v", c)
	}
	dest := filepath.Join(t.TempDir(), "x")
	if err := Fetch(t.Context(), "000000010000000000000001", dest, f.fetchOpts()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, seg) {
		t.Fatal("assembled segment differs")
	}
}
