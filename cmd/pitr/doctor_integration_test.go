//go:build integration

package main

import (
	"os"
	"strings"
	"testing"
)

// doctorEnv runs doctor against c, archiving only (no streaming).
func doctorEnv(c interface{ DSN(string) string }) []string {
	return []string{"PITR_PG_DSN=" + c.DSN("postgres"), "PITR_DAEMON_STREAM=false"}
}

// TestDoctor: a correct setup (archive_command = pitr wal-push, MinIO)
// passes every check; a broken archive_command and a local repository the
// server's user cannot write are each named, with exit 1.
func TestDoctor(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		r := newRig(t, "minio")
		c := r.cluster(nil)
		out, stderr, code := r.runEnv(doctorEnv(c), "doctor")
		t.Logf("doctor:\n%s", out)
		if code != 0 || strings.Contains(out, "FAIL") {
			t.Fatalf("doctor on a correct setup: exit %d\n%s%s", code, out, stderr)
		}
		for _, want := range []string{"ok   archive: segment", "ok   repository cluster:", "ok   identity:", "ok   clock:", "ok   repository writable:"} {
			if !strings.Contains(out, want) {
				t.Errorf("doctor output lacks %q", want)
			}
		}

		// Streaming: no slot and max_slot_wal_keep_size -1 are both named;
		// then a slot and a limit pass.
		stream := append(doctorEnv(c), "PITR_DAEMON_STREAM=true", "PITR_STREAM_SLOT=pitr_doctor")
		out, _, code = r.runEnv(stream, "doctor")
		t.Logf("doctor, streaming:\n%s", out)
		if code != 1 || !strings.Contains(out, "FAIL replication slot: slot pitr_doctor does not exist") ||
			!strings.Contains(out, "FAIL max_slot_wal_keep_size: max_slot_wal_keep_size is -1") {
			t.Fatalf("doctor streaming without a slot: exit %d\n%s", code, out)
		}
		psql(t, c, "postgres", `SELECT pg_create_physical_replication_slot('pitr_doctor', true)`)
		psql(t, c, "postgres", `ALTER SYSTEM SET max_slot_wal_keep_size = '1GB'`)
		psql(t, c, "postgres", `SELECT pg_reload_conf()`)
		out, _, code = r.runEnv(stream, "doctor")
		if code != 0 || !strings.Contains(out, "ok   replication slot: slot pitr_doctor exists, inactive") {
			t.Fatalf("doctor streaming with a slot: exit %d\n%s", code, out)
		}
	})
	t.Run("archive_command false", func(t *testing.T) {
		r := newRig(t, "minio")
		c := r.cluster(map[string]string{"archive_command": "false"})
		out, stderr, code := r.runEnv(doctorEnv(c), "doctor", "--timeout", "30s")
		t.Logf("doctor:\n%s", out)
		if code != 1 || !strings.Contains(out, "FAIL archive: archive_command failed") {
			t.Fatalf("doctor with archive_command = false: exit %d\n%s%s", code, out, stderr)
		}
	})
	t.Run("repository not writable", func(t *testing.T) {
		r := newRig(t, "local")
		c := r.cluster(nil)
		if err := os.Chown(r.repoDir, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(r.repoDir, 0o700); err != nil {
			t.Fatal(err)
		}
		out, stderr, code := r.runEnv(doctorEnv(c), "doctor", "--timeout", "30s")
		t.Logf("doctor:\n%s", out)
		if code != 1 || !strings.Contains(out, "FAIL repository writable: postgres (uid") || !strings.Contains(out, "cannot write "+r.repoDir) {
			t.Fatalf("doctor with a root-owned 0700 repository: exit %d\n%s%s", code, out, stderr)
		}
	})
}
