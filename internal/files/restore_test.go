package files

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

var fxT0 = time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)

// mtimes with nanoseconds, distinct per path
const (
	mt1 = int64(1763776800_123456789)
	mt2 = int64(1763776801_987654321)
	mt3 = int64(1763776802_000000007)
)

func fxRandom(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// xattrsWork says whether dir's file system takes user.* attributes.
func xattrsWork(t *testing.T, dir string) bool {
	p := filepath.Join(dir, "xattr-probe")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	return unix.Setxattr(p, "user.probe", []byte("1"), 0) == nil
}

func statT(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

func checkMeta(t *testing.T, p string, mode uint32, uid, gid uint32, mtime int64) {
	t.Helper()
	st := statT(t, p)
	if got := st.Mode & 0o7777; got != mode {
		t.Errorf("%q: mode %o, want %o", p, got, mode)
	}
	if uid != ^uint32(0) && (st.Uid != uid || st.Gid != gid) {
		t.Errorf("%q: owner %d:%d, want %d:%d", p, st.Uid, st.Gid, uid, gid)
	}
	if got := st.Mtim.Nano(); got != mtime {
		t.Errorf("%q: mtime %d, want %d", p, got, mtime)
	}
}

// noTemps fails if a temporary file of restore is left under dir.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tempPrefix) {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

func roundTripFiles() []fxFile {
	big := fxFile{ManifestEntry: catalog.ManifestEntry{Path: "/srv/app/big.bin", Type: catalog.TypeFile, Mode: 0o640, UID: 1234, GID: 5678, MtimeNS: mt2,
		Xattrs: map[string][]byte{"user.origin": []byte("upload\x00bin")}}, Content: fxRandom(10_500, 1)}
	suid := fxReg("/srv/app/bin/tool", 0o4755, mt1, "#!/bin/sh\n")
	env := fxReg("/srv/app/.env.production", 0o600, mt3, "SECRET_KEY_BASE=hunter2\n")
	env.UID, env.GID = 1234, 5678
	app := fxDir("/srv/app", 0o750, mt2)
	app.UID, app.GID = 1234, 5678
	link := fxSymlink("/srv/app/current", "../releases/20261122", mt3)
	link.UID, link.GID = 1234, 5678
	return []fxFile{
		fxDir("/srv", 0o755, mt1),
		app,
		env,
		big,
		fxDir("/srv/app/bin", 0o755, mt3),
		suid,
		fxReg("/srv/app/empty", 0o644, mt1, ""),
		fxDir("/srv/app/empty dir", 0o2775, mt1),
		link,
		fxSymlink("/srv/app/passwd", "/etc/passwd", mt1),
		fxHardlink("/srv/app/same.bin", "/srv/app/big.bin"),
		fxReg("/srv/app/a name with spaces", 0o644, mt1, "spaces"),
		fxReg("/srv/app/new\nline", 0o644, mt2, "newline"),
		fxReg("/srv/app/ünïcødé 日本", 0o644, mt3, "utf-8"),
	}
}

// TestRestoreRoundTrip restores modes, owners (as root), mtimes to the
// nanosecond, symlinks, a hard link, an empty directory, an xattr and
// awkward names exactly, and leaves no temporary file.
func TestRestoreRoundTrip(t *testing.T) {
	f := newFxRepo(t, nil)
	files := roundTripFiles()
	s := f.snapshot("media", "20261122T020000Z", fxT0, files)
	target := filepath.Join(t.TempDir(), "restore")
	st, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	want := RestoreStats{Files: 7, Bytes: 10_500 + 10 + 24 + 6 + 7 + 5, Dirs: 4, Symlinks: 2, Hardlinks: 1}
	if !root {
		want.OwnersNotRestored = 4
	}
	st.Duration = 0
	xattrs := xattrsWork(t, target)
	if !xattrs {
		want.XattrsNotRestored = 1
	}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
	any := ^uint32(0)
	own := func(uid, gid uint32) (uint32, uint32) {
		if root {
			return uid, gid
		}
		return any, any
	}
	u, g := own(1234, 5678)
	checkMeta(t, filepath.Join(target, "srv"), 0o755, 0, 0, mt1)
	checkMeta(t, filepath.Join(target, "srv/app"), 0o750, u, g, mt2)
	checkMeta(t, filepath.Join(target, "srv/app/.env.production"), 0o600, u, g, mt3)
	checkMeta(t, filepath.Join(target, "srv/app/big.bin"), 0o640, u, g, mt2)
	checkMeta(t, filepath.Join(target, "srv/app/bin"), 0o755, 0, 0, mt3)
	if root {
		checkMeta(t, filepath.Join(target, "srv/app/bin/tool"), 0o4755, 0, 0, mt1)
	}
	checkMeta(t, filepath.Join(target, "srv/app/empty dir"), 0o2775, 0, 0, mt1)
	checkMeta(t, filepath.Join(target, "srv/app/current"), 0o777, u, g, mt3)
	checkMeta(t, filepath.Join(target, "srv/app/new\nline"), 0o644, 0, 0, mt2)

	for _, e := range files {
		p := filepath.Join(target, e.Path)
		switch {
		case e.Type == catalog.TypeFile && e.Link == "":
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, e.Content) {
				t.Errorf("%q: content differs (%d bytes, want %d): %v", e.Path, len(got), len(e.Content), err)
			}
		case e.Type == catalog.TypeSymlink:
			if got, err := os.Readlink(p); err != nil || got != e.Target {
				t.Errorf("%q: link to %q, want %q: %v", e.Path, got, e.Target, err)
			}
		}
	}
	a, _ := os.Stat(filepath.Join(target, "srv/app/big.bin"))
	b, _ := os.Stat(filepath.Join(target, "srv/app/same.bin"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Error("same.bin is not a hard link of big.bin")
	}
	if ents, err := os.ReadDir(filepath.Join(target, "srv/app/empty dir")); err != nil || len(ents) != 0 {
		t.Errorf("empty dir: %v, %v", ents, err)
	}
	if xattrs {
		buf := make([]byte, 64)
		n, err := unix.Getxattr(filepath.Join(target, "srv/app/big.bin"), "user.origin", buf)
		if err != nil || string(buf[:n]) != "upload\x00bin" {
			t.Errorf("xattr: %q, %v", buf[:max(n, 0)], err)
		}
	}
	noTemps(t, target)
}

// TestRestoreNotRoot: restoring as another user than root leaves owners
// alone, counts them, and drops setuid bits.
func TestRestoreNotRoot(t *testing.T) {
	old := geteuid
	geteuid = func() int { return 4321 }
	t.Cleanup(func() { geteuid = old })
	f := newFxRepo(t, nil)
	s := f.snapshot("media", "20261122T020000Z", fxT0, roundTripFiles())
	target := t.TempDir()
	st, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	if st.OwnersNotRestored != 13 { // every path but the hard link; none is 4321's
		t.Errorf("owners not restored: %d, want 13", st.OwnersNotRestored)
	}
	if got := statT(t, filepath.Join(target, "srv/app/bin/tool")).Mode & 0o7777; got != 0o755 {
		t.Errorf("setuid file restored by another user: mode %o, want 0755", got)
	}
	if os.Geteuid() == 0 {
		if st := statT(t, filepath.Join(target, "srv/app/big.bin")); st.Uid != 0 {
			t.Errorf("owner changed to %d without root", st.Uid)
		}
	}
}

// TestRestoreRefusesOverwrite: an existing file stops the restore before
// anything is written, naming it; --force replaces it, and replaces a
// symbolic link found at the target without following it.
func TestRestoreRefusesOverwrite(t *testing.T) {
	f := newFxRepo(t, nil)
	s := f.snapshot("media", "20261122T020000Z", fxT0, []fxFile{
		fxDir("/srv", 0o755, mt1),
		fxReg("/srv/a", 0o644, mt1, "new a"),
		fxReg("/srv/b\nb", 0o644, mt1, "new b"),
		fxReg("/srv/c", 0o644, mt1, "new c"),
	})
	target := t.TempDir()
	outside := filepath.Join(t.TempDir(), "outside")
	writeText(t, outside, "outside")
	if err := os.MkdirAll(filepath.Join(target, "srv"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeText(t, filepath.Join(target, "srv/b\nb"), "old b")
	if err := os.Symlink(outside, filepath.Join(target, "srv/c")); err != nil {
		t.Fatal(err)
	}
	_, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), `srv/b\nb`) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("restore over an existing file: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(target, "srv/a")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("a refused restore wrote srv/a")
	}
	st, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target, Force: true})
	if err != nil || st.Replaced != 2 {
		t.Fatalf("restore --force: %+v, %v", st, err)
	}
	for _, n := range []string{"a", "b\nb", "c"} {
		got, err := os.ReadFile(filepath.Join(target, "srv", n))
		if err != nil || string(got) != "new "+n[:1] {
			t.Errorf("srv/%s: %q, %v", n, got, err)
		}
	}
	if got, _ := os.ReadFile(outside); string(got) != "outside" {
		t.Errorf("--force wrote through a symlink at the target: outside holds %q", got)
	}
	noTemps(t, target)
}

