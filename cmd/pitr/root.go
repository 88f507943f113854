package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go"
	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/compress"
	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/storage"
	"github.com/pitr-dev/pitr/storage/location"
	"github.com/pitr-dev/pitr/storage/retry"
)

// version is set at build time with -ldflags "-X main.version=..."; if
// not, init takes the module version from the build information, and
// versionLine adds the VCS revision for --version.
var version = "dev"

var versionLine = version

func init() { version, versionLine = versionFrom(version, readBuildInfo()) }

func readBuildInfo() *debug.BuildInfo {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return info
}

// versionFrom returns the version (set, unless it is "dev" and the build
// information names a module version) and the line --version prints: the
// version with the VCS revision and whether the tree was modified.
func versionFrom(set string, info *debug.BuildInfo) (v, line string) {
	v = set
	if info == nil {
		return v, v
	}
	if mv := info.Main.Version; v == "dev" && mv != "" && mv != "(devel)" {
		v = mv
	}
	var rev string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return v, v
	}
	line = fmt.Sprintf("%s (revision %.12s", v, rev)
	if modified {
		line += ", modified"
	}
	return v, line + ")"
}

// env is what every command gets: settings, logger, and lazily opened
// storage.
type env struct {
	configFile string // the file loaded, passed on to child processes
	cfg        config.Config
	log        zerolog.Logger
	stderr     io.Writer
	stdout     io.Writer
	stdin      io.Reader // questions on a terminal (restore --start); see interactive
	store      storage.Storage
	limits     processLimits // --limit-upload/--limit-download: one pair for all stores (limit.go)
	// crcCache is s3.Options.CRC32CCache for the primary repository
	// (wal-push sets it in its spool).
	crcCache string
}

func newRootCommand() *cobra.Command {
	return newRootCommandEnv(&env{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin})
}

// newRootCommandEnv builds the commands on e (run passes its streams).
func newRootCommandEnv(e *env) *cobra.Command {
	var configFile, repo, logLevel, logFormat, limitUpload, limitDownload string
	root := &cobra.Command{
		Use:           "pitr",
		Short:         "Point-in-time recovery for PostgreSQL: WAL archiving, base backups and restore to object storage",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionLine,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
		PersistentPreRunE: func(c *cobra.Command, _ []string) error {
			if err := e.load(configFile, os.LookupEnv); err != nil {
				return err
			}
			for key, val := range map[string]string{"repo": repo, "log_level": logLevel, "log_format": logFormat,
				"limit_upload": limitUpload, "limit_download": limitDownload} {
				if f := c.Flags().Lookup(strings.ReplaceAll(key, "_", "-")); f != nil && f.Changed {
					if err := e.cfg.Set(key, val); err != nil {
						return fmt.Errorf("%w: --%s: %v", errUsage, f.Name, err)
					}
				}
			}
			e.log = newLogger(e.stderr, e.cfg.LogLevel, e.cfg.LogFormat)
			c.SetContext(e.log.WithContext(c.Context()))
			return nil
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return fmt.Errorf("%w: %v", errUsage, err) })
	pf := root.PersistentFlags()
	pf.StringVar(&configFile, "config", "", "config file (default $PITR_CONFIG, else "+config.DefaultFile+" if it exists)")
	pf.StringVar(&repo, "repo", "", "repository URL, overrides PITR_REPO")
	pf.StringVar(&logLevel, "log-level", "", "debug, info, warn or error")
	pf.StringVar(&logFormat, "log-format", "", "auto, console or json")
	pf.StringVar(&limitUpload, "limit-upload", "", "most bytes per second sent to storage, e.g. 50MiB (0: unlimited), overrides PITR_LIMIT_UPLOAD")
	pf.StringVar(&limitDownload, "limit-download", "", "most bytes per second read from storage, e.g. 50MiB (0: unlimited), overrides PITR_LIMIT_DOWNLOAD")
	root.AddCommand(
		newWALPushCommand(e),
		newWALFetchCommand(e),
		newWALPrefetchCommand(e),
		newWALPushServeCommand(e),
		newWALReceiveCommand(e),
		newKeygenCommand(e),
		newConfigCommand(e),
		newBackupCommand(e),
		newListCommand(e),
		newShowCommand(e),
		newRestoreCommand(e),
		newDumpCommand(e),
		newDumpsCommand(e),
		newRestoreDumpCommand(e),
		newDaemonCommand(e),
		newFilesCommand(e),
		newClusterUpgradeCommand(e),
		newDemoCommand(e),
		newCopyCommand(e),
		newRetainCommand(e),
		newPinCommand(e),
		newUnpinCommand(e),
		newStatusCommand(e),
		newCheckCommand(e),
		newVerifyCommand(e),
		newDoctorCommand(e),
		newAppCommand(e), // issue 12: app backup/list/show (restore: cmd_app_restore.go)
	)
	return root
}

