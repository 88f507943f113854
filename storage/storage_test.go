package storage_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pitr-dev/pitr/storage"
)

func TestValidKey(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"a", true},
		{"wal/0000000100000000/000000010000000000000001.abc.zst.age", true},
		{"a.b/c-d/e_f", true},
		{".hidden/..x/x..", true},
		{"with space", true},
		{strings.Repeat("k", 1024), true},
		{"", false},
		{strings.Repeat("k", 1025), false},
		{"/abs", false},
		{"trailing/", false},
		{"a//b", false},
		{".", false},
		{"..", false},
		{"./a", false},
		{"a/.", false},
		{"a/../b", false},
		{`a\b`, false},
		{"a\x00b", false},
	}
	for _, tt := range tests {
		if got := storage.ValidKey(tt.key); got != tt.want {
			t.Errorf("ValidKey(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}

type fakeUploads struct{ storage.Storage }

func (fakeUploads) ListUploads(context.Context, string, func(storage.Upload) error) error { return nil }
func (fakeUploads) AbortUpload(context.Context, string, string) error                     { return nil }

type wrapper struct{ storage.Storage }

func (w wrapper) Unwrap() storage.Storage { return w.Storage }

// A wrapper (the daemon's store monitor) must not hide the store's uploads
// from the code that aborts what a killed process left.
func TestUploadsOf(t *testing.T) {
	if _, ok := storage.UploadsOf(wrapper{wrapper{fakeUploads{}}}); !ok {
		t.Error("uploads of a twice-wrapped store not found")
	}
	if _, ok := storage.UploadsOf(wrapper{nil}); ok {
		t.Error("a store without uploads reported some")
	}
}
