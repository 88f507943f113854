package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

// TestConfigRedacted: pitr config prints the effective settings without
// the password of pg_dsn; --doc prints one table row per setting.
func TestConfigRedacted(t *testing.T) {
	cliEnv(t, "file://"+t.TempDir())
	t.Setenv("PITR_PG_DSN", "host=db user=pitr password=hunter2")
	code, stdout, stderr := runCLI(t, "config")
	if code != exitOK || stderr != "" {
		t.Fatalf("config: exit %d, stderr %q", code, stderr)
	}
	if strings.Contains(stdout, "hunter2") || !strings.Contains(stdout, "host=db") || !strings.Contains(stdout, "# from ") {
		t.Errorf("config output leaks the password or lacks pg_dsn:\n%s", stdout)
	}
	t.Setenv("PITR_ZSTD_LEVEL", "9")
	code, stdout, stderr = runCLI(t, "config")
	if code != exitUsage || !strings.Contains(stderrLine(stderr), "zstd_level") || stdout == "" {
		t.Errorf("invalid setting: exit %d, stdout %q, stderr %q; want the settings, then a usage error naming zstd_level", code, stdout, stderr)
	}

	code, stdout, _ = runCLI(t, "config", "--doc")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != exitOK || len(lines) != len(config.Settings())+len(config.Sections())+7 || !strings.HasPrefix(lines[0], "| setting (YAML) | environment |") {
		t.Fatalf("config --doc: exit %d, %d lines, want %d:\n%s", code, len(lines), len(config.Settings())+len(config.Sections())+7, stdout)
	}
	if !strings.Contains(stdout, "| `repo` | `PITR_REPO` |") || strings.Contains(stdout, "hunter2") {
		t.Errorf("config --doc lacks the repo row, or prints the environment:\n%s", stdout)
	}
	if code, _, _ := runCLI(t, "config", "extra"); code != exitUsage {
		t.Errorf("config extra: exit %d, want 2", code)
	}
}

// TestKeygen: the identity file is 0600, holds the identity of the printed
// recipient, and is never overwritten.
func TestKeygen(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdout: &out, stderr: &out}
	path := filepath.Join(t.TempDir(), "identity.txt")
	if err := runKeygen(e, path); err != nil {
		t.Fatal(err)
	}
	recipient := strings.TrimSpace(out.String())
	if !strings.HasPrefix(recipient, "age1") || strings.Contains(out.String(), "AGE-SECRET-KEY") {
		t.Fatalf("keygen printed %q, want the recipient only", out.String())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v, mode %v; want 0600", err, fi.Mode())
	}
	ids, err := crypto.LoadIdentities(path)
	if err != nil || len(ids) != 1 {
		t.Fatalf("keygen's file does not load: %d, %v", len(ids), err)
	}
	rs, err := crypto.ParseRecipients(recipient)
	if err != nil {
		t.Fatal(err)
	}
	var ct bytes.Buffer
	w, err := crypto.Encrypt(&ct, rs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("secret")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if r, err := crypto.Decrypt(&ct, ids...); err != nil || r == nil {
		t.Fatalf("the printed recipient does not match the identity: %v", err)
	}
	before, _ := os.ReadFile(path)
	out.Reset()
	if err := runKeygen(e, path); err == nil || !strings.Contains(err.Error(), "refusing to overwrite") || out.Len() != 0 {
		t.Fatalf("second keygen: %v, stdout %q; want a refusal", err, out.String())
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("keygen overwrote the identity file")
	}
	if err := runKeygen(e, ""); !errors.Is(err, errUsage) {
		t.Errorf("keygen without --output: %v, want a usage error", err)
	}
}

// showRepo is a memory repository holding one complete backup.
func showRepo(t *testing.T) (*storagetest.Memory, *catalog.Backup) {
	m := storagetest.NewMemory()
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	b := &catalog.Backup{ID: "20261122T010000Z", Format: catalog.FormatVersion, Timeline: 1, WALSegmentSize: seg, Encrypted: true,
		StartTime: now, EndTime: now.Add(time.Minute), StartWAL: wal.SegmentFileName(1, 1, seg), EndWAL: wal.SegmentFileName(1, 1, seg)}
	key, _ := catalog.BackupPartKey(b.ID, "base.tar", true)
	b.Parts = []catalog.Part{{Name: "base.tar", Key: key, SHA256: strings.Repeat("0", 64), Stored: 1}}
	put(t, m, key, "x")
	put(t, m, catalog.BackupEntryKey(b.ID), string(catalog.MarshalBackup(b)))
	put(t, m, catalog.BackupEntryKey("20261122T020000Z"), `{"id": "20261122T02`)
	return m, b
}

