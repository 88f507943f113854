// Package crypto encrypts and decrypts object payloads with age
// (filippo.io/age, X25519 recipients). A host that only pushes needs the
// public recipients; only restoring needs an identity (secret key) file.
package crypto

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
)

// ErrWrongKey is wrapped when none of the identities can open an object.
var ErrWrongKey = errors.New("no identity matches: wrong or missing key")

// ParseRecipients parses age public keys ("age1..."), separated by commas,
// white space or newlines; lines starting with '#' are comments.
func ParseRecipients(s string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			r, err := age.ParseX25519Recipient(f)
			if err != nil {
				// Not age's error: it repeats the whole value, and a secret
				// key pasted here by mistake must not reach a log.
				why := "not an age public key (age1...)"
				if strings.HasPrefix(strings.ToUpper(f), "AGE-SECRET-KEY-") {
					why = "an identity (secret key), not a public recipient; give pitr its recipient (pitr keygen prints it) and keep the identity off this host"
				}
				return nil, fmt.Errorf("age recipient %q: %s", short(f), why)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// LoadRecipientsFile reads recipients from a file in ParseRecipients' format.
func LoadRecipientsFile(path string) ([]age.Recipient, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("age recipients file: %w", err)
	}
	rs, err := ParseRecipients(string(b))
	if err != nil {
		return nil, fmt.Errorf("age recipients file %s: %w", path, err)
	}
	return rs, nil
}

// LoadIdentities reads an age identity file (as written by `pitr keygen` or
// `age-keygen`).
func LoadIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("age identity file: %w", err)
	}
	defer f.Close()
	ids, err := age.ParseIdentities(bufio.NewReader(f))
	if err != nil {
		// Never include the file's content: it is a secret.
		return nil, fmt.Errorf("age identity file %s: not a valid identity file", path)
	}
	return ids, nil
}

// Encrypt returns a writer that encrypts to every recipient and writes the
// age file to w. Close finishes the last chunk; it does not close w.
func Encrypt(w io.Writer, recipients ...age.Recipient) (io.WriteCloser, error) {
	if len(recipients) == 0 {
		return nil, errors.New("encrypt: no age recipients configured")
	}
	wc, err := age.Encrypt(w, recipients...)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return wc, nil
}

// Decrypt returns a reader of the plaintext. age authenticates every 64 KiB
// chunk: a tampered or truncated object fails while reading, never silently.
func Decrypt(r io.Reader, identities ...age.Identity) (io.Reader, error) {
	if len(identities) == 0 {
		return nil, fmt.Errorf("decrypt: %w (no age identity file configured)", ErrWrongKey)
	}
	pr, err := age.Decrypt(r, identities...)
	var noMatch *age.NoIdentityMatchError
	if errors.As(err, &noMatch) {
		return nil, fmt.Errorf("decrypt: %w", ErrWrongKey)
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	return pr, nil
}

// NewIdentity generates a fresh X25519 identity.
func NewIdentity() (*age.X25519Identity, error) {
	return age.GenerateX25519Identity()
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12] + "..."
	}
	return s
}
