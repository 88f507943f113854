package stream

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/jackc/pglogrepl"
	"github.com/rs/zerolog"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
	"github.com/pitr-dev/pitr/wal/archive"
)

const segSize = 1 << 20

func newTestSession(t *testing.T, st storage.Storage, codec *envelope.Codec, start pglogrepl.LSN) (*session, func()) {
	t.Helper()
	nop := zerolog.Nop()
	s := &session{r: New(Options{Store: st, Codec: codec}), log: &nop, segSize: segSize, tli: 1, stored: start, recv: start}
	stop := s.startLanes(t.Context())
	return s, stop
}

// feed hands data to the session in 64 KiB messages, shipping every 256 KiB
// as the ship interval would.
func feed(t *testing.T, s *session, data []byte) {
	t.Helper()
	for off := 0; off < len(data); off += 64 << 10 {
		if err := s.receive(t.Context(), s.recv, data[off:min(off+64<<10, len(data))]); err != nil {
			t.Fatal(err)
		}
		if (off+64<<10)%(256<<10) == 0 {
			s.shipPending()
		}
	}
}

func drain(t *testing.T, s *session) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.queued.Load() > 0 || s.wholeQueued.Load() > 0 {
		if err := s.uploaderFailed(); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("uploads did not finish")
		}
		time.Sleep(time.Millisecond)
	}
}

// objects counts what the store holds: whole copies and seals by segment
// (a seal counts as "sealed:<name>" in whole), and chunks.
func objects(t *testing.T, st storage.Storage) (whole map[string]int, chunks map[string][]catalog.StreamChunk) {
	t.Helper()
	whole, chunks = map[string]int{}, map[string][]catalog.StreamChunk{}
	err := st.List(t.Context(), "wal/", func(oi storage.ObjectInfo) error {
		if o, ok := catalog.ParseWALKey(oi.Key); ok {
			whole[o.Name]++
		} else if o, ok := catalog.ParseSealKey(oi.Key); ok {
			whole["sealed:"+o.Name]++
		} else if c, ok := catalog.ParseStreamChunkKey(oi.Key); ok {
			chunks[c.Name] = append(chunks[c.Name], c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return whole, chunks
}

// TestSegmentsAndResume: a segment and a half arrive; the first is sealed
// (its chunks stay, nothing is uploaded twice), the half is in chunks and
// fetches as a zero-padded segment. A new session resuming from the second
// segment's start uploads only the bytes the repository lacks, then seals
// it with the chunks of both sessions.
func TestSegmentsAndResume(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	codec := &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}}
	st := storagetest.NewMemory()
	wal1 := make([]byte, 2*segSize)
	rand.Read(wal1[:segSize+segSize/2])
	start := pglogrepl.LSN(16 * segSize) // segment 000000010000000000000010
	first, second := "000000010000000000000010", "000000010000000000000011"

	s, stop := newTestSession(t, st, codec, start)
	feed(t, s, wal1[:segSize+segSize/2])
	s.shipPending()
	drain(t, s)
	stop()
	if got, want := pglogrepl.LSN(s.storedA.Load()), start+segSize+segSize/2; got != want {
		t.Fatalf("stored up to %s, want %s", got, want)
	}
	whole, chunks := objects(t, st)
	if whole["sealed:"+first] != 1 || whole[first] != 0 || len(chunks[first]) != 4 || len(whole) != 1 || len(chunks[second]) != 2 {
		t.Fatalf("after a segment and a half: whole %v, chunks %d/%d", whole, len(chunks[first]), len(chunks[second]))
	}
	dest := filepath.Join(t.TempDir(), "x")
	opts := archive.FetchOptions{Store: st, Codec: codec}
	for name, want := range map[string][]byte{first: wal1[:segSize], second: wal1[segSize:]} {
		if err := archive.Fetch(t.Context(), name, dest, opts); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dest); !bytes.Equal(got, want) {
			t.Fatalf("%s fetched differs", name)
		}
	}

	// The slot restarts at the second segment: its first half is stored.
	rand.Read(wal1[segSize+segSize/2:])
	s2, stop2 := newTestSession(t, st, codec, start+segSize)
	feed(t, s2, wal1[segSize:])
	drain(t, s2)
	stop2()
	whole, chunks = objects(t, st)
	if whole["sealed:"+second] != 1 || len(whole) != 2 || len(chunks[second]) != 4 {
		t.Fatalf("after resuming: whole %v, %d chunks", whole, len(chunks[second]))
	}
	// The second half (512 KiB of random bytes) as chunks and a seal;
	// repeating the first half would add another 512 KiB, storing the
	// segment whole 1 MiB.
	if up := s2.r.Status().UploadedBytes; up > segSize/2+segSize/16 {
		t.Fatalf("resumed session uploaded %d bytes: it repeated stored chunks", up)
	}
	if err := archive.Fetch(t.Context(), second, dest, opts); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, wal1[segSize:]) {
		t.Fatal("second segment differs after resuming")
	}
}

