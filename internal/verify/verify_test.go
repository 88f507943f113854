package verify

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
)

// fullRepo stores a backup with its WAL and three more segments, a dump
// and a file snapshot.
func fullRepo(t *testing.T) (*testRepo, map[string]string) {
	tr := newTestRepo(t)
	keys := map[string]string{}
	for s := uint64(1); s <= 5; s++ {
		keys[fmt.Sprint("wal", s)] = tr.segment(1, s)
	}
	b := tr.backup("20261122T020000Z", 1, 2)
	keys["base"] = b.Parts[0].Key
	keys["dump"] = tr.dump("app", "20261122T030000Z").Key
	snap, pack := tr.snapshot("uploads", "20261122T040000Z", []string{"chunk one", "chunk two", "chunk three"})
	keys["manifest"], keys["pack"] = snap.Manifest.Key, pack
	return tr, keys
}

func wantProblems(t *testing.T, res *Result, want ...string) {
	t.Helper()
	if len(res.Problems) != len(want) {
		t.Fatalf("problems = %q, want %d containing %q", res.Problems, len(want), want)
	}
	for i, w := range want {
		if !strings.Contains(res.Problems[i], w) {
			t.Errorf("problem %d = %q, want it to contain %q", i, res.Problems[i], w)
		}
	}
}

func TestVerifyClean(t *testing.T) {
	tr, _ := fullRepo(t)
	res := tr.run(tr.r, Options{})
	wantProblems(t, res)
	// 5 segments, 2 parts, 1 dump, 1 manifest, 1 pack
	if res.Objects != 10 || !res.Decrypted || res.Sealed != 0 || res.Bytes == 0 {
		t.Errorf("result = %+v, want 10 objects read, decrypted", res)
	}
	rep := res.Report()
	if !rep.OK || rep.Kind != "verify" || rep.Objects != 10 || !strings.HasPrefix(rep.Summary, "verify ok: 10 objects") {
		t.Errorf("report = %+v", rep)
	}
}

// A damaged object is named by its key with what is wrong, and verify
// goes on to the others.
func TestVerifyDamaged(t *testing.T) {
	for _, tc := range []struct {
		name, obj string
		offset    int
		want      string
	}{
		{"wal ciphertext", "wal3", -20, "failed to decrypt and authenticate"},
		{"backup part", "base", -20, "failed to decrypt and authenticate"},
		{"dump", "dump", -20, "failed to decrypt and authenticate"},
		{"pack blob", "pack", -20, "does not authenticate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, keys := fullRepo(t)
			tr.flip(keys[tc.obj], tc.offset)
			res := tr.run(tr.r, Options{})
			wantProblems(t, res, keys[tc.obj]+": ")
			if !strings.Contains(res.Problems[0], tc.want) {
				t.Errorf("problem = %q, want it to say %q", res.Problems[0], tc.want)
			}
			if res.Objects != 10 {
				t.Errorf("read %d objects, want all 10", res.Objects)
			}
		})
	}
}

// Content that decrypts and decodes but is not what the key records:
// "sha256 mismatch".
func TestVerifySHA256Mismatch(t *testing.T) {
	tr, keys := fullRepo(t)
	sealed, err := tr.r.Seal([]byte("other content"))
	if err != nil {
		t.Fatal(err)
	}
	tr.put(keys["wal4"], sealed.Body)
	res := tr.run(tr.r, Options{})
	wantProblems(t, res, keys["wal4"]+": sha256 mismatch")
}

// A missing segment is a gap named with the window it breaks.
func TestVerifyGap(t *testing.T) {
	tr := newTestRepo(t)
	for _, s := range []uint64{1, 2, 3, 6, 7} {
		tr.segment(1, s)
	}
	tr.backup("20261122T020000Z", 1, 2)
	res := tr.run(tr.r, Options{WAL: true})
	wantProblems(t, res, "wal: 000000010000000000000004..05 missing on timeline 1: breaks the window from backup 20261122T020000Z after 2026-11-22T")
}

