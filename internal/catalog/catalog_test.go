package catalog

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

const sum = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func TestWALKeyRoundTrip(t *testing.T) {
	tests := []struct {
		name, key string
		encrypted bool
	}{
		{"000000010000000000000001", "wal/0000000100000000/000000010000000000000001." + sum + ".zst.age", true},
		{"000000010000000A000000FF.partial", "wal/000000010000000A/000000010000000A000000FF.partial." + sum + ".zst", false},
		{"000000010000000000000002.00000028.backup", "wal/0000000100000000/000000010000000000000002.00000028.backup." + sum + ".zst.age", true},
		{"00000002.history", "wal/timelines/00000002.history." + sum + ".zst.age", true},
	}
	for _, tt := range tests {
		key, err := WALKey(tt.name, sum, tt.encrypted)
		if err != nil || key != tt.key {
			t.Fatalf("WALKey(%s) = %q, %v; want %q", tt.name, key, err, tt.key)
		}
		o, ok := ParseWALKey(key)
		if !ok || o.Name != tt.name || o.SHA256 != sum || o.Encrypted != tt.encrypted {
			t.Fatalf("ParseWALKey(%s) = %+v, %v", key, o, ok)
		}
		prefix, _ := WALPrefix(tt.name)
		if !strings.HasPrefix(key, prefix) {
			t.Fatalf("key %s not under prefix %s", key, prefix)
		}
	}
}

func TestWALKeyRejects(t *testing.T) {
	for _, name := range []string{"", "../etc/passwd", "00000001000000000000000", "000000010000000000000001/x", "0000000g.history", "000000010000000000000001x"} {
		if _, err := WALKey(name, sum, true); err == nil {
			t.Errorf("WALKey(%q) accepted", name)
		}
	}
	if _, err := WALKey("000000010000000000000001", "abc", true); err == nil {
		t.Error("short sha accepted")
	}
	for _, key := range []string{
		"wal/0000000100000000/000000010000000000000001." + sum + ".gz",
		"wal/0000000100000000/000000010000000000000001.zst.age",
		"wal/0000000200000000/000000010000000000000001." + sum + ".zst.age", // wrong directory
		"backups/x/000000010000000000000001." + sum + ".zst.age",
		"wal/0000000100000000/.tmp-000000010000000000000001." + sum + ".zst.age",
	} {
		if o, ok := ParseWALKey(key); ok {
			t.Errorf("ParseWALKey(%q) = %+v, want not ok", key, o)
		}
	}
}

func TestMarker(t *testing.T) {
	if err := CheckMarker(MarshalMarker(fixedNow, "test")); err != nil {
		t.Fatal(err)
	}
	if err := CheckMarker([]byte(`{"format": 2}`)); err == nil || !strings.Contains(err.Error(), "format 2") {
		t.Fatalf("format 2 accepted: %v", err)
	}
}

var fixedNow = mustTime("2026-11-22T04:00:00Z")

func TestStreamChunkKey(t *testing.T) {
	key, err := StreamChunkKey("000000010000000A000000FF", 0x2000, 0x10000, 16<<20, sum, true)
	want := "wal/000000010000000A/000000010000000A000000FF.stream/00002000-00010000-01000000." + sum + ".zst.age"
	if err != nil || key != want {
		t.Fatalf("StreamChunkKey = %q, %v; want %q", key, err, want)
	}
	c, ok := ParseStreamChunkKey(key)
	if !ok || c.Name != "000000010000000A000000FF" || c.Start != 0x2000 || c.End != 0x10000 || c.SegSize != 16<<20 || !c.Encrypted || c.SHA256 != sum {
		t.Fatalf("ParseStreamChunkKey = %+v, %v", c, ok)
	}
	if _, ok := ParseWALKey(key); ok {
		t.Fatal("a chunk parses as a WAL file")
	}
	prefix, _ := WALPrefix("000000010000000A000000FF")
	if !strings.HasPrefix(key, prefix) {
		t.Fatal("chunks must sort under the segment's listing prefix")
	}
	for _, bad := range []string{
		strings.Replace(key, "00002000-", "0000200-", 1),
		strings.Replace(key, "01000000", "01000000-00000000", 1),
		strings.Replace(key, ".stream/", ".stream/x/", 1),
		"wal/0000000100000000/000000010000000000000001.partial.stream/00000000-00000010-01000000." + sum + ".zst",
	} {
		if _, ok := ParseStreamChunkKey(bad); ok {
			t.Errorf("ParseStreamChunkKey(%q) accepted", bad)
		}
	}
	for _, r := range [][3]int64{{10, 10, 100}, {-1, 5, 100}, {0, 101, 100}} {
		if _, err := StreamChunkKey("000000010000000A000000FF", r[0], r[1], r[2], sum, true); err == nil {
			t.Errorf("StreamChunkKey(%v) accepted", r)
		}
	}
}

