package backup

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pglogrepl"
)

// testdata/pg15-checksummed-pages: blocks 0 and 1 of pg_class from
// initdb --data-checksums (PostgreSQL 15).
func checksummedPages(t *testing.T) []byte {
	b, err := os.ReadFile("testdata/pg15-checksummed-pages")
	if err != nil || len(b) != 2*blockSize {
		t.Fatalf("fixture: %d bytes, %v", len(b), err)
	}
	return b
}

func TestPageChecksum(t *testing.T) {
	b := checksummedPages(t)
	for blk := range uint32(2) {
		page := b[blk*blockSize : (blk+1)*blockSize]
		want := binary.NativeEndian.Uint16(page[8:])
		if got := pageChecksum(page, blk); got != want || want == 0 {
			t.Errorf("block %d: checksum %X, page says %X", blk, got, want)
		}
		if got := pageChecksum(page, blk+1); got == want {
			t.Errorf("block %d checksummed as block %d matches", blk, blk+1)
		}
	}
}

func TestChecksummed(t *testing.T) {
	for _, tc := range []struct {
		name string
		ts   bool
		seg  uint32
		ok   bool
		err  bool
	}{
		{name: "base/5/16384", ok: true}, {name: "base/5/16384.3", seg: 3, ok: true}, {name: "global/1260_vm", ok: true},
		{name: "PG_15_1/5/16384.2", ts: true, seg: 2, ok: true}, {name: "pg_xact/0000"}, {name: "global/pg_control"},
		{name: "base/5/pg_filenode.map"}, {name: "base/5/PG_VERSION"}, {name: "base/5/16384.0", err: true},
	} {
		seg, ok, err := checksummed(tc.name, tc.ts)
		if seg != tc.seg || ok != tc.ok || (err != nil) != tc.err {
			t.Errorf("checksummed(%q) = %d, %t, %v", tc.name, seg, ok, err)
		}
	}
}

// TestPageChecker: a good file passes; a corrupted page fails twice (the
// second read sees the same bytes) and is counted; a page newer than the
// backup's start and a new page are not checked; block numbers include the
// segment.
func TestPageChecker(t *testing.T) {
	b := checksummedPages(t)
	p := filepath.Join(t.TempDir(), "16384")
	write := func(b []byte) *os.File {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	var warned []uint32
	pc := &pageChecker{start: pglogrepl.LSN(1) << 40, segBlocks: 131072, warn: func(_ string, blk uint32, _, _ uint16) { warned = append(warned, blk) }}
	good := append([]byte(nil), b...)
	if err := pc.check(write(good), good, 0, 0, p); err != nil || pc.Failures() != 0 {
		t.Fatalf("good pages: %v, %d failures", err, pc.Failures())
	}
	// As segment 1, the block numbers are wrong: both pages fail.
	if err := pc.check(write(good), good, 0, 1, p); err != nil || pc.Failures() != 2 || len(warned) != 2 || warned[1] != 1 {
		t.Fatalf("wrong segment: %v, %d failures, warned %v", err, pc.Failures(), warned)
	}
	bad := append([]byte(nil), b...)
	bad[blockSize+100] ^= 0xff
	pc.failures, warned = 0, nil
	if err := pc.check(write(bad), bad, 0, 0, p); err != nil || pc.Failures() != 1 || len(warned) != 1 || warned[0] != 1 {
		t.Fatalf("corrupt block 1: %v, %d failures, warned %v", err, pc.Failures(), warned)
	}
	// Torn read: the buffer is corrupt, the file (reread) is fine.
	pc.failures = 0
	torn := append([]byte(nil), b...)
	torn[100] ^= 0xff
	if err := pc.check(write(good), torn, 0, 0, p); err != nil || pc.Failures() != 0 || torn[100] != b[100] {
		t.Fatalf("torn read: %v, %d failures", err, pc.Failures())
	}
	// Changed since the start, and new: not checked.
	pc.start = 1
	if err := pc.check(write(bad), bad, 0, 0, p); err != nil || pc.Failures() != 0 {
		t.Fatalf("page newer than the start: %v, %d failures", err, pc.Failures())
	}
	zero := make([]byte, blockSize)
	zero[100] = 1
	pc.start = pglogrepl.LSN(1) << 40
	if err := pc.check(write(zero), zero, 0, 0, p); err != nil || pc.Failures() != 0 {
		t.Fatalf("new page: %v, %d failures", err, pc.Failures())
	}
}
