package archive

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

const (
	clusterA = "7301000000000000001"
	clusterB = "7302000000000000002"
)

// clusterSegment writes a segment whose header names the cluster.
func (f *fixture) clusterSegment(name, sysid string) string {
	f.t.Helper()
	var id uint64
	for _, c := range sysid {
		id = id*10 + uint64(c-'0')
	}
	b := make([]byte, testSegSize)
	copy(b, segmentHeader(id, testSegSize))
	copy(b[8192:], name+sysid)
	return f.write(name, b)
}

// counting counts the requests that reach the store.
type counting struct {
	storage.Storage
	mu sync.Mutex
	n  map[string]int // "get pitr.json", "list clusters/", ...
}

func (c *counting) count(op, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[op+" "+key]++
}

func (c *counting) get(op, key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op+" "+key]
}

func (c *counting) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.count("get", key)
	return c.Storage.Get(ctx, key)
}

func (c *counting) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	c.count("list", prefix)
	return c.Storage.List(ctx, prefix, fn)
}

func bindings(t *testing.T, st storage.Storage) []string {
	t.Helper()
	objs, err := repo.New(st, nil).Bindings(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range objs {
		keys = append(keys, o.Key)
	}
	return keys
}

func TestPushBindsRepositoryToCluster(t *testing.T) {
	st := &counting{Storage: storagetest.NewMemory()}
	a := newFixture(t, st)
	a.clusterSegment("000000010000000000000001", clusterA)
	a.push("000000010000000000000001")
	if got := bindings(t, st); len(got) != 1 || got[0] != "clusters/00000001-"+clusterA+".json" {
		t.Fatalf("bindings after the first push: %v", got)
	}

	// The hot path: the verified binding is cached in the spool, so the
	// next segment costs no marker or binding request.
	before := st.get("get", catalog.MarkerKey) + st.get("list", catalog.ClustersPrefix)
	a.clusterSegment("000000010000000000000002", clusterA)
	a.push("000000010000000000000002")
	a.write("00000002.history", []byte("1\t0/3000000\tno recovery target specified\n"))
	a.push("00000002.history")
	if after := st.get("get", catalog.MarkerKey) + st.get("list", catalog.ClustersPrefix); after != before {
		t.Fatalf("cached pushes made %d marker or binding requests, want 0", after-before)
	}

	// Another cluster (its own pg_wal and spool) is refused, and stores nothing.
	b := newFixture(t, st)
	p := b.clusterSegment("000000010000000000000003", clusterB)
	_, err := Push(t.Context(), p, b.pushOpts(1))
	if !errors.Is(err, catalog.ErrOtherCluster) {
		t.Fatalf("other cluster's push: err = %v, want ErrOtherCluster", err)
	}
	want := "this repository belongs to cluster " + clusterA + "; is another cluster configured with it?"
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "pitr cluster-upgrade") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("message %q, want one line with %q and the cluster-upgrade hint", err, want)
	}
	if objs, _ := wal.ListWAL(t.Context(), st, "000000010000000000000003"); len(objs) != 0 {
		t.Fatalf("other cluster's segment stored: %v", objs)
	}
	// A history file of that cluster is refused too: its identifier comes
	// from a segment beside it.
	b.write("00000003.history", []byte("1\t0/3000000\tno recovery target specified\n"))
	if _, err := Push(t.Context(), filepath.Join(b.pgwal, "00000003.history"), b.pushOpts(1)); !errors.Is(err, catalog.ErrOtherCluster) {
		t.Fatalf("other cluster's history file: err = %v, want ErrOtherCluster", err)
	}

	// cluster-upgrade hands the repository over: B's pushes work, A's are
	// refused as replaced, and A's WAL stays.
	prev, err := repo.New(st, nil).RebindCluster(t.Context(), repo.Cluster{SystemID: clusterB, PGVersion: 160004, By: "cluster-upgrade", Version: "test"})
	if err != nil || prev == nil || prev.SystemID != clusterA {
		t.Fatalf("rebind: %+v, %v", prev, err)
	}
	if _, err := Push(t.Context(), p, b.pushOpts(1)); err != nil {
		t.Fatalf("push after cluster-upgrade: %v", err)
	}
	// A's cache is trusted for markerRecheck; age it as time would.
	old := time.Now().Add(-2 * markerRecheck)
	if err := os.Chtimes(filepath.Join(a.pgwal, "pitr", "repo-checked"), old, old); err != nil {
		t.Fatal(err)
	}
	pa := a.clusterSegment("000000010000000000000004", clusterA)
	_, err = Push(t.Context(), pa, a.pushOpts(1))
	if !errors.Is(err, catalog.ErrOtherCluster) || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("replaced cluster's push: err = %v, want ErrOtherCluster naming the replacement", err)
	}
	if objs, _ := wal.ListWAL(t.Context(), st, "000000010000000000000001"); len(objs) != 1 {
		t.Fatalf("cluster A's WAL: %v", objs)
	}
	if got := bindings(t, st); len(got) != 2 {
		t.Fatalf("bindings after cluster-upgrade: %v", got)
	}
	// Again for the same cluster: nothing to do, nothing written.
	if prev, err := repo.New(st, nil).RebindCluster(t.Context(), repo.Cluster{SystemID: clusterB, By: "cluster-upgrade"}); err != nil || prev.SystemID != clusterB || prev.PGVersion != 160004 {
		t.Fatalf("rebind to the current cluster: %+v, %v", prev, err)
	}
	if got := bindings(t, st); len(got) != 2 {
		t.Fatalf("bindings after a second cluster-upgrade: %v", got)
	}
}

