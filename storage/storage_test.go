package storage_test

import (
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
