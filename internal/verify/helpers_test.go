package verify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

const seg = 16 << 20

var t0 = time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)

// testRepo is an in-memory encrypted repository with helpers that store
// real sealed objects, as the writers do.
type testRepo struct {
	t     *testing.T
	mem   *storagetest.Memory
	gets  *countingStore
	r     *repo.Repo // with the identity
	codec *envelope.Codec
	state string
}

func newTestRepo(t *testing.T) *testRepo {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	mem := storagetest.NewMemory()
	var mu sync.Mutex
	clock := t0
	mem.Now = func() time.Time { // a distinct time for every put
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}
	codec := &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}}
	gets := &countingStore{Storage: mem, keys: map[string]int{}}
	return &testRepo{t: t, mem: mem, gets: gets, r: repo.New(gets, codec), codec: codec, state: filepath.Join(t.TempDir(), "verified")}
}

// withoutIdentity is the repository as a host without the identity sees it.
func (tr *testRepo) withoutIdentity() *repo.Repo {
	c := *tr.codec
	c.Identities = nil
	return repo.New(tr.gets, &c)
}

func (tr *testRepo) run(r *repo.Repo, opts Options) *Result {
	tr.t.Helper()
	if opts.StateFile == "" {
		opts.StateFile = tr.state
	}
	res, err := Run(tr.t.Context(), r, opts)
	if err != nil {
		tr.t.Fatalf("Run: %v", err)
	}
	return res
}

// segment stores WAL segment segNo of timeline tli.
func (tr *testRepo) segment(tli wal.Timeline, segNo uint64) string {
	tr.t.Helper()
	name := wal.SegmentFileName(tli, segNo, seg)
	res, err := tr.r.StoreWAL(tr.t.Context(), name, []byte("segment "+name))
	if err != nil {
		tr.t.Fatal(err)
	}
	return res.Key
}

// backup stores a backup on timeline 1 from segment start to end, with
// parts base.tar and backup_manifest, as pitr backup does.
func (tr *testRepo) backup(id string, start, end uint64) *catalog.Backup {
	return tr.backupSealed(id, start, end, tr.r.PutLarge)
}

// backupSealed is backup, sealing the parts with put: repo.PutSealed
// stores them as an older pitr did (the plaintext's SHA-256 recorded).
func (tr *testRepo) backupSealed(id string, start, end uint64, put func(context.Context, string, io.Reader) (repo.Written, error)) *catalog.Backup {
	tr.t.Helper()
	at, _ := catalog.BackupIDTime(id)
	b := &catalog.Backup{ID: id, Format: catalog.FormatVersion, Timeline: 1, WALSegmentSize: seg, Encrypted: true,
		StartTime: at, EndTime: at.Add(time.Minute), StartLSN: fmt.Sprintf("0/%X", start*seg), EndLSN: fmt.Sprintf("0/%X", end*seg+100),
		StartWAL: wal.SegmentFileName(1, start, seg), EndWAL: wal.SegmentFileName(1, end, seg)}
	for _, name := range []string{"base.tar", "backup_manifest"} {
		key, _ := catalog.BackupPartKey(id, name, true)
		w, err := put(tr.t.Context(), key, strings.NewReader(strings.Repeat(name+" of "+id+"\n", 1000)))
		if err != nil {
			tr.t.Fatal(err)
		}
		b.Parts = append(b.Parts, catalog.Part{Name: name, Key: key, SHA256: w.SHA256, CRC32C: w.CRC32C, StoredSHA256: w.StoredSHA256, Bytes: w.Bytes, Stored: w.Stored})
	}
	if err := tr.r.SaveEntry(tr.t.Context(), catalog.BackupEntryKey(id), catalog.MarshalBackup(b)); err != nil {
		tr.t.Fatal(err)
	}
	return b
}

// dump stores a dump of db.
func (tr *testRepo) dump(db, id string) *catalog.Dump {
	tr.t.Helper()
	key, _ := catalog.DumpObjectKey(db, id, true)
	w, err := tr.r.PutSealed(tr.t.Context(), key, strings.NewReader("PGDMP "+db+" "+id))
	if err != nil {
		tr.t.Fatal(err)
	}
	d := &catalog.Dump{ID: id, Format: catalog.FormatVersion, Database: db, Key: key, Encrypted: true,
		Bytes: w.Bytes, Stored: w.Stored, SHA256: w.SHA256, StartTime: t0, EndTime: t0.Add(time.Second)}
	entry, _ := catalog.DumpEntryKey(db, id)
	if err := tr.r.SaveEntry(tr.t.Context(), entry, catalog.MarshalDump(d)); err != nil {
		tr.t.Fatal(err)
	}
	return d
}

