// Package config loads pitr's settings: defaults, then a YAML file, then
// PITR_* environment variables; the command line applies flags last. Every
// top-level scalar setting has a YAML key and an environment variable named
// PITR_<KEY>; sections (offsite:, files:, retention:) are read from the
// file only. Every setting is documented in its struct tag (the README's
// reference is generated from the same tags by `pitr config --doc`).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// DefaultFile is read when neither --config nor PITR_CONFIG names a file.
const DefaultFile = "/etc/pitr/pitr.yaml"

// Config is every setting pitr has.
type Config struct {
	Repo string `yaml:"repo" doc:"repository URL: s3://bucket/prefix or file:///absolute/path"`

	S3Endpoint       string `yaml:"s3_endpoint" doc:"S3 endpoint URL for MinIO and other S3-compatible stores, e.g. http://127.0.0.1:9000"`
	S3ForcePathStyle *bool  `yaml:"s3_force_path_style" doc:"path-style bucket addressing (default: on when s3_endpoint is set)"`
	S3Region         string `yaml:"s3_region" doc:"S3 region (default: AWS_REGION, else us-east-1)"`
	S3SSE            string `yaml:"s3_sse" doc:"server-side encryption: AES256 or aws:kms (default: none)"`
	S3SSEKMSKeyID    string `yaml:"s3_sse_kms_key_id" doc:"KMS key ID for s3_sse aws:kms"`
	S3StorageClass   string `yaml:"s3_storage_class" doc:"S3 storage class, e.g. STANDARD_IA (default: the bucket's)"`
	S3PartSizeMiB    int    `yaml:"s3_part_size_mib" default:"16" doc:"multipart upload part size in MiB (5..5120); memory per upload is about (s3_concurrency+1) parts"`
	S3Concurrency    int    `yaml:"s3_concurrency" default:"4" doc:"parts of one large upload sent in parallel"`

	S3NoConditionalWrites *bool `yaml:"s3_no_conditional_writes" default:"false" doc:"for S3-compatible stores that ignore If-None-Match on writes (which would silently overwrite): objects that must never be replaced are then written after a HEAD check for the key, which two writers can race"`

	// Immutable storage (issue 11, lock): S3 Object Lock on upload; per
	// repository, so Repository has both keys too.
	S3ObjectLock     string `yaml:"s3_object_lock" doc:"S3 Object Lock on every upload: governance or compliance (the bucket must be created with Object Lock); empty: off. See docs/STORAGE.md"`
	S3ObjectLockDays int    `yaml:"s3_object_lock_days" doc:"days each upload stays locked with s3_object_lock; 0: from retention.backups, the longest of keep_within, keep_daily days, keep_weekly*7, keep_monthly*31 and keep_yearly*366 days, at least 1; pitr retain extends the locks of what it keeps"`

	Encryption        string   `yaml:"encryption" default:"age" doc:"age, or none to store objects unencrypted (logs a warning on every run)"`
	AgeRecipients     []string `yaml:"age_recipients" doc:"age public keys (age1...) to encrypt to, comma-separated"`
	AgeRecipientsFile string   `yaml:"age_recipients_file" doc:"file with age public keys, one per line"`
	AgeIdentityFile   string   `yaml:"age_identity_file" doc:"age identity (secret key) file; needed only to restore"`
	ZstdLevel         int      `yaml:"zstd_level" default:"1" doc:"zstd level 1 (fastest) to 4 (best)"`
	// Codec (issue 13): the codec for new objects; readers recognise every
	// object's codec by its magic bytes, so changing it needs nothing else.
	Compression string `yaml:"compression" default:"s2" doc:"codec for new objects: s2 (least CPU), zstd (about 0.7x the bytes of s2 on WAL, 2.5x the CPU) or lz4; every object is read whichever codec wrote it; zstd_level applies to zstd"`

	PushConcurrency int           `yaml:"push_concurrency" default:"4" doc:"files one wal-push uploads at once (the one asked for plus look-ahead at other .ready files); 1 disables look-ahead"`
	FetchPrefetch   int           `yaml:"fetch_prefetch" default:"8" doc:"segments wal-fetch prefetches in the background; 0 disables"`
	PushResident    *bool         `yaml:"push_resident" default:"true" doc:"when no pitr daemon answers on socket, wal-push starts a resident pusher in the spool (one per data directory) and hands later calls to it: a warm store connection, and look-ahead that runs while the archiver starts the next call; it answers once the file is durably stored, and exits 20 s idle or with the archiver; false pushes every file in-process"`
	SpoolDir        string        `yaml:"spool_dir" doc:"directory for look-ahead acknowledgements and prefetched WAL (default: pg_wal/pitr)"`
	RetryTimeout    time.Duration `yaml:"retry_timeout" default:"1m" doc:"the most one wal-push or wal-fetch takes in all, retries of transient storage errors included: then it fails (PostgreSQL retries archive_command later; wal-fetch exits 126 and recovery stops), so a stalled store cannot hold up archiving or recovery; 0: no total, wal-fetch tries once. Raise it for WAL segments over 64 MiB on slow links"`
	StorageTimeout  time.Duration `yaml:"storage_timeout" default:"30s" doc:"the longest any storage request waits with nothing moving: to connect, for the TLS handshake, for the response to start, and with an upload or download that stalls; the attempt then fails and is retried. Not a cap on transfers that keep moving (a base backup part may take an hour)"`

	// Bandwidth limits (issue 11 item 8): one pair per process, shared by
	// every repository and transfer (storage/limit).
	LimitUpload   ByteRate `yaml:"limit_upload" default:"0" doc:"the most object bytes per second this process sends to storage, all repositories and transfers together (the daemon's jobs too): 50MiB, 1.5MB, 800KiB or plain bytes; 0 is unlimited; --limit-upload overrides it"`
	LimitDownload ByteRate `yaml:"limit_download" default:"0" doc:"the most object bytes per second this process reads from storage, like limit_upload; --limit-download overrides it"`

	PGDSN            DSN           `yaml:"pg_dsn" doc:"libpq connection string for backups and dumps, e.g. 'host=/run/postgresql user=postgres' (default: PGHOST, PGPORT, PGUSER, PGPASSWORD); printed with its password redacted"`
	BackupWALTimeout time.Duration `yaml:"backup_wal_timeout" default:"5m" doc:"how long pitr backup waits for archive_command or wal-receive to store the WAL the backup needs"`
	BackupStaleAfter time.Duration `yaml:"backup_stale_after" default:"24h" doc:"pitr backup removes leftovers of interrupted backups older than this; 0 keeps them"`
	// Issue 13, direct part: read the data directory instead of BASE_BACKUP.
	BackupMethod string `yaml:"backup_method" default:"auto" doc:"how pitr backup reads the cluster: direct reads the data directory itself between pg_backup_start and pg_backup_stop (pitr must run on the database host as a user that can read it); stream uses BASE_BACKUP over the replication protocol; auto uses direct when data_directory is readable here and its pg_control holds the server's system identifier, else stream"`

	StreamSlot         string        `yaml:"stream_slot" default:"pitr" doc:"physical replication slot wal-receive uses (created if missing)"`
	StreamShipInterval time.Duration `yaml:"stream_ship_interval" default:"1s" doc:"how often wal-receive stores the unfinished segment's new bytes: the most WAL a lost server can take with it"`
	StreamSynchronous  *bool         `yaml:"stream_synchronous" doc:"store every flush at once and report it, for synchronous_standby_names = 'pitr' (RPO zero; commits wait for object storage)"`

	// Commit grouping with --synchronous (issue 13, stream helper).
	StreamGroupDelay time.Duration `yaml:"stream_group_delay" default:"5ms" doc:"with stream_synchronous, how long wal-receive waits for more flushes before storing them as one chunk (each commit then waits up to this much longer, and the store gets far fewer objects); 0 stores each flush at once"`

	DaemonStream       *bool         `yaml:"daemon_stream" default:"true" doc:"pitr daemon runs wal-receive (turn off when archive_command alone ships WAL)"`
	BackupSchedule     string        `yaml:"backup_schedule" default:"0 2 * * *" doc:"when pitr daemon takes base backups, local time: cron (5 fields, or 6 with seconds first) or @daily, @every 6h...; empty disables"`
	DumpDatabases      []string      `yaml:"dump_databases" doc:"databases pitr daemon dumps with pg_dump on dump_schedule, comma-separated"`
	DumpSchedule       string        `yaml:"dump_schedule" default:"30 2 * * *" doc:"when pitr daemon dumps dump_databases, like backup_schedule; empty disables"`
	FilesSchedule      string        `yaml:"files_schedule" default:"0 3 * * *" doc:"when pitr daemon snapshots the file sets (files:) that have no schedule of their own, like backup_schedule; empty disables those"`
	FilesDedupKey      string        `yaml:"files_dedup_key" doc:"the dedup key file: 32 random bytes (hex) that file-snapshot chunk IDs are keyed with, created 0600 on first use; every host snapshotting into the repository must hold a copy of the same file, restores do not need it (default: dedup.key beside the config file, else /var/lib/pitr/dedup.key)"`
	DaemonRetryBackoff time.Duration `yaml:"daemon_retry_backoff" default:"1m" doc:"first wait before pitr daemon retries a failed backup or dump; doubles each time up to 1h (or this, if longer), and never past the next scheduled run"`
	MetricsAddr        string        `yaml:"metrics_addr" default:"127.0.0.1:9187" doc:"where pitr daemon serves /metrics (Prometheus) and /healthz; empty disables"`
	StoreMaxOutage     time.Duration `yaml:"store_max_outage" default:"1m" doc:"how long pitr daemon's storage requests may keep failing, or streamed WAL wait to be stored, before /healthz answers 503"`

	// The wal-push socket (issue 13, pushd part): pitr daemon pushes WAL for
	// wal-push on its warm store client.
	Socket string `yaml:"socket" default:"/run/pitr/pitr.sock" doc:"unix socket pitr daemon listens on (mode 0600) and pitr wal-push tries first: the daemon pushes the segment and answers once it is durably stored; wal-push pushes in-process when no daemon answers, or it serves another repository; off disables"`

	// Retention (issue 11, retain): the daemon runs retain after each
	// successful scheduled job.
	DaemonRetain *bool `yaml:"daemon_retain" default:"true" doc:"pitr daemon runs pitr retain (the retention: policies) after each successful scheduled backup, dump or file snapshot; a failure is logged and counted in pitr_retain_failures_total"`

	// Roles and globals (issue 12 item 4, doctor helper): every dump run
	// also stores pg_dumpall --globals-only.
	DumpGlobals *bool `yaml:"dump_globals" default:"true" doc:"pitr dump and the daemon's dumps also store the cluster's roles (with password hashes) and tablespaces, pg_dumpall --globals-only, for restore-dump --globals; needs a superuser; false skips them"`

	LogLevel  string `yaml:"log_level" default:"info" doc:"debug, info, warn or error"`
	LogFormat string `yaml:"log_format" default:"auto" doc:"auto (console on a terminal, else JSON), console or json"`

	// Sections: set in the config file only, no PITR_* variables (see
	// sections.go).

	Offsite   *Repository `yaml:"offsite" doc:"a second repository, off-site, for copies of what repo holds; its keys are those of the top-level repository settings, unset ones with their defaults (absent: none)"`
	Files     []FileSet   `yaml:"files" doc:"file sets: directories of the application (uploads) or its keys and certificates (secrets), snapshotted on their schedule"`
	Retention Retention   `yaml:"retention" doc:"how long to keep what is in the repository, one policy per kind; a kind without a policy, or with every keep_ setting 0, keeps everything"`

	// Monitoring (issue 11: pitr check, pitr status, the daemon's metrics
	// of monitored repositories; see monitor.go).
	Check   *Check      `yaml:"check" doc:"thresholds of pitr check (absent: the defaults); each flag --warn-X/--max-X overrides one"`
	Monitor []Monitored `yaml:"monitor" doc:"repositories pitr status, pitr check and pitr daemon watch (other clusters', on a monitoring host); each entry's unset repository keys are the top-level settings'; a daemon with only monitor: and no repo runs only that"`

	// Restore drills (issue 11 item 3: pitr verify --restore-drill), see drill.go.
	Drill *Drill `yaml:"drill" doc:"restore drills (pitr verify --restore-drill, and pitr daemon on drill.schedule): SQL checks on the restored copy (absent: no checks, no scheduled drill)"`

	// Applications (issue 12, app part: pitr app backup/list/show), see apps.go.
	Apps []App `yaml:"apps" doc:"applications: a database point, file sets, dumps, hooks and version records backed up together to one consistent app point (pitr app backup NAME)"`
}

