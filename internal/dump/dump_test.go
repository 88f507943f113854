package dump

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestConnString(t *testing.T) {
	for _, tc := range []struct{ dsn, db, want, password string }{
		{"", "app", "dbname='app'", ""},
		{"host=/run/postgresql user=postgres", "app", "host='/run/postgresql' user='postgres' dbname='app'", ""},
		{"host=h dbname=postgres", "it's", `host='h' dbname='it\'s'`, ""},
		{`host=h replication=database password='s3 cr\'et'`, "app", "host='h' dbname='app'", "s3 cr'et"},
		{"postgres://u:p@h:5433/postgres?sslmode=disable&replication=true", "app", "postgres://u@h:5433/app?sslmode=disable", "p"},
		{"postgresql://h/?password=x", "my db", "postgresql://h/my%20db", "x"},
	} {
		got, pw, err := connString(tc.dsn, tc.db)
		if err != nil || got != tc.want || pw != tc.password {
			t.Errorf("connString(%q, %q) = %q, %q, %v; want %q, %q", tc.dsn, tc.db, got, pw, err, tc.want, tc.password)
		}
	}
	for _, bad := range []string{"host", "host='h", "=x"} {
		if _, _, err := connString(bad, "app"); err == nil {
			t.Errorf("connString(%q) accepted", bad)
		}
	}
}

func TestToolMajor(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"pg_dump (PostgreSQL) 15.18 (Debian 15.18-1.pgdg120+1)", 15},
		{"pg_restore (PostgreSQL) 17.2", 17},
		{"pg_dump (PostgreSQL) 18beta1", 18},
		{"pg_dump (PostgreSQL) 9.6.24", 9},
		{"garbage", 0},
	} {
		if got := toolMajor(tc.in); got != tc.want {
			t.Errorf("toolMajor(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestHoldBackWriter(t *testing.T) {
	for _, total := range []int{0, 10, holdBack, holdBack + 1, 5*holdBack + 7} {
		var out bytes.Buffer
		h := &holdBackWriter{w: &out, keep: holdBack}
		data := bytes.Repeat([]byte("0123456789abcdef"), total/16+1)[:total]
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1000+len(rest)%3000)
			if _, err := h.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if want := max(0, total-holdBack); out.Len() != want {
			t.Errorf("total %d: passed %d bytes before flush, want %d", total, out.Len(), want)
		}
		if err := h.flush(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Errorf("total %d: output differs", total)
		}
	}
	h := &holdBackWriter{w: failWriter{}, keep: 4}
	_, err := h.Write([]byte("0123456789"))
	var we writeError
	if !errors.As(err, &we) {
		t.Errorf("write error not marked: %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestToolError(t *testing.T) {
	s := &stderrTail{}
	if _, err := s.Write([]byte("pg_dump: error: connection to server failed: FATAL:  database \"nope\" does not exist\nmore\n")); err != nil {
		t.Fatal(err)
	}
	err := toolError("pg_dump", nil, s)
	if !strings.Contains(err.Error(), `database "nope" does not exist`) || strings.Contains(err.Error(), "more") {
		t.Errorf("toolError = %v", err)
	}
}
