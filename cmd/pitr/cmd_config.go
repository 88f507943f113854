package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/config"
	"github.com/pitr-dev/pitr/storage/location"
	"github.com/pitr-dev/pitr/storage/s3"
)

func newConfigCommand(e *env) *cobra.Command {
	var doc bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the effective settings (or, with --doc, the settings reference)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if doc {
				printConfigDoc(e.stdout)
				return nil
			}
			if e.configFile != "" {
				fmt.Fprintf(e.stdout, "# from %s and PITR_* variables\n", e.configFile)
			}
			for _, l := range e.cfg.Redacted() {
				fmt.Fprintln(e.stdout, l)
			}
			if err := e.cfg.Validate(); err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&doc, "doc", false, "print the settings reference as Markdown tables")
	return cmd
}

// printConfigDoc prints the settings reference: a table of the top-level
// settings with their variables, then one of the sections' keys, which
// are set in the config file only.
func printConfigDoc(w io.Writer) {
	fmt.Fprintln(w, "| setting (YAML) | environment | default | meaning |\n|---|---|---|---|")
	for _, s := range config.Settings() {
		fmt.Fprintf(w, "| `%s` | `%s` | %s | %s |\n", s.Key, s.Env, s.Default, s.Doc)
	}
	fmt.Fprintln(w, "\nSections are set in the config file only: they have no PITR_* variables. "+
		"`files[].name` is the `name` of each entry of the `files` list. "+
		"`pitr copy` and the daemon keep offsite in step; `pitr files backup` and the daemon snapshot the file sets; `pitr retain` and the daemon apply retention; `pitr check` and `pitr status` read check and monitor; `pitr verify --restore-drill` and the daemon use drill; `pitr app` and the daemon use apps.\n\n"+
		"| setting (YAML) | default | meaning |\n|---|---|---|")
	for _, s := range config.Sections() {
		fmt.Fprintf(w, "| `%s` | %s | %s |\n", s.Key, s.Default, s.Doc)
	}
}

// locationOptions is how repository r (c.Primary() or *c.Offsite) is
// opened: its own address, endpoint and S3 settings, and the transfer
// settings of the process (part size, concurrency, storage timeout), which
// every repository shares. create makes a missing local directory.
func locationOptions(c *config.Config, r config.Repository, create bool) location.Options {
	pathStyle := r.S3Endpoint != ""
	if r.S3ForcePathStyle != nil {
		pathStyle = *r.S3ForcePathStyle
	}
	return location.Options{Create: create, S3: s3.Options{
		Endpoint: r.S3Endpoint, Region: r.S3Region,
		ForcePathStyle: pathStyle, SSE: r.S3SSE, SSEKMSKeyID: r.S3SSEKMSKeyID,
		StorageClass: r.S3StorageClass, PartSize: int64(c.S3PartSizeMiB) << 20,
		Concurrency: c.S3Concurrency, Timeout: c.StorageTimeout,
		NoConditionalWrites: r.S3NoConditionalWrites != nil && *r.S3NoConditionalWrites,
		ObjectLockMode:      r.S3ObjectLock, ObjectLockDays: objectLockDays(c, r),
	}}
}

// objectLockDays is r's lock length, 0 without a lock.
func objectLockDays(c *config.Config, r config.Repository) int {
	if r.S3ObjectLock == "" {
		return 0
	}
	return c.ObjectLockDays(r)
}
