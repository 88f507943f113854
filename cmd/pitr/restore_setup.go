package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/repo"
)

// notForWALFetch are the settings wal-fetch (and the wal-prefetch it
// starts) never reads: they stay out of restore_command. A setting not
// named here is passed on when it differs from its default, so a new
// storage setting reaches wal-fetch without a change here. spool_dir is
// the archiving server's: a restored server prefetches into its own
// pg_wal/pitr, which its user can write and no other restore shares.
var notForWALFetch = map[string]bool{
	"spool_dir":        true,
	"s3_storage_class": true, "s3_part_size_mib": true,
	"age_recipients": true, "age_recipients_file": true, "zstd_level": true, "compression": true, "push_concurrency": true, "push_resident": true,
	"backup_wal_timeout": true, "backup_stale_after": true,
	"stream_slot": true, "stream_ship_interval": true, "stream_synchronous": true,
	"daemon_stream": true, "backup_schedule": true, "dump_databases": true, "dump_schedule": true, "files_schedule": true,
	"daemon_retry_backoff": true, "metrics_addr": true,
}

// restoreCommand returns the restore_command for a restored server: this
// pitr's wal-fetch, with the settings in effect now that wal-fetch reads
// given as shell-quoted PITR_* assignments in front of it, e.g.
//
//	PITR_CONFIG=/dev/null PITR_REPO='s3://b/p' PITR_AGE_IDENTITY_FILE='/etc/pitr/identity.txt' '/usr/local/bin/pitr' wal-fetch %f %p
//
// It is self-contained: PITR_CONFIG=/dev/null keeps a config file at the
// default path (or the server's PITR_CONFIG) from changing what it reads,
// and nothing is written into the data directory but postgresql.auto.conf
// and recovery.signal, which pg_verifybackup ignores. No secret is in it:
// pg_dsn is not needed and left out (a SecretString or DSN never is), and
// S3 credentials come from the server's environment, as for
// archive_command. Relative paths become absolute, since the server runs
// it in the data directory. It also returns the files wal-fetch will read
// (the identity file), for the preflight.
func restoreCommand(self string, cfg config.Config) (cmd string, reads []string, err error) {
	changed := cfg.Changed()
	if p := changed["age_identity_file"]; p != "" {
		if p, err = filepath.Abs(p); err != nil {
			return "", nil, fmt.Errorf("age_identity_file: %w", err)
		}
		changed["age_identity_file"] = p
		reads = append(reads, p)
	}
	parts := []string{"PITR_CONFIG=/dev/null"}
	for _, s := range config.Settings() { // declaration order: stable and readable
		v, ok := changed[s.Key]
		if !ok || notForWALFetch[s.Key] {
			continue
		}
		parts = append(parts, s.Env+"="+restoreQuote(v))
	}
	parts = append(parts, restoreQuote(self), "wal-fetch", "%f", "%p")
	return strings.Join(parts, " "), reads, nil
}

// restoreQuote quotes a value for restore_command: for the shell the server
// runs it with, and with "%" doubled, since the server replaces %f, %p, %r
// and %% in it before the shell sees it.
func restoreQuote(s string) string {
	return strings.ReplaceAll(shellQuote(s), "%", "%%")
}

// restoreSource is what every restoring command (restore, app restore, a
// restore drill) opens first: the repository with the identity, this
// binary and the restore_command that runs it as wal-fetch.
type restoreSource struct {
	repo    *repo.Repo
	self    string   // this executable, absolute
	command string   // restore_command
	reads   []string // files the server's user must be able to read for it
}

// openRestoreSource opens the repository for a restore; what names the
// command in the error when the identity is missing ("restoring", "a
// restore drill needs").
func (e *env) openRestoreSource(ctx context.Context, what string) (restoreSource, error) {
	r, err := e.Repo(ctx, true)
	if err != nil {
		return restoreSource{}, err
	}
	if codec := r.Codec(); codec.Encrypt && len(codec.Identities) == 0 {
		return restoreSource{}, fmt.Errorf("%w: %s the age identity file: set age_identity_file or PITR_AGE_IDENTITY_FILE", errUsage, what)
	}
	self, err := os.Executable()
	if err != nil {
		return restoreSource{}, err
	}
	// restore_command carries the settings wal-fetch needs, no secrets;
	// nothing of ours goes into the data directory.
	cmd, reads, err := restoreCommand(self, e.cfg)
	if err != nil {
		return restoreSource{}, err
	}
	return restoreSource{repo: r, self: self, command: cmd, reads: reads}, nil
}
