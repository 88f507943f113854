package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/files"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// readFilesEnv is a memory repository with an age identity file for the env,
// and a repository to write snapshots with.
func readFilesEnv(t *testing.T) (*env, *bytes.Buffer, *storagetest.Memory, *repo.Repo) {
	t.Helper()
	m := storagetest.NewMemory()
	e, out := memEnv(m)
	id, err := crypto.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "identity.txt")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg.Encryption, e.cfg.AgeIdentityFile = "age", idFile
	return e, out, m, repo.New(m, &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{id.Recipient()}})
}

func sum256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// storeFilesSnapshot stores a snapshot of regular files under /srv, one
// chunk a file (ids are plain hashes here: restore only looks them up),
// as the snapshot writer lays it out.
func storeFilesSnapshot(t *testing.T, r *repo.Repo, set, id string, start time.Time, content map[string]string) *catalog.Snapshot {
	t.Helper()
	ctx := t.Context()
	entries := []catalog.ManifestEntry{{Path: "/srv", Type: catalog.TypeDir, Mode: 0o755, MtimeNS: start.UnixNano()}}
	var ids []string
	var chunks [][]byte
	for name, c := range content {
		e := catalog.ManifestEntry{Path: "/srv/" + name, Type: catalog.TypeFile, Mode: 0o640, MtimeNS: start.UnixNano(), Size: int64(len(c))}
		if c != "" {
			cid := sum256([]byte(id + c))
			ids, chunks = append(ids, cid), append(chunks, []byte(c))
			e.Chunks = []catalog.ChunkRef{{ID: cid, SHA256: sum256([]byte(c)), Size: int64(len(c))}}
		}
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	if len(ids) > 0 {
		pack, pi, err := r.BuildPack(ids, chunks)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := catalog.PackKey(pi.Pack)
		put(t, memOf(r), key, string(pack))
		ix := catalog.MarshalPackIndex(pi)
		ikey, _ := catalog.IndexKey(sum256(ix))
		put(t, memOf(r), ikey, string(ix))
	}
	var man bytes.Buffer
	h, _ := json.Marshal(catalog.ManifestHeader{Format: catalog.FormatVersion, Set: set, ID: id, Paths: []string{"/srv"}})
	man.Write(append(h, '\n'))
	for _, e := range entries {
		b, _ := json.Marshal(e)
		man.Write(append(b, '\n'))
	}
	mkey, _ := catalog.ManifestKey(set, id, true)
	w, err := r.PutSealed(ctx, mkey, &man)
	if err != nil {
		t.Fatal(err)
	}
	s := &catalog.Snapshot{ID: id, Format: catalog.FormatVersion, Set: set, Kind: "uploads", Host: "web1", StartTime: start, EndTime: start.Add(90 * time.Second),
		Encrypted: true, Files: int64(len(content)), Bytes: 3 << 20, NewBytes: 1 << 20, Stored: 5 << 10, Changed: 1,
		Manifest: catalog.Part{Name: "manifest", Key: mkey, SHA256: w.SHA256, Bytes: w.Bytes, Stored: w.Stored}}
	ekey, _ := catalog.SnapshotEntryKey(set, id)
	put(t, memOf(r), ekey, string(catalog.MarshalSnapshot(s)))
	return s
}

func memOf(r *repo.Repo) *storagetest.Memory { return r.Store().(*storagetest.Memory) }

var filesT0 = time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)

