package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func TestRunVerify(t *testing.T) {
	m := storagetest.NewMemory()
	e, out := memEnv(m)
	e.cfg = config.Default()
	e.cfg.Repo, e.cfg.Encryption, e.cfg.SpoolDir = "file:///unused", "none", t.TempDir()
	r := repo.New(m, &envelope.Codec{})
	good, err := r.StoreWAL(t.Context(), "000000010000000000000001", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if err := runVerify(t.Context(), e, verifyOptions{}); err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	if !strings.HasPrefix(out.String(), "verify ok: 1 objects") {
		t.Errorf("verify printed %q", out)
	}

	// Another segment's content under this one's key: its SHA-256 differs.
	other, err := r.Seal([]byte("two"))
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := catalog.WALKey("000000010000000000000002", good.Key[len(good.Key)-64-4:len(good.Key)-4], false)
	put(t, m, bad, string(other.Body))
	out.Reset()
	err = runVerify(t.Context(), e, verifyOptions{wal: true})
	var ec exitCodeError
	if !errors.As(err, &ec) || ec.code != exitError {
		t.Fatalf("verify of a damaged segment: %v, want exit 1", err)
	}
	if want := "verify: 1 problem\n" + bad + ": sha256 mismatch\n"; out.String() != want {
		t.Errorf("verify printed %q, want %q", out, want)
	}
	keys, err := r.ListReports(t.Context(), catalog.ReportVerify)
	if err != nil || len(keys) != 2 {
		t.Fatalf("reports %v %v, want 2", keys, err)
	}

	if err := runVerify(t.Context(), e, verifyOptions{subset: "8/7"}); !errors.Is(err, errUsage) {
		t.Errorf("--read-data-subset 8/7: %v, want a usage error", err)
	}
}