// TestForeignRepository: a repository holding other bytes under this
// segment's name (a second cluster configured with the same repository)
// stops the receiver instead of passing those bytes for its WAL, for a
// whole copy and for chunks alike.
func TestForeignRepository(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	codec := &envelope.Codec{Encrypt: true, Recipients: []age.Recipient{id.Recipient()}, Identities: []age.Identity{id}}
	start := pglogrepl.LSN(16 * segSize)
	theirs := make([]byte, segSize)
	rand.Read(theirs)
	ours := bytes.Clone(theirs)
	ours[segSize/3] ^= 1

	for _, stored := range []string{"whole", "chunks"} {
		t.Run(stored, func(t *testing.T) {
			st := storagetest.NewMemory()
			other, stop := newTestSession(t, st, codec, start)
			if stored == "whole" {
				feed(t, other, theirs)
			} else {
				feed(t, other, theirs[:segSize/2])
				other.shipPending()
			}
			drain(t, other)
			stop()

			s, stop := newTestSession(t, st, codec, start)
			defer stop()
			var err error
			for off := 0; off < segSize && err == nil; off += 64 << 10 {
				err = s.receive(t.Context(), s.recv, ours[off:off+64<<10])
			}
			var fatal errFatal
			if !errors.As(err, &fatal) || !errors.Is(err, wal.ErrConflict) {
				t.Fatalf("different bytes under a stored name: %v, want a fatal conflict", err)
			}
			drain(t, s)
			if got := pglogrepl.LSN(s.storedA.Load()); got >= start+segSize/3 {
				t.Fatalf("stored position moved to %s past the differing byte", got)
			}
		})
	}
}

// TestUploadRetries: transient storage errors while storing chunks and the
// whole segment are retried (through retry.Store) without failing the
// session.
func TestUploadRetries(t *testing.T) {
	codec := &envelope.Codec{}
	mem := storagetest.NewMemory()
	st := storagetest.NewFaulty(mem)
	st.Fail(storagetest.OpCreate, 3, storagetest.ErrDown)
	data := make([]byte, segSize+segSize/2)
	rand.Read(data)
	start := pglogrepl.LSN(16 * segSize)
	s, stop := newTestSession(t, st, codec, start)
	feed(t, s, data)
	s.shipPending()
	drain(t, s)
	stop()
	if got, want := pglogrepl.LSN(s.storedA.Load()), start+segSize+segSize/2; got != want {
		t.Fatalf("stored up to %s, want %s", got, want)
	}
	if whole, _ := objects(t, mem); whole["sealed:000000010000000000000010"] != 1 {
		t.Fatalf("whole segments %v, want the first stored", whole)
	}
	if st.Calls(storagetest.OpCreate) < 4 {
		t.Fatalf("%d creates: the faults were not hit", st.Calls(storagetest.OpCreate))
	}
}

// TestManyChunksStoredWhole: a segment that arrived in more than
// MaxSealChunks chunks (--synchronous, one per commit) is stored whole
// under the wal-push key and its chunks removed, as before seals.
func TestManyChunksStoredWhole(t *testing.T) {
	codec := &envelope.Codec{}
	st := storagetest.NewMemory()
	data := make([]byte, segSize)
	rand.Read(data)
	start := pglogrepl.LSN(16 * segSize)
	s, stop := newTestSession(t, st, codec, start)
	piece := segSize / (2 * MaxSealChunks)
	for off := 0; off < segSize; off += piece {
		if err := s.receive(t.Context(), s.recv, data[off:off+piece]); err != nil {
			t.Fatal(err)
		}
		s.shipPending()
	}
	drain(t, s)
	stop()
	whole, chunks := objects(t, st)
	if whole["000000010000000000000010"] != 1 || len(whole) != 1 || len(chunks) != 0 {
		t.Fatalf("whole %v, %d segments with chunks", whole, len(chunks))
	}
	dest := filepath.Join(t.TempDir(), "x")
	if err := archive.Fetch(t.Context(), "000000010000000000000010", dest, archive.FetchOptions{Store: st, Codec: codec}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Fatal("fetched segment differs")
	}
}