// TestFilesListShow: the table, JSON, a damaged entry named, and show by
// id alone, with --set, or latest.
func TestFilesListShow(t *testing.T) {
	e, out, mem, r := readFilesEnv(t)
	storeFilesSnapshot(t, r, "media", "20261121T020000Z", filesT0.Add(-24*time.Hour), map[string]string{"a": "1"})
	s2 := storeFilesSnapshot(t, r, "media", "20261122T020000Z", filesT0, map[string]string{"a": "2"})
	storeFilesSnapshot(t, r, "secrets", "20261122T020000Z", filesT0, map[string]string{".env": "x"})
	bad, _ := catalog.SnapshotEntryKey("media", "20261123T020000Z")
	put(t, mem, bad, `{"id": "2026`)

	if err := runFilesList(t.Context(), e, "", false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 || strings.Join(strings.Fields(lines[0]), " ") != "SET SNAPSHOT STARTED DURATION FILES SIZE NEW STORED CHANGED" ||
		strings.Join(strings.Fields(lines[1]), " ") != "media 20261121T020000Z 2026-11-21T02:00:00Z 1m30s 1 3.0 MiB 1.0 MiB 5.0 KiB 1" ||
		!strings.HasPrefix(lines[3], "secrets") || !strings.HasPrefix(lines[4], "damaged: 20261123T020000Z of media (not valid JSON") {
		t.Errorf("files list:\n%s", out)
	}
	out.Reset()
	if err := runFilesList(t.Context(), e, "secrets", true); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Snapshots []catalog.Snapshot     `json:"snapshots"`
		Damaged   []repo.DamagedSnapshot `json:"damaged_snapshots"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || len(got.Snapshots) != 1 || got.Snapshots[0].Set != "secrets" || got.Damaged == nil {
		t.Errorf("files list --set secrets --json: %v\n%s", err, out)
	}

	out.Reset()
	if err := runFilesShow(t.Context(), e, "media", "latest"); err != nil || !bytes.Equal(out.Bytes(), catalog.MarshalSnapshot(s2)) {
		t.Errorf("show latest: %v\n%s", err, out)
	}
	out.Reset()
	if err := runFilesShow(t.Context(), e, "", "20261121T020000Z"); err != nil || !strings.Contains(out.String(), `"set": "media"`) {
		t.Errorf("show by id alone: %v\n%s", err, out)
	}
	for _, c := range []struct{ set, id, want string }{
		{"", "20261122T020000Z", "exists in file sets media, secrets: pass --set"},
		{"", "latest", "--set NAME is required"},
		{"", "nonsense", "is not a snapshot id"},
		{"Bad", "latest", "--set \"Bad\""},
	} {
		err := runFilesShow(t.Context(), e, c.set, c.id)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("show %q --set %q: %v, want a usage error with %q", c.id, c.set, err, c.want)
		}
	}
	if err := runFilesShow(t.Context(), e, "", "20261123T020000Z"); !errors.Is(err, repo.ErrDamaged) {
		t.Errorf("show of the damaged one: %v", err)
	}
	if err := runFilesShow(t.Context(), e, "", "20261124T020000Z"); err == nil || !strings.Contains(err.Error(), "no file snapshot 20261124T020000Z") {
		t.Errorf("show of a missing one: %v", err)
	}
}

// TestFilesRestoreFlags: every bad input is one line and a usage error.
func TestFilesRestoreFlags(t *testing.T) {
	e, _, _, _ := readFilesEnv(t)
	dir := t.TempDir()
	for _, c := range []struct {
		f    filesRestoreFlags
		want string
	}{
		{filesRestoreFlags{target: dir}, "--set NAME is required"},
		{filesRestoreFlags{set: "Media", target: dir}, "--set \"Media\""},
		{filesRestoreFlags{set: "media"}, "needs --target DIR"},
		{filesRestoreFlags{set: "media", target: dir, snapshot: "latest", at: "2026-11-22 02:00:00"}, "exclude each other"},
		{filesRestoreFlags{set: "media", target: dir, snapshot: "yesterday"}, "not a snapshot id"},
		{filesRestoreFlags{set: "media", target: dir, at: "yesterday"}, "--at \"yesterday\": want a time"},
		{filesRestoreFlags{set: "media", target: dir, at: "latest"}, "want a time"},
		{filesRestoreFlags{set: "media", target: dir, include: []string{"/srv/["}}, "--include"},
	} {
		err := runFilesRestore(t.Context(), e, c.f)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %v, want a usage error with %q", c.f, err, c.want)
		}
	}
	e.cfg.AgeIdentityFile = ""
	_, _, _, r := readFilesEnv(t)
	e.store = r.Store()
	storeFilesSnapshot(t, r, "media", "20261122T020000Z", filesT0, map[string]string{"a": "1"})
	if err := runFilesRestore(t.Context(), e, filesRestoreFlags{set: "media", target: dir}); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "identity") {
		t.Errorf("restore without the identity: %v", err)
	}
}

// TestFilesRestoreAt: --at picks the newest snapshot started at or
// before it; latest the newest; the summary line counts what was written.
// It runs through the commands addFilesReadCommands adds.
func TestFilesRestoreAt(t *testing.T) {
	e, out, _, r := readFilesEnv(t)
	storeFilesSnapshot(t, r, "media", "20261121T020000Z", filesT0.Add(-24*time.Hour), map[string]string{"a.png": "old", "b.png": "bbb", "empty": ""})
	storeFilesSnapshot(t, r, "media", "20261122T020000Z", filesT0, map[string]string{"a.png": "new"})
	run := func(args ...string) error {
		parent := &cobra.Command{Use: "files", SilenceUsage: true, SilenceErrors: true}
		addFilesReadCommands(parent, e)
		parent.SetArgs(args)
		parent.SetOut(out)
		return parent.ExecuteContext(t.Context())
	}
	target := filepath.Join(t.TempDir(), "r")
	if err := run("restore", "--set", "media", "--at", "2026-11-22 01:59:59", "--target", target); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "srv/a.png")); string(b) != "old" {
		t.Errorf("--at before the second snapshot restored a.png = %q", b)
	}
	if want := "restored snapshot 20261121T020000Z of media into " + target + ": 3 files (6 B), 1 directories, 0 symlinks, 0 hard links in "; !strings.HasPrefix(out.String(), want) {
		t.Errorf("summary: %q, want %q...", out.String(), want)
	}
	err := run("restore", "--set", "media", "--target", target)
	if !errors.Is(err, files.ErrExists) || !strings.Contains(err.Error(), "srv/a.png") {
		t.Errorf("latest over the first restore without --force: %v", err)
	}
	out.Reset()
	if err := run("restore", "--set", "media", "--snapshot", "latest", "--target", target, "--force", "--include", "/srv/a*"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "srv/a.png")); string(b) != "new" {
		t.Errorf("latest restored a.png = %q", b)
	}
	if !strings.Contains(out.String(), "replaced 1 existing paths (--force)") {
		t.Errorf("output: %s", out)
	}
	if err := run("restore", "--set", "media", "--at", "2026-11-20T00:00:00Z", "--target", target); err == nil || !strings.Contains(err.Error(), "no snapshot of file set media started at or before 2026-11-20T00:00:00Z") {
		t.Errorf("--at before every snapshot: %v", err)
	}
	if err := run("list", "extra"); !errors.Is(err, errUsage) {
		t.Errorf("files list extra: %v", err)
	}
}