// Setting describes one setting for documentation and flag binding. Env
// is empty for the keys of sections, which have no variables.
type Setting struct {
	Key, Env, Doc, Default string
}

// Settings lists every top-level scalar setting (each has a PITR_*
// variable) in declaration order; Sections lists the rest.
func Settings() []Setting {
	t := reflect.TypeOf(Config{})
	out := make([]Setting, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if isSection(f.Type) {
			continue
		}
		key := f.Tag.Get("yaml")
		out = append(out, Setting{Key: key, Env: EnvName(key), Doc: f.Tag.Get("doc"), Default: f.Tag.Get("default")})
	}
	return out
}

// EnvName returns the environment variable of a setting.
func EnvName(key string) string { return "PITR_" + strings.ToUpper(key) }

// Default returns the built-in defaults: no sections (no offsite
// repository, no file sets, no retention policy).
func Default() Config {
	var c Config
	setDefaults(reflect.ValueOf(&c).Elem())
	return c
}

// setDefaults sets the fields of struct v that have a default tag; the
// decoder calls it for every section it creates, so a file set's kind is
// "uploads" unless the file says otherwise.
func setDefaults(v reflect.Value) {
	for i := 0; i < v.NumField(); i++ {
		if d := v.Type().Field(i).Tag.Get("default"); d != "" {
			if err := setString(v.Field(i), d); err != nil {
				panic(err)
			}
		}
	}
}

