package verify

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// Subset selects the objects one run reads, like restic's check
// --read-data-subset n/t: the objects whose key hashes to N-1 modulo M,
// so M runs with N = 1..M read every object once. The zero Subset is all.
type Subset struct{ N, M uint64 }

// ParseSubset parses "N/M" (1 <= N <= M).
func ParseSubset(s string) (Subset, error) {
	a, b, ok := strings.Cut(s, "/")
	n, err1 := strconv.ParseUint(a, 10, 32)
	m, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil || n < 1 || n > m {
		return Subset{}, fmt.Errorf("subset %q: want N/M with 1 <= N <= M, e.g. 1/7", s)
	}
	return Subset{N: n, M: m}, nil
}

// All says whether the subset selects every object.
func (s Subset) All() bool { return s.M <= 1 }

// Has says whether the subset selects key: the first 8 bytes of the
// key's SHA-256, big-endian, modulo M, are N-1. It depends on the key
// only, so every host and every run agrees.
func (s Subset) Has(key string) bool {
	if s.All() {
		return true
	}
	h := sha256.Sum256([]byte(key))
	return binary.BigEndian.Uint64(h[:8])%s.M == s.N-1
}

func (s Subset) String() string {
	if s.All() {
		return "all"
	}
	return fmt.Sprintf("%d/%d", s.N, s.M)
}
