package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/pitr-dev/pitr/internal/backup"
	"github.com/pitr-dev/pitr/internal/crypto"
	"github.com/pitr-dev/pitr/internal/envelope"
	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/restore"
	"github.com/pitr-dev/pitr/storage/s3"
)

// cmdProfile runs pitr's backup or restore in this process, as `pitr backup`
// and `pitr restore` do (same packages, same defaults), under the CPU
// profiler: pitr itself has no profiling switch. Settings come from the
// same environment variables (PITR_REPO, PITR_S3_ENDPOINT,
// PITR_AGE_RECIPIENTS, PITR_AGE_IDENTITY_FILE, PITR_PG_DSN).
//
//	profile --cpu F [--workers N] backup
//	profile --cpu F restore --to immediate --pgdata DIR
func cmdProfile(args []string) error {
	fl := flag.NewFlagSet("profile", flag.ExitOnError)
	cpuOut := fl.String("cpu", "", "CPU profile file")
	memOut := fl.String("heap", "", "heap profile file, written at the end")
	to := fl.String("to", "immediate", "restore: target")
	pgdata := fl.String("pgdata", "", "restore: directory to restore into")
	workers := fl.Int("workers", 0, "backup: zstd workers (pitr uses one per CPU): shows memory on bigger machines")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 1 || *cpuOut == "" {
		return errors.New("usage: profile --cpu FILE [--heap FILE] backup|restore [--to T --pgdata DIR]")
	}
	ctx := context.Background()
	bucket, prefix, err := s3.ParseURL(os.Getenv("PITR_REPO"))
	if err != nil {
		return err
	}
	st, err := s3.New(ctx, s3.Options{Bucket: bucket, Prefix: prefix, Endpoint: os.Getenv("PITR_S3_ENDPOINT"), ForcePathStyle: true})
	if err != nil {
		return err
	}
	codec := &envelope.Codec{Encrypt: true, Level: 1, Workers: *workers}
	f, err := os.Create(*cpuOut)
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	var run func() error
	switch fl.Arg(0) {
	case "backup":
		if codec.Recipients, err = crypto.ParseRecipients(os.Getenv("PITR_AGE_RECIPIENTS")); err != nil {
			return err
		}
		run = func() error {
			b, err := backup.Run(ctx, backup.Options{Repo: repo.New(st, codec), DSN: os.Getenv("PITR_PG_DSN"), Fast: true,
				WALTimeout: 5 * time.Minute, PitrVersion: "bench-profile", Method: os.Getenv("PITR_BACKUP_METHOD")})
			if err == nil {
				fmt.Printf("backup %s: %d bytes, %d stored\n", b.ID, b.Bytes, b.Stored)
			}
			return err
		}
	case "restore":
		if codec.Identities, err = crypto.LoadIdentities(os.Getenv("PITR_AGE_IDENTITY_FILE")); err != nil {
			return err
		}
		target, err := restore.ParseTarget(*to)
		if err != nil {
			return err
		}
		run = func() error {
			r, err := restore.Run(ctx, restore.Options{Repo: repo.New(st, codec), Target: target, DataDir: *pgdata,
				RestoreCommand: "false"})
			if err == nil {
				fmt.Printf("restored %d files, %d bytes\n", r.Files, r.Bytes)
			}
			return err
		}
	default:
		return fmt.Errorf("profile %q: want backup or restore", fl.Arg(0))
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	err = run()
	pprof.StopCPUProfile()
	fmt.Printf("%s took %.2f s\n", strings.Join(fl.Args(), " "), time.Since(start).Seconds())
	if *memOut != "" {
		runtime.GC()
		m, merr := os.Create(*memOut)
		if merr != nil {
			return merr
		}
		defer m.Close()
		if merr := pprof.WriteHeapProfile(m); merr != nil {
			return merr
		}
	}
	return err
}
