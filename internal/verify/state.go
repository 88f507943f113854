package verify

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/pitr-dev/pitr/storage"
)

// The state file records every object a run verified, by key, with the
// size and modification time the listing gave: the next run skips an
// object listed with the same size and time, so a nightly run reads only
// what is new. Objects are written once and never replaced, so a key with
// the same size and time is the same object; one replaced anyway (a copy
// repaired, a bucket restored) lists with another time and is read again.
// Deleting the file only makes the next run read everything.

// Levels of verification recorded in the state.
const (
	levelContent = "content" // decrypted, decompressed, plaintext SHA-256 checked
	levelStored  = "stored"  // the stored bytes' SHA-256 checked (a pack without the identity)
)

const stateFormat = 1

type stateObject struct {
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime_ns"`
	Level string `json:"level"`
}

type stateFile struct {
	Format  int                    `json:"format"`
	Updated time.Time              `json:"updated"`
	Objects map[string]stateObject `json:"objects"`
	// Files lists the pack and pack index keys present at the last run: a
	// snapshot's manifest verified before is read again when one of them
	// has gone since (its chunks may have gone with it).
	Files []string `json:"files,omitempty"`
}

func newState() *stateFile { return &stateFile{Format: stateFormat, Objects: map[string]stateObject{}} }

// loadState reads the state file at path; a missing one is an empty state.
// A file that cannot be parsed is an empty state too (err says why), so a
// damaged cache costs only a full read.
func loadState(path string) (*stateFile, error) {
	if path == "" {
		return newState(), nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return newState(), fmt.Errorf("read verify state: %w", err)
	}
	s := newState()
	if err := json.Unmarshal(b, s); err != nil || s.Format != stateFormat || s.Objects == nil {
		return newState(), fmt.Errorf("verify state %s: unreadable, starting afresh", path)
	}
	return s, nil
}

// verified says whether the state holds o as verified at least at level
// (levelStored is satisfied by levelContent too).
func (s *stateFile) verified(o storage.ObjectInfo, level string) bool {
	e, ok := s.Objects[o.Key]
	if !ok || e.Size != o.Size || e.MTime != o.ModTime.UnixNano() {
		return false
	}
	return e.Level == levelContent || e.Level == level
}

func (s *stateFile) record(o storage.ObjectInfo, level string) {
	if prev, ok := s.Objects[o.Key]; ok && prev.Level == levelContent && level != levelContent &&
		prev.Size == o.Size && prev.MTime == o.ModTime.UnixNano() {
		return
	}
	s.Objects[o.Key] = stateObject{Size: o.Size, MTime: o.ModTime.UnixNano(), Level: level}
}

// save writes the state atomically: a temporary file in the same
// directory, synced, then renamed over the old one.
func (s *stateFile) save(path string, now time.Time) error {
	if path == "" {
		return nil
	}
	s.Updated = now.UTC()
	sort.Strings(s.Files)
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save verify state: %w", err)
	}
	f, err := os.CreateTemp(dir, ".verified-*")
	if err != nil {
		return fmt.Errorf("save verify state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename: nothing left under the temporary name
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("save verify state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save verify state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save verify state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save verify state: %w", err)
	}
	return nil
}
