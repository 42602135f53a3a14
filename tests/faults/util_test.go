package faults

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/tests/stack"
)

func statMode(p string) (os.FileMode, error) {
	st, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	return st.Mode().Perm(), nil
}

func contextTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// dumpLogsOnFailure prints the end of the daemons' logs when t fails.
func dumpLogsOnFailure(t *testing.T, s *stack.Stack) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// the whole logs are kept (the stack's directory is removed)
		keep, _ := os.MkdirTemp("", "berth-faults-logs-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
		logs := map[string]string{}
		for _, name := range []string{"apigw", "supervisor"} {
			logs[name] = filepath.Join(filepath.Dir(s.Root), name+".log")
		}
		if s.NATS != nil {
			logs["nats"] = filepath.Join(s.NATS.Dir, "nats.log")
		}
		for name, path := range logs {
			b, _ := os.ReadFile(path)
			if keep != "" {
				_ = os.WriteFile(filepath.Join(keep, name+".log"), b, 0o600)
			}
			lines := strings.Split(string(b), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("--- %s.log (end; all of it in %s)\n%s", name, keep, strings.Join(lines, "\n"))
		}
	})
}
