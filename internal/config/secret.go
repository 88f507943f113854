package config

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/pitr-dev/pitr/internal/pg"
)

// SecretString is a credential-bearing setting. Every way of printing it
// (String, fmt's verbs, JSON, YAML, text, zerolog's Interface and
// Stringer) shows "redacted", or "" when it is empty; code that needs the
// value calls Reveal (see restic's internal/options/secret_string.go).
type SecretString struct{ s string }

// NewSecretString wraps a secret.
func NewSecretString(s string) SecretString { return SecretString{s} }

// Reveal returns the secret itself, for the code that uses it.
func (s SecretString) Reveal() string { return s.s }

func (s SecretString) String() string {
	if s.s == "" {
		return ""
	}
	return pg.Redacted
}

// GoString covers %#v.
func (s SecretString) GoString() string { return fmt.Sprintf("%q", s.String()) }

// Format covers every fmt verb, %x and %q included.
func (s SecretString) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

func (s SecretString) MarshalJSON() ([]byte, error)  { return json.Marshal(s.String()) }
func (s SecretString) MarshalYAML() (any, error)     { return s.String(), nil }
func (s SecretString) MarshalText() ([]byte, error)  { return []byte(s.String()), nil }
func (s *SecretString) UnmarshalText(b []byte) error { s.s = strings.TrimSpace(string(b)); return nil }

func (s *SecretString) UnmarshalYAML(n *yaml.Node) error {
	var v string
	if err := n.Decode(&v); err != nil {
		return err
	}
	return s.UnmarshalText([]byte(v))
}

// DSN is a libpq connection string, which may hold a password (password=...
// or user:password@ in a URL). It prints as the connection string with only
// the password replaced by "redacted": the host, port and user are what an
// operator needs to see. Reveal returns it whole.
type DSN struct{ s string }

// NewDSN wraps a connection string.
func NewDSN(s string) DSN { return DSN{s} }

// Reveal returns the connection string with its password, to connect with.
func (d DSN) Reveal() string { return d.s }

func (d DSN) String() string                { return pg.RedactDSN(d.s) }
func (d DSN) GoString() string              { return fmt.Sprintf("%q", d.String()) }
func (d DSN) Format(f fmt.State, _ rune)    { _, _ = io.WriteString(f, d.String()) }
func (d DSN) MarshalJSON() ([]byte, error)  { return json.Marshal(d.String()) }
func (d DSN) MarshalYAML() (any, error)     { return d.String(), nil }
func (d DSN) MarshalText() ([]byte, error)  { return []byte(d.String()), nil }
func (d *DSN) UnmarshalText(b []byte) error { d.s = strings.TrimSpace(string(b)); return nil }
func (d *DSN) UnmarshalYAML(n *yaml.Node) error {
	var v string
	if err := n.Decode(&v); err != nil {
		return err
	}
	return d.UnmarshalText([]byte(v))
}
