package config

import (
	"fmt"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Sections are the settings a flat list of PITR_* variables cannot hold:
// a second repository, lists of file sets, retention policies. They are
// read from the config file only; Load refuses a variable named after one
// of them rather than ignore it.

// Repository is where one repository is and how to reach it. The primary
// repository's settings are Config's top-level keys (see Config.Primary);
// an off-site one's are the offsite: section, with the same keys. The
// transfer settings (s3_part_size_mib, s3_concurrency, storage_timeout)
// stay top-level: they are the process's, shared by every repository.
//
// Its fields document themselves through the top-level settings of the
// same key (see Sections); a key here that is not a top-level setting too
// fails TestPrimaryHasEveryRepositoryKey.
type Repository struct {
	Repo                  string `yaml:"repo"`
	S3Endpoint            string `yaml:"s3_endpoint"`
	S3ForcePathStyle      *bool  `yaml:"s3_force_path_style"`
	S3Region              string `yaml:"s3_region"`
	S3SSE                 string `yaml:"s3_sse"`
	S3SSEKMSKeyID         string `yaml:"s3_sse_kms_key_id"`
	S3StorageClass        string `yaml:"s3_storage_class"`
	S3NoConditionalWrites *bool  `yaml:"s3_no_conditional_writes" default:"false"`
	S3ObjectLock          string `yaml:"s3_object_lock"`
	S3ObjectLockDays      int    `yaml:"s3_object_lock_days"`
}

// Primary returns the primary repository's settings (the top-level repo
// and s3_* keys), in the form Offsite has, so that both open the same way.
func (c *Config) Primary() Repository {
	return Repository{
		Repo:                  c.Repo,
		S3Endpoint:            c.S3Endpoint,
		S3ForcePathStyle:      c.S3ForcePathStyle,
		S3Region:              c.S3Region,
		S3SSE:                 c.S3SSE,
		S3SSEKMSKeyID:         c.S3SSEKMSKeyID,
		S3StorageClass:        c.S3StorageClass,
		S3NoConditionalWrites: c.S3NoConditionalWrites,
		S3ObjectLock:          c.S3ObjectLock,
		S3ObjectLockDays:      c.S3ObjectLockDays,
	}
}

// FileSetKind says what a file set holds, and so how it is stored.
type FileSetKind string

const (
	// FilesUploads are the application's files: uploads, attachments,
	// generated media.
	FilesUploads FileSetKind = "uploads"
	// FilesSecrets are keys, certificates and credentials; they are never
	// stored unencrypted, so encryption: none refuses them.
	FilesSecrets FileSetKind = "secrets"
)

// FileSet is one entry of files:, a set of paths snapshotted together.
type FileSet struct {
	Name     string      `yaml:"name" doc:"required, unique: lower-case letters, digits, _ and -, starting with a letter or digit; names the set's snapshots"`
	Kind     FileSetKind `yaml:"kind" default:"uploads" doc:"uploads (the application's files), or secrets (keys, certificates: refused with encryption: none)"`
	Paths    []string    `yaml:"paths" doc:"required: absolute paths of the directories and files in the set"`
	Exclude  []string    `yaml:"exclude" doc:"glob patterns (*, ?, [...]) of paths to leave out"`
	Schedule string      `yaml:"schedule" doc:"when pitr daemon snapshots this set, like backup_schedule; empty: files_schedule"`
}

// Retention holds one policy per kind of entry in the repository. A nil
// policy keeps everything of its kind.
type Retention struct {
	Backups *Policy `yaml:"backups" doc:"policy for base backups"`
	Dumps   *Policy `yaml:"dumps" doc:"policy for logical dumps (pitr dump)"`
	Files   *Policy `yaml:"files" doc:"policy for snapshots of file sets"`
}

// Policy says which entries of one kind to keep; an entry any rule keeps
// is kept. A nil or zero policy (every keep_ setting 0) keeps everything.
type Policy struct {
	KeepLast    int           `yaml:"keep_last" doc:"keep the newest N"`
	KeepDaily   int           `yaml:"keep_daily" doc:"keep the newest of each of the last N days that have one"`
	KeepWeekly  int           `yaml:"keep_weekly" doc:"keep the newest of each of the last N weeks that have one"`
	KeepMonthly int           `yaml:"keep_monthly" doc:"keep the newest of each of the last N months that have one"`
	KeepYearly  int           `yaml:"keep_yearly" doc:"keep the newest of each of the last N years that have one"`
	KeepWithin  time.Duration `yaml:"keep_within" doc:"keep every one taken within this duration, e.g. 720h for 30 days"`
}

// KeepsAll says whether p keeps everything: nil, or every rule 0.
func (p *Policy) KeepsAll() bool { return p == nil || *p == Policy{} }

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

// isSection says whether a field of type t is a section: a struct of
// settings, a pointer to one, or a list of them. SecretString and DSN
// are structs too, but scalars: they decode themselves.
func isSection(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(unmarshalerType)
}

// sectionEnv calls fn with the variable names a section at key (of type
// t) might be mistaken to have, and the key each would mean: PITR_OFFSITE,
// PITR_OFFSITE_REPO, PITR_RETENTION_BACKUPS_KEEP_DAILY. A list has only
// its own name: its entries' keys have no name to guess (and
// PITR_FILES_SCHEDULE is the top-level files_schedule).
func sectionEnv(t reflect.Type, key string, fn func(env, key string)) {
	fn(EnvName(strings.ReplaceAll(key, ".", "_")), key)
	if t.Kind() == reflect.Slice {
		return
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := 0; i < t.NumField(); i++ {
		k := key + "." + t.Field(i).Tag.Get("yaml")
		if isSection(t.Field(i).Type) {
			sectionEnv(t.Field(i).Type, k, fn)
			continue
		}
		fn(EnvName(strings.ReplaceAll(k, ".", "_")), k)
	}
}

// refuseSectionEnv fails if a variable of the section at key is set.
func refuseSectionEnv(t reflect.Type, key string, lookup func(string) (string, bool)) error {
	var err error
	sectionEnv(t, key, func(env, k string) {
		if _, ok := lookup(env); ok && err == nil {
			err = fmt.Errorf("%s: %s is read from the config file only (sections have no PITR_* variables)", env, k)
		}
	})
	return err
}

// Sections documents the keys of the sections in dotted form, after a
// row for each section itself: offsite, offsite.repo, ..., files,
// files[].name, ..., retention.backups.keep_daily. Env is empty. A key
// without a doc tag of its own (the repository keys) has the doc of the
// top-level setting of the same name.
func Sections() []Setting {
	top := map[string]string{}
	for _, s := range Settings() {
		top[s.Key] = s.Doc
	}
	var out []Setting
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		if isSection(t.Field(i).Type) {
			out = docSection(out, t.Field(i), t.Field(i).Tag.Get("yaml"), top)
		}
	}
	return out
}

func docSection(out []Setting, f reflect.StructField, key string, top map[string]string) []Setting {
	out = append(out, Setting{Key: key, Doc: f.Tag.Get("doc")})
	t, prefix := f.Type, key
	if t.Kind() == reflect.Slice {
		prefix += "[]"
	}
	if t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	for i := 0; i < t.NumField(); i++ {
		g := t.Field(i)
		k := prefix + "." + g.Tag.Get("yaml")
		if isSection(g.Type) {
			out = docSection(out, g, k, top)
			continue
		}
		doc := g.Tag.Get("doc")
		if doc == "" {
			doc = top[g.Tag.Get("yaml")]
		}
		out = append(out, Setting{Key: k, Doc: doc, Default: g.Tag.Get("default")})
	}
	return out
}

// appendSection appends the settings of section v at key as dotted
// "key=value" lines; a nil section adds none.
func appendSection(out []string, v reflect.Value, key string) []string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return out
		}
		return appendSection(out, v.Elem(), key)
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			out = appendSection(out, v.Index(i), fmt.Sprintf("%s[%d]", key, i))
		}
		return out
	}
	for i := 0; i < v.NumField(); i++ {
		k := key + "." + v.Type().Field(i).Tag.Get("yaml")
		if isSection(v.Type().Field(i).Type) {
			out = appendSection(out, v.Field(i), k)
			continue
		}
		out = append(out, k+"="+printValue(v.Field(i)))
	}
	return out
}

