package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/repo"
)

const pinItemHelp = `ITEM is a backup id (20261122T020000Z), a dump as DB/ID (app/20261122T023000Z)
or a file snapshot as SET/ID (uploads/20261122T030000Z); write dump:DB/ID or
files:SET/ID when a database and a file set share a name.`

func newPinCommand(e *env) *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use:   "pin ITEM [--note TEXT]",
		Short: "Keep a backup, dump or file snapshot forever, whatever the retention policy",
		Long: "Keep one item forever: pitr retain never deletes a pinned item (an archive tier).\n" +
			"Undo with pitr unpin. Pins are records in the repository, never rewritten: the\nnewest record of an item wins.\n\n" + pinItemHelp,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error { return runPin(c.Context(), e, args[0], true, note) },
	}
	cmd.Flags().StringVar(&note, "note", "", "why it is kept, recorded with the pin")
	return cmd
}

func newUnpinCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "unpin ITEM",
		Short: "Let the retention policy decide again about a pinned item",
		Long:  "Undo pitr pin: the item is kept or deleted by the retention policy again.\n\n" + pinItemHelp,
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE:  func(c *cobra.Command, args []string) error { return runPin(c.Context(), e, args[0], false, "") },
	}
}

func runPin(ctx context.Context, e *env, item string, pinned bool, note string) error {
	r, err := e.OpenRepo(ctx)
	if err != nil {
		return err
	}
	ref, err := r.ResolveItem(ctx, item)
	if errors.Is(err, repo.ErrBadItemName) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err != nil {
		return err
	}
	if err := r.SavePin(ctx, &catalog.Pin{PinRef: ref, Pinned: pinned, Note: note, At: time.Now()}); err != nil {
		return err
	}
	verb := "pinned"
	if !pinned {
		verb = "unpinned"
	}
	fmt.Fprintf(e.stdout, "%s %s %s\n", verb, ref.Kind, ref)
	return nil
}
