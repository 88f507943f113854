package files

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func testKey(seed byte) DedupKey {
	var b [DedupKeySize]byte
	for i := range b {
		b[i] = seed + byte(i)
	}
	return NewDedupKey(b)
}

func encryptingCodec(t *testing.T) *envelope.Codec {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}}
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 42})
	_, _ = r.Read(b)
	return b
}

func mustWrite(t *testing.T, p string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func opts(r *repo.Repo, name string, paths ...string) Options {
	return Options{Repo: r, Name: name, Kind: KindUploads, Paths: paths, DedupKey: testKey(1), PitrVersion: "test"}
}

// readManifest returns a snapshot's manifest lines, checking the header.
func readManifest(t *testing.T, r *repo.Repo, snap *catalog.Snapshot) []catalog.ManifestEntry {
	t.Helper()
	rc, err := r.OpenSealed(t.Context(), snap.Manifest.Key, snap.Encrypted, snap.Manifest.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(nil, 64<<20)
	if !sc.Scan() {
		t.Fatalf("empty manifest: %v", sc.Err())
	}
	var h catalog.ManifestHeader
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Format != catalog.FormatVersion || h.Set != snap.Set || h.ID != snap.ID {
		t.Fatalf("manifest header %s: %v", sc.Bytes(), err)
	}
	var out []catalog.ManifestEntry
	for sc.Scan() {
		var e catalog.ManifestEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.IsSortedFunc(out, func(a, b catalog.ManifestEntry) int { return strings.Compare(a.Path, b.Path) }) {
		t.Errorf("manifest not sorted by path: %v", paths(out))
	}
	return out
}

func paths(es []catalog.ManifestEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Path)
	}
	return out
}

// content assembles a file's content from its chunks, as a restore does.
func content(t *testing.T, r *repo.Repo, ix *repo.ChunkIndex, encrypted bool, e catalog.ManifestEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, c := range e.Chunks {
		ref, ok := ix.Lookup(c.ID)
		if !ok {
			t.Fatalf("%q: chunk %.16s in no pack", e.Path, c.ID)
		}
		b, err := r.ReadBlob(t.Context(), ref, encrypted, c.SHA256)
		if err != nil {
			t.Fatalf("%q: %v", e.Path, err)
		}
		buf.Write(b)
	}
	return buf.Bytes()
}

// checkSnapshot compares every manifest entry with the tree as it is now
// and returns the entries by path.
func checkSnapshot(t *testing.T, r *repo.Repo, snap *catalog.Snapshot) map[string]catalog.ManifestEntry {
	t.Helper()
	ix, err := r.LoadChunkIndex(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]catalog.ManifestEntry{}
	for _, e := range readManifest(t, r, snap) {
		byPath[e.Path] = e
		var st unix.Stat_t
		if err := unix.Lstat(e.Path, &st); err != nil {
			t.Fatal(err)
		}
		if e.Mode != st.Mode&0o7777 || e.UID != st.Uid || e.GID != st.Gid || e.MtimeNS != st.Mtim.Nano() {
			t.Errorf("%q: mode %o uid %d gid %d mtime %d, want %o %d %d %d", e.Path, e.Mode, e.UID, e.GID, e.MtimeNS, st.Mode&0o7777, st.Uid, st.Gid, st.Mtim.Nano())
		}
		switch e.Type {
		case catalog.TypeFile:
			if e.Link != "" {
				continue
			}
			want, err := os.ReadFile(e.Path)
			if err != nil {
				t.Fatal(err)
			}
			if got := content(t, r, ix, snap.Encrypted, e); !bytes.Equal(got, want) || e.Size != int64(len(want)) {
				t.Errorf("%q: %d bytes restored (size %d), want %d, equal %v", e.Path, len(got), e.Size, len(want), bytes.Equal(got, want))
			}
		case catalog.TypeSymlink:
			if target, _ := os.Readlink(e.Path); target != e.Target {
				t.Errorf("%q: target %q, want %q", e.Path, e.Target, target)
			}
		}
	}
	return byPath
}

// makeTree writes the round-trip tree under dir and says whether the
// filesystem took a user xattr.
func makeTree(t *testing.T, dir string) (xattr bool) {
	t.Helper()
	mustWrite(t, filepath.Join(dir, "big.bin"), randomBytes(1, 5<<20), 0o644)
	mustWrite(t, filepath.Join(dir, "small.txt"), []byte("hello\n"), 0o640)
	mustWrite(t, filepath.Join(dir, "empty"), nil, 0o600)
	mustWrite(t, filepath.Join(dir, "secret.key"), []byte("k"), 0o600)
	mustWrite(t, filepath.Join(dir, "with space.txt"), []byte("space"), 0o644)
	mustWrite(t, filepath.Join(dir, "new\nline"), []byte("newline"), 0o644)
	mustWrite(t, filepath.Join(dir, "ünïcødé/日本.txt"), []byte("utf-8"), 0o644)
	mustWrite(t, filepath.Join(dir, "b c"), []byte("sorts between b and b/"), 0o644)
	mustWrite(t, filepath.Join(dir, "b", "x"), []byte("in b"), 0o644)
	mustWrite(t, filepath.Join(dir, "cache", "junk"), []byte("excluded"), 0o644)
	mustWrite(t, filepath.Join(dir, "skip.tmp"), []byte("excluded"), 0o644)
	if err := os.Mkdir(filepath.Join(dir, "emptydir"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "emptydir"), 0o750|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("small.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nowhere/at/all", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "small.txt"), filepath.Join(dir, "zz-hardlink")); err != nil {
		t.Fatal(err)
	}
	err := unix.Lsetxattr(filepath.Join(dir, "small.txt"), "user.pitr", []byte("value\x00bin"), 0)
	return err == nil
}

func TestBackupRoundTrip(t *testing.T) {
	dir := t.TempDir()
	xattr := makeTree(t, dir)
	if !xattr {
		t.Log("the temp filesystem refuses user.* xattrs: the xattr part is not checked")
	}
	r := repo.New(storagetest.NewMemory(), encryptingCodec(t))
	o := opts(r, "media", dir)
	o.Exclude = []string{"cache", "*.tmp"}
	snap, err := Backup(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Encrypted || snap.Set != "media" || snap.Kind != KindUploads || snap.KeyID != testKey(1).KeyID() {
		t.Errorf("entry %+v", snap)
	}
	es := checkSnapshot(t, r, snap)
	for _, p := range []string{"", "/big.bin", "/small.txt", "/empty", "/with space.txt", "/new\nline", "/ünïcødé", "/ünïcødé/日本.txt",
		"/b", "/b c", "/b/x", "/emptydir", "/link", "/dangling", "/zz-hardlink", "/secret.key"} {
		if _, ok := es[dir+p]; !ok {
			t.Errorf("%q not in the manifest", dir+p)
		}
	}
	for _, p := range []string{"/cache", "/cache/junk", "/skip.tmp"} {
		if _, ok := es[dir+p]; ok {
			t.Errorf("%q excluded, but in the manifest", dir+p)
		}
	}
	if e := es[dir+"/zz-hardlink"]; e.Link != dir+"/small.txt" || len(e.Chunks) != 0 {
		t.Errorf("hardlink entry %+v, want a link to small.txt", e)
	}
	if e := es[dir+"/emptydir"]; e.Type != catalog.TypeDir || e.Mode != 0o750|unix.S_ISVTX {
		t.Errorf("empty dir %+v", e)
	}
	if e := es[dir+"/secret.key"]; e.Mode != 0o600 {
		t.Errorf("secret.key mode %o, want 600", e.Mode)
	}
	if e := es[dir+"/big.bin"]; len(e.Chunks) < 3 {
		t.Errorf("big.bin in %d chunks, want several", len(e.Chunks))
	}
	if e := es[dir+"/small.txt"]; xattr && string(e.Xattrs["user.pitr"]) != "value\x00bin" {
		t.Errorf("small.txt xattrs %q", e.Xattrs)
	}
	// files: big, small, empty, secret.key, space, newline, 日本, b c, b/x (the hardlink counted once)
	if snap.Files != 9 || snap.Links != 2 || snap.Dirs != 4 || snap.Changed != 0 {
		t.Errorf("counts: files %d symlinks %d dirs %d changed %d", snap.Files, snap.Links, snap.Dirs, snap.Changed)
	}
	if snap.Bytes != 5<<20+int64(len("hello\nkspacenewlineutf-8sorts between b and b/in b")) || snap.NewBytes != snap.Bytes {
		t.Errorf("bytes %d new %d", snap.Bytes, snap.NewBytes)
	}
	// The entry is listed where the other helper's list reads it.
	key, _ := catalog.SnapshotEntryKey(snap.Set, snap.ID)
	if _, err := r.Store().Stat(t.Context(), key); err != nil {
		t.Fatal(err)
	}
}

// countingStore counts the bytes and objects stored.
type countingStore struct {
	storage.Storage
	bytes, puts atomic.Int64
}

func (c *countingStore) count(r io.Reader) io.Reader {
	c.puts.Add(1)
	return &countReader{r: r, n: &c.bytes}
}

func (c *countingStore) Put(ctx context.Context, key string, r io.Reader) error {
	return c.Storage.Put(ctx, key, c.count(r))
}

func (c *countingStore) Create(ctx context.Context, key string, r io.Reader) error {
	return c.Storage.Create(ctx, key, c.count(r))
}

type countReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func TestBackupSecondSnapshotUploadsDelta(t *testing.T) {
	dir := t.TempDir()
	for i := range 8 {
		mustWrite(t, filepath.Join(dir, "m", string(rune('a'+i))+".bin"), randomBytes(uint64(10+i), 3<<20), 0o644)
	}
	for i := range 200 {
		mustWrite(t, filepath.Join(dir, "s", string(rune('a'+i%26))+string(rune('a'+i/26))+".txt"), randomBytes(uint64(100+i), 2000), 0o644)
	}
	cs := &countingStore{Storage: storagetest.NewMemory()}
	r := repo.New(cs, encryptingCodec(t))
	first, err := Backup(t.Context(), opts(r, "media", dir))
	if err != nil {
		t.Fatal(err)
	}
	firstBytes, firstPuts := cs.bytes.Load(), cs.puts.Load()
	if firstPuts > 20 {
		t.Errorf("first snapshot: %d objects stored for 208 files, want them packed", firstPuts)
	}
	// One byte changed in the middle of a 3 MiB file, one small file
	// rewritten, one added.
	p := filepath.Join(dir, "m", "c.bin")
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 0xff
	mustWrite(t, p, data, 0o644)
	mustWrite(t, filepath.Join(dir, "s", "aa.txt"), []byte("changed"), 0o644)
	mustWrite(t, filepath.Join(dir, "s", "new.txt"), []byte("new"), 0o644)
	cs.bytes.Store(0)
	cs.puts.Store(0)
	second, err := Backup(t.Context(), opts(r, "media", dir))
	if err != nil {
		t.Fatal(err)
	}
	delta := cs.bytes.Load()
	t.Logf("first: %d bytes in %d objects; second: %d bytes in %d objects (new plaintext %d)", firstBytes, firstPuts, delta, cs.puts.Load(), second.NewBytes)
	if delta > 3<<20 || delta*5 > firstBytes {
		t.Errorf("second snapshot uploaded %d bytes (first %d), want only the changed chunks", delta, firstBytes)
	}
	if second.NewBytes >= first.NewBytes/4 {
		t.Errorf("new bytes %d of %d", second.NewBytes, first.NewBytes)
	}
	checkSnapshot(t, r, second)
}

func TestBackupAppendedWhileRead(t *testing.T) {
	dir := t.TempDir()
	growing, once := filepath.Join(dir, "growing.log"), filepath.Join(dir, "once.log")
	mustWrite(t, growing, []byte("line 0\n"), 0o644)
	mustWrite(t, once, []byte("line 0\n"), 0o644)
	r := repo.New(storagetest.NewMemory(), encryptingCodec(t))
	o := opts(r, "logs", dir)
	o.AfterRead = func(p string, try int) {
		if p == growing || p == once && try == 1 {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = f.WriteString("appended\n")
			f.Close()
		}
	}
	snap, err := Backup(t.Context(), o)
	if !errors.Is(err, ErrChanged) || snap == nil || snap.Changed != 1 {
		t.Fatalf("got %v, %+v; want ErrChanged with the snapshot stored and 1 changed", err, snap)
	}
	es := map[string]catalog.ManifestEntry{}
	for _, e := range readManifest(t, r, snap) {
		es[e.Path] = e
	}
	if !es[growing].Changed || es[once].Changed {
		t.Errorf("changed flags: growing %v, once %v; want true, false", es[growing].Changed, es[once].Changed)
	}
	ix, _ := r.LoadChunkIndex(t.Context(), nil)
	if got := content(t, r, ix, true, es[once]); string(got) != "line 0\nappended\n" {
		t.Errorf("once.log restored as %q, want it as read the second time", got)
	}
	// The snapshot is listed: stored, but flagged.
	key, _ := catalog.SnapshotEntryKey(snap.Set, snap.ID)
	if _, err := r.Store().Stat(t.Context(), key); err != nil {
		t.Error(err)
	}
}

func listSnapshots(t *testing.T, st storage.Storage) []string {
	t.Helper()
	var out []string
	err := st.List(t.Context(), catalog.SnapshotsPrefix, func(oi storage.ObjectInfo) error {
		if _, _, ok := catalog.ParseSnapshotEntryKey(oi.Key); ok {
			out = append(out, oi.Key)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBackupStorageDownMidway(t *testing.T) {
	dir := t.TempDir()
	for i := range 6 {
		mustWrite(t, filepath.Join(dir, string(rune('a'+i))+".bin"), randomBytes(uint64(i), 8<<20), 0o644)
	}
	mem := storagetest.NewMemory()
	f := storagetest.NewFaulty(mem)
	r := repo.New(f, encryptingCodec(t))
	o := opts(r, "media", dir)
	o.AfterRead = func(p string, _ int) {
		if strings.HasSuffix(p, "/e.bin") {
			f.SetDown(true) // after four files: 32 MiB, two packs stored
		}
	}
	if _, err := Backup(t.Context(), o); err == nil {
		t.Fatal("snapshot succeeded with the store down")
	}
	f.SetDown(false)
	if l := listSnapshots(t, mem); len(l) != 0 {
		t.Fatalf("snapshots listed after a failed run: %v", l)
	}
	var packs int
	_ = mem.List(t.Context(), catalog.IndexPrefix, func(storage.ObjectInfo) error { packs++; return nil })
	if packs == 0 {
		t.Fatal("no pack indexed before the store went down")
	}
	o.AfterRead = nil
	snap, err := Backup(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if snap.NewBytes >= snap.Bytes {
		t.Errorf("rerun stored %d new bytes of %d: it reused nothing", snap.NewBytes, snap.Bytes)
	}
	checkSnapshot(t, r, snap)
	if l := listSnapshots(t, mem); len(l) != 1 {
		t.Errorf("snapshots listed: %v", l)
	}
}

func TestBackupConcurrentSets(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	shared := randomBytes(7, 4<<20)
	for i := range 4 {
		mustWrite(t, filepath.Join(a, "f"+string(rune('0'+i))), randomBytes(uint64(20+i), 5<<20), 0o644)
		mustWrite(t, filepath.Join(b, "f"+string(rune('0'+i))), randomBytes(uint64(30+i), 5<<20), 0o644)
	}
	mustWrite(t, filepath.Join(a, "shared"), shared, 0o644)
	mustWrite(t, filepath.Join(b, "shared"), shared, 0o644)
	r := repo.New(storagetest.NewMemory(), encryptingCodec(t))
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var wg sync.WaitGroup
	snaps := make([]*catalog.Snapshot, 3)
	errs := make([]error, 3)
	// Two sets, and the first twice (as from two hosts), in the same second.
	for i, set := range []struct{ name, dir string }{{"alpha", a}, {"beta", b}, {"alpha", a}} {
		wg.Go(func() {
			o := opts(r, set.name, set.dir)
			o.Now = func() time.Time { return fixed }
			snaps[i], errs[i] = Backup(t.Context(), o)
		})
	}
	wg.Wait()
	for i := range errs {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	if snaps[0].ID == snaps[2].ID {
		t.Errorf("two snapshots of alpha share id %s", snaps[0].ID)
	}
	if l := listSnapshots(t, r.Store()); len(l) != 3 {
		t.Errorf("listed %v, want 3", l)
	}
	for _, s := range snaps {
		checkSnapshot(t, r, s)
	}
}

func TestBackupSecretsStayOutOfStorageAndLogs(t *testing.T) {
	dir := t.TempDir()
	const value, name = "sk_live_0123456789abcdefDEADBEEF", "stripe-secret-name"
	mustWrite(t, filepath.Join(dir, name+".env"), []byte("STRIPE_KEY="+value+"\n"), 0o600)
	mustWrite(t, filepath.Join(dir, "grow-"+name), []byte(value), 0o600)
	repoDir := t.TempDir()
	st, err := localStore(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	ctx := zerolog.New(&logs).Level(zerolog.DebugLevel).WithContext(t.Context())

	plain := repo.New(st, &envelope.Codec{})
	o := opts(plain, "keys", dir)
	o.Kind = KindSecrets
	if _, err := Backup(ctx, o); err == nil || !strings.Contains(err.Error(), "encryption off") {
		t.Fatalf("secrets with encryption off: %v", err)
	}

	o.Repo = repo.New(st, encryptingCodec(t))
	o.AfterRead = func(p string, _ int) { // a changed file is logged: without its name
		if strings.Contains(p, "grow-") {
			_ = os.WriteFile(p, []byte(value+value), 0o600)
		}
	}
	if _, err := Backup(ctx, o); !errors.Is(err, ErrChanged) || strings.Contains(err.Error(), name) {
		t.Fatalf("got %v, want ErrChanged naming no file", err)
	}
	if !strings.Contains(logs.String(), "files snapshot complete") {
		t.Fatalf("no completion logged:\n%s", logs.String())
	}
	for _, s := range []string{value, name} {
		if strings.Contains(logs.String(), s) {
			t.Errorf("debug log holds %q:\n%s", s, logs.String())
		}
	}
	err = filepath.Walk(repoDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		for _, s := range []string{value, name} {
			if bytes.Contains(data, []byte(s)) || strings.Contains(p, s) {
				t.Errorf("%s holds %q", p, s)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestBackupRefusesAnotherDedupKey(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "a"), []byte("a"), 0o644)
	r := repo.New(storagetest.NewMemory(), encryptingCodec(t))
	if _, err := Backup(t.Context(), opts(r, "media", dir)); err != nil {
		t.Fatal(err)
	}
	o := opts(r, "media", dir)
	o.DedupKey = testKey(2)
	_, err := Backup(t.Context(), o)
	if !errors.Is(err, repo.ErrDedupKeyMismatch) || !strings.Contains(err.Error(), "copy the dedup key") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v, want one line telling to copy the key", err)
	}
}

func TestBackupBadOptions(t *testing.T) {
	dir := t.TempDir()
	r := repo.New(storagetest.NewMemory(), encryptingCodec(t))
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"relative path", func(o *Options) { o.Paths = []string{"rel"} }, "not absolute"},
		{"missing path", func(o *Options) { o.Paths = []string{dir + "/none"} }, "no such file"},
		{"bad set name", func(o *Options) { o.Name = "Bad Name" }, "file set name"},
		{"bad kind", func(o *Options) { o.Kind = "media" }, "kind"},
		{"bad pattern", func(o *Options) { o.Exclude = []string{"["} }, "exclude pattern"},
		{"no key", func(o *Options) { o.DedupKey = DedupKey{} }, "no dedup key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts(r, "media", dir)
			tc.edit(&o)
			if _, err := Backup(t.Context(), o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	if l := listSnapshots(t, r.Store()); len(l) != 0 {
		t.Errorf("listed: %v", l)
	}
}

func TestBackupUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		// root reads every file: run this test again as the postgres user
		rerunAsPostgres(t, "TestBackupUnreadableFile")
		return
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "sub dir", "locked")
	mustWrite(t, p, []byte("x"), 0o000)
	mustWrite(t, filepath.Join(dir, "a-readable"), []byte("y"), 0o644)
	r := repo.New(storagetest.NewMemory(), encryptingCodec(t))
	_, err := Backup(t.Context(), opts(r, "media", dir))
	if err == nil || !strings.Contains(err.Error(), p) || !errors.Is(err, unix.EACCES) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v, want one line: permission denied naming %s", err, p)
	}
	if l := listSnapshots(t, r.Store()); len(l) != 0 {
		t.Errorf("listed %v", l)
	}
	// A secrets set names the set path only.
	o := opts(r, "keys", dir)
	o.Kind = KindSecrets
	_, err = Backup(t.Context(), o)
	if err == nil || strings.Contains(err.Error(), "locked") || !strings.Contains(err.Error(), dir) || !errors.Is(err, unix.EACCES) {
		t.Fatalf("secrets: got %v, want permission denied under %s without the file name", err, dir)
	}
}

func TestBackupExcludePatterns(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"keep.txt", "media/annuaire/a.jpg", "media/keep.jpg", "media/cache/x", "tmp/cache/y", "logs/app.log", "deep/logs/b.log"} {
		mustWrite(t, filepath.Join(dir, p), []byte(p), 0o644)
	}
	r := repo.New(storagetest.NewMemory(), encryptingCodec(t))
	o := opts(r, "media", dir)
	// relative to the set path; a base name anywhere; an absolute path
	o.Exclude = []string{"media/annuaire", "cache", dir + "/logs"}
	snap, err := Backup(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range readManifest(t, r, snap) {
		if e.Type == catalog.TypeFile {
			got = append(got, strings.TrimPrefix(e.Path, dir+"/"))
		}
	}
	if want := []string{"deep/logs/b.log", "keep.txt", "media/keep.jpg"}; !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}