// A backup whose own WAL is not all archived cannot be restored.
func TestVerifyBackupWALMissing(t *testing.T) {
	tr := newTestRepo(t)
	tr.segment(1, 1)
	tr.segment(1, 3)
	tr.backup("20261122T020000Z", 1, 3)
	res := tr.run(tr.r, Options{WAL: true})
	wantProblems(t, res, "wal: 000000010000000000000002 missing on timeline 1: backup 20261122T020000Z cannot be restored")
}

// A part the entry names but the store lacks, or of another size.
func TestVerifyPartMissing(t *testing.T) {
	tr, keys := fullRepo(t)
	if err := tr.mem.Delete(t.Context(), keys["base"]); err != nil {
		t.Fatal(err)
	}
	res := tr.run(tr.r, Options{Backups: true})
	wantProblems(t, res, keys["base"]+": missing (part base.tar of backup 20261122T020000Z)")
}

// A manifest naming a chunk in no pack.
func TestVerifyChunkMissing(t *testing.T) {
	tr := newTestRepo(t)
	snap, _ := tr.snapshot("uploads", "20261122T040000Z", []string{"a chunk"}, strings.Repeat("ab", 32))
	res := tr.run(tr.r, Options{Files: true})
	wantProblems(t, res, snap.Manifest.Key+": snapshot 20261122T040000Z of uploads: 1 chunks in no pack (first abababababababab)")
}

// Without the identity: presence, sizes, pack checksums and the stored
// bytes' SHA-256 of backup parts, and one line saying so; a tampered pack
// or backup part is still found, a tampered WAL object only by its size.
func TestVerifyNoIdentity(t *testing.T) {
	tr, keys := fullRepo(t)
	res := tr.run(tr.withoutIdentity(), Options{})
	wantProblems(t, res)
	if res.Decrypted || res.Objects != 3 || res.Sealed != 7 {
		t.Errorf("result = %+v, want 1 pack and 2 backup parts read, 7 sealed objects", res)
	}
	tr.flip(keys["pack"], 10)
	tr.flip(keys["base"], 10)
	tr.flip(keys["wal2"], 10)
	res = tr.run(tr.withoutIdentity(), Options{StateFile: t.TempDir() + "/s"})
	slices.Sort(res.Problems)
	wantProblems(t, res, keys["base"]+": sha256 mismatch", keys["pack"]+": pack")
	if !strings.Contains(res.Problems[1], "sha256 mismatch") {
		t.Errorf("problem = %q, want sha256 mismatch", res.Problems[1])
	}
}

// A backup part as an older pitr stored it (its plaintext's SHA-256
// recorded) is read and checked against that sum.
func TestVerifyOldPart(t *testing.T) {
	tr := newTestRepo(t)
	tr.segment(1, 1)
	tr.segment(1, 2)
	b := tr.backupSealed("20261122T020000Z", 1, 2, tr.r.PutSealed)
	if b.Parts[0].SHA256 == "" || b.Parts[0].StoredSHA256 != "" {
		t.Fatalf("part %+v, want the plaintext's sha256 only", b.Parts[0])
	}
	if res := tr.run(tr.r, Options{}); len(res.Problems) != 0 || res.Objects != 4 {
		t.Fatalf("result = %+v, want 4 objects read, no problems", res)
	}
	// Other content of the same stored size: one letter changed.
	sealed, err := tr.r.Seal([]byte(strings.Repeat("case.tar of 20261122T020000Z\n", 1000)))
	if err != nil {
		t.Fatal(err)
	}
	tr.put(b.Parts[0].Key, sealed.Body)
	res := tr.run(tr.r, Options{Full: true})
	wantProblems(t, res, b.Parts[0].Key+": sha256 mismatch")
}

