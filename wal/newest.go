package wal

import "time"

// Newest returns the archived WAL segment (a whole file or a streamed
// chunk; not history or backup-label files) the store received last, and when: no commit stored in the repository
// is later, so now minus stored is how much a lost server would take with
// it (the current RPO). name is "" when nothing is archived.
func (ix *Index) Newest() (name string, stored time.Time) {
	for n, e := range ix.files {
		if p, err := ParseName(n); err != nil || p.Kind != KindSegment {
			continue
		}
		if e.Stored.After(stored) || e.Stored.Equal(stored) && n > name {
			name, stored = n, e.Stored
		}
	}
	for n, chunks := range ix.streamed {
		for _, c := range chunks {
			if c.Stored.After(stored) || c.Stored.Equal(stored) && n > name {
				name, stored = n, c.Stored
			}
		}
	}
	return name, stored
}

// OldestMissing returns the whole segment of ix that other lacks (neither
// whole nor streamed) and that ix received first, and when: how long a
// copy of ix into other (the off-site repository) has been behind. name is
// "" when other holds every segment of ix.
func (ix *Index) OldestMissing(other *Index) (name string, stored time.Time) {
	for n, e := range ix.files {
		if p, err := ParseName(n); err != nil || p.Kind != KindSegment || e.Partial > 0 {
			continue
		}
		if _, ok := other.Get(n); ok {
			continue
		}
		if name == "" || e.Stored.Before(stored) || e.Stored.Equal(stored) && n < name {
			name, stored = n, e.Stored
		}
	}
	return name, stored
}
