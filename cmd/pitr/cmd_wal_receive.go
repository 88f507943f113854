package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pitr-dev/pitr/wal/stream"
)

func newWALReceiveCommand(e *env) *cobra.Command {
	var slot string
	var synchronous, dropSlot bool
	cmd := &cobra.Command{
		Use:   "wal-receive",
		Short: "Stream WAL over a replication slot into the repository, seconds behind the server",
		Long: `Stream WAL over the replication protocol on a physical slot (stream_slot,
created if missing) and store it as it arrives: the unfinished segment's new
bytes every stream_ship_interval, each completed segment under the same name
wal-push uses, so archive_command may run alongside. The server is told WAL is
flushed only once the repository holds it, so the slot keeps anything not yet
stored. Reconnects with backoff after restarts and network loss, follows
timeline switches, and stops cleanly on SIGTERM after storing what it has.
With --synchronous and synchronous_standby_names = 'pitr', commits wait until
their WAL is in the repository. Connection: pg_dsn, or PGHOST/PGPORT/PGUSER.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if c.Flags().Changed("slot") {
				if err := e.cfg.Set("stream_slot", slot); err != nil {
					return fmt.Errorf("%w: --slot: %v", errUsage, err)
				}
			}
			if c.Flags().Changed("synchronous") {
				e.cfg.StreamSynchronous = &synchronous
			}
			if dropSlot {
				return runDropSlot(c.Context(), e)
			}
			return runWALReceive(c.Context(), e)
		},
	}
	cmd.Flags().StringVar(&slot, "slot", "", "replication slot name (default stream_slot, \"pitr\")")
	cmd.Flags().BoolVar(&synchronous, "synchronous", false, "store and acknowledge every flush at once (for synchronous_standby_names)")
	cmd.Flags().BoolVar(&dropSlot, "drop-slot", false, "drop the replication slot and exit (when streaming stops for good, so the server stops keeping WAL for it)")
	return cmd
}

func runWALReceive(ctx context.Context, e *env) error {
	residentGC()
	r, err := newReceiver(ctx, e)
	if err != nil {
		return err
	}
	return r.Run(ctx)
}

func runDropSlot(ctx context.Context, e *env) error {
	if err := stream.DropSlot(ctx, e.cfg.PGDSN.Reveal(), e.cfg.StreamSlot); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "replication slot %s dropped\n", e.cfg.StreamSlot)
	return nil
}

// newReceiver builds the WAL receiver from the configuration (the daemon
// runs the same one).
func newReceiver(ctx context.Context, e *env) (*stream.Receiver, error) {
	r, err := e.WritableRepo(ctx)
	if err != nil {
		return nil, err
	}
	return stream.New(stream.Options{
		DSN: e.cfg.PGDSN.Reveal(), Slot: e.cfg.StreamSlot, Store: r.Store(), Codec: r.Codec(),
		ShipInterval: e.cfg.StreamShipInterval, Synchronous: e.cfg.StreamSynchronous != nil && *e.cfg.StreamSynchronous,
		GroupDelay: e.cfg.StreamGroupDelay, Version: version,
	}), nil
}
