package wal

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// segmentHeader builds a segment's first bytes as PostgreSQL 15 writes them
// on a little-endian machine.
func segmentHeader(sysid uint64, segSize uint32) []byte {
	b := make([]byte, 8192)
	binary.LittleEndian.PutUint16(b[0:], 0xD110)
	binary.LittleEndian.PutUint16(b[2:], xlpLongHeader)
	binary.LittleEndian.PutUint32(b[4:], 1)
	binary.LittleEndian.PutUint64(b[offsetSysID:], sysid)
	binary.LittleEndian.PutUint32(b[offsetSegSize:], segSize)
	binary.LittleEndian.PutUint32(b[offsetBlockLen:], 8192)
	return b
}

func TestParseSegmentHeader(t *testing.T) {
	// The first 512 bytes of a segment written by initdb of PostgreSQL 15
	// (pg_controldata: "Database system identifier: 7714270923707275253").
	fixture, err := os.ReadFile(filepath.Join("testdata", "pg15-segment-header.bin"))
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, longHeaderLen)
	binary.BigEndian.PutUint16(big[0:], 0xD110)
	binary.BigEndian.PutUint16(big[2:], xlpLongHeader)
	binary.BigEndian.PutUint64(big[offsetSysID:], 42)
	binary.BigEndian.PutUint32(big[offsetSegSize:], 1<<24)
	binary.BigEndian.PutUint32(big[offsetBlockLen:], 8192)
	short := segmentHeader(42, 1<<24)
	binary.LittleEndian.PutUint16(short[2:], 0) // a page that is not a segment's first

	tests := []struct {
		name    string
		b       []byte
		sysid   string
		segSize int64
	}{
		{"pg15 fixture", fixture, "7714270923707275253", 16 << 20},
		{"built", segmentHeader(18446744073709551615, 1<<20), "18446744073709551615", 1 << 20},
		{"big-endian server", big, "42", 16 << 20},
		{"too short", fixture[:39], "", 0},
		{"random bytes", []byte("this is not a WAL segment, only some text of enough length"), "", 0},
		{"short page header", short, "", 0},
		{"zero system identifier", segmentHeader(0, 1<<24), "", 0},
		{"bad segment size", segmentHeader(42, 3<<20), "", 0},
	}
	for _, tt := range tests {
		h, err := ParseSegmentHeader(tt.b)
		if tt.sysid == "" {
			if !errors.Is(err, errNoHeader) {
				t.Errorf("%s: %+v, %v; want errNoHeader", tt.name, h, err)
			}
			continue
		}
		if err != nil || h.SystemID != tt.sysid || h.SegSize != tt.segSize {
			t.Errorf("%s: %+v, %v; want system id %s, segment size %d", tt.name, h, err, tt.sysid, tt.segSize)
		}
	}
}
