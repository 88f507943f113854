package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/internal/config"
)

// substitute does what PostgreSQL does to restore_command before the shell
// runs it (BuildRestoreCommand): %f, %p and %% replaced, any other % kept.
func substitute(cmd, f, p string) string {
	var b strings.Builder
	for i := 0; i < len(cmd); i++ {
		if cmd[i] == '%' && i+1 < len(cmd) {
			switch cmd[i+1] {
			case 'f':
				b.WriteString(f)
				i++
				continue
			case 'p':
				b.WriteString(p)
				i++
				continue
			case '%':
				b.WriteByte('%')
				i++
				continue
			}
		}
		b.WriteByte(cmd[i])
	}
	return b.String()
}

func TestRestoreCommand(t *testing.T) {
	cfg := config.Default()
	cfg.Repo = "s3://bucket/it's 100%"
	cfg.S3Endpoint = "http://127.0.0.1:9000"
	cfg.AgeIdentityFile = "identity.txt" // relative: made absolute
	cfg.AgeRecipients = []string{"age1xyz"}
	cfg.FetchPrefetch = 2
	cfg.PGDSN = config.NewDSN("host=db password=Sup3rS3cret")
	cfg.BackupSchedule = "@hourly"
	cfg.SpoolDir = "/var/spool/pitr" // the archiving server's
	cmd, reads, err := restoreCommand("/opt/my pitr/pitr", cfg)
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	id := filepath.Join(wd, "identity.txt")
	want := `PITR_CONFIG=/dev/null PITR_REPO='s3://bucket/it'\''s 100%%' PITR_S3_ENDPOINT='http://127.0.0.1:9000' PITR_AGE_IDENTITY_FILE='` + id + `' PITR_FETCH_PREFETCH='2' '/opt/my pitr/pitr' wal-fetch %f %p`
	if cmd != want {
		t.Errorf("restore_command:\n got %s\nwant %s", cmd, want)
	}
	if len(reads) != 1 || reads[0] != id {
		t.Errorf("reads %q, want the identity %s", reads, id)
	}
	if strings.Contains(cmd, "Sup3rS3cret") || strings.Contains(cmd, "PG_DSN") {
		t.Errorf("restore_command carries pg_dsn: %s", cmd)
	}

	// What the shell makes of it, after PostgreSQL's substitution, is
	// exactly the settings: a stand-in pitr prints its environment and
	// arguments.
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake pitr")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\nenv | grep '^PITR_' | sort\necho \"args: $*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd, _, err = restoreCommand(fake, cfg)
	if err != nil {
		t.Fatal(err)
	}
	sh := exec.Command("/bin/sh", "-c", substitute(cmd, "000000010000000000000003", "pg_wal/RECOVERYXLOG"))
	sh.Env = []string{"PATH=/usr/bin:/bin", "PITR_CONFIG=/etc/pitr/other.yaml", "PITR_REPO=s3://wrong"}
	out, err := sh.Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	wantOut := "PITR_AGE_IDENTITY_FILE=" + id + "\nPITR_CONFIG=/dev/null\nPITR_FETCH_PREFETCH=2\n" +
		"PITR_REPO=s3://bucket/it's 100%\nPITR_S3_ENDPOINT=http://127.0.0.1:9000\n" +
		"args: wal-fetch 000000010000000000000003 pg_wal/RECOVERYXLOG\n"
	if string(out) != wantOut {
		t.Errorf("the shell ran:\n%s\nwant:\n%s", out, wantOut)
	}
}

func TestRestoreCommandDefaults(t *testing.T) {
	cfg := config.Default()
	cfg.Repo = "file:///var/lib/pitr"
	cmd, reads, err := restoreCommand("/usr/local/bin/pitr", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := `PITR_CONFIG=/dev/null PITR_REPO='file:///var/lib/pitr' '/usr/local/bin/pitr' wal-fetch %f %p`; cmd != want || len(reads) != 0 {
		t.Errorf("got %s, %q; want %s", cmd, reads, want)
	}
}
