package files

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// fxRepo writes file snapshots by hand, the way the snapshot writer
// stores them (packs of sealed chunks, one index object per pack, the
// sealed manifest, the entry last), so restore is tested on its own.
type fxRepo struct {
	t      *testing.T
	st     storage.Storage
	r      *repo.Repo
	key    []byte
	stored map[string]bool // chunk IDs in some pack
	chunk  int             // plaintext bytes a chunk
}

// fxFile is a manifest entry with, for a file, its content.
type fxFile struct {
	catalog.ManifestEntry
	Content []byte
}

func newFxRepo(t *testing.T, st storage.Storage) *fxRepo {
	t.Helper()
	if st == nil {
		st = storagetest.NewMemory()
	}
	id, err := crypto.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	codec := &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}}
	return &fxRepo{t: t, st: st, r: repo.New(st, codec), key: []byte("dedup key of the tests"), stored: map[string]bool{}, chunk: 1000}
}

func fxSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (f *fxRepo) chunkID(b []byte) string {
	m := hmac.New(sha256.New, f.key)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}

// snapshot stores a snapshot of entries (sorted here by path) and returns
// its entry. Files with content get chunks; the new chunks go into one
// pack.
func (f *fxRepo) snapshot(set, id string, start time.Time, files []fxFile) *catalog.Snapshot {
	t := f.t
	t.Helper()
	ctx := t.Context()
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	var ids []string
	var chunks [][]byte
	var total int64
	for i := range files {
		e := &files[i]
		if e.Type != catalog.TypeFile || e.Link != "" || e.Chunks != nil {
			continue
		}
		e.Size = int64(len(e.Content))
		total += e.Size
		for off := 0; off < len(e.Content); off += f.chunk {
			b := e.Content[off:min(off+f.chunk, len(e.Content))]
			cid := f.chunkID(b)
			e.Chunks = append(e.Chunks, catalog.ChunkRef{ID: cid, SHA256: fxSum(b), Size: int64(len(b))})
			if f.stored[cid] {
				continue
			}
			f.stored[cid] = true
			ids, chunks = append(ids, cid), append(chunks, b)
		}
	}
	var packLen int
	if len(ids) > 0 {
		pack, pi, err := f.r.BuildPack(ids, chunks)
		if err != nil {
			t.Fatal(err)
		}
		packLen = len(pack)
		key, _ := catalog.PackKey(pi.Pack)
		if _, err := f.r.CreateObject(ctx, key, bytes.NewReader(pack)); err != nil {
			t.Fatal(err)
		}
		ix := catalog.MarshalPackIndex(pi)
		ikey, _ := catalog.IndexKey(fxSum(ix))
		if _, err := f.r.CreateObject(ctx, ikey, bytes.NewReader(ix)); err != nil {
			t.Fatal(err)
		}
	}
	var man bytes.Buffer
	h, _ := json.Marshal(catalog.ManifestHeader{Format: catalog.FormatVersion, Set: set, ID: id, Paths: []string{"/srv"}})
	man.Write(append(h, '\n'))
	for _, e := range files {
		b, err := json.Marshal(e.ManifestEntry)
		if err != nil {
			t.Fatal(err)
		}
		man.Write(append(b, '\n'))
	}
	mkey, _ := catalog.ManifestKey(set, id, true)
	w, err := f.r.PutSealed(ctx, mkey, &man)
	if err != nil {
		t.Fatal(err)
	}
	s := &catalog.Snapshot{ID: id, Format: catalog.FormatVersion, Set: set, Kind: "uploads", Host: "test", StartTime: start, EndTime: start.Add(3 * time.Second),
		Encrypted: true, Files: int64(len(files)), Bytes: total, Stored: int64(packLen) + w.Stored,
		Manifest: catalog.Part{Name: "manifest", Key: mkey, SHA256: w.SHA256, Bytes: w.Bytes, Stored: w.Stored}}
	ekey, _ := catalog.SnapshotEntryKey(set, id)
	if err := f.r.SaveEntry(ctx, ekey, catalog.MarshalSnapshot(s)); err != nil {
		t.Fatal(err)
	}
	return s
}

// Entry builders.
func fxDir(p string, mode uint32, mtime int64) fxFile {
	return fxFile{ManifestEntry: catalog.ManifestEntry{Path: p, Type: catalog.TypeDir, Mode: mode, MtimeNS: mtime}}
}

func fxReg(p string, mode uint32, mtime int64, content string) fxFile {
	return fxFile{ManifestEntry: catalog.ManifestEntry{Path: p, Type: catalog.TypeFile, Mode: mode, MtimeNS: mtime}, Content: []byte(content)}
}

func fxSymlink(p, target string, mtime int64) fxFile {
	return fxFile{ManifestEntry: catalog.ManifestEntry{Path: p, Type: catalog.TypeSymlink, Mode: 0o777, MtimeNS: mtime, Target: target}}
}

func fxHardlink(p, to string) fxFile {
	return fxFile{ManifestEntry: catalog.ManifestEntry{Path: p, Type: catalog.TypeFile, Mode: 0o644, Link: to}}
}
