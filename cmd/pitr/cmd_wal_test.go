package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
	"github.com/pitr-dev/pitr/wal/archive"
)

// walKey is an age identity written to an identity file, and its recipient.
type walKey struct{ recipient, identityFile string }

func newWALKey(t *testing.T) walKey {
	t.Helper()
	id, err := crypto.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "identity.txt")
	if err := os.WriteFile(path, []byte("# test key\n"+id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return walKey{id.Recipient().String(), path}
}

// walEnv is an env on st with the default settings, encrypted to key (none
// if key is nil), no prefetch (it would start this test binary), and one
// attempt per call (retry_timeout 0), so nothing waits.
func walEnv(st storage.Storage, key *walKey) (*env, *bytes.Buffer) {
	cfg := config.Default()
	cfg.Repo, cfg.FetchPrefetch, cfg.RetryTimeout, cfg.Encryption = "mem://test", 0, 0, "none"
	if key != nil {
		cfg.Encryption, cfg.AgeRecipients, cfg.AgeIdentityFile = "age", []string{key.recipient}, key.identityFile
	}
	var out bytes.Buffer
	return &env{cfg: cfg, store: st, stdout: &out, stderr: &out}, &out
}

// walSegment writes a WAL segment with partly random content into a pg_wal
// directory and returns its path and content.
func walSegment(t *testing.T, name string) (string, []byte) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pg_wal")
	if err := os.MkdirAll(filepath.Join(dir, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1<<20)
	rand.Read(b[:8192])
	copy(b[8192:], strings.Repeat(name, 1000))
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, b
}

// storedWAL returns the one object stored for a WAL file name.
func storedWAL(t *testing.T, m *storagetest.Memory, name string) string {
	t.Helper()
	objs, err := wal.ListWAL(t.Context(), m, name)
	if err != nil || len(objs) != 1 {
		t.Fatalf("stored copies of %s: %v, %v", name, objs, err)
	}
	return objs[0].Key
}

// tamper flips one byte in the middle of the object at key.
func tamper(t *testing.T, m *storagetest.Memory, key string) {
	t.Helper()
	rc, err := m.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x40
	if err := m.Put(t.Context(), key, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
}

// TestWALPushFetchRoundTrip: a segment and a .history file pushed with
// wal-push come back byte-identical from wal-fetch, encrypted or not; a
// second push of the same bytes succeeds, different bytes are refused.
func TestWALPushFetchRoundTrip(t *testing.T) {
	const name = "000000010000000000000003"
	for _, encrypted := range []bool{true, false} {
		t.Run(map[bool]string{true: "age", false: "none"}[encrypted], func(t *testing.T) {
			m := storagetest.NewMemory()
			var key *walKey
			if encrypted {
				k := newWALKey(t)
				key = &k
			}
			path, want := walSegment(t, name)
			e, _ := walEnv(m, key)
			if err := runWALPush(t.Context(), e, path); err != nil {
				t.Fatalf("wal-push: %v", err)
			}
			stored := storedWAL(t, m, name)
			if o, _ := catalog.ParseWALKey(stored); o.Encrypted != encrypted {
				t.Errorf("stored %s: encrypted = %v, want %v", stored, o.Encrypted, encrypted)
			}
			if rc, err := m.Get(t.Context(), stored); err == nil && encrypted {
				body, _ := io.ReadAll(rc)
				rc.Close()
				if bytes.Contains(body, want[:64]) {
					t.Errorf("encrypted object holds the plaintext")
				}
			}
			history := filepath.Join(filepath.Dir(path), "00000002.history")
			historyBody := []byte("1\t0/3000000\tno recovery target specified\n")
			if err := os.WriteFile(history, historyBody, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := runWALPush(t.Context(), e, history); err != nil {
				t.Fatalf("wal-push .history: %v", err)
			}

			e, _ = walEnv(m, key)
			dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
			if err := runWALFetch(t.Context(), e, name, dest); err != nil {
				t.Fatalf("wal-fetch: %v (exit %d)", err, exitCode(fetchExit(err)))
			}
			if got, err := os.ReadFile(dest); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("fetched %d bytes (%v), want the %d pushed, identical", len(got), err, len(want))
			}
			if err := runWALFetch(t.Context(), e, "00000002.history", dest); err != nil {
				t.Fatalf("wal-fetch .history: %v", err)
			}
			if got, _ := os.ReadFile(dest); !bytes.Equal(got, historyBody) {
				t.Fatalf("fetched history %q, want %q", got, historyBody)
			}

			// Idempotent: PostgreSQL calls archive_command again after a crash.
			if err := runWALPush(t.Context(), e, path); err != nil {
				t.Fatalf("second wal-push of the same bytes: %v", err)
			}
			if err := os.WriteFile(history, []byte("1\t0/4000000\tother\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			err := runWALPush(t.Context(), e, history)
			if !errors.Is(err, wal.ErrConflict) || exitCode(err) != exitError {
				t.Fatalf("wal-push of different bytes under a stored name: %v (exit %d), want a conflict, exit 1", err, exitCode(err))
			}
			if got := storedWAL(t, m, "00000002.history"); got == "" {
				t.Fatal("history gone")
			}
		})
	}
}

// TestWALPushUsage: a path that is not a WAL file name is a usage error,
// before the repository is opened; a missing file is an error.
func TestWALPushUsage(t *testing.T) {
	m := storagetest.NewMemory()
	e, _ := walEnv(m, nil)
	err := runWALPush(t.Context(), e, filepath.Join(t.TempDir(), "not-a-wal-file"))
	if !errors.Is(err, errUsage) || exitCode(err) != exitUsage {
		t.Errorf("bad name: %v (exit %d), want a usage error", err, exitCode(err))
	}
	if _, err := m.Stat(t.Context(), catalog.MarkerKey); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("a refused wal-push created the repository: %v", err)
	}
	err = runWALPush(t.Context(), e, filepath.Join(t.TempDir(), "000000010000000000000001"))
	if err == nil || errors.Is(err, errUsage) || strings.Contains(err.Error(), "\n") {
		t.Errorf("missing file: %v, want one line, exit 1", err)
	}
}

// TestWALFetchExitStatus: wal-fetch exits 1 only when the repository
// answered that it has no copy; everything else exits above 125, so that
// PostgreSQL stops recovery instead of promoting on WAL it could not read.
func TestWALFetchExitStatus(t *testing.T) {
	const name = "000000010000000000000003"
	keyA, keyB := newWALKey(t), newWALKey(t)
	noIdentity := walKey{recipient: keyA.recipient}
	type setup struct {
		st  storage.Storage
		key *walKey
	}
	// pushed returns a memory repository holding the segment, encrypted
	// to keyA unless plain.
	pushed := func(t *testing.T, plain bool) *storagetest.Memory {
		m := storagetest.NewMemory()
		path, _ := walSegment(t, name)
		key := &keyA
		if plain {
			key = nil
		}
		e, _ := walEnv(m, key)
		if err := runWALPush(t.Context(), e, path); err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tt := range []struct {
		name   string
		fetch  string
		setup  func(t *testing.T) setup
		code   int
		is     error  // the error wraps this
		say    string // and says this
		notIn1 bool
	}{
		{"missing segment", "000000010000000000000009", func(t *testing.T) setup { return setup{pushed(t, false), &keyA} },
			exitNotFound, archive.ErrNotFound, "not in the archive", false},
		{"missing history", "00000005.history", func(t *testing.T) setup { return setup{pushed(t, false), &keyA} },
			exitNotFound, archive.ErrNotFound, "not in the archive", false},
		{"missing in an empty repository", name, func(t *testing.T) setup {
			m := storagetest.NewMemory()
			memEnv(m) // the marker only
			return setup{m, &keyA}
		},
			exitNotFound, archive.ErrNotFound, "", false},
		{"no repository", name, func(t *testing.T) setup { return setup{storagetest.NewMemory(), &keyA} },
			exitFatal, catalog.ErrNoRepository, "no repository at mem://test", true},
		{"wrong key", name, func(t *testing.T) setup { return setup{pushed(t, false), &keyB} },
			exitFatal, crypto.ErrWrongKey, "wrong or missing key", true},
		{"no identity file", name, func(t *testing.T) setup { return setup{pushed(t, false), &noIdentity} },
			exitFatal, crypto.ErrWrongKey, "no age identity file", true},
		{"tampered, encrypted", name, func(t *testing.T) setup {
			m := pushed(t, false)
			tamper(t, m, storedWAL(t, m, name))
			return setup{m, &keyA}
		}, exitFatal, nil, "tampered", true},
		{"tampered, unencrypted", name, func(t *testing.T) setup {
			m := pushed(t, true)
			tamper(t, m, storedWAL(t, m, name))
			return setup{m, nil}
		}, exitFatal, nil, "", true},
		{"storage unreachable", name, func(t *testing.T) setup {
			f := storagetest.NewFaulty(pushed(t, false))
			f.SetDown(true)
			return setup{f, &keyA}
		}, exitFatal, storagetest.ErrDown, "connection refused", true},
		{"listing fails", name, func(t *testing.T) setup {
			f := storagetest.NewFaulty(pushed(t, false))
			f.Fail(storagetest.OpList, 1, errors.New("503 slow down"))
			return setup{f, &keyA}
		}, exitFatal, nil, "503 slow down", true},
		{"usage", "RECOVERYHISTORY", func(t *testing.T) setup { return setup{pushed(t, false), &keyA} },
			exitFatal, errUsage, "wal-fetch", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.setup(t)
			e, _ := walEnv(s.st, s.key)
			dir := t.TempDir()
			dest := filepath.Join(dir, "RECOVERYXLOG")
			err := runWALFetch(t.Context(), e, tt.fetch, dest)
			if err == nil {
				t.Fatal("wal-fetch succeeded")
			}
			if code := exitCode(fetchExit(err)); code != tt.code {
				t.Errorf("exit %d, want %d: %v", code, tt.code, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.is)
			}
			if tt.notIn1 && errors.Is(err, archive.ErrNotFound) {
				t.Errorf("err = %v reads as not archived", err)
			}
			if !strings.Contains(err.Error(), tt.say) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %q, want one line saying %q", err, tt.say)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("failed wal-fetch left %v", entries)
			}
		})
	}
}

// The resident pusher's log stays bounded however long the pusher lives:
// past pushLogMax it moves to push.log.1 and starts again.
func TestPushLogRotates(t *testing.T) {
	spool := t.TempDir()
	l, err := openPushLog(spool)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 1023) + "\n")
	for range 3 * pushLogMax / len(line) {
		if _, err := l.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"push.log", "push.log.1"} {
		fi, err := os.Stat(filepath.Join(spool, name))
		if err != nil || fi.Size() == 0 || fi.Size() > pushLogMax || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, %v", name, fi, err)
		}
	}
	if entries, _ := os.ReadDir(spool); len(entries) != 2 {
		t.Errorf("spool holds %d files, want push.log and push.log.1", len(entries))
	}
}