func TestBindingKeys(t *testing.T) {
	key, err := BindingKey(2, "7301234567890123456")
	if err != nil || key != "clusters/00000002-7301234567890123456.json" {
		t.Fatalf("BindingKey = %q, %v", key, err)
	}
	if o, ok := ParseBindingKey(key); !ok || o.Seq != 2 || o.SystemID != "7301234567890123456" {
		t.Fatalf("ParseBindingKey(%s) = %+v, %v", key, o, ok)
	}
	for _, bad := range []string{"clusters/2-7301234567890123456.json", "clusters/00000002-73x1.json", "clusters/00000002-.json",
		"clusters/00000000-1.json", "clusters/00000002-1.json.tmp", "pitr.json", "clusters/00000002-01.json"} {
		if o, ok := ParseBindingKey(bad); ok {
			t.Errorf("ParseBindingKey(%q) = %+v, want rejected", bad, o)
		}
	}
	for _, bad := range []string{"", "-1", "x", "18446744073709551616"} {
		if _, err := BindingKey(1, bad); err == nil {
			t.Errorf("BindingKey(1, %q) accepted", bad)
		}
	}
}

func TestCurrentBinding(t *testing.T) {
	t0 := mustTime("2026-12-01T10:00:00Z")
	objs := []BindingObject{
		{Key: "clusters/00000001-1.json", Seq: 1, SystemID: "1", ModTime: t0},
		{Key: "clusters/00000002-3.json", Seq: 2, SystemID: "3", ModTime: t0.Add(2 * time.Second)},
		{Key: "clusters/00000002-2.json", Seq: 2, SystemID: "2", ModTime: t0.Add(time.Second)}, // first at seq 2
	}
	if cur, ok := CurrentBinding(objs); !ok || cur.SystemID != "2" {
		t.Fatalf("current = %+v, %v; want the earlier write at the highest seq", cur, ok)
	}
	objs[1].ModTime = objs[2].ModTime // same second (S3): the lower key wins
	if cur, _ := CurrentBinding(objs); cur.SystemID != "2" {
		t.Fatalf("tie: current = %+v", cur)
	}
	if _, ok := CurrentBinding(nil); ok {
		t.Fatal("unbound repository has a current binding")
	}
	e := &ClusterMismatchError{Bound: "1", This: "2"}
	if !errors.Is(e, ErrOtherCluster) || !strings.HasPrefix(e.Error(), "this repository belongs to cluster 1; is another cluster configured with it?") {
		t.Fatalf("mismatch error %q", e)
	}
}

