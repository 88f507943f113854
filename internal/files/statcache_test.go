package files

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// cacheFixture is a tree of files, a repository and a cache directory.
type cacheFixture struct {
	t     *testing.T
	dir   string
	cache string
	r     *repo.Repo
	read  []string // files read by the last snapshot
	log   bytes.Buffer
	clock time.Time // the last snapshot's start
}

func newCacheFixture(t *testing.T) *cacheFixture {
	f := &cacheFixture{t: t, dir: t.TempDir(), cache: filepath.Join(t.TempDir(), "index"), clock: time.Now().UTC().Truncate(time.Second)}
	f.r = repo.New(storagetest.NewMemory(), encryptingCodec(t))
	for i := range 20 {
		mustWrite(t, filepath.Join(f.dir, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%02d.bin", i)), randomBytes(uint64(200+i), 1000+i*40000), 0o644)
	}
	mustWrite(t, filepath.Join(f.dir, "empty"), nil, 0o644)
	if err := os.Link(filepath.Join(f.dir, "d0", "f00.bin"), filepath.Join(f.dir, "hard")); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *cacheFixture) opts() Options {
	o := opts(f.r, "media", f.dir)
	o.CacheDir = f.cache
	o.trustRecent = true
	// Each snapshot a second later: a test takes more than the ten ids
	// one second has.
	f.clock = f.clock.Add(time.Second)
	at := f.clock
	o.Now = func() time.Time { return at }
	o.AfterRead = func(p string, try int) {
		if try == 1 {
			f.read = append(f.read, strings.TrimPrefix(p, f.dir+"/"))
		}
	}
	return o
}

// backup takes a snapshot, checks it against the tree and returns the
// files it read.
func (f *cacheFixture) backup(o Options) []string {
	f.t.Helper()
	f.read = nil
	f.log.Reset()
	ctx := zerolog.New(&f.log).Level(zerolog.DebugLevel).WithContext(context.Background())
	snap, err := Backup(ctx, o)
	if err != nil {
		f.t.Fatal(err)
	}
	checkSnapshot(f.t, f.r, snap)
	slices.Sort(f.read)
	return f.read
}

func (f *cacheFixture) path(rel string) string { return filepath.Join(f.dir, rel) }

func allFiles() []string {
	var out []string
	for i := range 20 {
		out = append(out, fmt.Sprintf("d%d/f%02d.bin", i%3, i))
	}
	out = append(out, "empty")
	slices.Sort(out)
	return out
}

func wantRead(t *testing.T, got []string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("files read: %q, want %q", got, want)
	}
}

func TestStatCacheReadsOnlyChangedFiles(t *testing.T) {
	f := newCacheFixture(t)
	wantRead(t, f.backup(f.opts()), allFiles()...)
	if !strings.Contains(f.log.String(), `"files_reused":0,"files_read":21`) {
		t.Errorf("first snapshot's log: %s", f.log.String())
	}
	st, err := os.Stat(statCachePath(f.cache, "media"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("stat cache: %v %v, want mode 0600", err, st)
	}

	data, _ := os.ReadFile(f.path("d1/f04.bin"))
	data[len(data)/2] ^= 0xff
	mustWrite(t, f.path("d1/f04.bin"), data, 0o644)
	mustWrite(t, f.path("d2/new"), []byte("new"), 0o644)
	wantRead(t, f.backup(f.opts()), "d1/f04.bin", "d2/new")
	if !strings.Contains(f.log.String(), `"files_reused":20,"files_read":2`) {
		t.Errorf("second snapshot's log: %s", f.log.String())
	}
	// and the third, from the second's cache
	wantRead(t, f.backup(f.opts()))
}

func TestStatCacheTouchedFileIsRead(t *testing.T) {
	f := newCacheFixture(t)
	f.backup(f.opts())
	st, err := os.Stat(f.path("d2/f05.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(f.path("d2/f05.bin"), time.Time{}, st.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	wantRead(t, f.backup(f.opts()), "d2/f05.bin")
}

func TestStatCacheReplacedFileIsRead(t *testing.T) {
	f := newCacheFixture(t)
	f.backup(f.opts())
	// Same size and mtime, another inode, other content.
	p := f.path("d0/f03.bin")
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, p+".new", randomBytes(999, int(st.Size())), 0o644)
	if err := os.Chtimes(p+".new", time.Time{}, st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	wantRead(t, f.backup(f.opts()), "d0/f03.bin")

	// The inode alone: a cache entry equal to the file in all but it.
	f.backup(f.opts())
	f.rewriteCache(func(e *statEntry) {
		if e.path == f.path("d1/f07.bin") {
			e.ino++
		}
	})
	wantRead(t, f.backup(f.opts()), "d1/f07.bin")
}

// rewriteCache rewrites the stat cache with edit applied to each entry.
func (f *cacheFixture) rewriteCache(edit func(*statEntry)) {
	f.t.Helper()
	p := statCachePath(f.cache, "media")
	h := statHeaderFor(f.cache, "media", testKey(1).KeyID())
	old, err := openStatCache(p, h)
	if err != nil {
		f.t.Fatal(err)
	}
	defer old.close()
	w, err := createStatCache(p, h)
	if err != nil {
		f.t.Fatal(err)
	}
	for old.next(); old.have; old.next() {
		e := old.cur
		edit(&e)
		w.add(&e)
	}
	if old.failure() != nil {
		f.t.Fatal(old.failure())
	}
	if err := w.commit(); err != nil {
		f.t.Fatal(err)
	}
}

func TestStatCacheDamagedIsIgnored(t *testing.T) {
	f := newCacheFixture(t)
	p := statCachePath(f.cache, "media")
	f.backup(f.opts())
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"garbage", []byte("not a cache at all")},
		{"empty", nil},
		{"header only", good[:len(statMagic)+3]},
		{"truncated", good[:len(good)/2]},
		{"flipped byte", func() []byte { b := bytes.Clone(good); b[len(b)/2] ^= 1; return b }()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.t = t
			if err := os.WriteFile(p, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			read := f.backup(f.opts())
			if len(read) == 0 {
				t.Error("nothing read")
			}
			if !strings.Contains(f.log.String(), "files stat cache") {
				t.Errorf("no debug line about the cache: %s", f.log.String())
			}
			// The snapshot wrote a good cache again.
			wantRead(t, f.backup(f.opts()))
		})
	}
}

func TestStatCacheForeignIsIgnored(t *testing.T) {
	f := newCacheFixture(t)
	f.backup(f.opts())
	// Another set's cache under this set's name.
	data, err := os.ReadFile(statCachePath(f.cache, "media"))
	if err != nil {
		t.Fatal(err)
	}
	o := f.opts()
	o.Name = "other"
	if err := os.WriteFile(statCachePath(f.cache, "other"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	wantRead(t, f.backup(o), allFiles()...)
	if !strings.Contains(f.log.String(), "another repository, dedup key or set") {
		t.Errorf("log: %s", f.log.String())
	}
}

func TestStatCacheMissingChunkForcesRead(t *testing.T) {
	f := newCacheFixture(t)
	f.backup(f.opts())
	// A new repository, the same cache: no chunk is in its index.
	f.r = repo.New(storagetest.NewMemory(), encryptingCodec(t))
	wantRead(t, f.backup(f.opts()), slices.DeleteFunc(allFiles(), func(p string) bool { return p == "empty" })...) // no chunks
	wantRead(t, f.backup(f.opts()))
}

func TestStatCacheNoCacheReadsAll(t *testing.T) {
	f := newCacheFixture(t)
	f.backup(f.opts())
	o := f.opts()
	o.NoCache = true
	wantRead(t, f.backup(o), allFiles()...)
	// and still leaves a cache for the next run
	wantRead(t, f.backup(f.opts()))
}

func TestStatCacheSkipsRecentFiles(t *testing.T) {
	f := newCacheFixture(t)
	o := f.opts()
	o.trustRecent = false
	f.backup(o)
	// Every file was written just now: none is trusted to the cache.
	wantRead(t, f.backup(o), allFiles()...)
}

func TestStatCacheRoundTrip(t *testing.T) {
	dir := t.TempDir()
	p := statCachePath(dir, "s")
	h := statHeaderFor(dir, "s", "k")
	w, err := createStatCache(p, h)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("ab", 32)
	in := []statEntry{
		{path: "/a", size: 0},
		{path: "/a b", size: 3, mtime: -5, ctime: 7, ino: 9, dev: 1 << 40, chunks: []catalog.ChunkRef{{ID: id, SHA256: id, Size: 3}}},
		{path: "/a/b", size: 5, chunks: []catalog.ChunkRef{{ID: id, SHA256: id, Size: 2}, {ID: id, SHA256: id, Size: 3}}},
		{path: "/a/a", size: 1}, // out of order: left out
		{path: "/a/c", size: 1, chunks: []catalog.ChunkRef{{ID: "short", SHA256: id, Size: 1}}}, // not hex: left out
		{path: "/ab", size: 0},
	}
	for i := range in {
		w.add(&in[i])
	}
	if err := w.commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := openStatCache(p, statHeaderFor(dir, "s", "other key")); err == nil {
		t.Error("a cache of another key was opened")
	}
	c, err := openStatCache(p, h)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for _, want := range []int{0, -1, 1, 2, -1, 5} {
		var e *statEntry
		switch want {
		case -1:
			e = c.find("/a a")
		default:
			e = c.find(in[want].path)
		}
		switch {
		case want < 0 && e != nil:
			t.Errorf("found %q", e.path)
		case want >= 0 && (e == nil || fmt.Sprint(*e) != fmt.Sprint(in[want])):
			t.Errorf("find %q: %v, want %v", in[want].path, e, in[want])
		}
	}
	if e := c.find("/zz"); e != nil || c.failure() != nil {
		t.Errorf("past the end: %v %v", e, c.failure())
	}
}

func TestStatCacheSecretsLogNoPaths(t *testing.T) {
	f := newCacheFixture(t)
	o := f.opts()
	o.Kind = KindSecrets
	f.backup(o)
	p := statCachePath(f.cache, "media")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if read := f.backup(o); len(read) == 0 {
		t.Error("nothing read past the damage")
	}
	if !strings.Contains(f.log.String(), "files stat cache damaged") {
		t.Errorf("no debug line about the damage: %s", f.log.String())
	}
	if strings.Contains(f.log.String(), "f0") || strings.Contains(f.log.String(), f.dir+"/") {
		t.Errorf("a secrets set's file name in the log: %s", f.log.String())
	}
}
