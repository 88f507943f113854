package doctor

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/pitr-dev/pitr/internal/crypto"
)

// TestAllowed: the owner, group and other triples, by the file's ids.
func TestAllowed(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	me := uint32(os.Getuid())
	gid := uint32(os.Getgid())
	for _, tc := range []struct {
		name string
		o    owner
		want uint32
		ok   bool
	}{
		{"not the owner", owner{uid: me + 1000, gid: 1}, permW | permX, false},
		{"group r-x", owner{uid: me + 1000, gid: gid, groups: []uint32{gid}}, permR | permX, true},
		{"group no w", owner{uid: me + 1000, gid: gid, groups: []uint32{gid}}, permW, false},
		{"other nothing", owner{uid: me + 1000, gid: gid + 1000}, permX, false},
	} {
		if got := allowed(fi, tc.o, tc.want); got != tc.ok {
			t.Errorf("%s: allowed %v, want %v (%s)", tc.name, got, tc.ok, describe(fi))
		}
	}
}

// TestWritableDir: a subdirectory the server's user cannot write is
// named; a missing directory is judged by the nearest existing parent.
func TestWritableDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("judging another user's access needs files owned by someone else: run as root")
	}
	root := t.TempDir()
	for _, d := range []string{filepath.Dir(root), root} { // t.TempDir's parent is 0700
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	nobody := owner{uid: 65534, gid: 65534, groups: []uint32{65534}}
	if err := writableDir(filepath.Join(root, "missing", "repo"), nobody, 2); err != nil {
		t.Errorf("missing repository under a writable directory: %v", err)
	}
	sub := filepath.Join(root, "wal", "0000000100000000")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "wal"), 0o777); err != nil {
		t.Fatal(err)
	}
	err := writableDir(root, nobody, 2)
	if err == nil || !strings.Contains(err.Error(), "cannot write "+sub+" (root:root 0755)") {
		t.Errorf("root-owned 0755 wal subdirectory: %v", err)
	}
	if err := os.Chmod(sub, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := writableDir(root, nobody, 2); err != nil {
		t.Errorf("all writable: %v", err)
	}
}

func TestCheckKeepSize(t *testing.T) {
	if r := checkKeepSize(Options{Streaming: true}, server{keepSize: "-1"}); r.Status != StatusFail || r.Fix == "" {
		t.Errorf("-1 while streaming: %+v", r)
	}
	if r := checkKeepSize(Options{Streaming: true}, server{keepSize: "10GB"}); r.Status != StatusOK {
		t.Errorf("10GB: %+v", r)
	}
	if r := checkKeepSize(Options{}, server{keepSize: "-1"}); r.Status != StatusSkip {
		t.Errorf("not streaming: %+v", r)
	}
}

// TestCheckIdentity: the right key passes; another key, a missing file,
// and a world-readable one fail.
func TestCheckIdentity(t *testing.T) {
	dir := t.TempDir()
	right, _ := crypto.NewIdentity()
	other, _ := crypto.NewIdentity()
	write := func(name string, id *age.X25519Identity, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(id.String()+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	o := userOwner(uint32(os.Getuid()), uint32(os.Getgid()))
	base := Options{Encrypted: true, Recipients: []age.Recipient{right.Recipient()}}
	for _, tc := range []struct {
		name, file string
		want       Status
		detail     string
	}{
		{"right", write("right.txt", right, 0o600), StatusOK, "opens"},
		{"other", write("other.txt", other, 0o600), StatusFail, "matches none"},
		{"world-readable", write("open.txt", right, 0o644), StatusFail, "readable by others"},
		{"missing", filepath.Join(dir, "nope.txt"), StatusFail, "no such file"},
		{"unset", "", StatusFail, "not set"},
	} {
		opts := base
		opts.IdentityFile = tc.file
		r := checkIdentity(opts, o)
		if r.Status != tc.want || !strings.Contains(r.Detail, tc.detail) {
			t.Errorf("%s: %+v, want %s and %q", tc.name, r, tc.want, tc.detail)
		}
	}
	if r := checkIdentity(Options{}, o); r.Status != StatusSkip {
		t.Errorf("encryption none: %+v", r)
	}
}

// TestCheckClock: the store's Date header against an injected clock.
func TestCheckClock(t *testing.T) {
	date := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Date", date.Format(http.TimeFormat))
		w.WriteHeader(http.StatusForbidden) // unsigned: S3 answers 403, with a Date
	}))
	defer srv.Close()
	for _, tc := range []struct {
		off  time.Duration
		want Status
	}{{30 * time.Second, StatusOK}, {-4 * time.Minute, StatusOK}, {6 * time.Minute, StatusFail}, {-10 * time.Minute, StatusFail}} {
		now := func() time.Time { return date.Add(tc.off) }
		r := checkClock(t.Context(), Options{ClockURL: srv.URL, Now: now, MaxSkew: 5 * time.Minute, HTTPClient: srv.Client()})
		if r.Status != tc.want {
			t.Errorf("clock %s off: %+v, want %s", tc.off, r, tc.want)
		}
	}
	if r := checkClock(t.Context(), Options{}); r.Status != StatusSkip {
		t.Errorf("local repository: %+v", r)
	}
}
