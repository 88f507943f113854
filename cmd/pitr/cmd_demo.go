package main

import (
	"context"
	"os"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/demo"
)

func newDemoCommand(e *env) *cobra.Command {
	var dir string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Guided tour on a scratch PostgreSQL cluster and a local repository",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return runDemo(c.Context(), e, dir, keep) },
	}
	cmd.Flags().StringVar(&dir, "dir", "", "work directory (default: a new temporary directory)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the work directory")
	return cmd
}

func runDemo(ctx context.Context, e *env, dir string, keep bool) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	return demo.Run(ctx, demo.Options{Dir: dir, Keep: keep, Self: self, Out: e.stdout})
}
