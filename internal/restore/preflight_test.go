package restore

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeUser is a server user that owns nothing here.
var fakeUser = serverUser{name: "pgtest", uid: 54321, gid: 54321}

func TestAccessFix(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to other users")
	}
	root := t.TempDir() // 0700, owned by root
	if err := os.Chmod(filepath.Dir(root), 0o755); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(root, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		dirMode   os.FileMode
		fileMode  os.FileMode
		fileGroup int // -1: root's
		want      access
		fix       string // "" means allowed
	}{
		{"readable by all", 0o755, 0o644, -1, wantRead, ""},
		{"README's identity: root 0600", 0o755, 0o600, -1, wantRead, "chgrp 54321 F && chmod 0640 F"},
		{"group already the user's", 0o755, 0o600, 54321, wantRead, "chmod 0640 F"},
		{"group-readable by the user's group", 0o755, 0o640, 54321, wantRead, ""},
		{"directory not searchable", 0o700, 0o644, -1, wantRead, "make D searchable by pgtest"},
		{"both", 0o700, 0o600, -1, wantRead, "chgrp 54321 F && chmod 0640 F (and make D searchable by pgtest)"},
		{"binary not executable", 0o755, 0o700, -1, wantExec, "chmod 0755 F (or install pitr where pgtest can run it"},
		{"binary executable", 0o755, 0o755, -1, wantExec, ""},
	} {
		d := filepath.Join(open, strings.ReplaceAll(tc.name, " ", "_"))
		if err := os.Mkdir(d, tc.dirMode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, tc.dirMode); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(d, "file")
		if err := os.WriteFile(f, []byte("x"), tc.fileMode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, tc.fileMode); err != nil {
			t.Fatal(err)
		}
		if tc.fileGroup >= 0 {
			if err := os.Chown(f, 0, tc.fileGroup); err != nil {
				t.Fatal(err)
			}
		}
		got := accessFix(fakeUser, f, tc.want)
		want := strings.NewReplacer("F", f, "D", d).Replace(tc.fix)
		if (want == "") != (got == "") || !strings.HasPrefix(got, want) {
			t.Errorf("%s: accessFix = %q, want %q", tc.name, got, want)
		}
		// Tried for real as that uid, the verdict is the same.
		err := checkAccess(t.Context(), fakeUser, f, tc.want)
		if (err == nil) != (tc.fix == "") {
			t.Errorf("%s: checkAccess = %v", tc.name, err)
		}
		if err != nil && (!strings.HasPrefix(err.Error(), "the server runs as pgtest and cannot "+tc.want.verb()+" "+f+": ") || strings.Contains(err.Error(), "\n")) {
			t.Errorf("%s: error %q", tc.name, err)
		}
	}
}

func TestCheckAccessMissingFile(t *testing.T) {
	err := checkAccess(t.Context(), fakeUser, filepath.Join(t.TempDir(), "missing"), wantRead)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestCheckPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	err = checkPort(port)
	if err == nil || !strings.Contains(err.Error(), "pass --port") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("busy port: %v", err)
	}
	ln.Close()
	if err := checkPort(port); err != nil {
		t.Fatalf("free port: %v", err)
	}
}

// TestPreflightAsServerUser: Preflight judges for the user Run will give
// the files to (the data directory's parent's owner here), not for root.
func TestPreflightAsServerUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	parent := t.TempDir()
	if err := os.Chmod(filepath.Dir(parent), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(parent, int(fakeUser.uid), int(fakeUser.gid)); err != nil {
		t.Fatal(err)
	}
	id := filepath.Join(parent, "identity.txt")
	if err := os.WriteFile(id, []byte("x"), 0o600); err != nil { // root's
		t.Fatal(err)
	}
	err := Preflight(t.Context(), PreflightOptions{DataDir: filepath.Join(parent, "pgdata"), Read: []string{id}})
	if err == nil || !strings.Contains(err.Error(), "cannot read "+id+": chgrp 54321 "+id+" && chmod 0640 "+id) {
		t.Fatalf("Preflight = %v", err)
	}
	if err := os.Chown(id, int(fakeUser.uid), 0); err != nil {
		t.Fatal(err)
	}
	if err := Preflight(t.Context(), PreflightOptions{DataDir: filepath.Join(parent, "pgdata"), Read: []string{id}}); err != nil {
		t.Fatalf("readable by its owner: %v", err)
	}
}
