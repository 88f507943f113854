//go:build integration

package testenv

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestMinIOPortTaken is the CI failure where another package's server took
// the port freeAddr picked before MinIO bound it: the start moves to a new
// port instead of waiting 60s for a server that never serves.
func TestMinIOPortTaken(t *testing.T) {
	bin := requireMinIO(t)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	taken := held.Addr().String()
	calls := 0
	pickAddr = func() (string, error) {
		calls++
		if calls == 1 {
			return taken, nil
		}
		return freeAddr()
	}
	t.Cleanup(func() { pickAddr = freeAddr })

	m, err := startMinIO(bin)
	if err != nil {
		t.Fatalf("start with a taken port: %v", err)
	}
	defer func() {
		_ = m.stop()
		_ = os.RemoveAll(filepath.Dir(m.Dir))
	}()
	if m.addr == taken {
		t.Fatalf("MinIO kept the taken address %s", taken)
	}
	if !m.signedOK() {
		t.Fatal("ListBuckets failed on the new address")
	}
	if calls < 4 {
		t.Fatalf("pickAddr called %d times, want a second pair of addresses", calls)
	}
}

// TestRedisPortTaken: the same for redis-server, which exits on the bind
// failure. A PONG from the holder would not do either: it is not this
// server's dir.
func TestRedisPortTaken(t *testing.T) {
	RequireRedis(t)
	other := Redis(t) // a redis-server holding the port handed out first
	calls := 0
	pickAddr = func() (string, error) {
		calls++
		if calls == 1 {
			return other.Addr, nil
		}
		return freeAddr()
	}
	t.Cleanup(func() { pickAddr = freeAddr })
	r := Redis(t)
	if r.Addr == other.Addr {
		t.Fatalf("redis-server kept the taken address %s", r.Addr)
	}
	if calls != 2 {
		t.Fatalf("pickAddr called %d times, want 2: one retry", calls)
	}
	r.Do(t, "SET", "k", "v")
	if got := other.Do(t, "GET", "k"); got != "" {
		t.Fatalf("the first server got the second one's key: %q", got)
	}
}