// TestShow: show prints the backup's entry as stored; a missing, damaged
// or malformed id is one line.
func TestShow(t *testing.T) {
	m, b := showRepo(t)
	e, out := memEnv(m)
	if err := runShow(t.Context(), e, b.ID); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), catalog.MarshalBackup(b)) {
		t.Errorf("show printed:\n%s\nwant:\n%s", out, catalog.MarshalBackup(b))
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got["id"] != b.ID {
		t.Errorf("show output is not the entry's JSON: %v, %v", err, got["id"])
	}
	for _, tt := range []struct {
		id, say string
		usage   bool
	}{
		{"20261122T030000Z", "no such complete backup", false},
		{"20261122T020000Z", "20261122T020000Z", false},
		{"latest", `"latest" is not a backup id`, true},
		{"../pitr.json", "is not a backup id", true},
	} {
		e, out := memEnv(m)
		err := runShow(t.Context(), e, tt.id)
		if err == nil || !strings.Contains(err.Error(), tt.say) || errors.Is(err, errUsage) != tt.usage || strings.Contains(err.Error(), "\n") {
			t.Errorf("show %s: %v, want one line with %q (usage %v)", tt.id, err, tt.say, tt.usage)
		}
		if out.Len() != 0 {
			t.Errorf("show %s printed %q", tt.id, out)
		}
	}
}

// TestDumpsEmpty: no dumps gives [] in JSON, never null, and a header in
// text.
func TestDumpsEmpty(t *testing.T) {
	e, out := memEnv(storagetest.NewMemory())
	if err := runDumps(t.Context(), e, "", true); err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if string(got["dumps"]) != "[]" || string(got["damaged_dumps"]) != "[]" || len(got) != 2 {
		t.Errorf("dumps --json = %s, want dumps and damaged_dumps, both []", out)
	}
	e, out = memEnv(storagetest.NewMemory())
	if err := runDumps(t.Context(), e, "app", false); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != "DATABASE  DUMP  STARTED  DURATION  SIZE  STORED" {
		t.Errorf("dumps text = %q", out)
	}
}