// validate checks one repository's settings; prefix is "" for the primary
// (the top-level keys) and "offsite." for the off-site one.
func (r Repository) validate(prefix string) error {
	switch {
	case r.Repo == "" && prefix == "":
		return fmt.Errorf("no repository: set repo in the config file or %s (s3://bucket/prefix or file:///path)", EnvName("repo"))
	case r.Repo == "":
		return fmt.Errorf("%srepo: not set; want s3://bucket/prefix or file:///absolute/path", prefix)
	case !strings.HasPrefix(r.Repo, "s3://") && !strings.HasPrefix(r.Repo, "file://"):
		return fmt.Errorf("%srepo %q: want s3://bucket/prefix or file:///absolute/path", prefix, r.Repo)
	case r.S3SSE != "" && r.S3SSE != "AES256" && r.S3SSE != "aws:kms":
		return fmt.Errorf("%ss3_sse %q: want AES256 or aws:kms", prefix, r.S3SSE)
	case r.S3ObjectLock != "" && r.S3ObjectLock != "governance" && r.S3ObjectLock != "compliance":
		return fmt.Errorf("%ss3_object_lock %q: want governance or compliance (or empty: off)", prefix, r.S3ObjectLock)
	case r.S3ObjectLock != "" && !strings.HasPrefix(r.Repo, "s3://"):
		return fmt.Errorf("%ss3_object_lock %s: repository %s is not on S3; Object Lock needs an s3:// repository", prefix, r.S3ObjectLock, r.Repo)
	case r.S3ObjectLockDays < 0 || r.S3ObjectLockDays > 36500:
		return fmt.Errorf("%ss3_object_lock_days %d: want 0 (from the backup retention policy) to 36500", prefix, r.S3ObjectLockDays)
	case r.S3ObjectLockDays != 0 && r.S3ObjectLock == "":
		return fmt.Errorf("%ss3_object_lock_days %d: set s3_object_lock (governance or compliance) too", prefix, r.S3ObjectLockDays)
	}
	return nil
}