// Load returns defaults overridden by the YAML file (if path is not empty)
// and then by PITR_* variables from lookup (os.LookupEnv in production).
// Unknown keys in the file are errors: a typo must not silently fall back
// to a default. So is a variable named after a section or one of its keys
// (PITR_OFFSITE, PITR_OFFSITE_REPO, PITR_FILES, PITR_RETENTION_...):
// sections are read from the file only, and the variable would otherwise
// be ignored while looking as if it set something.
func Load(path string, lookup func(string) (string, bool)) (Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return c, fmt.Errorf("config: %w", err)
		}
		if err := decodeFile(b, &c); err != nil {
			return c, fmt.Errorf("config %s %w", path, err)
		}
	}
	v := reflect.ValueOf(&c).Elem()
	for i := 0; i < v.NumField(); i++ {
		key := v.Type().Field(i).Tag.Get("yaml")
		if isSection(v.Type().Field(i).Type) {
			if err := refuseSectionEnv(v.Type().Field(i).Type, key, lookup); err != nil {
				return c, err
			}
			continue
		}
		if s, ok := lookup(EnvName(key)); ok {
			if err := setString(v.Field(i), s); err != nil {
				return c, fmt.Errorf("%s: %w", EnvName(key), err)
			}
		}
	}
	return c, nil
}

