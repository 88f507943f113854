package pg

import (
	"context"
	"errors"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Redacted is what a password prints as.
const Redacted = "redacted"

// secretKeys are the connection parameters that hold credentials, see
// https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
var secretKeys = map[string]bool{"password": true, "sslpassword": true}

// RedactDSN returns a libpq connection string with the values of password
// and sslpassword replaced by "redacted", and everything else as it was:
// the host, port, user and database are what an operator needs to see. Both
// forms are handled: keyword/value (password=s3cret, password='a b',
// password='it\'s') and URL (postgres://user:s3cret@host/db?sslpassword=x).
// A keyword/value string it cannot parse is cut at its first "password".
func RedactDSN(dsn string) string {
	if isURL(dsn) {
		return redactURL(dsn)
	}
	spans, err := scanKeywordValues(dsn)
	if err != nil {
		if i := strings.Index(dsn, "password"); i >= 0 {
			return dsn[:i] + "password=" + Redacted + " (rest not shown: unparseable)"
		}
		return dsn
	}
	var b strings.Builder
	last := 0
	for _, s := range spans {
		if secretKeys[s.key] {
			b.WriteString(dsn[last:s.start])
			b.WriteString(Redacted)
			last = s.end
		}
	}
	b.WriteString(dsn[last:])
	return b.String()
}

func isURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// redactURL masks the userinfo password and password query values without
// parsing the URL, which may be exactly what failed to parse. The userinfo
// ends at the last "@" before the first "/": that covers both libpq's
// reading (the first "@") and Go's (the last), over-masking when they
// differ.
func redactURL(dsn string) string {
	scheme, rest, _ := strings.Cut(dsn, "://")
	var b strings.Builder
	b.WriteString(scheme + "://")
	authEnd := strings.IndexByte(rest, '/')
	if authEnd < 0 {
		authEnd = len(rest)
	}
	if at := strings.LastIndexByte(rest[:authEnd], '@'); at >= 0 {
		if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
			b.WriteString(rest[:colon+1] + Redacted)
		} else {
			b.WriteString(rest[:at])
		}
		b.WriteByte('@')
		rest = rest[at+1:]
	}
	q := strings.IndexByte(rest, '?')
	if q < 0 {
		b.WriteString(rest)
		return b.String()
	}
	b.WriteString(rest[:q+1])
	params := strings.Split(rest[q+1:], "&")
	for i, p := range params {
		k, _, hasValue := strings.Cut(p, "=")
		if dk, err := url.QueryUnescape(k); err == nil {
			k = dk
		}
		if hasValue && secretKeys[k] {
			params[i] = p[:strings.IndexByte(p, '=')+1] + Redacted
		}
	}
	b.WriteString(strings.Join(params, "&"))
	return b.String()
}

// kvSpan is one keyword=value of a keyword/value connection string; start
// and end delimit the value as written (quotes included).
type kvSpan struct {
	key, value string
	start, end int
}

// KeywordValues parses a libpq keyword/value connection string into
// keyword, value pairs (values unquoted and unescaped), in order.
func KeywordValues(s string) ([][2]string, error) {
	spans, err := scanKeywordValues(s)
	if err != nil {
		return nil, err
	}
	out := make([][2]string, len(spans))
	for i, kv := range spans {
		out[i] = [2]string{kv.key, kv.value}
	}
	return out, nil
}

// scanKeywordValues parses a libpq keyword/value connection string the way
// libpq's conninfo_parse does: whitespace around "=" allowed; a value is
// single-quoted (with \' and \\ escapes) or runs to the next whitespace
// (with backslash escapes).
func scanKeywordValues(s string) ([]kvSpan, error) {
	var out []kvSpan
	i := 0
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' }
	skip := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for {
		skip()
		if i >= len(s) {
			return out, nil
		}
		k := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[k:i]
		if key == "" {
			return nil, errors.New("a value without a keyword")
		}
		skip()
		if i >= len(s) || s[i] != '=' {
			return nil, errors.New(`missing "=" after ` + key)
		}
		i++
		skip()
		var val strings.Builder
		start := i
		if i < len(s) && s[i] == '\'' {
			i++
			for ; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated quoted value for " + key)
			}
			i++
		} else {
			for ; i < len(s) && !isSpace(s[i]); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
			}
		}
		out = append(out, kvSpan{key: key, value: val.String(), start: start, end: i})
	}
}

// passwords returns the credentials in dsn as written and as meant (quoted,
// escaped, percent-encoded), and PGPASSWORD's: whatever might show up in an
// error message.
func passwords(dsn string) []string {
	var out []string
	add := func(v string) {
		// A very short password would match ordinary words; it is too
		// weak to protect anyway.
		if len(v) >= 3 {
			out = append(out, v)
		}
	}
	add(os.Getenv("PGPASSWORD"))
	if isURL(dsn) {
		_, rest, _ := strings.Cut(dsn, "://")
		authEnd := strings.IndexByte(rest, '/')
		if authEnd < 0 {
			authEnd = len(rest)
		}
		if at := strings.LastIndexByte(rest[:authEnd], '@'); at >= 0 {
			if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
				add(pw)
				if d, err := url.PathUnescape(pw); err == nil {
					add(d)
				}
			}
		}
		if _, query, ok := strings.Cut(rest, "?"); ok {
			for _, p := range strings.Split(query, "&") {
				k, v, _ := strings.Cut(p, "=")
				if dk, err := url.QueryUnescape(k); err == nil && secretKeys[dk] {
					add(v)
					if d, err := url.QueryUnescape(v); err == nil {
						add(d)
					}
				}
			}
		}
		return out
	}
	spans, _ := scanKeywordValues(dsn)
	for _, s := range spans {
		if secretKeys[s.key] {
			add(dsn[s.start:s.end])
			add(s.value)
		}
	}
	return out
}

// Scrub returns msg with every password of dsn (and PGPASSWORD) replaced
// by "redacted", on one line.
func Scrub(msg, dsn string) string {
	for _, pw := range passwords(dsn) {
		msg = strings.ReplaceAll(msg, pw, Redacted)
	}
	msg = strings.ReplaceAll(msg, "\n\t", "; ")
	return strings.ReplaceAll(msg, "\n", " ")
}

// redactedError carries a scrubbed message and keeps the cause for
// errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// ParseConfig is pgconn.ParseConfig with an error that shows the connection
// string redacted and no password: pgconn's own masking is best effort, and
// a URL that fails to parse comes back whole inside net/url's error.
func ParseConfig(dsn string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err == nil {
		return cfg, nil
	}
	msg := err.Error()
	var pce *pgconn.ParseConfigError
	if errors.As(err, &pce) {
		// Its message with an empty string in place of pgconn's masking.
		c := *pce
		c.ConnString = ""
		msg = "cannot parse `" + RedactDSN(dsn) + "`: " + strings.TrimPrefix(c.Error(), "cannot parse ``: ")
	}
	return nil, &redactedError{msg: Scrub("parse postgres connection string: "+msg, dsn), err: err}
}

// ConnectConfig is pgconn.ConnectConfig with an error that holds no
// password of dsn (the string cfg was parsed from) or PGPASSWORD.
func ConnectConfig(ctx context.Context, cfg *pgconn.Config, dsn string) (*pgconn.PgConn, error) {
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, &redactedError{msg: Scrub("connect to postgres: "+err.Error(), dsn), err: err}
	}
	return conn, nil
}