// TestRestoreArgRefusals: bad arguments are usage errors before anything is
// opened or written; a repository without the identity file is refused
// before the data directory is touched.
func TestRestoreArgRefusals(t *testing.T) {
	pgdata := filepath.Join(t.TempDir(), "pgdata")
	ok := restoreFlags{to: "latest", pgdata: pgdata, timeline: "latest", archiveMode: "off"}
	with := func(change func(*restoreFlags)) restoreFlags { f := ok; change(&f); return f }
	for _, tt := range []struct {
		name string
		f    restoreFlags
		say  string
	}{
		{"no --to", with(func(f *restoreFlags) { f.to = "" }), "restore needs --to TARGET and --pgdata DIR"},
		{"no --pgdata", with(func(f *restoreFlags) { f.pgdata = "" }), "restore needs --to TARGET and --pgdata DIR"},
		{"bad --to", with(func(f *restoreFlags) { f.to = "tomorrow-ish" }), "--to:"},
		{"bad --to lsn", with(func(f *restoreFlags) { f.to = "lsn:zz" }), "--to:"},
		{"bad --timeline", with(func(f *restoreFlags) { f.timeline = "newest" }), "--timeline:"},
		{"timeline 0", with(func(f *restoreFlags) { f.timeline = "0" }), "--timeline:"},
		{"bad --archive-mode", with(func(f *restoreFlags) { f.archiveMode = "on" }), "--archive-mode \"on\""},
		{"--start without --archive-mode", with(func(f *restoreFlags) { f.archiveMode, f.start = "", true }), "--archive-mode off"},
		{"tablespace map without =", with(func(f *restoreFlags) { f.tablespaceMap = []string{"/srv/ts"} }), "--tablespace-map \"/srv/ts\""},
		{"tablespace map relative old", with(func(f *restoreFlags) { f.tablespaceMap = []string{"ts=/srv/new"} }), "want OLD=NEW with absolute paths"},
		{"tablespace map relative new", with(func(f *restoreFlags) { f.tablespaceMap = []string{"/srv/ts=new"} }), "want OLD=NEW with absolute paths"},
		{"tablespace map, second bad", with(func(f *restoreFlags) { f.tablespaceMap = []string{"/a=/b", "/c="} }), `"/c="`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// No store and no repo: an argument check that came too late
			// would fail on the settings instead.
			var out bytes.Buffer
			e := &env{stdout: &out, stderr: &out}
			err := runRestore(t.Context(), e, tt.f)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.say) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one usage line with %q", err, tt.say)
			}
			if _, err := os.Stat(pgdata); !os.IsNotExist(err) {
				t.Fatalf("--pgdata created: %v", err)
			}
		})
	}

	t.Run("no identity file", func(t *testing.T) {
		e, _ := memEnv(storagetest.NewMemory())
		e.cfg = config.Default() // encryption: age, no age_identity_file
		err := runRestore(t.Context(), e, ok)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "age_identity_file") {
			t.Fatalf("err = %v, want a usage error naming age_identity_file", err)
		}
		if _, err := os.Stat(pgdata); !os.IsNotExist(err) {
			t.Fatalf("--pgdata created: %v", err)
		}
	})
	t.Run("no repository", func(t *testing.T) {
		e := testEnv("file://" + filepath.Join(t.TempDir(), "none"))
		err := runRestore(t.Context(), e, ok)
		if !errors.Is(err, catalog.ErrNoRepository) || exitCode(err) != exitError {
			t.Fatalf("err = %v (exit %d), want no repository, exit 1", err, exitCode(err))
		}
	})
}

// TestClusterUpgradeNoServer: cluster-upgrade takes no arguments, and on a
// place without a repository says so before it connects to any server.
func TestClusterUpgradeNoServer(t *testing.T) {
	cliEnv(t, "file://"+filepath.Join(t.TempDir(), "none"))
	// A server that is not there: reaching it would fail differently.
	t.Setenv("PITR_PG_DSN", "host=/nonexistent port=1")
	code, _, stderr := runCLI(t, "cluster-upgrade", "now")
	if code != exitUsage || !strings.HasSuffix(stderrLine(stderr), "(see 'pitr cluster-upgrade --help')") {
		t.Errorf("cluster-upgrade now: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "cluster-upgrade")
	if code != exitError || !strings.HasPrefix(stderrLine(stderr), "pitr: no repository at file://") {
		t.Errorf("cluster-upgrade without a repository: exit %d, stderr %q", code, stderr)
	}
}

// The resident memory limit is lifted while daemon jobs run, however many
// at once, and set again (with GOGC back at 100) once the last one ends.
func TestWithJobMemory(t *testing.T) {
	if _, ok := os.LookupEnv("GOGC"); ok {
		t.Skip("GOGC is set: residentGC leaves the collector alone")
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		t.Skip("GOMEMLIMIT is set: residentGC leaves the collector alone")
	}
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetMemoryLimit(before)
		debug.SetGCPercent(100)
		jobMemory.limit = 0
	})
	residentGC()
	if got := debug.SetMemoryLimit(-1); got != residentMemoryLimit {
		t.Fatalf("limit %d, want %d", got, residentMemoryLimit)
	}
	err := withJobMemory(func() error {
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Errorf("limit during a job: %d", got)
		}
		_ = withJobMemory(func() error { return nil }) // a second job ends first
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Errorf("limit after the second job ended: %d", got)
		}
		return errors.New("job failed")
	})
	if err == nil || err.Error() != "job failed" {
		t.Errorf("withJobMemory returned %v, want the job's error", err)
	}
	if got := debug.SetMemoryLimit(-1); got != residentMemoryLimit {
		t.Errorf("limit after the jobs: %d, want %d", got, residentMemoryLimit)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC after the jobs: %d, want 100", got)
	}
}