// Set applies one top-level scalar setting by YAML key from a string
// (used for flags).
func (c *Config) Set(key, value string) error {
	v := reflect.ValueOf(c).Elem()
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).Tag.Get("yaml") == key {
			if isSection(v.Type().Field(i).Type) {
				return fmt.Errorf("%s is a section: set it in the config file", key)
			}
			return setString(v.Field(i), value)
		}
	}
	return fmt.Errorf("unknown setting %q", key)
}

func setString(f reflect.Value, s string) error {
	switch f.Interface().(type) {
	case string, FileSetKind:
		f.SetString(strings.TrimSpace(s))
	case SecretString:
		f.Set(reflect.ValueOf(NewSecretString(strings.TrimSpace(s))))
	case DSN:
		f.Set(reflect.ValueOf(NewDSN(strings.TrimSpace(s))))
	case int:
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
		f.SetInt(int64(n))
	case *bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not true or false", s)
		}
		f.Set(reflect.ValueOf(&b))
	case ByteRate:
		r, err := ParseByteRate(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(r))
	case time.Duration:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("%q is not a duration like 30s or 5m", s)
		}
		f.SetInt(int64(d))
	case []string:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		f.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported setting type %s", f.Type())
	}
	return nil
}

// Validate checks values and combinations; it returns the first problem as
// one line naming the setting.
func (c *Config) Validate() error {
	if err := c.Primary().validate(""); err != nil {
		return err
	}
	switch {
	case c.Encryption != "age" && c.Encryption != "none":
		return fmt.Errorf("encryption %q: want age or none", c.Encryption)
	case c.ZstdLevel < 1 || c.ZstdLevel > 4:
		return fmt.Errorf("zstd_level %d: want 1 to 4", c.ZstdLevel)
	case c.Compression != "zstd" && c.Compression != "lz4" && c.Compression != "s2":
		return fmt.Errorf("compression %q: want zstd, lz4 or s2", c.Compression)
	case c.PushConcurrency < 1 || c.PushConcurrency > 64:
		return fmt.Errorf("push_concurrency %d: want 1 to 64", c.PushConcurrency)
	case c.FetchPrefetch < 0 || c.FetchPrefetch > 256:
		return fmt.Errorf("fetch_prefetch %d: want 0 to 256", c.FetchPrefetch)
	case c.S3PartSizeMiB < 5 || c.S3PartSizeMiB > 5120:
		return fmt.Errorf("s3_part_size_mib %d: want 5 to 5120", c.S3PartSizeMiB)
	case c.S3Concurrency < 1 || c.S3Concurrency > 64:
		return fmt.Errorf("s3_concurrency %d: want 1 to 64", c.S3Concurrency)
	case c.RetryTimeout < 0:
		return fmt.Errorf("retry_timeout %s: must not be negative", c.RetryTimeout)
	case c.StorageTimeout <= 0:
		return fmt.Errorf("storage_timeout %s: want a positive duration such as 30s", c.StorageTimeout)
	case c.StreamShipInterval < 10*time.Millisecond || c.StreamShipInterval > time.Hour:
		return fmt.Errorf("stream_ship_interval %s: want 10ms to 1h", c.StreamShipInterval)
	case c.StreamGroupDelay < 0 || c.StreamGroupDelay > time.Second:
		return fmt.Errorf("stream_group_delay %s: want 0 to 1s", c.StreamGroupDelay)
	case c.BackupMethod != "auto" && c.BackupMethod != "direct" && c.BackupMethod != "stream":
		return fmt.Errorf("backup_method %q: want auto, direct or stream", c.BackupMethod)
	case c.Socket != "off" && (!strings.HasPrefix(c.Socket, "/") || len(c.Socket) > 107): // pushd part
		return fmt.Errorf("socket %q: want an absolute path of at most 107 bytes, or off", c.Socket)
	case !validSlotName(c.StreamSlot):
		return fmt.Errorf("stream_slot %q: want 1 to 63 lower-case letters, digits and underscores", c.StreamSlot)
	}
	if err := c.validateDaemon(); err != nil {
		return err
	}
	if err := c.Drill.validate(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "auto", "console", "json":
	default:
		return fmt.Errorf("log_format %q: want auto, console or json", c.LogFormat)
	}
	return c.validateSections()
}

