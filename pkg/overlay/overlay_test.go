package overlay

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// More layers than one option string holds (150 paths of ~100 bytes is
// 15 KB against a 4 KB page): the mount works, each layer is visible, the
// top one wins, and a whiteout hides what is below.
func TestManyLayers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts overlayfs")
	}
	dir := t.TempDir()
	const n = 150
	var lower []string
	for i := 0; i < n; i++ {
		l := filepath.Join(dir, "layers", fmt.Sprintf("%064x", i))
		if err := os.MkdirAll(l, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(l, fmt.Sprintf("f%d", i)), []byte("x"), 0o644)
		os.WriteFile(filepath.Join(l, "top"), []byte(fmt.Sprint(i)), 0o644)
		lower = append(lower, l)
	}
	if err := unix.Mknod(filepath.Join(lower[n-1], "f0"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	upper, work, target := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "root")
	for _, d := range []string{upper, work, target} {
		os.Mkdir(d, 0o755)
	}
	if len(strings.Join(lower, ":")) < os.Getpagesize() {
		t.Fatal("the test does not exceed one page")
	}
	if err := Mount(target, Options{Lower: lower, Upper: upper, Work: work, Volatile: true}); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	if b, _ := os.ReadFile(filepath.Join(target, "top")); string(b) != fmt.Sprint(n-1) {
		t.Errorf("top layer: %q", b)
	}
	if _, err := os.Stat(filepath.Join(target, "f1")); err != nil {
		t.Errorf("a low layer's file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(target, "f0")); !os.IsNotExist(err) {
		t.Errorf("whited-out file: %v", err)
	}
	if err := os.WriteFile(filepath.Join(target, "new"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(upper, "new")); err != nil {
		t.Errorf("write did not go to the upper dir: %v", err)
	}
}

func TestMountErrorIsClear(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts overlayfs")
	}
	dir := t.TempDir()
	err := Mount(filepath.Join(dir, "nowhere"), Options{Lower: []string{filepath.Join(dir, "missing")}, Upper: dir, Work: dir})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("want an error naming the missing layer, got %v", err)
	}
}
