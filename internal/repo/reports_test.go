package repo

import (
	"testing"
	"time"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/storage/storagetest"
)

func TestReports(t *testing.T) {
	ctx := t.Context()
	r := New(storagetest.NewMemory(), nil)
	if rep, err := r.LatestReport(ctx, catalog.ReportDrill); err != nil || rep != nil {
		t.Fatalf("empty repository: %v, %v; want nil, nil", rep, err)
	}
	at := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	for i, ok := range []bool{true, false} {
		rep := &catalog.Report{Kind: catalog.ReportDrill, Started: at, Finished: at.Add(time.Minute), OK: ok, RTOSeconds: float64(10 + i)}
		if err := r.SaveReport(ctx, rep); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.LatestReport(ctx, catalog.ReportDrill)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "20261201T030000Z-1" || got.OK || got.RTOSeconds != 11 {
		t.Errorf("latest = %+v; want the second report of the second, failed", got)
	}
	if rep, _ := r.LatestReport(ctx, catalog.ReportVerify); rep != nil {
		t.Errorf("verify report %+v from drill reports", rep)
	}
}
