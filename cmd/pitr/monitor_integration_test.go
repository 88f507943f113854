//go:build integration

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/status"
	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage/local"
)

// check runs pitr check and returns its output and exit status.
func (r *rig) check(args ...string) (string, int) {
	r.t.Helper()
	out, _, code := r.run(append([]string{"check"}, args...)...)
	return out, code
}

// TestCheckExitCodesReal: pitr check on a real repository: no repository
// (3), archiving but no backup yet (2), a backup with its WAL and passed
// verify and drill reports (0), a backup older than the thresholds (1, 2),
// and a WAL segment missing between stored ones (2). It runs with only
// the public recipient.
func TestCheckExitCodesReal(t *testing.T) {
	r := newRig(t, "local")
	noKey := []string{"PITR_AGE_IDENTITY_FILE="}
	out, _, code := r.runEnv(noKey, "check")
	if code != 3 || !strings.HasPrefix(out, "PITR UNKNOWN - repository file://"+r.repoDir+" unreadable: no repository") {
		t.Fatalf("no repository: exit %d\n%s", code, out)
	}

	c := r.cluster(nil)
	switchAndWait(t, c, time.Minute)
	out, _, code = r.runEnv(noKey, "check")
	if code != 2 || !strings.HasPrefix(out, "PITR CRITICAL - no backup | wal_age=") {
		t.Fatalf("no backup: exit %d\n%s", code, out)
	}

	r.mustRun(backupEnv(c), "backup")
	switchAndWait(t, c, time.Minute) // the backup's last segment
	st, err := local.Open(r.repoDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{catalog.ReportVerify, catalog.ReportDrill} {
		now := time.Now().UTC()
		rep := &catalog.Report{Kind: kind, Started: now.Add(-time.Minute), Finished: now, OK: true, RTOSeconds: 9.5, Summary: "test"}
		if err := repo.New(st, nil).SaveReport(t.Context(), rep); err != nil {
			t.Fatal(err)
		}
	}
	out, _, code = r.runEnv(noKey, "check")
	if code != 0 || !strings.HasPrefix(out, "PITR OK - last backup ") || !strings.Contains(out, ", last drill passed ") ||
		!strings.Contains(out, " drill_rto=9.5s") || strings.Count(out, "\n") != 1 {
		t.Fatalf("good repository: exit %d\n%s", code, out)
	}
	t.Logf("check: %s", out)

	// Stale: thresholds below the backup's age.
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		out, code = r.check("--warn-backup-age", "1s")
		return code == 1, "warn 1s: exit " + out
	})
	if !strings.Contains(out, "\nWARNING: last backup ") || !strings.Contains(out, "(more than 1s)") {
		t.Errorf("warn: %s", out)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		out, code = r.check("--warn-backup-age", "1s", "--max-backup-age", "2s")
		return code == 2 && strings.Contains(out, "\nCRITICAL: last backup "), "max 2s: " + out
	})

	// A WAL gap: the segment after the backup goes missing, a later one
	// is stored.
	write := func() {
		if err := c.Exec(t.Context(), `CREATE TABLE IF NOT EXISTS mon (i int); INSERT INTO mon VALUES (1)`); err != nil {
			t.Fatal(err)
		}
	}
	write()
	first := switchAndWait(t, c, time.Minute)
	write()
	switchAndWait(t, c, time.Minute)
	moveWAL(t, r.repoDir, first, "away")
	out, code = r.check()
	if code != 2 || !strings.Contains(out, "WAL gap: "+first+" is missing") || !strings.Contains(out, " wal_gaps=1") {
		t.Fatalf("WAL gap: exit %d\n%s", code, out)
	}
	moveWAL(t, r.repoDir, first, "back")

	// status names the same state, in text and JSON, without the identity.
	text, _, code := r.runEnv(noKey, "status")
	if code != 0 || !strings.Contains(text, "restorable to any moment from") || !strings.Contains(text, "last drill: passed") {
		t.Fatalf("status: exit %d\n%s", code, text)
	}
	t.Logf("status:\n%s", text)
	js, _, code := r.runEnv(noKey, "status", "--json")
	var s status.Status
	if err := json.Unmarshal([]byte(js), &s); err != nil || code != 0 {
		t.Fatalf("status --json: exit %d, %v\n%s", code, err, js)
	}
	if s.Name != "repo" || len(s.Backups) != 1 || !s.Backups[0].Usable || s.SystemID == "" || s.WAL.AgeSeconds < 0 ||
		strings.Join(s.Backups[0].KeptBy, ",") != "all,newest" {
		t.Errorf("status --json: %+v", s)
	}
}

// TestStatusFleetMinIO: two clusters' prefixes in one MinIO bucket, named
// by --repo and by monitor:; status labels both, check reports the worst
// and an unreachable store is UNKNOWN.
func TestStatusFleetMinIO(t *testing.T) {
	m := testenv.MinIO(t)
	bucket := m.NewBucket(t)
	for _, prefix := range []string{"fleet/db1", "fleet/db2"} {
		_, err := m.Client().PutObject(t.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(prefix + "/" + catalog.MarkerKey),
			Body: bytes.NewReader(catalog.MarshalMarker(time.Now(), "test"))})
		if err != nil {
			t.Fatal(err)
		}
	}
	r := &rig{t: t, pitr: testenv.PitrBinary(t), env: append([]string{"PITR_S3_ENDPOINT=" + m.Endpoint, "PITR_LOG_FORMAT=json"}, m.Env()...)}
	a, b := "s3://"+bucket+"/fleet/db1", "s3://"+bucket+"/fleet/db2"
	js, stderr, code := r.run("status", "--json", "--repo", a, "--repo", b)
	var all []status.Status
	if err := json.Unmarshal([]byte(js), &all); err != nil || code != 0 {
		t.Fatalf("status --json: exit %d %v %s\n%s", code, err, stderr, js)
	}
	if len(all) != 2 || all[0].Name != "db1" || all[1].Name != "db2" || all[0].Error != "" || all[1].Error != "" {
		t.Fatalf("statuses: %+v", all)
	}

	cfg := filepath.Join(t.TempDir(), "monitor.yaml")
	yml := fmt.Sprintf("monitor:\n  - repo: %s\n  - name: billing\n    repo: %s\n  - repo: s3://%s/fleet/gone\n", a, b, bucket)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := r.check("--config", cfg)
	if code != 2 || !strings.HasPrefix(out, "PITR CRITICAL - 3 clusters: 0 ok, 0 warning, 2 critical, 1 unknown; db1: no backup; billing: no backup | ") ||
		!strings.Contains(out, "\nUNKNOWN gone: repository s3://"+bucket+"/fleet/gone unreadable: no repository") {
		t.Fatalf("check: exit %d\n%s", code, out)
	}
	m.Stop(t)
	out, code = r.check("--repo", a)
	if code != 3 || !strings.HasPrefix(out, "PITR UNKNOWN - repository "+a+" unreadable: ") {
		t.Fatalf("store down: exit %d\n%s", code, out)
	}
	t.Logf("store down: %s", out)
}
