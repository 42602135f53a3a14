package integration

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestProcessSettings(t *testing.T) {
	e := newEnv(t)
	umask := uint32(0o027)
	adj := 123
	script := `id; umask; ulimit -n; ulimit -Hn; grep -E '^(CapEff|CapBnd|CapPrm|CapInh|CapAmb|NoNewPrivs)' /proc/self/status; cat /proc/self/oom_score_adj; pwd; echo $FOO; echo $HOME`
	r := e.run(e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Process.User = specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{2000, 2001}, Umask: &umask}
		caps := []string{"CAP_CHOWN", "CAP_KILL"}
		s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps, Inheritable: caps, Ambient: []string{"CAP_KILL"}}
		s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 321, Hard: 654}}
		s.Process.NoNewPrivileges = true
		s.Process.OOMScoreAdj = &adj
		s.Process.Cwd = "/tmp"
		s.Process.Env = append(s.Process.Env, "FOO=bar")
	}))
	if r.code != 0 {
		t.Fatal(r)
	}
	for _, want := range []string{"uid=1000 gid=1001 groups=2000,2001", "0027", "\n321\n654\n",
		"CapInh:\t0000000000000021", "CapPrm:\t0000000000000020", "CapEff:\t0000000000000020", "CapBnd:\t0000000000000021", "CapAmb:\t0000000000000020",
		"NoNewPrivs:\t1", "\n123\n", "/tmp\nbar\n/\n"} {
		contains(t, r.stdout, want)
	}
}

func TestAllCapsRoot(t *testing.T) {
	e := newEnv(t)
	r := e.run(e.bundle([]string{"sh", "-c", "grep CapEff /proc/self/status"}, func(s *specs.Spec) {
		s.Process.Capabilities = nil
	}))
	contains(t, r.stdout, "CapEff:\t0000000000000000")
}

func TestTerminalConsoleSocket(t *testing.T) {
	e := newEnv(t)
	sock, got := consoleSocket(t)
	b := e.bundle([]string{"sh", "-c", "tty; [ -t 0 ] && echo stdin-is-tty; stty size"}, func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.ConsoleSize = &specs.Box{Height: 40, Width: 100}
	})
	pid := e.create("tty", b, "--console-socket", sock)
	var master *os.File
	select {
	case master = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no pty master received")
	}
	if master == nil {
		t.Fatal("receiving the pty master failed")
	}
	defer master.Close()
	e.ok("start", "tty")
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, master); close(done) }()
	reap(t, pid)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	s := out.String()
	if !strings.Contains(s, "/dev/pts/0") || !strings.Contains(s, "stdin-is-tty") || !strings.Contains(s, "40 100") {
		t.Fatalf("terminal output %q", s)
	}
	e.ok("delete", "tty")
}

// consoleSocket listens like a shim's console socket and delivers the pty
// master it receives.
func consoleSocket(t *testing.T) (string, chan *os.File) {
	sock := filepath.Join(t.TempDir(), "console.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got := make(chan *os.File, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		buf, oob := make([]byte, 64), make([]byte, 64)
		_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			got <- nil
			return
		}
		msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
		if len(msgs) == 0 {
			got <- nil
			return
		}
		fds, _ := unix.ParseUnixRights(&msgs[0])
		got <- os.NewFile(uintptr(fds[0]), "pty-master")
	}()
	return sock, got
}