// Redacted returns the settings as "key=value" lines for `pitr config`,
// without secrets: a SecretString prints "redacted", pg_dsn its
// connection string with the password redacted; the other settings hold
// file names, never keys. The top-level scalars come first, sorted, then
// the sections in dotted form, in declaration order (offsite.repo=...,
// files[0].paths=/a,/b, retention.backups.keep_daily=7); an absent section
// prints nothing.
func (c *Config) Redacted() []string {
	v := reflect.ValueOf(c).Elem()
	var out, sections []string
	for i := 0; i < v.NumField(); i++ {
		key := v.Type().Field(i).Tag.Get("yaml")
		if isSection(v.Type().Field(i).Type) {
			sections = appendSection(sections, v.Field(i), key)
			continue
		}
		out = append(out, key+"="+printValue(v.Field(i)))
	}
	sort.Strings(out)
	return append(out, sections...)
}

// printValue formats a scalar for Redacted; secrets print through their
// own redacting Format.
func printValue(f reflect.Value) string {
	switch x := f.Interface().(type) {
	case *bool:
		if x == nil {
			return "(auto)"
		}
		return strconv.FormatBool(*x)
	case []string:
		return strings.Join(x, ",")
	case map[string][]string: // apps[].versions: name=argv;...
		names := make([]string, 0, len(x))
		for n := range x {
			names = append(names, n)
		}
		sort.Strings(names)
		for i, n := range names {
			names[i] = n + "=" + strings.Join(x[n], " ")
		}
		return strings.Join(names, ";")
	}
	return fmt.Sprintf("%v", f.Interface())
}

