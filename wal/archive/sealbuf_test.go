package archive

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pitr-dev/pitr/wal"
)

func sealOutputPusher(t *testing.T) *pusher {
	t.Helper()
	p := &pusher{opts: PushOptions{SpoolDir: t.TempDir()}}
	if err := p.prepareSpool(); err != nil {
		t.Fatal(err)
	}
	return p
}

func spoolFiles(t *testing.T, p *pusher) int {
	t.Helper()
	entries, err := os.ReadDir(p.tmpDir())
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func readBody(t *testing.T, o *sealOutput) []byte {
	t.Helper()
	body, n, err := o.body()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(body)
	if err != nil || int64(len(b)) != n {
		t.Fatalf("body: %d bytes of %d, %v", len(b), n, err)
	}
	return b
}

// TestSealOutput: a seal stays in memory while it fits, moves to a spool
// file with every byte once it does not, and leaves nothing behind.
func TestSealOutput(t *testing.T) {
	p := sealOutputPusher(t)
	name, _ := wal.ParseName("000000010000000000000001")
	data := make([]byte, memSealMax+3<<20)
	rand.Read(data)

	o, err := p.newSealOutput(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, part := range [][]byte{data[:1<<20], data[1<<20 : memSealMax]} {
		if _, err := o.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	if o.file != nil || spoolFiles(t, p) != 0 {
		t.Fatalf("%d bytes, at most memSealMax: spilled to the spool", memSealMax)
	}
	if tag, record, ok := parseSpoolName(filepath.Base(o.path + uploadRecordSuffix)); !ok || !record || tag != self {
		t.Fatalf("in-memory seal's name %q: not a spool name of this process", o.path)
	}
	if !bytes.Equal(readBody(t, o), data[:memSealMax]) {
		t.Fatal("in-memory body differs")
	}
	if _, err := o.Write(data[memSealMax:]); err != nil {
		t.Fatal(err)
	}
	if o.file == nil || spoolFiles(t, p) != 1 {
		t.Fatal("past memSealMax: not in a spool file")
	}
	if !bytes.Equal(readBody(t, o), data) {
		t.Fatal("spilled body differs")
	}
	o.close()
	if n := spoolFiles(t, p); n != 0 {
		t.Fatalf("%d spool files after close", n)
	}
	if len(memSeal) != memSealSlots {
		t.Fatalf("%d of %d buffers back", len(memSeal), memSealSlots)
	}
}

// TestSealOutputSlots: with every buffer taken, a seal goes to the spool
// from its first byte; a finished push's body refuses to be read.
func TestSealOutputSlots(t *testing.T) {
	p := sealOutputPusher(t)
	name, _ := wal.ParseName("000000010000000000000002")
	var held []*sealOutput
	for range memSealSlots {
		o, err := p.newSealOutput(name)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, o)
	}
	o, err := p.newSealOutput(name)
	if err != nil {
		t.Fatal(err)
	}
	if o.file == nil || spoolFiles(t, p) != 1 {
		t.Fatal("no buffer free: not in a spool file")
	}
	if _, err := o.Write([]byte("sealed")); err != nil {
		t.Fatal(err)
	}
	if got := readBody(t, o); string(got) != "sealed" {
		t.Fatalf("spool body %q", got)
	}
	o.close()

	first := held[0]
	if _, err := first.Write([]byte("in memory")); err != nil {
		t.Fatal(err)
	}
	body, _, err := first.body()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range held {
		h.close()
	}
	if _, err := body.Read(make([]byte, 4)); !errors.Is(err, errBodyDone) {
		t.Fatalf("read after the push ended: %v, want errBodyDone", err)
	}
	if len(memSeal) != memSealSlots || spoolFiles(t, p) != 0 {
		t.Fatalf("%d of %d buffers back, %d spool files", len(memSeal), memSealSlots, spoolFiles(t, p))
	}
}

// TestSealOutputSpoolFull: a spool that cannot be written fails the seal
// as a local error (the daemon hands such a call back to wal-push).
func TestSealOutputSpoolFull(t *testing.T) {
	p := sealOutputPusher(t)
	name, _ := wal.ParseName("000000010000000000000003")
	o, err := p.newSealOutput(name)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	if err := os.RemoveAll(p.tmpDir()); err != nil { // CreateTemp fails
		t.Fatal(err)
	}
	_, err = o.Write(make([]byte, memSealMax+1))
	if err == nil || !errors.Is(err, errLocal) {
		t.Fatalf("spill into a missing spool: %v, want a local error", err)
	}
}