// A second run reads only objects that are new since the first; Full
// reads everything again.
func TestVerifyIncremental(t *testing.T) {
	tr, _ := fullRepo(t)
	res := tr.run(tr.r, Options{})
	wantProblems(t, res)
	tr.gets.reset()

	added := tr.segment(1, 6)
	res = tr.run(tr.r, Options{})
	wantProblems(t, res)
	if got := dataReads(tr.gets.reset()); !slices.Equal(got, []string{added}) {
		t.Errorf("second run read %q, want only the new %s", got, added)
	}
	if res.Objects != 1 || res.Skipped != 10 {
		t.Errorf("second run: %+v, want 1 read and 10 skipped", res)
	}

	res = tr.run(tr.r, Options{Full: true})
	if res.Objects != 11 || res.Skipped != 0 {
		t.Errorf("full run: %+v, want all 11 read", res)
	}
}

// A damaged object is not recorded as verified: the next run reads it
// again and names it again.
func TestVerifyDamagedNotRecorded(t *testing.T) {
	tr, keys := fullRepo(t)
	tr.flip(keys["dump"], -5)
	tr.run(tr.r, Options{})
	tr.gets.reset()
	res := tr.run(tr.r, Options{})
	wantProblems(t, res, keys["dump"])
	if got := dataReads(tr.gets.reset()); !slices.Equal(got, []string{keys["dump"]}) {
		t.Errorf("second run read %q, want only the damaged dump", got)
	}
}

// Subsets 1/M..M/M read every object exactly once between them.
func TestVerifySubsets(t *testing.T) {
	tr, _ := fullRepo(t)
	read := map[string]int{}
	for n := uint64(1); n <= 3; n++ {
		tr.gets.reset()
		res := tr.run(tr.r, Options{Subset: Subset{N: n, M: 3}, StateFile: t.TempDir() + "/s"})
		wantProblems(t, res)
		for _, k := range dataReads(tr.gets.reset()) {
			if !strings.Contains(k, "/manifest.") { // manifests are read every run: they name the chunks
				read[k]++
			}
		}
	}
	if len(read) != 9 {
		t.Errorf("subsets read %d distinct objects, want 9: %v", len(read), read)
	}
	for k, n := range read {
		if n != 1 {
			t.Errorf("%s read %d times", k, n)
		}
	}
}

func TestParseSubset(t *testing.T) {
	for in, ok := range map[string]bool{"1/7": true, "7/7": true, "0/7": false, "8/7": false, "1": false, "a/b": false, "1/0": false} {
		_, err := ParseSubset(in)
		if (err == nil) != ok {
			t.Errorf("ParseSubset(%q) = %v", in, err)
		}
	}
	counts := make([]int, 7)
	for i := range 7000 {
		for n := uint64(1); n <= 7; n++ {
			if (Subset{N: n, M: 7}).Has(fmt.Sprint("wal/key", i)) {
				counts[n-1]++
			}
		}
	}
	sum := 0
	for _, c := range counts {
		sum += c
		if c < 800 || c > 1200 {
			t.Errorf("subset counts %v: uneven", counts)
		}
	}
	if sum != 7000 {
		t.Errorf("subsets selected %d of 7000 keys, want each exactly once", sum)
	}
}

func TestSegmentRange(t *testing.T) {
	for _, tc := range [][3]string{
		{"000000010000000000000005", "000000010000000000000007", "000000010000000000000005..07"},
		{"000000010000000000000005", "000000010000000000000005", "000000010000000000000005"},
		{"0000000100000000000000FF", "000000010000000100000002", "0000000100000000000000FF..100000002"},
	} {
		if got := segmentRange(tc[0], tc[1]); got != tc[2] {
			t.Errorf("segmentRange(%s, %s) = %s, want %s", tc[0], tc[1], got, tc[2])
		}
	}
}

