package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func encryptedRepo(t *testing.T, m *storagetest.Memory) *Repo {
	t.Helper()
	id, err := crypto.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return New(m, &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}})
}

// storeSnapshot writes a manifest of lines (after the header) and the
// entry of snapshot id of set, as the writer does.
func storeSnapshot(t *testing.T, r *Repo, set, id string, start time.Time, lines []string) *catalog.Snapshot {
	t.Helper()
	key, _ := catalog.ManifestKey(set, id, true)
	h, _ := json.Marshal(catalog.ManifestHeader{Format: catalog.FormatVersion, Set: set, ID: id, Paths: []string{"/srv"}})
	body := string(h) + "\n" + strings.Join(lines, "\n")
	if len(lines) > 0 {
		body += "\n"
	}
	w, err := r.PutSealed(t.Context(), key, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	s := &catalog.Snapshot{ID: id, Format: catalog.FormatVersion, Set: set, Kind: "uploads", StartTime: start, EndTime: start.Add(time.Second),
		Encrypted: true, Manifest: catalog.Part{Name: "manifest", Key: key, SHA256: w.SHA256, Bytes: w.Bytes, Stored: w.Stored}}
	entry, _ := catalog.SnapshotEntryKey(set, id)
	if err := r.SaveEntry(t.Context(), entry, catalog.MarshalSnapshot(s)); err != nil {
		t.Fatal(err)
	}
	return s
}

// Listing sorts by start time then id across sets; a damaged entry is
// named and skipped; "latest" is the newest readable of the set.
func TestListSnapshots(t *testing.T) {
	m := storagetest.NewMemory()
	r := encryptedRepo(t, m)
	t0 := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)
	storeSnapshot(t, r, "media", "20261122T030000Z", t0.Add(time.Hour), nil)
	storeSnapshot(t, r, "secrets", "20261122T020000Z", t0, nil)
	storeSnapshot(t, r, "media", "20261122T020000Z", t0, nil)
	bad, _ := catalog.SnapshotEntryKey("media", "20261122T040000Z")
	if err := m.Put(t.Context(), bad, strings.NewReader(`{"id":`)); err != nil {
		t.Fatal(err)
	}
	other, _ := catalog.SnapshotEntryKey("media", "20261122T050000Z")
	s := &catalog.Snapshot{ID: "20261122T050000Z", Format: catalog.FormatVersion, Set: "media", Manifest: catalog.Part{Key: "backups/x", SHA256: strings.Repeat("0", 64)}}
	if err := m.Put(t.Context(), other, bytes.NewReader(catalog.MarshalSnapshot(s))); err != nil {
		t.Fatal(err)
	}

	all, damaged, err := r.ListSnapshots(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range all {
		got = append(got, s.Set+"/"+s.ID)
	}
	if want := "media/20261122T020000Z secrets/20261122T020000Z media/20261122T030000Z"; strings.Join(got, " ") != want {
		t.Errorf("order %v, want %s", got, want)
	}
	if len(damaged) != 2 || damaged[0].ID != "20261122T040000Z" || !strings.Contains(damaged[0].Reason, "not valid JSON") ||
		damaged[1].ID != "20261122T050000Z" || !strings.Contains(damaged[1].Reason, "is not the snapshot's") {
		t.Errorf("damaged = %+v", damaged)
	}
	if l, _, err := r.ListSnapshots(t.Context(), "secrets"); err != nil || len(l) != 1 {
		t.Errorf("secrets only: %v, %v", l, err)
	}
	if s, err := r.Snapshot(t.Context(), "media", "latest"); err != nil || s.ID != "20261122T030000Z" {
		t.Errorf("latest of media: %v, %v", s, err)
	}
	if _, err := r.Snapshot(t.Context(), "media", "20261122T040000Z"); !errors.Is(err, ErrDamaged) {
		t.Errorf("damaged by id: %v", err)
	}
	if _, err := r.Snapshot(t.Context(), "none", "latest"); err == nil || !strings.Contains(err.Error(), "no snapshots of file set none") {
		t.Errorf("latest of an empty set: %v", err)
	}
	if _, _, err := r.ListSnapshots(t.Context(), "Bad/Set"); err == nil {
		t.Error("a bad set name lists")
	}
}

// The manifest is verified whole before OpenManifest returns; Scan reads
// it again and again and refuses paths out of order.
func TestOpenManifest(t *testing.T) {
	m := storagetest.NewMemory()
	r := encryptedRepo(t, m)
	t0 := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)
	var lines []string
	for i := range 3000 {
		lines = append(lines, fmt.Sprintf(`{"path":"/srv/f%06d","type":"file","mode":420,"uid":0,"gid":0,"mtime_ns":1}`, i))
	}
	s := storeSnapshot(t, r, "media", "20261122T020000Z", t0, lines)
	man, err := r.OpenManifest(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer man.Close()
	if man.Entries != 3000 || man.Header.ID != s.ID || man.Header.Paths[0] != "/srv" {
		t.Fatalf("manifest: %d entries, header %+v", man.Entries, man.Header)
	}
	for range 2 {
		n := 0
		if err := man.Scan(t.Context(), func(e *catalog.ManifestEntry) error {
			if want := fmt.Sprintf("/srv/f%06d", n); e.Path != want {
				return fmt.Errorf("entry %d is %s, want %s", n, e.Path, want)
			}
			n++
			return nil
		}); err != nil || n != 3000 {
			t.Fatalf("scan: %d, %v", n, err)
		}
	}

	// A tampered manifest fails to open, whatever the entry says.
	tampered := *s
	tampered.Manifest.SHA256 = strings.Repeat("a", 64)
	if _, err := r.OpenManifest(t.Context(), &tampered); !errors.Is(err, envelope.ErrChecksum) {
		t.Errorf("wrong sha256: %v, want a checksum error", err)
	}
	// Out of order, and a header of another snapshot.
	s2 := storeSnapshot(t, r, "media", "20261122T030000Z", t0, []string{`{"path":"/b","type":"dir"}`, `{"path":"/a","type":"dir"}`})
	man2, err := r.OpenManifest(t.Context(), s2)
	if err != nil {
		t.Fatal(err)
	}
	defer man2.Close()
	if err := man2.Scan(t.Context(), func(*catalog.ManifestEntry) error { return nil }); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("out of order: %v", err)
	}
	s3 := storeSnapshot(t, r, "media", "20261122T040000Z", t0, nil)
	key, _ := catalog.ManifestKey("media", "20261122T040000Z", true)
	h, _ := json.Marshal(catalog.ManifestHeader{Format: catalog.FormatVersion, Set: "media", ID: "20261122T020000Z"})
	w, err := r.PutSealed(t.Context(), key, bytes.NewReader(append(h, '\n')))
	if err != nil {
		t.Fatal(err)
	}
	s3.Manifest.SHA256 = w.SHA256
	if _, err := r.OpenManifest(t.Context(), s3); err == nil || !strings.Contains(err.Error(), "header names snapshot 20261122T020000Z") {
		t.Errorf("foreign header: %v", err)
	}
}

