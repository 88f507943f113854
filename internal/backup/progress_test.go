package backup

import "testing"

type meter struct{ total, added int64 }

func (m *meter) SetTotal(n int64) { m.total = n }
func (m *meter) Add(n int64)      { m.added += n }
func (m *meter) Done()            {}

// TestServerProgress: BASE_BACKUP's running count becomes the bytes
// added, its estimate the total (-1, none given: unknown).
func TestServerProgress(t *testing.T) {
	if serverProgress(nil) != nil {
		t.Error("no meter, yet a callback (it would ask the server for estimates)")
	}
	var m meter
	fn := serverProgress(&m)
	for _, step := range []struct{ done, total, wantTotal int64 }{{0, 1000, 1000}, {100, 1000, 1000}, {100, 1000, 1000}, {1500, 1000, 1000}, {1600, -1, 0}} {
		fn(step.done, step.total)
		if m.added != step.done || m.total != step.wantTotal {
			t.Errorf("after (%d, %d): added %d, total %d; want %d, %d", step.done, step.total, m.added, m.total, step.done, step.wantTotal)
		}
	}
}
