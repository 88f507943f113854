package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
)

// usageArgs marks argument-count errors as usage errors (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return fmt.Errorf("%w: %s: %v (usage: pitr %s)", errUsage, c.Name(), err, c.Use)
		}
		return nil
	}
}

func baseName(path string) string { return filepath.Base(path) }