// ReadBlobRun reads chunks in pack order with one ranged GET, skipping a
// gap, and checks each one; chunks out of order are refused.
func TestReadBlobRun(t *testing.T) {
	m := storagetest.NewMemory()
	r := encryptedRepo(t, m)
	var ids []string
	var data [][]byte
	var sums []string
	for i, s := range []string{"first chunk", "second", "third and last"} {
		ids = append(ids, strings.Repeat(fmt.Sprint(i), 64))
		data = append(data, []byte(s))
		sums = append(sums, fmt.Sprintf("%x", sha256.Sum256([]byte(s))))
	}
	body, pi, err := r.BuildPack(ids, data)
	if err != nil {
		t.Fatal(err)
	}
	var refs []BlobRef
	for _, b := range pi.Blobs {
		refs = append(refs, BlobRef{Pack: pi.Pack, Header: pi.Header, Blob: b})
	}
	key, _ := catalog.PackKey(pi.Pack)
	if err := m.Put(t.Context(), key, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	var got []string
	err = r.ReadBlobRun(t.Context(), []BlobRef{refs[0], refs[2]}, true, []string{sums[0], sums[2]}, func(i int, data []byte) error {
		got = append(got, string(data))
		return nil
	})
	if err != nil || strings.Join(got, "|") != "first chunk|third and last" {
		t.Fatalf("run with a gap: %q, %v", got, err)
	}
	noop := func(int, []byte) error { return nil }
	if err := r.ReadBlobRun(t.Context(), []BlobRef{refs[1], refs[0]}, true, []string{sums[1], sums[0]}, noop); err == nil {
		t.Error("chunks out of order read")
	}
	if err := r.ReadBlobRun(t.Context(), refs[:2], true, []string{sums[0], sums[0]}, noop); !errors.Is(err, envelope.ErrChecksum) {
		t.Errorf("a wrong sum: %v", err)
	}
}
