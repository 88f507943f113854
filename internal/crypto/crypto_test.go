package crypto

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

func newID(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseRecipients(t *testing.T) {
	a, b := newID(t).Recipient().String(), newID(t).Recipient().String()
	secret := newID(t).String() // pasted into age_recipients by mistake
	for _, tt := range []struct {
		name, in string
		want     []string
		err      string
	}{
		{"empty", "", nil, ""},
		{"one", a, []string{a}, ""},
		{"commas", a + "," + b, []string{a, b}, ""},
		{"commas and spaces", " " + a + " ,\t" + b + " ", []string{a, b}, ""},
		{"lines and comments", "# ops team\n" + a + "\n\n  # old key, gone\n" + b + "\n", []string{a, b}, ""},
		{"not a key", a + ",age1nope", nil, `age recipient "age1nope"`},
		{"an identity is not a recipient", a + "," + secret, nil, `age recipient "AGE-SECRET-K..."`},
		{"ssh key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA", nil, "ssh-ed25519"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rs, err := ParseRecipients(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one naming %s", err, tt.err)
				}
				if strings.Contains(err.Error(), secret[12:]) {
					t.Errorf("error prints the secret key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rs {
				got = append(got, r.(*age.X25519Recipient).String())
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLoadRecipientsFile(t *testing.T) {
	a, b := newID(t).Recipient().String(), newID(t).Recipient().String()
	rs, err := LoadRecipientsFile(writeFile(t, "# backup keys\n"+a+"\n"+b+"\n"))
	if err != nil || len(rs) != 2 {
		t.Fatalf("got %d recipients, %v; want 2", len(rs), err)
	}
	path := writeFile(t, a+"\nnot-a-key\n")
	if _, err := LoadRecipientsFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("bad file: err = %v, want it to name %s", err, path)
	}
	if _, err := LoadRecipientsFile(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestLoadIdentities(t *testing.T) {
	id, other := newID(t), newID(t)
	// As pitr keygen and age-keygen write it: comments, then the key.
	path := writeFile(t, "# created: 2026-12-01T10:00:00Z\n# public key: "+id.Recipient().String()+"\n"+id.String()+"\n\n# a second key\n"+other.String()+"\n")
	ids, err := LoadIdentities(path)
	if err != nil || len(ids) != 2 {
		t.Fatalf("got %d identities, %v; want 2", len(ids), err)
	}
	// A malformed secret key (a real one, truncated), built here so that no
	// key-shaped string is committed.
	secret := newID(t).String()[:40] + strings.Repeat("X", 20)
	bad := writeFile(t, "# comment\n"+secret+"\n")
	_, err = LoadIdentities(bad)
	if err == nil || !strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), "XXXX") {
		t.Errorf("bad file: err = %v, want it to name the file and not its content", err)
	}
	if _, err := LoadIdentities(writeFile(t, "# only comments\n")); err == nil {
		t.Error("a file without identities loaded")
	}
	if _, err := LoadIdentities(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

func encrypt(t *testing.T, plain []byte, rs ...age.Recipient) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := Encrypt(&buf, rs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decrypt(ct []byte, ids ...age.Identity) ([]byte, error) {
	r, err := Decrypt(bytes.NewReader(ct), ids...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// TestEncryptDecrypt: a payload over several 64 KiB chunks round-trips to
// every recipient; a wrong or missing key is ErrWrongKey; tampered or
// truncated ciphertext fails, and is not mistaken for a wrong key.
func TestEncryptDecrypt(t *testing.T) {
	a, b, stranger := newID(t), newID(t), newID(t)
	plain := make([]byte, 200<<10)
	rand.Read(plain)
	ct := encrypt(t, plain, a.Recipient(), b.Recipient())
	if bytes.Contains(ct, plain[:32]) {
		t.Fatal("ciphertext holds the plaintext")
	}
	for name, id := range map[string]*age.X25519Identity{"first": a, "second": b} {
		got, err := decrypt(ct, id)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%s recipient: %d bytes, %v; want the plaintext", name, len(got), err)
		}
	}
	if got, err := decrypt(ct, stranger, b); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("identity list with the right key second: %v", err)
	}
	if _, err := decrypt(ct, stranger); !errors.Is(err, ErrWrongKey) {
		t.Errorf("wrong key: err = %v, want ErrWrongKey", err)
	}
	if _, err := decrypt(ct); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "no age identity file") {
		t.Errorf("no key: err = %v, want ErrWrongKey naming the identity file", err)
	}
	if _, err := Encrypt(io.Discard); err == nil {
		t.Error("Encrypt without recipients succeeded")
	}
	empty := encrypt(t, nil, a.Recipient())
	if got, err := decrypt(empty, a); err != nil || len(got) != 0 {
		t.Errorf("empty payload: %q, %v", got, err)
	}

	for name, bad := range map[string][]byte{
		"payload byte flipped": flip(ct, len(ct)-100),
		"first chunk flipped":  flip(ct, len(ct)-len(plain)+10),
		"truncated":            ct[:len(ct)-(64<<10)],
		"last byte cut":        ct[:len(ct)-1],
		"header flipped":       flip(ct, 40),
		"not age":              []byte("plain text, not an age file"),
	} {
		t.Run(name, func(t *testing.T) {
			got, err := decrypt(bad, a)
			if err == nil {
				t.Fatalf("decrypted %d bytes of a damaged object", len(got))
			}
			if errors.Is(err, ErrWrongKey) && name != "header flipped" {
				t.Errorf("damage reported as a wrong key: %v", err)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}
