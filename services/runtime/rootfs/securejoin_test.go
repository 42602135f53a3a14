package rootfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSecureJoin(t *testing.T) {
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
		got, err := SecureJoin(root, in)
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got != filepath.Join(root, want) {
			t.Errorf("%s: got %s want %s", in, got, filepath.Join(root, want))
		}
	}
	if _, err := SecureJoin(root, "/loop/x"); err == nil {
		t.Error("symlink loop not detected")
	}
}

func TestParseOptions(t *testing.T) {
	p := parseOptions([]string{"rbind", "ro", "nosuid", "rslave", "size=1m", "mode=755", "rw", "rro"})
	if p.flags&0x1 != 0 { // MS_RDONLY cleared by the later "rw"
		t.Errorf("rw did not clear ro: %#x", p.flags)
	}
	if p.data != "size=1m,mode=755" || len(p.prop) != 1 || !p.hasAttrs {
		t.Errorf("parsed %+v", p)
	}
}
