//go:build integration

package main

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/pitr-dev/pitr/internal/catalog"
	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/internal/verify"
	"github.com/pitr-dev/pitr/storage"
)

// flipObject changes one byte of a stored object (keeping its size), as a
// bit rot or a tampering would.
func (r *rig) flipObject(key string, offset int) { r.flipObjectUnder("db1/", key, offset) }

// flipObjectUnder is flipObject for a repository under prefix.
func (r *rig) flipObjectUnder(prefix, key string, offset int) {
	r.t.Helper()
	ctx := r.t.Context()
	cl := r.minio.Client()
	full := prefix + key
	out, err := cl.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(full)})
	if err != nil {
		r.t.Fatal(err)
	}
	b, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		r.t.Fatal(err)
	}
	if offset < 0 {
		offset += len(b)
	}
	b[offset] ^= 0x01
	if _, err := cl.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(r.bucket), Key: aws.String(full), Body: bytes.NewReader(b)}); err != nil {
		r.t.Fatal(err)
	}
}

// TestVerifyMinIO: a real backup in MinIO verifies; a second run reads
// nothing again; one byte flipped in the stored base.tar makes verify exit
// 1 naming it, while without the identity (sizes only) it passes and says
// what it could not check. Every run saves a report.
func TestVerifyMinIO(t *testing.T) {
	r := newRig(t, "minio")
	c := r.cluster(nil)
	if err := c.Exec(t.Context(), `CREATE TABLE marker (id serial PRIMARY KEY, phase text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	insert(t, c, "a", 100)
	r.mustRun(backupEnv(c), "backup")
	switchAndWait(t, c, time.Minute)
	cache := []string{"XDG_CACHE_HOME=" + filepath.Join(testenv.Dir(t), "cache")}

	out := r.mustRun(cache, "verify")
	t.Logf("first verify: %s", out)
	if !strings.HasPrefix(out, "verify ok: ") || strings.Contains(out, "verified before") {
		t.Fatalf("first verify: %q", out)
	}
	out = r.mustRun(cache, "verify")
	t.Logf("second verify: %s", out)
	if !strings.HasPrefix(out, "verify ok: 0 objects (0 bytes) read, ") || !strings.Contains(out, "verified before") {
		t.Fatalf("second verify read objects again: %q", out)
	}

	var base string
	for _, p := range r.listJSON().Backups[0].Parts {
		if p.Name == "base.tar" {
			base = p.Key
		}
	}
	r.flipObject(base, -100)
	out, stderr, code := r.runEnv(cache, "verify")
	t.Logf("verify after a flipped byte: exit %d\n%s", code, out)
	if code != 1 || !strings.HasPrefix(out, "verify: 1 problem\n"+base+": ") || !strings.Contains(lastLine(stderr), "verify: 1 problem") {
		t.Fatalf("verify with %s damaged: exit %d, stdout %q, stderr %q", base, code, out, stderr)
	}

	// Without the identity the part's stored bytes no longer match the
	// SHA-256 its entry records.
	out, _, code = r.runEnv(append(cache, "PITR_AGE_IDENTITY_FILE="), "verify")
	t.Logf("verify without the identity: exit %d\n%s", code, out)
	if code != 1 || out != verify.NoIdentity+"\nverify: 1 problem\n"+base+": sha256 mismatch\n" {
		t.Fatalf("verify without the identity: exit %d, %q", code, out)
	}

	list, err := r.minio.Client().ListObjectsV2(t.Context(), &awss3.ListObjectsV2Input{Bucket: aws.String(r.bucket), Prefix: aws.String("db1/" + catalog.ReportKindPrefix(catalog.ReportVerify))})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(list.Contents); n != 4 {
		t.Fatalf("%d verify reports stored, want 4", n)
	}
}

// TestVerifyFilesMinIO: a real file snapshot verifies (manifest, chunks,
// packs); a byte flipped in a stored pack is named, with the identity (its
// blob does not authenticate) and without it (the stored bytes do not
// match the pack's key).
func TestVerifyFilesMinIO(t *testing.T) {
	dir, keys := t.TempDir(), t.TempDir()
	m, bucket := filesMinIO(t, dir, keys)
	for i := range 4 {
		writeTreeFile(t, filepath.Join(dir, "media", string(rune('a'+i))+".bin"), randomData(uint64(i), 1<<20), 0o644)
	}
	if code, _, stderr := runCLI(t, "files", "backup", "media"); code != exitOK {
		t.Fatalf("files backup: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := runCLI(t, "verify", "--files")
	t.Logf("verify --files: %s", stdout)
	if code != exitOK || !strings.HasPrefix(stdout, "verify ok: ") {
		t.Fatalf("verify --files: exit %d\n%s%s", code, stdout, stderr)
	}

	var pack string
	err := filesRepo(t).Store().List(t.Context(), catalog.PacksPrefix, func(o storage.ObjectInfo) error {
		pack = o.Key
		return nil
	})
	if err != nil || pack == "" {
		t.Fatalf("no pack stored (%v)", err)
	}
	r := &rig{t: t, minio: m, bucket: bucket}
	r.flipObjectUnder("pitr/", pack, -40)
	code, stdout, _ = runCLI(t, "verify", "--files")
	t.Logf("verify --files, a pack flipped: exit %d\n%s", code, stdout)
	if code != exitError || !strings.Contains(stdout, pack+": ") || !strings.Contains(stdout, "does not authenticate") {
		t.Fatalf("verify --files with %s damaged: exit %d, %q", pack, code, stdout)
	}
	t.Setenv("PITR_AGE_IDENTITY_FILE", "")
	code, stdout, _ = runCLI(t, "verify", "--files")
	t.Logf("verify --files without the identity: exit %d\n%s", code, stdout)
	if code != exitError || !strings.Contains(stdout, pack+": pack ") || !strings.Contains(stdout, "sha256 mismatch") {
		t.Fatalf("verify --files without the identity, %s damaged: exit %d, %q", pack, code, stdout)
	}
}
