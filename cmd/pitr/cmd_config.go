package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/config"
)

func newConfigCommand(e *env) *cobra.Command {
	var doc bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the effective settings (or, with --doc, the settings reference)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if doc {
				fmt.Fprintln(e.stdout, "| setting (YAML) | environment | default | meaning |\n|---|---|---|---|")
				for _, s := range config.Settings() {
					fmt.Fprintf(e.stdout, "| `%s` | `%s` | %s | %s |\n", s.Key, s.Env, s.Default, s.Doc)
				}
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
	cmd.Flags().BoolVar(&doc, "doc", false, "print the settings reference as a Markdown table")
	return cmd
}
