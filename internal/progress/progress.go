// Package progress is how long operations (backup, restore, verify, file
// snapshots, copy) tell a person how far they are. Jobs take a Meter in
// their Options and call it as bytes move; a nil Meter shows nothing, which
// is what logs, --json and a non-terminal get (see restic's
// internal/restorer/progress.go). cmd/pitr picks the implementation.
package progress

// Meter hears how far one operation is, in bytes. Its methods may be
// called from several goroutines at once.
type Meter interface {
	// SetTotal sets the bytes the operation expects to move (0: unknown).
	SetTotal(bytes int64)
	// Add counts bytes moved since the last call.
	Add(bytes int64)
	// Done ends the display; further calls are ignored.
	Done()
}

// SetTotal calls m.SetTotal unless m is nil.
func SetTotal(m Meter, bytes int64) {
	if m != nil {
		m.SetTotal(bytes)
	}
}

// Add calls m.Add unless m is nil.
func Add(m Meter, bytes int64) {
	if m != nil {
		m.Add(bytes)
	}
}

// Done calls m.Done unless m is nil.
func Done(m Meter) {
	if m != nil {
		m.Done()
	}
}
