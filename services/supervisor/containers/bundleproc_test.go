package containers

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/pkg/errdefs"
)

// An exec builds on the bundle's process: the one launch wrote, else (a
// container restored by a new supervisor) the one in config.json; a
// container whose bundle is gone is not running.
func TestBundleProcess(t *testing.T) {
	m := &Manager{cfg: Config{ExecRoot: t.TempDir()}}
	const id = "c1"
	if _, err := m.bundleProcess(id); !errdefs.Is(err, errdefs.Conflict) {
		t.Fatalf("no bundle: %v, want a conflict", err)
	}
	write := func(args ...string) {
		t.Helper()
		data, err := json.Marshal(specs.Spec{Version: "1.2.0", Process: &specs.Process{Args: args, Cwd: "/"}, Root: &specs.Root{Path: "rootfs"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(m.bundle(id), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(m.bundle(id), "config.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	args := func() string {
		t.Helper()
		p, err := m.bundleProcess(id)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Args) != 1 {
			t.Fatalf("args %q", p.Args)
		}
		return p.Args[0]
	}
	write("from-disk")
	if got := args(); got != "from-disk" {
		t.Fatalf("restored container: %q, want the bundle's process", got)
	}
	// launch stores what it writes
	write("second-run")
	m.bundleProcs.Store(id, &specs.Process{Args: []string{"second-run"}})
	if got := args(); got != "second-run" {
		t.Fatalf("after a launch: %q", got)
	}
	// the end of the run (or the container's removal) forgets it
	m.dropExecs(id)
	write("third")
	if got := args(); got != "third" {
		t.Fatalf("after removal: %q, want the file's process", got)
	}
	os.RemoveAll(m.bundle(id))
	m.bundleProcs.Delete(id)
	if _, err := m.bundleProcess(id); !errdefs.Is(err, errdefs.Conflict) {
		t.Fatalf("bundle removed: %v, want a conflict", err)
	}
}