// A repository made before bindings existed has a marker and no binding:
// it keeps working and is bound by the first write that knows the cluster.
func TestOldRepositoryIsBoundOnFirstWrite(t *testing.T) {
	st := storagetest.NewMemory()
	if err := st.Put(t.Context(), catalog.MarkerKey, strings.NewReader(`{"format": 1, "created": "2026-01-01T00:00:00Z", "tool": "pitr v0.1.0"}`)); err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, st)
	// A segment without a readable header (not what PostgreSQL writes) is
	// archived as before, without binding.
	f.segment("000000010000000000000001")
	f.push("000000010000000000000001")
	if got := bindings(t, st); len(got) != 0 {
		t.Fatalf("bound from a file without header: %v", got)
	}
	if err := repo.New(st, nil).EnsureCluster(t.Context(), repo.Cluster{SystemID: clusterA, PGVersion: 150004, By: "backup"}); err != nil {
		t.Fatal(err)
	}
	if err := repo.New(st, nil).EnsureCluster(t.Context(), repo.Cluster{SystemID: clusterB, By: "backup"}); !errors.Is(err, catalog.ErrOtherCluster) {
		t.Fatalf("err = %v, want ErrOtherCluster", err)
	}
	objs, _ := repo.New(st, nil).Bindings(t.Context())
	b, err := repo.New(st, nil).ReadBinding(t.Context(), objs[0])
	if err != nil || b.SystemID != clusterA || b.PGVersion != 150004 || b.By != "backup" || b.Seq != 1 {
		t.Fatalf("binding %+v, %v", b, err)
	}
}

// Two clusters binding an unbound repository at once both write sequence
// 1: both then agree that the earlier write won.
func TestConcurrentFirstBinding(t *testing.T) {
	mem := storagetest.NewMemory()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	mem.Now = func() time.Time { return now }
	keyB, _ := catalog.BindingKey(1, clusterB)
	if err := mem.Put(t.Context(), keyB, strings.NewReader(`{}`)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	// A wrote its binding after B's (A's listing came before B's write).
	keyA, _ := catalog.BindingKey(1, clusterA)
	if err := mem.Put(t.Context(), keyA, strings.NewReader(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := repo.New(mem, nil).EnsureCluster(t.Context(), repo.Cluster{SystemID: clusterB}); err != nil {
		t.Fatalf("earlier writer: %v", err)
	}
	if err := repo.New(mem, nil).EnsureCluster(t.Context(), repo.Cluster{SystemID: clusterA}); !errors.Is(err, catalog.ErrOtherCluster) {
		t.Fatalf("later writer: err = %v, want ErrOtherCluster", err)
	}
}

func TestFetchWithoutRepository(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	opts := FetchOptions{Store: storagetest.NewMemory(), Codec: newFixture(t, nil).codec, Repo: "s3://bucket/nothing"}
	err := Fetch(t.Context(), "000000010000000000000001", dest, opts)
	if errors.Is(err, ErrNotFound) || !errors.Is(err, catalog.ErrNoRepository) {
		t.Fatalf("err = %v, want ErrNoRepository and not ErrNotFound (exit 1 would promote)", err)
	}
	if !strings.Contains(err.Error(), "no repository at s3://bucket/nothing") {
		t.Fatalf("message %q", err)
	}
}

// segmentHeader builds a segment's first bytes as PostgreSQL 15 writes them
// on a little-endian machine (wal's header_test.go has the same, with the
// offsets named).
func segmentHeader(sysid uint64, segSize uint32) []byte {
	b := make([]byte, 8192)
	binary.LittleEndian.PutUint16(b[0:], 0xD110)
	binary.LittleEndian.PutUint16(b[2:], 0x0002) // XLP_LONG_HEADER
	binary.LittleEndian.PutUint32(b[4:], 1)
	binary.LittleEndian.PutUint64(b[24:], sysid)
	binary.LittleEndian.PutUint32(b[32:], segSize)
	binary.LittleEndian.PutUint32(b[36:], 8192)
	return b
}
