package wal

import "sort"

// Keys returns the name and key of every object the index lists, sorted by
// key: each archived file (segments, .partial and .backup files, timeline
// histories), each seal and each streamed chunk. A name stored twice with different
// content (see Conflicts) gives the copy listed last.
func (ix *Index) Keys() []NamedKey {
	var out []NamedKey
	for name, e := range ix.files {
		if e.Key != "" { // "" for a segment known from its chunks alone
			out = append(out, NamedKey{Name: name, Key: e.Key})
		}
	}
	for name, key := range ix.seals {
		if ix.files[name].Key != key {
			out = append(out, NamedKey{Name: name, Key: key})
		}
	}
	for name, chunks := range ix.streamed {
		for _, c := range chunks {
			out = append(out, NamedKey{Name: name, Key: c.Key})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// NamedKey is a stored WAL object: the WAL file name and its key.
type NamedKey struct{ Name, Key string }
