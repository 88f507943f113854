//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pitr-dev/pitr/internal/scratch"
	"github.com/pitr-dev/pitr/internal/testenv"
)

func systemID(t *testing.T, c *scratch.Cluster) string {
	t.Helper()
	id, err := c.QueryString(t.Context(), `SELECT system_identifier::text FROM pg_control_system()`)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// waitLog waits until the server log contains s.
func waitLog(t *testing.T, c *scratch.Cluster, s string, timeout time.Duration) {
	t.Helper()
	testenv.Eventually(t, timeout, func() (bool, string) {
		b, _ := os.ReadFile(c.LogPath())
		return strings.Contains(string(b), s), fmt.Sprintf("server log has no %q:\n%s", s, scratch.LastLines(string(b), 20))
	})
}

func (r *rig) list() listOutput {
	r.t.Helper()
	var lo listOutput
	if err := json.Unmarshal([]byte(r.mustRun(nil, "list", "--json")), &lo); err != nil {
		r.t.Fatal(err)
	}
	return lo
}

// TestTwoClustersOneRepository: a second cluster (its own initdb) set up
// with the first one's repository archives nothing, backs up nothing and
// streams nothing into it, until pitr cluster-upgrade hands the repository
// over; the first cluster's backup stays listed.
func TestTwoClustersOneRepository(t *testing.T) {
	r := newRig(t, "minio")
	a := r.cluster(nil)
	idA := systemID(t, a)
	switchAndWait(t, a, time.Minute)
	r.mustRun(backupEnv(a), "backup")
	lo := r.list()
	if len(lo.Backups) != 1 || lo.Backups[0].SystemID != idA {
		t.Fatalf("first cluster's backup: %+v", lo.Backups)
	}

	b := r.cluster(nil)
	idB := systemID(t, b)
	if idA == idB {
		t.Fatal("two initdb gave one system identifier")
	}
	refusal := "this repository belongs to cluster " + idA + "; is another cluster configured with it?"
	if _, err := b.QueryString(t.Context(), `SELECT pg_walfile_name(pg_switch_wal())`); err != nil {
		t.Fatal(err)
	}
	waitLog(t, b, refusal, time.Minute)
	// The archiver reports its failure to the statistics a moment after the
	// command's stderr reached the log: poll for it.
	var failed string
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		failed, _ = b.QueryString(t.Context(), `SELECT failed_count::text || ' ' || coalesce(last_archived_wal, '-') FROM pg_stat_archiver`)
		return failed != "0 -", fmt.Sprintf("second cluster's archiver: %s, want failures and nothing archived", failed)
	})
	if !strings.HasSuffix(failed, " -") || failed == "0 -" {
		t.Fatalf("second cluster's archiver: %s, want failures and nothing archived", failed)
	}

	_, stderr, code := r.runEnv(backupEnv(b), "backup")
	if code == 0 || !strings.Contains(stderr, refusal) || !strings.Contains(stderr, "cluster-upgrade") {
		t.Fatalf("second cluster's backup: exit %d\n%s", code, stderr)
	}
	if lo := r.list(); len(lo.Backups) != 1 || len(lo.Incomplete) != 0 {
		t.Fatalf("after the refused backup: %d backups, incomplete %v", len(lo.Backups), lo.Incomplete)
	}

	rc := r.startReceiver(b)
	done := make(chan struct{})
	go func() {
		_ = rc.cmd.Wait() // the exit code is checked below
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("wal-receive of the second cluster still running:\n%s", rc.output())
	}
	if rc.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(rc.output(), refusal) {
		t.Fatalf("wal-receive of the second cluster: exit %d\n%s", rc.cmd.ProcessState.ExitCode(), rc.output())
	}
	if n, _ := b.QueryInt(t.Context(), `SELECT count(*) FROM pg_replication_slots`); n != 0 {
		t.Fatalf("refused wal-receive created %d slots", n)
	}

	// A new initdb archives again from segment 1, under names the
	// repository holds already: cluster-upgrade refuses and names the fix.
	_, stderr, code = r.runEnv(backupEnv(b), "cluster-upgrade")
	if code == 0 || !strings.Contains(stderr, "pg_resetwal -l") {
		t.Fatalf("cluster-upgrade over colliding WAL names: exit %d\n%s", code, stderr)
	}
	if err := b.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if out, err := b.RunAsOwner(t.Context(), "pg_resetwal", "-l", "0000000100000000000000A0", b.DataDir); err != nil {
		t.Fatalf("pg_resetwal: %v\n%s", err, out)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	out := r.mustRun(backupEnv(b), "cluster-upgrade")
	for _, want := range []string{"old cluster: " + idA + ", PostgreSQL 15.", "new cluster: " + idB + ", PostgreSQL 15.", "belongs to cluster " + idB + " now"} {
		if !strings.Contains(out, want) {
			t.Fatalf("cluster-upgrade output lacks %q:\n%s", want, out)
		}
	}
	if out := r.mustRun(backupEnv(b), "cluster-upgrade"); !strings.Contains(out, "nothing to do") {
		t.Fatalf("second cluster-upgrade:\n%s", out)
	}

	r.mustRun(backupEnv(b), "backup")
	lo = r.list()
	if len(lo.Backups) != 2 || lo.Backups[0].SystemID != idA || lo.Backups[1].SystemID != idB || !lo.Backups[0].Usable || !lo.Backups[1].Usable {
		t.Fatalf("after cluster-upgrade: %+v", lo.Backups)
	}
	// Now the first cluster is the other one.
	_, stderr, code = r.runEnv(backupEnv(a), "backup")
	if code == 0 || !strings.Contains(stderr, "this repository belongs to cluster "+idB) {
		t.Fatalf("first cluster's backup after cluster-upgrade: exit %d\n%s", code, stderr)
	}
}

