package containers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]int{"SIGTERM": 15, "TERM": 15, "term": 15, "9": 9, "SIGKILL": 9, "SIGUSR1": 10, "HUP": 1} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, in := range []string{"", "NOPE", "0", "65", "-1"} {
		if _, err := ParseSignal(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func TestNewIDAndNames(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id := NewID()
		if !idPattern.MatchString(id) || seen[id] {
			t.Fatalf("bad id %q", id)
		}
		seen[id] = true
	}
	for _, ok := range []string{"ab", "a.b-c_d", "A1"} {
		if !namePattern.MatchString(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"a", "-ab", "a b", "a/b", "_ab", "ä"} {
		if namePattern.MatchString(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestLastLine(t *testing.T) {
	in := `{"level":"INFO","msg":"x"}
berth-shim: runc create failed: exec: "/no": stat /no: no such file or directory
`
	if got := lastLine(in); !strings.HasPrefix(got, "berth-shim: runc create failed") {
		t.Errorf("%q", got)
	}
	if got := lastLine(`{"msg":"failed","err":"boom"}`); got != "boom" {
		t.Errorf("%q", got)
	}
}

func TestMatchLabelsAndTime(t *testing.T) {
	cfg := &container.Config{Labels: map[string]string{"a": "1", "b": ""}}
	if !matchLabels(cfg, []string{"a", "a=1", "b"}, true) || matchLabels(cfg, []string{"a=2"}, true) {
		t.Error("label filters")
	}
	if !matchLabels(cfg, []string{"c"}, false) || matchLabels(cfg, []string{"a"}, false) {
		t.Error("label! filters")
	}
	for _, s := range []string{"2024-01-02T03:04:05Z", "1700000000", "1h"} {
		if _, err := parseTime(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := parseTime("soon"); err == nil {
		t.Error("soon accepted")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	for _, content := range []string{"one", "two"} {
		if err := WriteFileAtomic(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(p); string(b) != content {
			t.Fatalf("%q", b)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temp files left: %v", ents)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "nodir", "x"), []byte("x"), 0o600); err == nil {
		t.Fatal("wrote into a missing directory")
	}
}