func writeText(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreRefusesHostileManifest: paths leaving the target, unclean or
// relative paths, a file under a symlink of the snapshot, hard links out
// of the snapshot: refused before anything is written, nothing outside.
func TestRestoreRefusesHostileManifest(t *testing.T) {
	outside := t.TempDir()
	cases := []struct {
		name  string
		files []fxFile
		want  string
	}{
		{"dotdot", []fxFile{fxDir("/srv", 0o755, mt1), fxReg("/srv/../../../"+outside+"/x", 0o644, mt1, "x")}, "contains .."},
		{"dotdot-clean", []fxFile{fxReg("/../x", 0o644, mt1, "x")}, "contains .."},
		{"relative", []fxFile{fxReg("srv/x", 0o644, mt1, "x")}, "not an absolute path"},
		{"double-slash", []fxFile{fxReg("/srv//x", 0o644, mt1, "x")}, "not a clean path"},
		{"dot", []fxFile{fxReg("/srv/./x", 0o644, mt1, "x")}, "not a clean path"},
		{"nul", []fxFile{fxReg("/srv/x\x00y", 0o644, mt1, "x")}, "NUL"},
		{"root-file", []fxFile{fxReg("/", 0o644, mt1, "x")}, "target directory itself"},
		{"symlinked-parent", []fxFile{fxDir("/srv", 0o755, mt1), fxSymlink("/srv/l", outside, mt1), fxReg("/srv/l/evil", 0o644, mt1, "evil")}, "parent \"/srv/l\" is not a directory"},
		{"symlinked-grandparent", []fxFile{fxSymlink("/srv", outside, mt1), fxReg("/srv/a.b", 0o644, mt1, "x"), fxReg("/srv/d/evil", 0o644, mt1, "evil")}, "parent \"/srv\" is not a directory"},
		{"file-parent", []fxFile{fxReg("/srv", 0o644, mt1, "x"), fxReg("/srv/evil", 0o644, mt1, "evil")}, "not a directory"},
		{"link-outside", []fxFile{fxHardlink("/srv/h", "/etc/passwd")}, "not an earlier file"},
		{"link-later", []fxFile{fxHardlink("/srv/a", "/srv/z"), fxReg("/srv/z", 0o644, mt1, "z")}, "not an earlier path"},
		{"link-missing", []fxFile{fxDir("/srv", 0o755, mt1), fxHardlink("/srv/h", "/srv/a")}, "not an earlier file"},
		{"link-to-dir", []fxFile{fxDir("/srv", 0o755, mt1), fxHardlink("/srv/h", "/srv")}, "not an earlier file"},
		{"mode", []fxFile{fxReg("/srv", 0o10644, mt1, "x")}, "mode"},
		{"type", []fxFile{{ManifestEntry: catalog.ManifestEntry{Path: "/srv", Type: "fifo"}}}, "unknown type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFxRepo(t, nil)
			s := f.snapshot("media", "20261122T020000Z", fxT0, c.files)
			target := filepath.Join(t.TempDir(), "target")
			_, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target, Force: true})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "refusing") {
				t.Fatalf("restore: %v, want a refusal saying %q", err, c.want)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("written outside the target: %v", ents)
			}
			if ents, _ := os.ReadDir(target); len(ents) != 0 {
				t.Errorf("a refused restore wrote into the target: %v", ents)
			}
		})
	}
}

