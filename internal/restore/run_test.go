package restore

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"filippo.io/age"
	"golang.org/x/sys/unix"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

// tsOID is the tablespace of runFixture's backup.
const tsOID = 16400

// runFixture is a stored backup with base.tar, a tablespace part and
// backup_manifest, and the WAL it needs, in an in-memory repository.
type runFixture struct {
	mem    *storagetest.Memory
	codec  *envelope.Codec // encrypted: a changed byte anywhere fails age's authentication
	backup *catalog.Backup
	tsDir  string            // where the tablespace restores: a directory to be created, two levels down
	want   map[string]string // path relative to the data or tablespace directory -> content
}

// newRunFixture's tablespace goes under tsParent ("": a temporary
// directory).
func newRunFixture(t *testing.T, tsParent string) runFixture {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	f := runFixture{mem: storagetest.NewMemory(), want: map[string]string{},
		codec: &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}, Level: 1}}
	for i := 1; i <= 3; i++ {
		key, _ := catalog.WALKey(wal.SegmentFileName(1, uint64(i), seg), strings.Repeat("ab", 32), true)
		mustPut(t, f.mem, key, "x")
	}
	if tsParent == "" {
		tsParent = t.TempDir()
	}
	f.tsDir = filepath.Join(tsParent, "new", "ts")
	big := strings.Repeat("0123456789abcdef", (9<<20)/16+7) // many writes
	base := []te{{name: "PG_VERSION", body: "15\n"}, {name: "base/", typ: '5'}, {name: "base/1/", typ: '5'},
		{name: "base/1/1259", body: big}, {name: "global/pg_control", body: strings.Repeat("c", 8192)},
		{name: "pg_tblspc/", typ: '5'}, {name: "empty", body: ""}}
	ts := []te{{name: "PG_15_202209061/", typ: '5'}, {name: "PG_15_202209061/5/16401", body: strings.Repeat("t", 300<<10)}}
	for _, e := range base {
		if e.typ == 0 {
			f.want["data/"+e.name] = e.body
		}
	}
	for _, e := range ts {
		if e.typ == 0 {
			f.want["ts/"+e.name] = e.body
		}
	}
	b := bk("20261122T010000Z", 1, 2, at(2, 0))
	b.Format = catalog.FormatVersion
	b.Tablespaces = []catalog.Tablespace{{OID: tsOID, Location: f.tsDir}}
	b.Encrypted = true
	r := repo.New(f.mem, f.codec)
	for _, p := range []struct {
		name string
		body []byte
	}{
		{"backup_manifest", []byte(`{"PostgreSQL-Backup-Manifest-Version": 1}`)},
		{fmt.Sprintf("%d.tar", tsOID), makeTar(t, true, ts...)},
		{"base.tar", makeTar(t, true, base...)},
	} {
		key, _ := catalog.BackupPartKey(b.ID, p.name, true)
		w, err := r.PutLarge(t.Context(), key, bytes.NewReader(p.body))
		if err != nil {
			t.Fatal(err)
		}
		b.Parts = append(b.Parts, catalog.Part{Name: p.name, Key: key, CRC32C: w.CRC32C, StoredSHA256: w.StoredSHA256, Bytes: w.Bytes, Stored: w.Stored})
		b.Bytes += w.Bytes
	}
	mustPut(t, f.mem, catalog.BackupEntryKey(b.ID), string(catalog.MarshalBackup(b)))
	f.backup = b
	return f
}

func (f runFixture) options(st storage.Storage, dataDir string) Options {
	return Options{Repo: repo.New(st, f.codec), Target: Target{Kind: Latest}, DataDir: dataDir, RestoreCommand: "true"}
}

