// Package wal knows what PostgreSQL's WAL files are and where the
// repository keeps them: the names archive_command and restore_command
// hand over (segments, .partial segments, .backup history files, timeline
// .history files), segment headers, timeline histories and their branch
// points, and the Index of stored WAL with the chains a backup can follow.
// It reads the repository and writes nothing: wal-push and wal-fetch are
// package wal/archive, wal-receive is wal/stream, and both store through
// internal/repo.
package wal

import (
	"fmt"
	"strconv"
)

// Timeline is a PostgreSQL timeline ID.
type Timeline uint32

// Kind tells which kind of file a WAL-directory name denotes.
type Kind int

// The kinds of files archive_command and restore_command handle.
const (
	KindSegment Kind = iota + 1 // 000000010000000000000001
	KindPartial                 // 000000010000000000000001.partial
	KindBackup                  // 000000010000000000000001.00000028.backup
	KindHistory                 // 00000002.history
)

func (k Kind) String() string {
	switch k {
	case KindSegment:
		return "segment"
	case KindPartial:
		return "partial"
	case KindBackup:
		return "backup"
	case KindHistory:
		return "history"
	}
	return "unknown"
}

// Name is a parsed WAL-directory file name.
type Name struct {
	Kind     Kind
	Timeline Timeline
	Log, Seg uint32 // the two halves of the segment number (zero for history files)
	raw      string
}

func (n Name) String() string { return n.raw }

// ParseName parses a file name as PostgreSQL passes it in %f. Anything else,
// including paths, is an error: a name never becomes a path component
// unchecked.
func ParseName(s string) (Name, error) {
	bad := fmt.Errorf("%q is not a WAL file name (want e.g. 000000010000000000000001 or 00000002.history)", s)
	switch {
	case len(s) == 24 && upperHex(s):
		return segmentName(s, KindSegment)
	case len(s) == 24+len(".partial") && upperHex(s[:24]) && s[24:] == ".partial":
		return segmentName(s, KindPartial)
	case len(s) == 24+1+8+len(".backup") && upperHex(s[:24]) && s[24] == '.' && upperHex(s[25:33]) && s[33:] == ".backup":
		return segmentName(s, KindBackup)
	case len(s) == 8+len(".history") && upperHex(s[:8]) && s[8:] == ".history":
		tli, _ := strconv.ParseUint(s[:8], 16, 32)
		if tli == 0 {
			return Name{}, bad
		}
		return Name{Kind: KindHistory, Timeline: Timeline(tli), raw: s}, nil
	}
	return Name{}, bad
}

func segmentName(s string, k Kind) (Name, error) {
	tli, _ := strconv.ParseUint(s[0:8], 16, 32)
	log, _ := strconv.ParseUint(s[8:16], 16, 32)
	seg, _ := strconv.ParseUint(s[16:24], 16, 32)
	if tli == 0 {
		return Name{}, fmt.Errorf("%q is not a WAL file name: timeline 0", s)
	}
	return Name{Kind: k, Timeline: Timeline(tli), Log: uint32(log), Seg: uint32(seg), raw: s}, nil
}

// SegNo returns the segment's number for a given segment size.
func (n Name) SegNo(segSize int64) uint64 {
	return uint64(n.Log)*segmentsPerLog(segSize) + uint64(n.Seg)
}

// SegmentFileName returns the segment file name for a timeline and segment
// number, like PostgreSQL's XLogFileName.
func SegmentFileName(tli Timeline, segNo uint64, segSize int64) string {
	per := segmentsPerLog(segSize)
	return fmt.Sprintf("%08X%08X%08X", uint32(tli), uint32(segNo/per), uint32(segNo%per))
}

// Next returns the name of the segment after a segment.
func (n Name) Next(segSize int64) string {
	return SegmentFileName(n.Timeline, n.SegNo(segSize)+1, segSize)
}

// HistoryFileName returns the timeline history file name of tli.
func HistoryFileName(tli Timeline) string { return fmt.Sprintf("%08X.history", uint32(tli)) }

// ValidSegmentSize reports whether size is a wal_segment_size PostgreSQL
// allows: a power of two from 1 MiB to 1 GiB.
func ValidSegmentSize(size int64) bool {
	return size >= 1<<20 && size <= 1<<30 && size&(size-1) == 0
}

func segmentsPerLog(segSize int64) uint64 { return 0x100000000 / uint64(segSize) }

func upperHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