// TestNoRepository: read-only commands on a place without a repository
// say "no repository at URL" on one line, exit non-zero (wal-fetch above
// 125, so recovery stops instead of promoting) and create nothing.
func TestNoRepository(t *testing.T) {
	type place struct {
		url   string
		check func(t *testing.T) // nothing was created
		// noBucket: wal-fetch's listing fails (retried, then exit 126)
		// before it could look for the marker.
		noBucket bool
	}
	for _, backend := range []string{"local", "minio"} {
		t.Run(backend, func(t *testing.T) {
			r := newRig(t, backend)
			var places []place
			switch backend {
			case "local":
				missing := filepath.Join(r.repoDir, "no", "such")
				places = []place{
					{url: "file://" + missing, check: func(t *testing.T) { assertAbsent(t, filepath.Dir(missing)) }},
					{url: "file:///", check: func(*testing.T) {}},
					{url: "file://" + r.repoDir, check: func(t *testing.T) {
						if entries, _ := os.ReadDir(r.repoDir); len(entries) != 0 {
							t.Fatalf("repository directory holds %v", entries)
						}
					}},
				}
			case "minio":
				// An empty prefix, a prefix holding objects but no
				// marker, and a bucket that does not exist.
				if _, err := r.minio.Client().PutObject(t.Context(), &awss3.PutObjectInput{
					Bucket: aws.String(r.bucket), Key: aws.String("stray/notes.txt"), Body: strings.NewReader("x"),
				}); err != nil {
					t.Fatal(err)
				}
				nothingNew := func(t *testing.T) {
					out, err := r.minio.Client().ListObjectsV2(t.Context(), &awss3.ListObjectsV2Input{Bucket: aws.String(r.bucket)})
					if err != nil {
						t.Fatal(err)
					}
					if len(out.Contents) != 1 || *out.Contents[0].Key != "stray/notes.txt" {
						var keys []string
						for _, o := range out.Contents {
							keys = append(keys, *o.Key)
						}
						t.Fatalf("bucket holds %v, want only stray/notes.txt", keys)
					}
				}
				places = []place{{url: "s3://" + r.bucket + "/db2", check: nothingNew}, {url: "s3://" + r.bucket + "/stray", check: nothingNew},
					{url: "s3://no-such-bucket-" + r.bucket[2:] + "/db1", check: nothingNew, noBucket: true}}
			}
			dest := filepath.Join(testenv.Dir(t), "RECOVERYXLOG")
			for _, p := range places {
				for _, tt := range []struct {
					args []string
					code int
				}{
					{[]string{"list"}, 1},
					{[]string{"show", "20261201T000000Z"}, 1},
					{[]string{"dumps"}, 1},
					{[]string{"restore", "--to", "latest", "--pgdata", filepath.Join(testenv.Dir(t), "pgdata")}, 1},
					{[]string{"wal-fetch", "000000010000000000000001", dest}, exitFatal},
					{[]string{"wal-fetch", "00000002.history", dest}, exitFatal},
				} {
					_, stderr, code := r.runEnv([]string{"PITR_REPO=" + p.url, "PITR_RETRY_TIMEOUT=1s"}, tt.args...)
					msg := strings.TrimSpace(stderr)
					if lines := strings.Split(msg, "\n"); len(lines) > 0 {
						msg = lines[len(lines)-1] // after any JSON log lines
					}
					if p.noBucket && tt.args[0] == "wal-fetch" {
						msg = "pitr: no repository at " + p.url + " (" // only the exit status counts here
					}
					if code != tt.code || !strings.HasPrefix(msg, "pitr: ") || !strings.Contains(msg, "no repository at "+p.url+" (") {
						t.Errorf("%v on %s: exit %d, want %d; stderr:\n%s", tt.args, p.url, code, tt.code, stderr)
					}
				}
				p.check(t)
				assertAbsent(t, dest)
			}
		})
	}
}
