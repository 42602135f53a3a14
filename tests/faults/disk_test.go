package faults

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"berth/pkg/bus/dockermsg"
	"berth/tests/stack"
)

// record reads a container's record straight from disk.
func record(t *testing.T, s *stack.Stack, id string) dockermsg.Container {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Root, "containers", id, "container.json"))
	if err != nil {
		t.Fatalf("record of %s: %v", id, err)
	}
	var c dockermsg.Container
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("record of %s is corrupt: %v: %q", id, err, b)
	}
	return c
}

// TestStateDirFullOrReadOnly: with the records' directory
// (<root>/containers) on a small tmpfs that is then filled up, and then made
// read-only, commands that write records fail with a clear error and no
// record is left torn; once space is back, everything works again. (The
// whole --root on a small tmpfs would leave JetStream, which sizes its
// stream limits from the free space, unable to start.)
func TestStateDirFullOrReadOnly(t *testing.T) {
	var dir string
	s := stack.StartWith(t, func(s *stack.Stack) {
		dir = filepath.Join(s.Root, "containers")
		if err := os.MkdirAll(dir, 0o711); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m,mode=0711"); err != nil {
			t.Skipf("cannot mount a tmpfs: %v", err)
		}
	})
	dumpLogsOnFailure(t, s)
	s.ImportBusybox()
	id := s.MustDocker("create", "--name", "victim", "busybox", "true")

	// fill the file system
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	small := make([]byte, 4096)
	for {
		if _, err := f.Write(small); err != nil {
			break
		}
	}
	f.Close()

	_, errOut, code := s.Docker("rename", "victim", "renamed")
	if code == 0 {
		t.Fatal("rename succeeded on a full disk")
	}
	if !strings.Contains(errOut, "no space left") {
		t.Errorf("unclear error on a full disk: %q", errOut)
	}
	if c := record(t, s, id); c.Name != "/victim" {
		t.Errorf("record name %q after a failed rename", c.Name)
	}
	if c := mustInspect(t, s, id); c.Name != "/victim" {
		t.Errorf("inspect name %q after a failed rename", c.Name)
	}
	_, errOut, code = s.Docker("create", "--name", "nospace", "busybox", "true")
	if code == 0 {
		t.Error("create succeeded on a full disk")
	} else if !strings.Contains(errOut, "no space left") {
		t.Errorf("unclear error for create on a full disk: %q", errOut)
	}
	if _, ok := inspectOf(t, s, "nospace"); ok {
		t.Error("a container was half-created on a full disk")
	}

	// read-only
	os.Remove(filler)
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	_, errOut, code = s.Docker("rename", "victim", "renamed")
	if code == 0 || !strings.Contains(errOut, "read-only file system") {
		t.Errorf("rename on a read-only state dir: %d %q", code, errOut)
	}
	if c := record(t, s, id); c.Name != "/victim" {
		t.Errorf("record name %q after a failed rename", c.Name)
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT, "size=16m"); err != nil {
		t.Fatalf("remount read-write: %v", err)
	}

	// back to normal: nothing was corrupted, no temporary file is left
	s.MustDocker("rename", "victim", "renamed")
	if c := record(t, s, id); c.Name != "/renamed" {
		t.Errorf("record name %q after the rename", c.Name)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root, "containers", id))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
	if out := s.MustDocker("run", "--rm", "busybox", "echo", "ok"); out != "ok" {
		t.Errorf("run after the disk was freed: %q", out)
	}
}