// After a promotion the chain follows the new timeline (its history says
// where it branched): a gap there is named on timeline 2, and the old
// timeline's end is no gap.
func TestVerifyGapAfterTimelineSwitch(t *testing.T) {
	tr := newTestRepo(t)
	for _, s := range []uint64{1, 2, 3} {
		tr.segment(1, s)
	}
	b := tr.backup("20261122T020000Z", 1, 2)
	if _, err := tr.r.StoreWAL(t.Context(), "00000002.history", []byte("1\t0/3800000\tno recovery target specified\n")); err != nil {
		t.Fatal(err)
	}
	for _, s := range []uint64{3, 4, 6} {
		tr.segment(2, s)
	}
	res := tr.run(tr.r, Options{WAL: true})
	wantProblems(t, res, "wal: 000000020000000000000005 missing on timeline 2: breaks the window from backup "+b.ID+" after ")
	if res.Objects != 7 { // 3 + 3 segments and the history
		t.Errorf("read %d objects, want 7", res.Objects)
	}
}

// --backup reads that backup's parts and the WAL from its start, not the
// other backups' parts or older WAL.
func TestVerifyOneBackup(t *testing.T) {
	tr := newTestRepo(t)
	var keys []string
	for s := uint64(1); s <= 6; s++ {
		keys = append(keys, tr.segment(1, s))
	}
	tr.backup("20261122T020000Z", 1, 2)
	b := tr.backup("20261123T020000Z", 4, 5)
	tr.dump("app", "20261122T030000Z")
	tr.gets.reset()
	res := tr.run(tr.r, Options{Backup: b.ID})
	wantProblems(t, res)
	got := dataReads(tr.gets.reset())
	slices.Sort(got)
	want := []string{b.Parts[0].Key, b.Parts[1].Key, keys[3], keys[4], keys[5]}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("--backup %s read %q, want %q", b.ID, got, want)
	}
	if _, err := Run(t.Context(), tr.r, Options{Backup: "20991122T020000Z"}); err == nil || !strings.Contains(err.Error(), "no such complete backup") {
		t.Errorf("--backup of no backup: %v", err)
	}
}

// Progress hears the stored bytes read.
func TestVerifyProgress(t *testing.T) {
	tr, _ := fullRepo(t)
	m := &meter{}
	res := tr.run(tr.r, Options{Progress: m})
	if m.total == 0 || m.added != m.total || !m.done || res.Bytes != m.total {
		t.Errorf("meter %+v, result %d bytes: want the total set, as much added, and done", m, res.Bytes)
	}
}

type meter struct {
	mu           sync.Mutex
	total, added int64
	done         bool
}

func (m *meter) SetTotal(n int64) { m.mu.Lock(); m.total = n; m.mu.Unlock() }
func (m *meter) Add(n int64)      { m.mu.Lock(); m.added += n; m.mu.Unlock() }
func (m *meter) Done()            { m.mu.Lock(); m.done = true; m.mu.Unlock() }

// A streamed chunk is checked against the SHA-256 in its key and the
// length of its byte range.
func TestVerifyStreamChunks(t *testing.T) {
	tr := newTestRepo(t)
	name := "000000010000000000000003"
	var keys []string
	for i, data := range []string{"0123456789", "short"} { // the second claims 10 bytes too
		sealed, err := tr.r.Seal([]byte(data))
		if err != nil {
			t.Fatal(err)
		}
		start := int64(i * 10)
		key, err := catalog.StreamChunkKey(name, start, start+10, seg, sealed.SHA256, true)
		if err != nil {
			t.Fatal(err)
		}
		tr.put(key, sealed.Body)
		keys = append(keys, key)
	}
	res := tr.run(tr.r, Options{WAL: true})
	wantProblems(t, res, keys[1]+": 5 bytes of plaintext, 10 recorded")
	if res.Objects != 2 {
		t.Errorf("read %d objects, want 2", res.Objects)
	}
}

