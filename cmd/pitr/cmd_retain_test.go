package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

// storeBackup stores a complete backup of segment s on timeline 1, with
// segments s and s+1.
func storeBackup(t *testing.T, m *storagetest.Memory, at time.Time, s uint64) *catalog.Backup {
	t.Helper()
	for _, n := range []uint64{s, s + 1} {
		key, _ := catalog.WALKey(wal.SegmentFileName(1, n, seg), strings.Repeat("a", 64), true)
		put(t, m, key, "wal")
	}
	b := &catalog.Backup{ID: catalog.BackupID(at), Format: catalog.FormatVersion, Timeline: 1, WALSegmentSize: seg, Encrypted: true,
		StartTime: at, EndTime: at, StartWAL: wal.SegmentFileName(1, s, seg), EndWAL: wal.SegmentFileName(1, s, seg)}
	key, _ := catalog.BackupPartKey(b.ID, "base.tar", true)
	b.Parts = []catalog.Part{{Name: "base.tar", Key: key, SHA256: strings.Repeat("0", 64), Stored: 4}}
	put(t, m, key, "base")
	put(t, m, catalog.BackupEntryKey(b.ID), string(catalog.MarshalBackup(b)))
	return b
}

// retain --dry-run prints what the real run then prints and does.
func TestRetainDryRunThenRun(t *testing.T) {
	m := storagetest.NewMemory()
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	m.Now = func() time.Time { return now }
	old := storeBackup(t, m, now.Add(-48*time.Hour), 1)
	storeBackup(t, m, now.Add(-24*time.Hour), 3)
	f := retainFlags{last: 1, policySet: true, dryRun: true}

	e, out := memEnv(m)
	if err := runRetain(t.Context(), e, f); err != nil {
		t.Fatal(err)
	}
	dry := out.String()
	for _, want := range []string{"backups: keep 1, delete 1 (", "wal: keep 2 files, delete 2 (6 B)", "window: restorable to any moment from 2026-11-21T01:00:00Z", "dry run: nothing deleted\n"} {
		if !strings.Contains(dry, want) {
			t.Errorf("dry run lacks %q:\n%s", want, dry)
		}
	}
	if _, err := m.Stat(t.Context(), catalog.BackupEntryKey(old.ID)); err != nil {
		t.Fatalf("dry run deleted: %v", err)
	}
	f.dryRun = false
	e, out = memEnv(m)
	if err := runRetain(t.Context(), e, f); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != strings.TrimSuffix(dry, "dry run: nothing deleted\n") {
		t.Errorf("run printed\n%s\ndry run printed\n%s", got, dry)
	}
	if _, err := m.Stat(t.Context(), catalog.BackupEntryKey(old.ID)); err == nil {
		t.Errorf("backup %s still stored", old.ID)
	}
	e, out = memEnv(m)
	if err := runList(t.Context(), e, false); err != nil {
		t.Fatal(err)
	}
	_, window, _ := strings.Cut(dry, "window: ")
	window, _, _ = strings.Cut(window, "\n")
	if !strings.Contains(out.String(), window+"\n") {
		t.Errorf("list after retain lacks the announced window %q:\n%s", window, out)
	}
}

func TestRetainOptions(t *testing.T) {
	cfg := config.Default()
	o, err := retainOptions(&cfg, retainFlags{dumps: true, daily: 7, within: "30d", policySet: true})
	if err != nil {
		t.Fatal(err)
	}
	if o.DoBackups || !o.DoDumps || o.Dumps.KeepDaily != 7 || o.Dumps.KeepWithin != 30*24*time.Hour || o.Grace != 24*time.Hour {
		t.Errorf("options %+v", o)
	}
	for _, f := range []retainFlags{{within: "x", policySet: true}, {last: -1, policySet: true}, {grace: "soon", graceSet: true}} {
		if _, err := retainOptions(&cfg, f); !errors.Is(err, errUsage) {
			t.Errorf("%+v: %v, want a usage error", f, err)
		}
	}
	if d, err := parseDays("1d12h"); err != nil || d != 36*time.Hour {
		t.Errorf("parseDays(1d12h) = %v, %v", d, err)
	}
}

func TestPinCommand(t *testing.T) {
	m := storagetest.NewMemory()
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	b := storeBackup(t, m, now, 1)
	e, out := memEnv(m)
	if err := runPin(t.Context(), e, b.ID, true, "keep"); err != nil {
		t.Fatal(err)
	}
	if out.String() != "pinned backup "+b.ID+"\n" {
		t.Errorf("pin printed %q", out)
	}
	if err := runPin(t.Context(), e, "20200101T000000Z", true, ""); err == nil || errors.Is(err, errUsage) || strings.Contains(err.Error(), "\n") {
		t.Errorf("pin of an unknown backup: %v, want a one-line error, not usage", err)
	}
	if err := runPin(t.Context(), e, "yesterday", true, ""); !errors.Is(err, errUsage) {
		t.Errorf("pin of a bad name: %v, want usage", err)
	}
	if err := runPin(t.Context(), e, b.ID, false, ""); err != nil {
		t.Fatal(err)
	}
}

// retain --json is snake_case; --dumps alone leaves backups and WAL alone.
func TestRetainJSONAndKinds(t *testing.T) {
	m := storagetest.NewMemory()
	now := time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC)
	old := storeBackup(t, m, now.Add(-48*time.Hour), 1)
	storeBackup(t, m, now.Add(-24*time.Hour), 3)
	e, out := memEnv(m)
	if err := runRetain(t.Context(), e, retainFlags{dumps: true, last: 1, policySet: true, asJSON: true}); err != nil {
		t.Fatal(err)
	}
	js := out.String()
	for _, want := range []string{`"dumps": {`, `"decisions": [`, `"reasons": [`, `"kind": "backup"`} {
		if !strings.Contains(js, want) {
			t.Errorf("--json lacks %s:\n%s", want, js)
		}
	}
	for _, bad := range []string{`"Item"`, `"backups": {`, `"wal": {`} {
		if strings.Contains(js, bad) {
			t.Errorf("--json has %s:\n%s", bad, js)
		}
	}
	if _, err := m.Stat(t.Context(), catalog.BackupEntryKey(old.ID)); err != nil {
		t.Errorf("retain --dumps deleted a backup: %v", err)
	}
}

// The daemon retains only with a policy configured and daemon_retain on.
func TestDaemonRetainer(t *testing.T) {
	m := storagetest.NewMemory()
	e, _ := memEnv(m)
	e.cfg = config.Default()
	r := repo.New(m, nil)
	if daemonRetainer(e, r) != nil {
		t.Error("retainer without a policy")
	}
	e.cfg.Retention.Dumps = &config.Policy{KeepLast: 3}
	if daemonRetainer(e, r) == nil {
		t.Error("no retainer with a dumps policy")
	}
	off := false
	e.cfg.DaemonRetain = &off
	if daemonRetainer(e, r) != nil {
		t.Error("retainer with daemon_retain off")
	}
}
