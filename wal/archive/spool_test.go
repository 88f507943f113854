package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

// uploadStore is a memory store whose Puts start a "multipart upload" that
// they report and complete, or leave behind when failPut is set: the
// bookkeeping of s3.Store without S3.
type uploadStore struct {
	storage.Storage
	mu      sync.Mutex
	next    int
	uploads map[string]string // id -> key
	aborted []string
	failPut error // of WAL files
}

func newUploadStore() *uploadStore {
	return &uploadStore{Storage: storagetest.NewMemory(), uploads: map[string]string{}}
}

func (u *uploadStore) start(key string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.next++
	id := fmt.Sprintf("u%d", u.next)
	u.uploads[id] = key
	return id
}

func (u *uploadStore) Put(ctx context.Context, key string, r io.Reader) error {
	return u.put(ctx, key, r, u.Storage.Put)
}

func (u *uploadStore) Create(ctx context.Context, key string, r io.Reader) error {
	return u.put(ctx, key, r, u.Storage.Create)
}

func (u *uploadStore) put(ctx context.Context, key string, r io.Reader, put func(context.Context, string, io.Reader) error) error {
	id := u.start(key)
	storage.UploadStarted(ctx, storage.Upload{Key: key, ID: id})
	if u.failPut != nil && strings.HasPrefix(key, "wal/") {
		return u.failPut // the upload stays, as when the abort fails too
	}
	if err := put(ctx, key, r); err != nil {
		return err
	}
	u.mu.Lock()
	delete(u.uploads, id)
	u.mu.Unlock()
	return nil
}

func (u *uploadStore) ListUploads(ctx context.Context, prefix string, fn func(storage.Upload) error) error {
	return errors.New("not used")
}

func (u *uploadStore) AbortUpload(ctx context.Context, key, id string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if k, ok := u.uploads[id]; ok && k != key {
		return fmt.Errorf("upload %s is of %s, not %s", id, k, key)
	}
	delete(u.uploads, id)
	u.aborted = append(u.aborted, id)
	return nil
}

func (u *uploadStore) open() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var ids []string
	for id := range u.uploads {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// deadTag names a process that has exited.
func deadTag(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run a process: %v", err)
	}
	return fmt.Sprintf("%d-%s", cmd.Process.Pid, "12345")
}