// snapshot stores one pack of the given chunks, its index, and a snapshot
// of set whose one file is made of chunks (and of extra chunk IDs stored
// nowhere); it returns the snapshot and the pack's key.
func (tr *testRepo) snapshot(set, id string, chunks []string, extra ...string) (*catalog.Snapshot, string) {
	tr.t.Helper()
	ctx := tr.t.Context()
	var ids []string
	var data [][]byte
	file := catalog.ManifestEntry{Path: "/srv/a", Type: catalog.TypeFile, Mode: 0o644}
	for _, c := range chunks {
		s := sha256.Sum256([]byte(c))
		cid := hex.EncodeToString(s[:]) // any 64 hex digits do as an ID here
		ids, data = append(ids, cid), append(data, []byte(c))
		file.Chunks = append(file.Chunks, catalog.ChunkRef{ID: cid, SHA256: cid, Size: int64(len(c))})
		file.Size += int64(len(c))
	}
	for _, e := range extra {
		file.Chunks = append(file.Chunks, catalog.ChunkRef{ID: e, SHA256: e, Size: 1})
	}
	body, pi, err := tr.r.BuildPack(ids, data)
	if err != nil {
		tr.t.Fatal(err)
	}
	packKey, _ := catalog.PackKey(pi.Pack)
	tr.put(packKey, body)
	ixData := catalog.MarshalPackIndex(pi)
	s := sha256.Sum256(ixData)
	ixKey, _ := catalog.IndexKey(hex.EncodeToString(s[:]))
	tr.put(ixKey, ixData)

	key, _ := catalog.ManifestKey(set, id, true)
	h, _ := json.Marshal(catalog.ManifestHeader{Format: catalog.FormatVersion, Set: set, ID: id, Paths: []string{"/srv"}})
	line, _ := json.Marshal(file)
	w, err := tr.r.PutSealed(ctx, key, bytes.NewReader(append(append(append(h, '\n'), line...), '\n')))
	if err != nil {
		tr.t.Fatal(err)
	}
	snap := &catalog.Snapshot{ID: id, Format: catalog.FormatVersion, Set: set, Kind: "uploads", StartTime: t0, EndTime: t0.Add(time.Second),
		Encrypted: true, Files: 1, Bytes: file.Size, Manifest: catalog.Part{Name: "manifest", Key: key, SHA256: w.SHA256, Bytes: w.Bytes, Stored: w.Stored}}
	entry, _ := catalog.SnapshotEntryKey(set, id)
	if err := tr.r.SaveEntry(ctx, entry, catalog.MarshalSnapshot(snap)); err != nil {
		tr.t.Fatal(err)
	}
	return snap, packKey
}

func (tr *testRepo) put(key string, data []byte) {
	tr.t.Helper()
	if err := tr.mem.Put(tr.t.Context(), key, bytes.NewReader(data)); err != nil {
		tr.t.Fatal(err)
	}
}

func (tr *testRepo) get(key string) []byte {
	tr.t.Helper()
	rc, err := tr.mem.Get(tr.t.Context(), key)
	if err != nil {
		tr.t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		tr.t.Fatal(err)
	}
	return b
}

// flip changes one byte of the stored object at offset (negative: from
// the end), keeping its size.
func (tr *testRepo) flip(key string, offset int) {
	tr.t.Helper()
	b := tr.get(key)
	if offset < 0 {
		offset += len(b)
	}
	b[offset] ^= 0x01
	tr.put(key, b)
}

// countingStore counts Get and GetRange calls by key.
type countingStore struct {
	storage.Storage
	mu   sync.Mutex
	keys map[string]int
}

func (c *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.note(key)
	return c.Storage.Get(ctx, key)
}

func (c *countingStore) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	c.note(key)
	return c.Storage.GetRange(ctx, key, offset, length)
}

func (c *countingStore) note(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keys[key]++
}

// reset returns the keys read since the last reset and forgets them.
func (c *countingStore) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.keys
	c.keys = map[string]int{}
	return out
}

// dataReads are the keys read that are not catalog entries, histories or
// pack indexes (which every run reads).
func dataReads(keys map[string]int) []string {
	var out []string
	for k := range keys {
		if strings.HasSuffix(k, ".json") || strings.Contains(k, "/timelines/") {
			continue
		}
		out = append(out, k)
	}
	return out
}