// A symlink the target already holds where the snapshot has a directory:
// refused, or with --force replaced by a real directory; never followed.
func TestRestoreSymlinkedParentAtTarget(t *testing.T) {
	f := newFxRepo(t, nil)
	s := f.snapshot("media", "20261122T020000Z", fxT0, []fxFile{fxDir("/srv", 0o755, mt1), fxReg("/srv/x", 0o644, mt1, "x")})
	outside, target := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(target, "srv")); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target}); !errors.Is(err, ErrExists) {
		t.Fatalf("restore under a symlinked parent: %v", err)
	}
	if _, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target, Force: true}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("written through the symlink: %v", ents)
	}
	if fi, err := os.Lstat(filepath.Join(target, "srv")); err != nil || !fi.IsDir() {
		t.Fatalf("srv is not a real directory: %v, %v", fi, err)
	}
}

// TestRestoreTamperedChunk: a pack altered in the repository fails the
// restore and leaves neither the file nor a temporary one.
func TestRestoreTamperedChunk(t *testing.T) {
	m := storagetest.NewMemory()
	f := newFxRepo(t, m)
	s := f.snapshot("media", "20261122T020000Z", fxT0, []fxFile{fxDir("/srv", 0o755, mt1), fxReg("/srv/x", 0o644, mt1, string(fxRandom(3000, 2)))})
	var packKey string
	if err := m.List(t.Context(), catalog.PacksPrefix, func(oi storage.ObjectInfo) error { packKey = oi.Key; return nil }); err != nil || packKey == "" {
		t.Fatalf("no pack: %v", err)
	}
	rc, err := m.Get(t.Context(), packKey)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(rc)
	rc.Close()
	b := buf.Bytes()
	b[len(b)-20] ^= 1 // in the last chunk's ciphertext
	if err := m.Put(t.Context(), packKey, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	if _, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target}); err == nil || !strings.Contains(err.Error(), `"/srv/x"`) {
		t.Fatalf("restore of a tampered chunk: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(target, "srv/x")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the file of a tampered chunk is there")
	}
	noTemps(t, target)
}