// tree lists the regular files under the data and tablespace directories
// with their contents, as want does.
func (f runFixture) tree(t *testing.T, dataDir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for prefix, dir := range map[string]string{"data/": dataDir, "ts/": f.tsDir} {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			got[prefix+filepath.ToSlash(rel)] = string(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// TestRunParts: all parts restore at once, each into its directory, and
// give the archived tree whatever the number of parts unpacked at a time.
func TestRunParts(t *testing.T) {
	for _, parallel := range []int{1, 2, 8} {
		t.Run(fmt.Sprint(parallel), func(t *testing.T) {
			f := newRunFixture(t, "")
			dataDir := filepath.Join(t.TempDir(), "data")
			opts := f.options(f.mem, dataDir)
			opts.Parallel = parallel
			res, err := Run(t.Context(), opts)
			if err != nil {
				t.Fatal(err)
			}
			got := f.tree(t, dataDir)
			delete(got, "data/recovery.signal")
			delete(got, "data/postgresql.auto.conf")
			for k, v := range f.want {
				if got[k] != v {
					t.Errorf("%s: %d bytes, want %d", k, len(got[k]), len(v))
				}
				delete(got, k)
			}
			delete(got, "data/backup_manifest")
			if len(got) > 0 {
				t.Errorf("unexpected files: %v", slices.Sorted(mapKeys(got)))
			}
			if res.Files != len(f.want)+1 {
				t.Errorf("restored %d files, want %d", res.Files, len(f.want)+1)
			}
		})
	}
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestRunSyncsEverything: without syncfs, Run fsyncs every file and
// directory it wrote, in the data directory and the tablespace directory,
// and the directories it created the tablespace directory in; a failing
// fsync fails the restore and leaves no data directory behind.
func TestRunSyncsEverything(t *testing.T) {
	f := newRunFixture(t, "")
	dataDir := filepath.Join(t.TempDir(), "data")
	opts := f.options(f.mem, dataDir)
	var mu sync.Mutex
	synced := map[string]bool{}
	opts.durable = &durability{syncPath: func(p string) error {
		mu.Lock()
		synced[p] = true
		mu.Unlock()
		return fsyncPath(p)
	}}
	if _, err := Run(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, dir := range []string{dataDir, f.tsDir} {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type()&fs.ModeSymlink == 0 {
				want = append(want, p)
			}
			return err
		})
	}
	want = append(want, filepath.Dir(f.tsDir), filepath.Dir(filepath.Dir(f.tsDir)))
	// Run syncs the staging directory, renamed to dataDir afterwards.
	got := map[string]bool{}
	for p := range synced {
		rel, err := filepath.Rel(filepath.Dir(dataDir), p)
		if first, rest, _ := strings.Cut(rel, string(filepath.Separator)); err == nil && strings.HasPrefix(first, ".pitr-restore-") {
			p = filepath.Join(dataDir, rest)
		}
		got[p] = true
	}
	for _, p := range want {
		if !got[p] {
			t.Errorf("%s was not synced", p)
		}
	}

	// A failing fsync (a writeback error) fails the restore.
	f2 := newRunFixture(t, "")
	dataDir = filepath.Join(t.TempDir(), "data")
	opts = f2.options(f2.mem, dataDir)
	opts.durable = &durability{syncPath: func(p string) error {
		if strings.HasSuffix(p, "1259") {
			return fmt.Errorf("fsync %s: %w", p, errEIO)
		}
		return nil
	}}
	_, err := Run(t.Context(), opts)
	if !errors.Is(err, errEIO) {
		t.Fatalf("restore with a failing fsync: %v, want the fsync's error", err)
	}
	assertNoData(t, dataDir)
	if _, err := os.Stat(f2.tsDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("tablespace directory left behind: %v", err)
	}
}

// TestRunSyncfs: with syncfs, Run syncs each file system it wrote to once,
// through a directory it opened before writing (so syncfs reports the
// writeback errors of the restore's files); a failing syncfs fails the
// restore. The tablespace goes to /dev/shm, when that is another file
// system, to see two.
func TestRunSyncfs(t *testing.T) {
	tsParent := ""
	var tmp, shm syscall.Stat_t
	if syscall.Stat(os.TempDir(), &tmp) == nil && syscall.Stat("/dev/shm", &shm) == nil && tmp.Dev != shm.Dev && unix.Access("/dev/shm", unix.W_OK) == nil {
		d, err := os.MkdirTemp("/dev/shm", "pitr-restore-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		tsParent = d
	}
	for _, fail := range []bool{false, true} {
		parent := tsParent
		if parent != "" {
			parent = filepath.Join(tsParent, strconv.FormatBool(fail))
		}
		f := newRunFixture(t, parent)
		dataDir := filepath.Join(t.TempDir(), "data")
		opts := f.options(f.mem, dataDir)
		var mu sync.Mutex
		devs := map[uint64]int{}
		opts.durable = &durability{
			syncfs: func(file *os.File) error {
				fi, err := file.Stat()
				if err != nil {
					return err
				}
				mu.Lock()
				devs[fi.Sys().(*syscall.Stat_t).Dev]++
				mu.Unlock()
				if fail {
					return errEIO
				}
				return unix.Syncfs(int(file.Fd()))
			},
			syncPath: func(p string) error { return fmt.Errorf("fsync %s with syncfs available", p) },
		}
		_, err := Run(t.Context(), opts)
		if fail {
			if !errors.Is(err, errEIO) {
				t.Fatalf("restore with a failing syncfs: %v, want its error", err)
			}
			assertNoData(t, dataDir)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		want := map[uint64]int{}
		for _, d := range []string{filepath.Dir(dataDir), filepath.Dir(f.tsDir)} {
			var st syscall.Stat_t
			if err := syscall.Stat(d, &st); err != nil {
				t.Fatal(err)
			}
			want[st.Dev] = 1
		}
		if !maps.Equal(devs, want) {
			t.Errorf("syncfs calls by device %v, want %v (tablespace in %q)", devs, want, tsParent)
		}
	}
}

func TestKernelAtLeast(t *testing.T) {
	for release, want := range map[string]bool{"6.18.44-fc-v1045": true, "5.8.0": true, "5.7.19": false, "5.10-rc1": true,
		"4.19.0-18-amd64": false, "5": false, "": false, "x.y": false, "5.8-rc1": true} {
		if got := kernelAtLeast(release, 5, 8); got != want {
			t.Errorf("kernelAtLeast(%q, 5, 8) = %v", release, got)
		}
	}
}

var errEIO = errors.New("input/output error")

// assertNoData fails if dataDir or a staging directory next to it exists.
func assertNoData(t *testing.T, dataDir string) {
	t.Helper()
	if _, err := os.Stat(dataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists after a failed restore (%v)", dataDir, err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dataDir), ".pitr-restore-*")); len(left) != 0 {
		t.Errorf("staging left behind: %v", left)
	}
}

// cutStore cuts the download of one object after a number of bytes, like
// a connection lost mid-part.
type cutStore struct {
	storage.Storage
	key   string
	after int64
}

func (c cutStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := c.Storage.Get(ctx, key)
	if err != nil || key != c.key {
		return rc, err
	}
	return cutReader{io.LimitReader(rc, c.after), rc}, nil
}

type cutReader struct {
	io.Reader
	io.Closer
}

var errCut = errors.New("connection reset by peer")

func (c cutReader) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	if err == io.EOF {
		err = errCut
	}
	return n, err
}

// tarParses says whether data is a tar archive whose entries all read.
func tarParses(data []byte) bool {
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		_, err := tr.Next()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return false
		}
	}
}

// TestRunPartFails: a part whose download breaks off, whose stored bytes
// were changed, or which was replaced by another well-formed object (the
// other tar part: anyone with the public key can encrypt one) fails the
// restore while the other parts are still unpacking, and leaves neither a
// data directory nor a tablespace directory behind.
func TestRunPartFails(t *testing.T) {
	for _, part := range []string{"base.tar", fmt.Sprintf("%d.tar", tsOID), "backup_manifest"} {
		for _, how := range []string{"cut", "tampered", "swapped"} {
			t.Run(part+"/"+how, func(t *testing.T) {
				f := newRunFixture(t, "")
				var p catalog.Part
				for _, q := range f.backup.Parts {
					if q.Name == part {
						p = q
					}
				}
				var st storage.Storage = f.mem
				want := errCut
				switch how {
				case "cut":
					st = cutStore{f.mem, p.Key, p.Stored / 2}
				case "swapped":
					// Plaintext with one byte changed, sealed anew: a
					// well-formed object of the recorded size.
					r := repo.New(f.mem, f.codec)
					rc, err := r.OpenPart(t.Context(), f.backup, p)
					if err != nil {
						t.Fatal(err)
					}
					plain, err := io.ReadAll(rc)
					rc.Close()
					if err != nil {
						t.Fatal(err)
					}
					var w repo.Written
					for at := min(512, len(plain)-1); at < len(plain); at++ {
						plain[at] ^= 0x01
						w, err = r.PutLarge(t.Context(), "tmp/swapped", bytes.NewReader(plain))
						if err != nil {
							t.Fatal(err)
						}
						if w.Stored == p.Stored && (!strings.HasSuffix(p.Name, ".tar") || tarParses(plain)) {
							break
						}
						plain[at] ^= 0x01
					}
					if w.Stored != p.Stored {
						t.Fatalf("no one-byte change keeps the stored size %d", p.Stored)
					}
					rc, _ = f.mem.Get(t.Context(), "tmp/swapped")
					data, _ := io.ReadAll(rc)
					rc.Close()
					if err := f.mem.Put(t.Context(), p.Key, bytes.NewReader(data)); err != nil {
						t.Fatal(err)
					}
					want = envelope.ErrChecksum
				default:
					rc, err := f.mem.Get(t.Context(), p.Key)
					if err != nil {
						t.Fatal(err)
					}
					data, _ := io.ReadAll(rc)
					rc.Close()
					data[len(data)/2] ^= 0x10
					if err := f.mem.Put(t.Context(), p.Key, bytes.NewReader(data)); err != nil {
						t.Fatal(err)
					}
					want = nil
				}
				dataDir := filepath.Join(t.TempDir(), "data")
				_, err := Run(t.Context(), f.options(st, dataDir))
				if err == nil {
					t.Fatal("restore succeeded")
				}
				if want != nil && !errors.Is(err, want) {
					t.Errorf("error %v, want %v", err, want)
				}
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not name part %s", err, part)
				}
				assertNoData(t, dataDir)
				if _, err := os.Stat(f.tsDir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("tablespace directory left behind: %v", err)
				}
			})
		}
	}
}