// TestKilledBeforeSeal: a receiver killed after the last chunk but before
// the seal (the store refused it) leaves chunks covering the segment: they
// serve it whole to wal-fetch and the index, and a wal-push of the same
// segment then stores it under its own key.
func TestKilledBeforeSeal(t *testing.T) {
	codec := &envelope.Codec{}
	mem := storagetest.NewMemory()
	st := &noSeals{Storage: mem}
	data := make([]byte, segSize)
	rand.Read(data)
	name := "000000010000000000000010"
	s, stop := newTestSession(t, st, codec, pglogrepl.LSN(16*segSize))
	s.r.upload = s.r.repo.WithStore(st) // no retries: the seal fails at once
	for off := 0; off < segSize; off += 64 << 10 {
		if err := s.receive(t.Context(), s.recv, data[off:off+64<<10]); err != nil {
			t.Fatal(err)
		}
		s.shipPending()
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.uploaderFailed() == nil {
		if time.Now().After(deadline) {
			t.Fatal("the refused seal did not fail the session")
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	if got := pglogrepl.LSN(s.storedA.Load()); got != pglogrepl.LSN(17*segSize) {
		t.Fatalf("stored up to %s: the chunks cover the segment", got)
	}
	whole, chunks := objects(t, mem)
	if len(whole) != 0 || len(chunks[name]) != 16 {
		t.Fatalf("whole %v, %d chunks", whole, len(chunks[name]))
	}
	dest := filepath.Join(t.TempDir(), "x")
	if err := archive.Fetch(t.Context(), name, dest, archive.FetchOptions{Store: mem, Codec: codec}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
		t.Fatal("fetched segment differs")
	}
	ix, err := wal.LoadIndex(t.Context(), mem)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := ix.Get(name); !ok || e.Partial != 0 || !ix.Has(name) {
		t.Fatalf("index entry %+v %v: want whole", e, ok)
	}
}

// noSeals is a store that refuses to store seals.
type noSeals struct{ storage.Storage }

func (n *noSeals) Create(ctx context.Context, key string, r io.Reader) error {
	if _, ok := catalog.ParseSealKey(key); ok {
		return fmt.Errorf("create %s: %w", key, storage.ErrPermanent)
	}
	return n.Storage.Create(ctx, key, r)
}

// TestGroupDue: with --synchronous, pending flushes are stored once the
// lane is idle and the oldest waited GroupDelay; the receive loop wakes
// then, not every 2 ms; GroupDelay 0 stores at once, as before grouping.
func TestGroupDue(t *testing.T) {
	s, stop := newTestSession(t, storagetest.NewMemory(), &envelope.Codec{}, pglogrepl.LSN(16*segSize))
	defer stop()
	s.r.opts.Synchronous, s.r.opts.GroupDelay = true, time.Hour
	s.lastSent = time.Now()
	s.pending = time.Now()
	if s.groupDue() {
		t.Fatal("due before GroupDelay passed")
	}
	if d := time.Until(s.deadline()); d < 59*time.Minute {
		t.Fatalf("wakes in %s, want when the group is due", d)
	}
	s.pending = time.Now().Add(-2 * time.Hour)
	if !s.groupDue() {
		t.Fatal("not due after GroupDelay")
	}
	s.queued.Add(1) // a chunk is being stored: wait for it, report promptly
	if s.groupDue() {
		t.Fatal("due while a chunk is stored")
	}
	if d := time.Until(s.deadline()); d > 10*time.Millisecond {
		t.Fatalf("wakes in %s with a chunk in flight, want 2ms", d)
	}
	s.queued.Add(-1)
	s.r.opts.GroupDelay = 0
	s.pending = time.Now()
	if !s.groupDue() {
		t.Fatal("GroupDelay 0: not due at once")
	}
}