// A chunk the index does not know stops the restore before anything is
// written.
func TestRestoreMissingChunk(t *testing.T) {
	f := newFxRepo(t, nil)
	files := []fxFile{fxDir("/srv", 0o755, mt1), fxReg("/srv/x", 0o644, mt1, "x")}
	files[1].Chunks = []catalog.ChunkRef{{ID: strings.Repeat("ab", 32), SHA256: strings.Repeat("cd", 32), Size: 1}}
	files[1].Size = 1
	s := f.snapshot("media", "20261122T020000Z", fxT0, files)
	target := t.TempDir()
	if _, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target}); !errors.Is(err, repo.ErrChunkMissing) {
		t.Fatalf("restore with a missing chunk: %v", err)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("written: %v", ents)
	}
}

// TestRestoreInclude restores only the matching paths and the
// directories above them; a hard link to a path left out gets the
// content.
func TestRestoreInclude(t *testing.T) {
	f := newFxRepo(t, nil)
	s := f.snapshot("media", "20261122T020000Z", fxT0, []fxFile{
		fxDir("/srv", 0o711, mt1),
		fxDir("/srv/a", 0o750, mt2),
		fxReg("/srv/a/one.png", 0o644, mt1, "one"),
		fxReg("/srv/a/two.txt", 0o644, mt1, "two"),
		fxDir("/srv/b", 0o755, mt1),
		fxReg("/srv/b/three.png", 0o644, mt1, "three"),
		fxHardlink("/srv/b/x.png", "/srv/a/two.txt"),
		fxHardlink("/srv/b/y.png", "/srv/a/two.txt"),
		fxDir("/srv/c", 0o755, mt1),
		fxReg("/srv/c/four", 0o644, mt1, "four"),
	})
	target := t.TempDir()
	st, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: target, Include: []string{"/srv/*/*.png", "/srv/c"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != target {
			got = append(got, strings.TrimPrefix(p, target))
		}
		return nil
	})
	want := "/srv /srv/a /srv/a/one.png /srv/b /srv/b/three.png /srv/b/x.png /srv/b/y.png /srv/c /srv/c/four"
	if strings.Join(got, " ") != want {
		t.Errorf("restored %v\nwant %s", got, want)
	}
	if b, _ := os.ReadFile(filepath.Join(target, "srv/b/y.png")); string(b) != "two" {
		t.Errorf("y.png holds %q", b)
	}
	x, _ := os.Stat(filepath.Join(target, "srv/b/x.png"))
	y, _ := os.Stat(filepath.Join(target, "srv/b/y.png"))
	if x == nil || y == nil || !os.SameFile(x, y) || st.Hardlinks != 1 {
		t.Errorf("x.png and y.png are not one file (stats %+v)", st)
	}
	checkMeta(t, filepath.Join(target, "srv/a"), 0o750, ^uint32(0), 0, mt2) // a needed parent keeps its metadata
	if _, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: t.TempDir(), Include: []string{"/nothing/*"}}); err == nil || !strings.Contains(err.Error(), "no path") {
		t.Errorf("an include matching nothing: %v", err)
	}
	if _, err := Restore(t.Context(), f.r, RestoreOptions{Snapshot: s, Target: t.TempDir(), Include: []string{"/srv/["}}); err == nil {
		t.Error("a bad pattern restores")
	}
}

