package pg

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestRedactDSN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"host=/run/postgresql user=postgres", "host=/run/postgresql user=postgres"},
		{"host=db user=app password=s3cret dbname=x", "host=db user=app password=redacted dbname=x"},
		{"host=db password = s3cret", "host=db password = redacted"},
		{"password='a b c' host=db", "password=redacted host=db"},
		{`host=db password='it\'s a b' user=u`, `host=db password=redacted user=u`},
		{`host=db password=back\ slash user=u`, `host=db password=redacted user=u`},
		{"host=db sslpassword=keypass sslkey=/k", "host=db sslpassword=redacted sslkey=/k"},
		{"host=db password='unterminated", "host=db password=redacted (rest not shown: unparseable)"},
		{"postgres://app:s3cret@db:5432/x?sslmode=disable", "postgres://app:redacted@db:5432/x?sslmode=disable"},
		{"postgresql://app@db/x", "postgresql://app@db/x"},
		{"postgres://app:p%40ss@db/x", "postgres://app:redacted@db/x"},
		{"postgres://app:p@ss@db/x", "postgres://app:redacted@db/x"},
		{"postgres://db/x?user=app&password=s3cret&sslmode=require", "postgres://db/x?user=app&password=redacted&sslmode=require"},
		{"postgres://db?sslpassword=k", "postgres://db?sslpassword=redacted"},
		{"postgres://app:s3cret@db:bad/x", "postgres://app:redacted@db:bad/x"},
	} {
		if got := RedactDSN(tc.in); got != tc.want {
			t.Errorf("RedactDSN(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestParseConfigErrorsHideThePassword covers the strings pgconn fails to
// parse: its own masking misses an escaped quote, and net/url's error
// repeats the whole URL.
func TestParseConfigErrorsHideThePassword(t *testing.T) {
	t.Setenv("PGPASSWORD", "")
	for _, dsn := range []string{
		"postgres://app:Sup3rS3cret@db:notaport/x",
		"postgres://app:Sup3rS3cret@db/x%zz",
		`host=db port=notaport password='Sup3r\'S3cret Tail9'`,
		"host=db port=notaport password=Sup3rS3cret",
	} {
		_, err := ParseConfig(dsn)
		if err == nil {
			t.Fatalf("ParseConfig(%q) succeeded", dsn)
		}
		msg := err.Error()
		if strings.Contains(msg, "S3cret") || strings.Contains(msg, "Sup3r") || strings.Contains(msg, "Tail9") {
			t.Errorf("ParseConfig(%q): error shows the password: %s", dsn, msg)
		}
		if !strings.Contains(msg, "db") {
			t.Errorf("ParseConfig(%q): error does not name the host: %s", dsn, msg)
		}
		var pce *pgconn.ParseConfigError
		if !errors.As(err, &pce) {
			t.Errorf("ParseConfig(%q): cause lost: %T", dsn, err)
		}
	}
}

func TestScrub(t *testing.T) {
	t.Setenv("PGPASSWORD", "envS3cret")
	got := Scrub("a envS3cret b dsnS3cret c\n\td", "host=x password=dsnS3cret")
	if want := "a redacted b redacted c; d"; got != want {
		t.Errorf("Scrub = %q, want %q", got, want)
	}
}
