package securejoin

import (
	"os"
	"path/filepath"
	"testing"
)

func TestJoin(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "a/b"), 0o755)
	os.Symlink("/etc", filepath.Join(root, "abs"))
	os.Symlink("../../..", filepath.Join(root, "a/b/up"))
	os.Symlink("b", filepath.Join(root, "a/rel"))
	os.Symlink("loop", filepath.Join(root, "loop"))
	for in, want := range map[string]string{
		"/":             "",
		"/a/b":          "a/b",
		"/../../x":      "x",
		"/abs/passwd":   "etc/passwd",
		"/a/b/up/etc":   "etc",
		"/a/rel/c":      "a/b/c",
		"/a/./b/../b/c": "a/b/c",
		"/missing/x":    "missing/x",
	} {
		got, err := Join(root, in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got != filepath.Join(root, want) {
			t.Errorf("%s: got %s want %s", in, got, filepath.Join(root, want))
		}
	}
	if _, err := Join(root, "/loop/x"); err == nil {
		t.Error("symlink loop not detected")
	}
}
