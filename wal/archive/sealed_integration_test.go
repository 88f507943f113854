//go:build integration

package archive

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/pitr-dev/pitr/internal/repo"
	"github.com/pitr-dev/pitr/internal/testenv"
	"github.com/pitr-dev/pitr/storage/s3"
)

// BenchmarkFetchSealed: wal-fetch of one 16 MiB segment from MinIO, stored
// whole or sealed in n chunks, to choose stream.MaxSealChunks:
//
//	PITR_TEST_REQUIRE=1 go test -tags integration -run '^$' -bench FetchSealed -benchtime 20x ./wal/archive/
func BenchmarkFetchSealed(b *testing.B) {
	srv := testenv.MinIO(b)
	st, err := s3.New(b.Context(), s3.Options{
		Bucket: srv.NewBucket(b), Endpoint: srv.Endpoint, Region: srv.Region, ForcePathStyle: true, MaxAttempts: 3,
		Credentials: credentials.NewStaticCredentialsProvider(srv.AccessKey, srv.SecretKey, ""),
	})
	if err != nil {
		b.Fatal(err)
	}
	f := newFixture(b, st)
	rp := repo.New(st, f.codec)
	const size = 16 << 20
	seg := make([]byte, size)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range seg { // compressible, about 3x as WAL
		if i%4 == 0 {
			seg[i] = byte(r.IntN(256))
		}
	}
	for i, n := range []int{0, 1, 4, 8, 16, 64, 256, 1024} {
		name := fmt.Sprintf("0000000100000000000000%02X", i+1)
		if n == 0 {
			if _, err := rp.StoreWAL(b.Context(), name, seg); err != nil {
				b.Fatal(err)
			}
		} else {
			f.storeSealed(name, seg, int64(size/n))
		}
		dest := filepath.Join(b.TempDir(), "x")
		b.Run(fmt.Sprintf("chunks=%d", n), func(b *testing.B) {
			b.SetBytes(size)
			for range b.N {
				if err := Fetch(b.Context(), name, dest, f.fetchOpts()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