// load reads the config file named by flag, PITR_CONFIG or the default.
func (e *env) load(flag string, lookup func(string) (string, bool)) error {
	path := flag
	if path == "" {
		path, _ = lookup("PITR_CONFIG")
	}
	if path == "" {
		if _, err := os.Stat(config.DefaultFile); err == nil {
			path = config.DefaultFile
		}
	}
	cfg, err := config.Load(path, lookup)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	e.configFile, e.cfg = path, cfg
	return nil
}

func newLogger(w io.Writer, level, format string) zerolog.Logger {
	zerolog.TimeFieldFormat = time.RFC3339Nano
	// Durations print with their unit ("529.887ms", "2s"), not as a bare
	// float of milliseconds; errors print on one line.
	zerolog.DurationFieldFormat = zerolog.DurationFormatString
	zerolog.ErrorMarshalFunc = func(err error) any {
		if err == nil {
			return nil // zerolog asks for Err(nil) too, and then leaves the field out
		}
		return oneLine(err.Error())
	}
	if format == "console" || (format == "auto" && isTerminal(w)) {
		w = zerolog.ConsoleWriter{Out: barLog{w}, TimeFormat: "15:04:05.000"} // barLog: progress.go
	}
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// OpenRepo opens the existing repository, for commands that read its
// listing (and cluster-upgrade, which needs one): it creates nothing, and
// a place without a repository marker is "no repository at URL", never an
// empty repository. It has no codec: Repo adds one.
func (e *env) OpenRepo(ctx context.Context) (*repo.Repo, error) {
	st, err := e.open(ctx, false)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(ctx, st, nil, e.cfg.Repo)
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "NoSuchBucket" {
		return nil, repo.NoRepository(e.cfg.Repo, "the bucket does not exist")
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// open validates the settings and opens the storage once; create makes a
// missing local directory (writers create the repository in it).
func (e *env) open(ctx context.Context, create bool) (storage.Storage, error) {
	if e.store != nil {
		return e.store, nil
	}
	if err := e.cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	opts := locationOptions(&e.cfg, e.cfg.Primary(), create)
	opts.S3.CRC32CCache = e.crcCache
	st, err := openLocation(ctx, e.cfg.Repo, opts)
	if err != nil {
		return nil, err
	}
	e.store = e.limits.wrap(&e.cfg, st)
	return e.store, nil
}

// Codec builds the envelope codec. needKey says whether the command will
// open encrypted objects (and so needs the identity file).
func (e *env) Codec(needKey bool) (*envelope.Codec, error) {
	c := &envelope.Codec{Encrypt: e.cfg.Encryption != "none", Level: e.cfg.ZstdLevel,
		Compression: compress.Algorithm(e.cfg.Compression)}
	if !c.Encrypt {
		e.log.Warn().Msg("encryption is off (encryption: none): objects are stored readable by anyone with access to the repository")
	}
	if c.Encrypt && !needKey {
		rs, err := crypto.ParseRecipients(strings.Join(e.cfg.AgeRecipients, ","))
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", errUsage, config.EnvName("age_recipients"), err)
		}
		if e.cfg.AgeRecipientsFile != "" {
			more, err := crypto.LoadRecipientsFile(e.cfg.AgeRecipientsFile)
			if err != nil {
				return nil, err
			}
			rs = append(rs, more...)
		}
		if len(rs) == 0 {
			return nil, fmt.Errorf("%w: no age recipients: set %s or %s (or encryption: none to store unencrypted)",
				errUsage, config.EnvName("age_recipients"), config.EnvName("age_recipients_file"))
		}
		c.Recipients = rs
	}
	if needKey && e.cfg.AgeIdentityFile != "" {
		ids, err := crypto.LoadIdentities(e.cfg.AgeIdentityFile)
		if err != nil {
			return nil, err
		}
		c.Identities = ids
	}
	return c, nil
}

// Repo opens the existing repository (as OpenRepo) with the codec for its
// objects; needKey loads the age identity too.
func (e *env) Repo(ctx context.Context, needKey bool) (*repo.Repo, error) {
	r, err := e.OpenRepo(ctx)
	if err != nil {
		return nil, err
	}
	codec, err := e.Codec(needKey)
	if err != nil {
		return nil, err
	}
	return repo.New(r.Store(), codec), nil
}

// WritableRepo opens the repository for a command that writes to it,
// creating a local directory that is missing; the job writes the marker
// (repo.Repo.Ensure) when it first needs the repository.
func (e *env) WritableRepo(ctx context.Context) (*repo.Repo, error) {
	st, err := e.open(ctx, true)
	if err != nil {
		return nil, err
	}
	codec, err := e.Codec(false)
	if err != nil {
		return nil, err
	}
	return repo.New(st, codec), nil
}

// OpenSecond opens a repository other than the primary, such as the
// off-site one (r is *e.cfg.Offsite, or the primary's settings with
// another repo): the same transfer settings, its own address, endpoint
// and S3 settings. It opens the store only; create makes a missing local
// directory. S3 credentials come from the SDK's chain (AWS_* variables,
// profiles, roles), as the primary's do, unless
// PITR_OFFSITE_AWS_ACCESS_KEY_ID and PITR_OFFSITE_AWS_SECRET_ACCESS_KEY
// (and PITR_OFFSITE_AWS_SESSION_TOKEN) are set and offsite is true: then
// those keys, so an off-site bucket of another provider or account can
// have credentials of its own.
func (e *env) OpenSecond(ctx context.Context, r config.Repository, offsite, create bool) (storage.Storage, error) {
	if err := e.cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if !strings.HasPrefix(r.Repo, "s3://") && !strings.HasPrefix(r.Repo, "file://") {
		return nil, fmt.Errorf("%w: repository %q: want s3://bucket/prefix or file:///absolute/path", errUsage, r.Repo)
	}
	opts := locationOptions(&e.cfg, r, create)
	id, idOK := os.LookupEnv("PITR_OFFSITE_AWS_ACCESS_KEY_ID")
	secret, secretOK := os.LookupEnv("PITR_OFFSITE_AWS_SECRET_ACCESS_KEY")
	switch {
	case offsite && idOK != secretOK:
		return nil, fmt.Errorf("%w: set both PITR_OFFSITE_AWS_ACCESS_KEY_ID and PITR_OFFSITE_AWS_SECRET_ACCESS_KEY, or neither", errUsage)
	case offsite && idOK:
		opts.S3.Credentials = credentials.NewStaticCredentialsProvider(id, secret, os.Getenv("PITR_OFFSITE_AWS_SESSION_TOKEN"))
	}
	st, err := openLocation(ctx, r.Repo, opts)
	if err != nil {
		return nil, err
	}
	return e.limits.wrap(&e.cfg, st), nil
}

// openLocation opens the store at url, its errors as the commands report
// them: a bad URL or setting is a usage error, a place without a
// repository "no repository at URL".
func openLocation(ctx context.Context, url string, opts location.Options) (storage.Storage, error) {
	st, err := location.Open(ctx, url, opts)
	var usage *location.UsageError
	var none *location.NoRepositoryError
	switch {
	case errors.As(err, &usage):
		return nil, fmt.Errorf("%w: %s", errUsage, usage.Msg)
	case errors.As(err, &none):
		return nil, repo.NoRepository(none.URL, none.Why)
	case err != nil:
		return nil, err
	}
	return st, nil
}

func (e *env) retryPolicy() retry.Policy { return retry.Policy{Timeout: e.cfg.RetryTimeout} }
