package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage/storagetest"
	"github.com/pitr-dev/pitr/wal"
)

func TestListTimelines(t *testing.T) {
	ctx := context.Background()
	m := storagetest.NewMemory()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	m.Now = func() time.Time { return now }
	put := func(name, data string) {
		now = now.Add(time.Minute)
		if _, err := repo.New(m, &envelope.Codec{}).StoreWAL(ctx, name, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	e, _ := memEnv(m)
	e.cfg.Encryption = "none"
	run := func(asJSON bool) string {
		var out bytes.Buffer
		e.stdout, e.stderr = &out, &out
		if err := runList(ctx, e, asJSON); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	if js := run(true); !strings.Contains(js, `"timelines": []`) {
		t.Fatalf("empty repository: timelines not []:\n%s", js)
	}
	for i := 1; i <= 3; i++ {
		put(wal.SegmentFileName(1, uint64(i), 16<<20), "x")
	}
	put("00000002.history", "1\t0/2000100\tbefore 2026-11-22 09:58:00+00\n\n")
	put(wal.SegmentFileName(2, 2, 16<<20), "y")
	put("00000003.history", "1\t0/3000028\tno recovery target specified\n")
	var lo struct {
		Timelines []map[string]any `json:"timelines"`
	}
	if err := json.Unmarshal([]byte(run(true)), &lo); err != nil {
		t.Fatal(err)
	}
	if len(lo.Timelines) != 3 {
		t.Fatalf("timelines: %v", lo.Timelines)
	}
	tl2 := lo.Timelines[1]
	for k, want := range map[string]any{"timeline": 2.0, "parent": 1.0, "branch_kind": "restore", "branched_from_restore": true,
		"branch_lsn": "0/2000100", "branch_time": "2026-11-22T09:58:00Z", "wal_end_segment": "000000020000000000000002",
		"wal_end_lsn": "0/3000000", "wal_end_time": "2026-11-22T10:05:00Z"} {
		if tl2[k] != want {
			t.Errorf("timeline 2 %s = %v, want %v", k, tl2[k], want)
		}
	}
	if lo.Timelines[2]["branch_kind"] != "failover" || lo.Timelines[0]["branch_kind"] != "none" {
		t.Errorf("kinds: %v", lo.Timelines)
	}
	text := run(false)
	t.Logf("\n%s", text)
	for _, want := range []string{"TIMELINE", "restore: before 2026-11-22 09:58:00+00", "failover: no recovery target specified", "0/3000000 (000000020000000000000002)"} {
		if !strings.Contains(text, want) {
			t.Errorf("list lacks %q", want)
		}
	}
}