// Bit rot that keeps an object's size and time is not seen by an
// incremental run; a --full run finds it, and from then on every run names
// it (it is no longer recorded as verified). --full with a subset keeps
// what the other objects' state says.
func TestVerifyFullFindsRotAndForgets(t *testing.T) {
	tr, keys := fullRepo(t)
	wantProblems(t, tr.run(tr.r, Options{}))
	o, err := tr.mem.Stat(t.Context(), keys["dump"])
	if err != nil {
		t.Fatal(err)
	}
	b := tr.get(keys["dump"])
	b[len(b)-5] ^= 1
	tr.mem.Now = func() time.Time { return o.ModTime } // the same time: rot under the store
	tr.put(keys["dump"], b)

	wantProblems(t, tr.run(tr.r, Options{}))
	wantProblems(t, tr.run(tr.r, Options{Full: true, Subset: Subset{N: 1, M: 1000}}))
	wantProblems(t, tr.run(tr.r, Options{Full: true}), keys["dump"])
	tr.gets.reset()
	wantProblems(t, tr.run(tr.r, Options{}), keys["dump"])
	if got := dataReads(tr.gets.reset()); !slices.Equal(got, []string{keys["dump"]}) {
		t.Errorf("incremental run after --full read %q, want only the damaged dump", got)
	}
}

// A sealed segment is checked through its seal: the chunks it names are
// there, each matches its SHA-256 and the whole the seal's. A seal whose
// chunks hold other bytes is a problem; without the identity only presence
// is checked.
func TestVerifySealedSegment(t *testing.T) {
	tr := newTestRepo(t)
	name := "000000010000000000000003"
	data := bytes.Repeat([]byte("0123456789abcdef"), seg/16)
	s := &catalog.Seal{Format: catalog.FormatVersion, Segment: name, SegSize: seg}
	for _, r := range [][2]int64{{0, seg / 2}, {seg / 2, seg}} {
		sealed, err := tr.r.Seal(data[r[0]:r[1]])
		if err != nil {
			t.Fatal(err)
		}
		key, err := catalog.StreamChunkKey(name, r[0], r[1], seg, sealed.SHA256, true)
		if err != nil {
			t.Fatal(err)
		}
		tr.put(key, sealed.Body)
		s.Chunks = append(s.Chunks, catalog.SealChunk{Key: key, Start: r[0], End: r[1]})
	}
	whole, _ := tr.r.Seal(data)
	s.SHA256 = whole.SHA256
	key, err := catalog.SealKey(name, s.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	tr.put(key, catalog.MarshalSeal(s))
	if res := tr.run(tr.r, Options{WAL: true, Full: true}); res.Objects != 1 {
		t.Errorf("read %d objects, want the seal (its chunks with it)", res.Objects)
	}
	wantProblems(t, tr.run(tr.r, Options{WAL: true, Full: true}))

	// The seal names other bytes: each chunk is sound, the whole is not.
	bad := *s
	bad.SHA256 = strings.Repeat("ab", 32)
	badKey, _ := catalog.SealKey(name, bad.SHA256)
	tr.put(badKey, catalog.MarshalSeal(&bad))
	res := tr.run(tr.r, Options{WAL: true, Full: true})
	if len(res.Problems) != 2 || !strings.HasPrefix(res.Problems[0], badKey+": ") || !strings.Contains(res.Problems[0], "its chunks hash to sha256") ||
		!strings.Contains(res.Problems[1], "stored twice with different content") {
		t.Errorf("problems %q, want the seal naming other bytes, and a conflict", res.Problems)
	}
	if err := tr.mem.Delete(t.Context(), badKey); err != nil {
		t.Fatal(err)
	}
	if err := tr.mem.Delete(t.Context(), s.Chunks[1].Key); err != nil {
		t.Fatal(err)
	}
	res = tr.run(tr.withoutIdentity(), Options{WAL: true, Full: true})
	if len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "named by its seal is missing") {
		t.Errorf("without identity, a chunk gone: problems %q", res.Problems)
	}

	// A run without the identity does not record the seal as read: the
	// next run with it reads the chunks.
	b := tr.get(s.Chunks[0].Key)
	b[len(b)-20] ^= 1
	tr.put(s.Chunks[1].Key, b)
	if res := tr.run(tr.withoutIdentity(), Options{WAL: true}); len(res.Problems) != 0 {
		t.Errorf("without identity: problems %q", res.Problems)
	}
	if res := tr.run(tr.r, Options{WAL: true}); len(res.Problems) != 1 {
		t.Errorf("with the identity after a run without: problems %q, want the chunk", res.Problems)
	}
}