func TestSealKey(t *testing.T) {
	name := "000000010000000A000000FF"
	key, err := SealKey(name, sum)
	want := "wal/000000010000000A/000000010000000A000000FF." + sum + ".seal"
	if err != nil || key != want {
		t.Fatalf("SealKey = %q, %v; want %q", key, err, want)
	}
	o, ok := ParseSealKey(key)
	if !ok || o.Name != name || o.SHA256 != sum || !o.Seal || o.Encrypted {
		t.Fatalf("ParseSealKey = %+v, %v", o, ok)
	}
	if _, ok := ParseWALKey(key); ok {
		t.Fatal("a seal parses as a WAL file (pitr before seals would fetch it)")
	}
	if _, ok := ParseStreamChunkKey(key); ok {
		t.Fatal("a seal parses as a chunk")
	}
	prefix, _ := WALPrefix(name)
	chunk, _ := StreamChunkKey(name, 0, 10, 16<<20, sum, true)
	if whole, _ := WALKey(name, sum, true); !strings.HasPrefix(key, prefix) || key > chunk || key > whole {
		t.Fatal("a seal must sort under the segment's prefix, before its chunks (deleted after it) and its whole copy (which wins)")
	}
	for _, bad := range []string{
		strings.Replace(key, ".seal", ".seal.zst", 1),
		"wal/000000010000000A/000000010000000A000000FF.partial." + sum + ".seal",
		"wal/00000001000000AA/000000010000000A000000FF." + sum + ".seal",
		"wal/timelines/00000002.history." + sum + ".seal",
	} {
		if _, ok := ParseSealKey(bad); ok {
			t.Errorf("ParseSealKey(%q) accepted", bad)
		}
	}

	c := func(start, end int64) SealChunk {
		k, _ := StreamChunkKey(name, start, end, 100, sum, true)
		return SealChunk{Key: k, Start: start, End: end}
	}
	s := &Seal{Format: FormatVersion, Segment: name, SegSize: 100, SHA256: sum, Chunks: []SealChunk{c(0, 40), c(30, 60), c(60, 100)}}
	if got, err := UnmarshalSeal(key, MarshalSeal(s)); err != nil || len(got.Chunks) != 3 {
		t.Fatalf("UnmarshalSeal = %+v, %v", got, err)
	}
	for what, chunks := range map[string][]SealChunk{
		"hole":          {c(0, 40), c(50, 100)},
		"short":         {c(0, 40)},
		"not from 0":    {c(10, 100)},
		"contained":     {c(0, 60), c(20, 40), c(60, 100)},
		"range differs": {{Key: c(0, 100).Key, Start: 0, End: 90}},
	} {
		bad := *s
		bad.Chunks = chunks
		if _, err := UnmarshalSeal(key, MarshalSeal(&bad)); err == nil {
			t.Errorf("%s: accepted", what)
		}
	}
	other := *s
	other.SHA256 = strings.Repeat("b", 64)
	if _, err := UnmarshalSeal(key, MarshalSeal(&other)); err == nil {
		t.Error("a seal naming another SHA-256 than its key: accepted")
	}
}

// TestBackupPartSums: a part records the plaintext's SHA-256 (an older
// pitr) or the plaintext's CRC32C with the stored bytes' SHA-256, well
// formed, and never a mix.
func TestBackupPartSums(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		part string
		ok   bool
	}{
		{"plaintext sha256", `"sha256":"` + sha + `"`, true},
		{"crc32c and stored sha256", `"crc32c":"0a1b2c3d","stored_sha256":"` + sha + `"`, true},
		{"no sums", ``, false},
		{"crc32c alone", `"crc32c":"0a1b2c3d"`, false},
		{"stored sha256 alone", `"stored_sha256":"` + sha + `"`, false},
		{"short crc32c", `"crc32c":"0a1b2c","stored_sha256":"` + sha + `"`, false},
		{"upper-case crc32c", `"crc32c":"0A1B2C3D","stored_sha256":"` + sha + `"`, false},
		{"both kinds", `"sha256":"` + sha + `","crc32c":"0a1b2c3d","stored_sha256":"` + sha + `"`, false},
	} {
		key, err := BackupPartKey("20260101T000000Z", "base.tar", true)
		if err != nil {
			t.Fatal(err)
		}
		sums := tc.part
		if sums != "" {
			sums += ","
		}
		entry := fmt.Sprintf(`{"format":%d,"id":"20260101T000000Z","start_wal":"000000010000000000000002","end_wal":"000000010000000000000002","encrypted":true,`+
			`"parts":[{"name":"base.tar","key":%q,%s"bytes":1,"stored":1}]}`, FormatVersion, key, sums)
		_, err = UnmarshalBackup([]byte(entry))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
