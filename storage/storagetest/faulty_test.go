package storagetest_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func TestFaultyPassesThrough(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Storage {
		return storagetest.NewFaulty(storagetest.NewMemory())
	})
}

func TestFaultyFail(t *testing.T) {
	ctx := t.Context()
	errBoom := errors.New("boom")
	f := storagetest.NewFaulty(storagetest.NewMemory())
	f.FailPut(2, errBoom)
	f.Fail(storagetest.OpStat, 1, storage.ErrNotExist)
	for i := range 2 {
		if err := f.Put(ctx, "k", strings.NewReader("v")); !errors.Is(err, errBoom) {
			t.Fatalf("Put %d = %v, want boom", i, err)
		}
	}
	if _, err := f.Stat(ctx, "k"); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("Stat = %v, want ErrNotExist", err)
	}
	if err := f.Put(ctx, "k", strings.NewReader("v")); err != nil {
		t.Fatalf("third Put: %v", err)
	}
	if _, err := f.Stat(ctx, "k"); err != nil {
		t.Fatalf("second Stat: %v", err)
	}
	if got := f.Calls(storagetest.OpPut); got != 3 {
		t.Errorf("Calls(put) = %d, want 3", got)
	}
	if got := f.Calls(storagetest.OpStat); got != 2 {
		t.Errorf("Calls(stat) = %d, want 2", got)
	}
}

func TestFaultyFailPutAfter(t *testing.T) {
	ctx := t.Context()
	errCut := errors.New("connection reset")
	f := storagetest.NewFaulty(storagetest.NewMemory())
	var read countingReader
	f.FailPutAfter(1, 10, errCut)
	read.r = bytes.NewReader(make([]byte, 100))
	if err := f.Put(ctx, "k", &read); !errors.Is(err, errCut) {
		t.Fatalf("Put = %v, want the cut", err)
	}
	if read.n != 10 {
		t.Errorf("wrapped Put read %d bytes, want 10", read.n)
	}
	if _, err := f.Stat(ctx, "k"); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("Stat after a cut Put = %v, want ErrNotExist", err)
	}
	// An object no longer than the offset fails too.
	f.FailPutAfter(1, 10, errCut)
	if err := f.Put(ctx, "k", strings.NewReader("short")); !errors.Is(err, errCut) {
		t.Fatalf("Put of a short object = %v, want the cut", err)
	}
}

func TestFaultyDown(t *testing.T) {
	ctx := t.Context()
	f := storagetest.NewFaulty(storagetest.NewMemory())
	if err := f.Put(ctx, "k", strings.NewReader("v")); err != nil {
		t.Fatal(err)
	}
	f.SetDown(true)
	checks := map[string]error{}
	checks["put"] = f.Put(ctx, "k", strings.NewReader("w"))
	_, checks["get"] = f.Get(ctx, "k")
	_, checks["stat"] = f.Stat(ctx, "k")
	checks["list"] = f.List(ctx, "", func(storage.ObjectInfo) error { return nil })
	checks["delete"] = f.Delete(ctx, "k")
	for op, err := range checks {
		if !errors.Is(err, storagetest.ErrDown) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s while down = %v, want ErrDown", op, err)
		}
	}
	f.SetDown(false)
	rc, err := f.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "v" {
		t.Errorf("Get after down = %q, want v", b)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
