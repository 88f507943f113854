package pg

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Fixtures in testdata/ are what a server sends in answer to BASE_BACKUP, up
// to and including its ReadyForQuery, as raw protocol bytes (gzipped when the
// name ends in .gz). Tests split them into messages with splitFrames, change
// some, and play them back with serve.

// readFixture returns the bytes of testdata/name.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// splitFrames splits raw backend bytes into messages: a type byte, a
// big-endian length that counts itself, the body.
func splitFrames(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var frames [][]byte
	for len(b) > 0 {
		if len(b) < 5 {
			t.Fatalf("truncated message header: %d bytes left", len(b))
		}
		n := 1 + int(binary.BigEndian.Uint32(b[1:5]))
		if n < 5 || n > len(b) {
			t.Fatalf("message %q of length %d with %d bytes left", b[0], n, len(b))
		}
		frames = append(frames, b[:n:n])
		b = b[n:]
	}
	return frames
}

// encode returns the wire bytes of msgs.
func encode(t testing.TB, msgs ...pgproto3.BackendMessage) []byte {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = m.Encode(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// serve connects a pgconn to a fake server over net.Pipe. The server
// completes the startup as PostgreSQL version would, sends reply in answer
// to the first query (which it puts in *query), and then either hangs up or
// waits for the test to end.
func serve(t *testing.T, version string, reply []byte, hangup bool, query *string) *pgconn.PgConn {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { server.Close() })
	done := make(chan error, 1)
	go func() {
		done <- fakeServer(server, version, reply, hangup, query)
	}()
	t.Cleanup(func() {
		server.Close()
		if err := <-done; err != nil {
			t.Errorf("fake server: %v", err)
		}
	})
	cfg, err := pgconn.ParseConfig("host=fake port=5432 user=pitr sslmode=disable replication=true")
	if err != nil {
		t.Fatal(err)
	}
	cfg.LookupFunc = func(_ context.Context, host string) ([]string, error) { return []string{host}, nil }
	cfg.DialFunc = func(context.Context, string, string) (net.Conn, error) { return client, nil }
	conn, err := pgconn.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func fakeServer(c net.Conn, version string, reply []byte, hangup bool, query *string) error {
	be := pgproto3.NewBackend(c, c)
	if _, err := be.ReceiveStartupMessage(); err != nil {
		return err
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ParameterStatus{Name: "server_version", Value: version})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 4242, SecretKey: []byte{1, 2, 3, 4}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		return err
	}
	msg, err := be.Receive()
	if err != nil {
		return err
	}
	q, ok := msg.(*pgproto3.Query)
	if !ok {
		return nil // the client gave up before asking
	}
	*query = q.String
	if _, err := c.Write(reply); err != nil {
		return nil // the client went away mid-stream, as some tests make it
	}
	if hangup {
		return c.Close()
	}
	for {
		if _, err := be.Receive(); err != nil {
			return nil // Terminate, then the pipe closes
		}
	}
}