// Changed returns the settings that differ from Default(), key -> value in
// the form Load reads from PITR_* variables. Secrets (SecretString, DSN)
// are left out: they are never passed on.
func (c *Config) Changed() map[string]string {
	def := Default()
	v, dv := reflect.ValueOf(c).Elem(), reflect.ValueOf(&def).Elem()
	out := map[string]string{}
	for i := 0; i < v.NumField(); i++ {
		if isSection(v.Type().Field(i).Type) {
			continue // no variables: a child process reads them from the file
		}
		s, ok := envValue(v.Field(i))
		if d, _ := envValue(dv.Field(i)); ok && s != d {
			out[v.Type().Field(i).Tag.Get("yaml")] = s
		}
	}
	return out
}

// envValue is the inverse of setString; ok is false for secrets and for
// an unset *bool.
func envValue(f reflect.Value) (string, bool) {
	switch x := f.Interface().(type) {
	case string:
		return x, true
	case int:
		return strconv.Itoa(x), true
	case *bool:
		if x == nil {
			return "", false
		}
		return strconv.FormatBool(*x), true
	case time.Duration:
		return x.String(), true
	case ByteRate:
		return x.String(), true
	case []string:
		return strings.Join(x, ","), true
	}
	return "", false
}

// validSlotName applies PostgreSQL's rule for replication slot names.
func validSlotName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// validateDaemon checks the settings of pitr daemon.
func (c *Config) validateDaemon() error {
	for _, s := range []struct{ key, spec string }{{"backup_schedule", c.BackupSchedule}, {"dump_schedule", c.DumpSchedule}, {"files_schedule", c.FilesSchedule}} {
		if _, err := ParseSchedule(s.spec); err != nil {
			return fmt.Errorf("%s %q: %v", s.key, s.spec, err)
		}
	}
	for _, db := range c.DumpDatabases {
		if len(db) > 63 {
			return fmt.Errorf("dump_databases: %q is longer than 63 bytes", db)
		}
	}
	if c.DaemonRetryBackoff < time.Second || c.DaemonRetryBackoff > 24*time.Hour {
		return fmt.Errorf("daemon_retry_backoff %s: want 1s to 24h", c.DaemonRetryBackoff)
	}
	if c.StoreMaxOutage < time.Second || c.StoreMaxOutage > 24*time.Hour {
		return fmt.Errorf("store_max_outage %s: want 1s to 24h", c.StoreMaxOutage)
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			return fmt.Errorf("metrics_addr %q: want host:port, e.g. 127.0.0.1:9187", c.MetricsAddr)
		}
	}
	return nil
}