func writeSpoolFile(t *testing.T, dir, name string, rec *uploadRecord) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1024)
	if rec != nil {
		b, _ = json.Marshal(rec)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func spoolNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestPushCleansSpool: a call removes the temp files of wal-push calls that
// were killed, and aborts the uploads they recorded, but never touches the
// files or uploads of a process that is alive.
func TestPushCleansSpool(t *testing.T) {
	st := newUploadStore()
	f := newFixture(t, st)
	tmp := filepath.Join(f.pgwal, "pitr", "tmp")
	seg := "000000010000000000000001"
	deadID, liveID := st.start("wal/dead"), st.start("wal/live")

	dead := seg + "." + deadTag(t) + ".111"
	reused := seg + "." + fmt.Sprintf("%d-1", os.Getppid()) + ".222" // a pid now running something else
	live := seg + "." + processTag(os.Getppid()) + ".333"            // the test's parent: alive
	writeSpoolFile(t, tmp, dead, nil)
	writeSpoolFile(t, tmp, dead+uploadRecordSuffix, &uploadRecord{Key: "wal/dead", UploadID: deadID})
	writeSpoolFile(t, tmp, reused, nil)
	writeSpoolFile(t, tmp, live, nil)
	writeSpoolFile(t, tmp, live+uploadRecordSuffix, &uploadRecord{Key: "wal/live", UploadID: liveID})

	f.segment(seg)
	f.push(seg)
	if got, want := spoolNames(t, tmp), []string{live, live + uploadRecordSuffix}; !slices.Equal(got, want) {
		t.Errorf("spool after push = %q, want only the live process's %q", got, want)
	}
	if !slices.Equal(st.aborted, []string{deadID}) {
		t.Errorf("aborted %q, want only the dead call's %s", st.aborted, deadID)
	}
	if got := st.open(); !slices.Equal(got, []string{liveID}) {
		t.Errorf("open uploads %q, want the live one %s", got, liveID)
	}
}

// TestPushFailedUploadAbortedNextCall: a multipart Put that fails (and
// whose own abort may have failed) leaves only its record; the next call
// aborts that upload.
func TestPushFailedUploadAbortedNextCall(t *testing.T) {
	st := newUploadStore()
	f := newFixture(t, st)
	tmp := filepath.Join(f.pgwal, "pitr", "tmp")
	p := f.segment("000000010000000000000001")
	st.failPut = errors.New("store went away")
	if _, err := Push(t.Context(), p, f.pushOpts(1)); err == nil {
		t.Fatal("push succeeded")
	}
	if got := spoolNames(t, tmp); len(got) != 1 || filepath.Ext(got[0]) != uploadRecordSuffix {
		t.Fatalf("spool after failed push = %q, want the upload record only", got)
	}
	left := st.open()
	st.failPut = nil
	// As the next archive_command would: another process.
	self = processTag(os.Getppid())
	t.Cleanup(func() { self = processTag(os.Getpid()) })
	// The record names this (test) process, alive: it must wait...
	f.push("000000010000000000000001")
	if len(st.aborted) != 0 {
		t.Fatalf("aborted %q of a live process", st.aborted)
	}
	// ...until its process is gone.
	renameTag(t, tmp, deadTag(t))
	f.push("000000010000000000000001")
	if !slices.Equal(st.aborted, left) {
		t.Errorf("aborted %q, want the failed call's %q", st.aborted, left)
	}
	if got := spoolNames(t, tmp); len(got) != 0 {
		t.Errorf("spool after the next calls = %q, want empty", got)
	}
}

// renameTag gives every spool file the owner tag.
func renameTag(t *testing.T, dir, tag string) {
	t.Helper()
	for _, n := range spoolNames(t, dir) {
		old, _, ok := parseSpoolName(n)
		if !ok {
			t.Fatalf("unexpected spool file %s", n)
		}
		to := filepath.Join(dir, strings.Replace(n, "."+old+".", "."+tag+".", 1))
		if err := os.Rename(filepath.Join(dir, n), to); err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseSpoolName(t *testing.T) {
	for _, tt := range []struct {
		name   string
		tag    string
		record bool
		ok     bool
	}{
		{"000000010000000000000001.123-456.789", "123-456", false, true},
		{"000000010000000000000001.123-456.789.upload", "123-456", true, true},
		{"00000002.history.123-0.789", "123-0", false, true},
		{"000000010000000000000001.00000028.backup.1-2.3", "1-2", false, true},
		{"000000010000000000000001.789", "", false, false},              // before owner tags
		{"00000002.history.789", "", false, false},                      // before owner tags
		{"000000010000000000000001.x-456.789", "", false, false},        // not a pid
		{"junk.123-456.789", "", false, false},                          // not a WAL name
		{"000000010000000000000001.123-456.789.tmp1", "", false, false}, // no such suffix
	} {
		tag, record, ok := parseSpoolName(tt.name)
		if tag != tt.tag || record != tt.record || ok != tt.ok {
			t.Errorf("parseSpoolName(%q) = %q, %v, %v; want %q, %v, %v", tt.name, tag, record, ok, tt.tag, tt.record, tt.ok)
		}
	}
}

// TestFetchPermanentNotRetried: a store that refuses the credentials fails
// wal-fetch at once; a transient error is retried.
func TestFetchPermanentNotRetried(t *testing.T) {
	mem := storagetest.NewMemory()
	faulty := storagetest.NewFaulty(mem)
	f := newFixture(t, faulty)
	f.segment("000000010000000000000001")
	f.push("000000010000000000000001")
	opts := f.fetchOpts()
	opts.Retry.Timeout = time.Minute
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")

	before := faulty.Calls(storagetest.OpList)
	faulty.Fail(storagetest.OpList, 2, storage.Permanent(errors.New("403 SignatureDoesNotMatch")))
	err := Fetch(t.Context(), "000000010000000000000001", dest, opts)
	if !errors.Is(err, storage.ErrPermanent) || errors.Is(err, ErrNotFound) {
		t.Fatalf("fetch = %v, want the permanent error", err)
	}
	if n := faulty.Calls(storagetest.OpList) - before; n != 1 {
		t.Errorf("%d listings, want 1: a permanent error was retried", n)
	}

	faulty = storagetest.NewFaulty(mem)
	opts.Store = faulty
	faulty.Fail(storagetest.OpList, 1, errors.New("connection reset"))
	if err := Fetch(t.Context(), "000000010000000000000001", dest, opts); err != nil {
		t.Fatalf("fetch after one transient error = %v, want it retried", err)
	}
}
