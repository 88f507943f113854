package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/crypto"
)

func newKeygenCommand(e *env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "keygen --output FILE",
		Short: "Write a new age identity file (mode 0600) and print its public recipient",
		Long: `Write a new age identity (secret key) file with mode 0600 and print its public
recipient. Put the recipient in age_recipients on the database host; keep the
identity file off that host and give it to pitr only where you restore.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error { return runKeygen(e, output) },
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "identity file to create (must not exist)")
	return cmd
}

func runKeygen(e *env, output string) error {
	if output == "" {
		return fmt.Errorf("%w: keygen: --output FILE is required", errUsage)
	}
	id, err := crypto.NewIdentity()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("keygen: %w (refusing to overwrite an identity file)", err)
	}
	_, err = fmt.Fprintf(f, "# created: %s\n# public key: %s\n%s\n", time.Now().UTC().Format(time.RFC3339), id.Recipient(), id)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(output)
		return fmt.Errorf("keygen: %w", err)
	}
	fmt.Fprintln(e.stdout, id.Recipient())
	return nil
}