// scheduleParser reads standard 5-field cron, an optional leading seconds
// field, and descriptors (@daily, @every 1h). robfig/cron is used only to
// compute run times; pitr daemon runs the jobs itself.
var scheduleParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a backup_schedule, dump_schedule, files_schedule or
// a file set's schedule; an empty spec (disabled) gives nil. Times are in
// the local time zone unless the spec starts with CRON_TZ=.
func ParseSchedule(spec string) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	s, err := scheduleParser.Parse(spec)
	if err != nil {
		return nil, err
	}
	// A valid spec that never fires (30 February) gives the zero time.
	if s.Next(time.Now()).IsZero() {
		return nil, errors.New("never due")
	}
	return s, nil
}

// decodeFile reads the first YAML document of b into c. Its errors are one
// line, "line N: ...", naming the setting and what it wants rather than
// yaml.v3's Go types (and all of them, one per line).
func decodeFile(b []byte, c *Config) error {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(b)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file
		}
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if !strings.HasPrefix(msg, "line ") {
			msg = "line 1: " + msg
		}
		return errors.New(strings.ReplaceAll(msg, "\n", "; "))
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return decodeNode(doc.Content[0], reflect.ValueOf(c).Elem(), "")
}

// decodeNode sets v from n. Structs are walked here, key by key, so that
// an unknown or repeated key names itself and its line, in sections too;
// everything else is yaml.v3's, with its error replaced by what the
// setting wants.
func decodeNode(n *yaml.Node, v reflect.Value, key string) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Tag == "!!null" {
		if v.Kind() == reflect.Pointer || v.Kind() == reflect.Slice || v.Kind() == reflect.Map {
			v.Set(reflect.Zero(v.Type())) // as yaml.v3 does
		}
		return nil // other kinds keep their default
	}
	if v.Kind() == reflect.Struct && !v.Addr().Type().Implements(reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()) {
		if n.Kind != yaml.MappingNode {
			if key == "" {
				return fmt.Errorf("line %d: want settings as \"key: value\" lines, got %s", n.Line, describeNode(n))
			}
			return fmt.Errorf("line %d: %s: want a section of settings, got %s", n.Line, key, describeNode(n))
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			name := k.Value
			if key != "" {
				name = key + "." + k.Value
			}
			if first, ok := seen[k.Value]; ok {
				return fmt.Errorf("line %d: %s is set twice (first on line %d)", k.Line, name, first)
			}
			seen[k.Value] = k.Line
			f, ok := fieldByKey(v, k.Value)
			if !ok {
				return fmt.Errorf("line %d: unknown setting %q (see 'pitr config --doc')", k.Line, name)
			}
			if err := decodeNode(val, f, name); err != nil {
				return err
			}
		}
		return nil
	}
	if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct {
		if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("line %d: %s: want a list, got %s", n.Line, key, describeNode(n))
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, el := range n.Content {
			setDefaults(out.Index(i))
			if err := decodeNode(el, out.Index(i), fmt.Sprintf("%s[%d]", key, i)); err != nil {
				return err
			}
		}
		v.Set(out)
		return nil
	}
	if v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.Struct {
		p := reflect.New(v.Type().Elem())
		setDefaults(p.Elem())
		if err := decodeNode(n, p.Elem(), key); err != nil {
			return err
		}
		v.Set(p)
		return nil
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		return fmt.Errorf("line %d: %s: want %s, got %s", n.Line, key, describeType(v.Type()), describeNode(n))
	}
	return nil
}

// fieldByKey finds the field of struct v whose yaml tag is key.
func fieldByKey(v reflect.Value, key string) (reflect.Value, bool) {
	for i := 0; i < v.NumField(); i++ {
		tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if tag == key && tag != "" && tag != "-" {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// describeType says what a setting of type t wants, in words.
func describeType(t reflect.Type) string {
	switch t {
	case reflect.TypeOf(time.Duration(0)):
		return "a duration like 30s or 5m"
	case reflect.TypeOf(ByteRate(0)):
		return "a rate like 50MiB, 1.5MB or 800KiB"
	case reflect.TypeOf([]string(nil)):
		return "a list of strings"
	case reflect.TypeOf(SecretString{}), reflect.TypeOf(DSN{}):
		return "a string"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return describeType(t.Elem())
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return "a value of another kind"
}

// describeNode says what the file holds, for an error.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return strconv.Quote(n.Value)
}