// TestFindSnapshotAt: --at picks the newest snapshot started at or
// before the time; none before it is an error.
func TestFindSnapshotAt(t *testing.T) {
	f := newFxRepo(t, nil)
	for i, id := range []string{"20261120T020000Z", "20261121T020000Z", "20261122T020000Z"} {
		f.snapshot("media", id, fxT0.AddDate(0, 0, i-2), nil)
	}
	f.snapshot("other", "20261121T120000Z", fxT0.Add(-14*time.Hour), nil)
	for _, c := range []struct {
		at   time.Time
		want string
	}{
		{fxT0, "20261122T020000Z"},
		{fxT0.Add(-time.Second), "20261121T020000Z"},
		{fxT0.Add(-24 * time.Hour), "20261121T020000Z"},
		{fxT0.Add(time.Hour), "20261122T020000Z"},
	} {
		s, err := FindSnapshot(t.Context(), f.r, "media", "", c.at)
		if err != nil || s.ID != c.want {
			t.Errorf("at %s: %v, %v; want %s", c.at, s, err, c.want)
		}
	}
	if _, err := FindSnapshot(t.Context(), f.r, "media", "", fxT0.AddDate(0, 0, -3)); err == nil || !strings.Contains(err.Error(), "no snapshot of file set media started at or before") {
		t.Errorf("before the first: %v", err)
	}
	if s, err := FindSnapshot(context.Background(), f.r, "media", "latest", time.Time{}); err != nil || s.ID != "20261122T020000Z" {
		t.Errorf("latest: %v, %v", s, err)
	}
}

// TestRestoreLogsNoSecrets: at debug level, a restore's logs name no path
// and no content of the snapshot.
func TestRestoreLogsNoSecrets(t *testing.T) {
	f := newFxRepo(t, nil)
	s := f.snapshot("secrets", "20261122T020000Z", fxT0, []fxFile{
		fxDir("/etc", 0o755, mt1),
		fxDir("/etc/mastodon", 0o700, mt1),
		fxReg("/etc/mastodon/.env.production", 0o600, mt1, "OTP_SECRET=0123456789abcdef\n"),
	})
	var logs bytes.Buffer
	ctx := zerolog.New(&logs).Level(zerolog.DebugLevel).WithContext(t.Context())
	old := geteuid
	geteuid = func() int { return 4321 } // a warning about owners too
	t.Cleanup(func() { geteuid = old })
	if _, err := Restore(ctx, f.r, RestoreOptions{Snapshot: s, Target: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "files restored") || !strings.Contains(logs.String(), "owners not restored") {
		t.Fatalf("logs lack the summary or the owner warning:\n%s", logs.String())
	}
	for _, secret := range []string{"mastodon", ".env", "OTP_SECRET", "0123456789abcdef"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs.String())
		}
	}
}