// ObjectLockDays is how many days an upload to r stays locked: r's
// s3_object_lock_days, or with 0 the longest time the backup retention
// policy keeps a backup for (keep_within; keep_daily days; keep_weekly
// weeks of 7 days; keep_monthly months of 31; keep_yearly years of 366),
// at least 1. keep_last alone gives 1: retain extends the locks of the
// backups it keeps, and of the WAL they need, each time it runs.
func (c *Config) ObjectLockDays(r Repository) int {
	if r.S3ObjectLockDays > 0 {
		return r.S3ObjectLockDays
	}
	days := 1
	if p := c.Retention.Backups; p != nil {
		within := int((p.KeepWithin + 24*time.Hour - 1) / (24 * time.Hour))
		days = max(days, within, p.KeepDaily, p.KeepWeekly*7, p.KeepMonthly*31, p.KeepYearly*366)
	}
	return days
}

// validateSections checks offsite:, files: and retention:.
func (c *Config) validateSections() error {
	if c.Offsite != nil {
		if err := c.Offsite.validate("offsite."); err != nil {
			return err
		}
		// offsite.repo equal to repo is allowed here: a restore from the
		// copy points repo (or --repo) at it; copy and the daemon refuse it.
	}
	if err := c.validateFiles(); err != nil {
		return err
	}
	if err := c.ValidateMonitor(); err != nil {
		return err
	}
	if err := c.validateApps(); err != nil { // issue 12, app part
		return err
	}
	return c.Retention.validate()
}

var fileSetName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// validateFiles checks each file set of files:.
func (c *Config) validateFiles() error {
	first := map[string]int{}
	for i, fs := range c.Files {
		key := fmt.Sprintf("files[%d]", i)
		switch {
		case fs.Name == "":
			return fmt.Errorf("%s.name: not set; want lower-case letters, digits, _ and -, starting with a letter or digit", key)
		case !fileSetName.MatchString(fs.Name):
			return fmt.Errorf("%s.name %q: want lower-case letters, digits, _ and -, starting with a letter or digit", key, fs.Name)
		}
		if j, ok := first[fs.Name]; ok {
			return fmt.Errorf("%s.name %q is used twice (first in files[%d])", key, fs.Name, j)
		}
		first[fs.Name] = i
		switch fs.Kind {
		case FilesUploads:
		case FilesSecrets:
			if c.Encryption == "none" {
				return fmt.Errorf("%s.kind secrets: refused with encryption: none (secret files are stored encrypted only)", key)
			}
		default:
			return fmt.Errorf("%s.kind %q: want uploads or secrets", key, fs.Kind)
		}
		if len(fs.Paths) == 0 {
			return fmt.Errorf("%s.paths: not set; want a list of absolute paths", key)
		}
		seen := map[string]bool{}
		for _, p := range fs.Paths {
			if !filepath.IsAbs(p) {
				return fmt.Errorf("%s.paths: %q is not an absolute path", key, p)
			}
			if seen[filepath.Clean(p)] {
				return fmt.Errorf("%s.paths: %q is listed twice", key, p)
			}
			seen[filepath.Clean(p)] = true
		}
		for _, x := range fs.Exclude {
			if _, err := path.Match(x, ""); err != nil || x == "" {
				return fmt.Errorf("%s.exclude: %q is not a glob pattern", key, x)
			}
		}
		if _, err := ParseSchedule(fs.Schedule); err != nil {
			return fmt.Errorf("%s.schedule %q: %v", key, fs.Schedule, err)
		}
	}
	return nil
}

// validate checks each policy of retention:.
func (r Retention) validate() error {
	v := reflect.ValueOf(r)
	for i := 0; i < v.NumField(); i++ {
		p := v.Field(i).Interface().(*Policy)
		if p == nil {
			continue
		}
		pv := reflect.ValueOf(*p)
		for j := 0; j < pv.NumField(); j++ {
			if pv.Field(j).Int() < 0 {
				return fmt.Errorf("retention.%s.%s: must be 0 or more", v.Type().Field(i).Tag.Get("yaml"), pv.Type().Field(j).Tag.Get("yaml"))
			}
		}
	}
	return nil
}
