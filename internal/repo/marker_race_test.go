package repo

import (
	"path/filepath"
	"sync"
	"testing"

	"github.com/pitr-dev/pitr/storage/local"
)

// TestEnsureMarkerRace: writers creating a repository at once all succeed:
// one creates the marker, the others read and check it.
func TestEnsureMarkerRace(t *testing.T) {
	for i := range 20 {
		st, err := local.Create(filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if err := New(st, nil).Ensure(t.Context(), "test"); err != nil {
					t.Errorf("round %d: %v", i, err)
				}
			})
		}
		wg.Wait()
	}
}
