package e2e

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"berth/tests/stack"
)

func TestTerminalRunInteractive(t *testing.T) {
	s := shared(t)
	name := uniq("tty")
	t.Cleanup(func() { s.Docker("rm", "-f", name) })
	p := s.DockerPty("run", "-it", "--name", name, "busybox", "sh")
	p.Expect("# ", 15*time.Second)
	p.Send("tty; stty size; echo T=$TERM\r")
	p.Expect("/dev/pts/0", 5*time.Second)
	p.Expect("24 80", 5*time.Second)
	p.Expect("T=xterm", 5*time.Second)
	// a new window size reaches the container (SIGWINCH → POST /containers/{id}/resize)
	p.Resize(40, 120)
	waitFor(t, 5*time.Second, "the resized terminal", func() bool {
		p.Send("stty size\r")
		time.Sleep(200 * time.Millisecond)
		return strings.Contains(p.Output(), "40 120")
	})
	// ctrl-p ctrl-q: the CLI leaves, the container goes on
	p.Send("\x10\x11")
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("docker run -it detached with exit %d; terminal:\n%s", code, p.Output())
	}
	if st := s.MustDocker("inspect", "-f", "{{.State.Status}}", name); st != "running" {
		t.Fatalf("after detaching the container is %s", st)
	}
	// docker attach comes back to the same shell; custom detach keys
	a := s.DockerPty("attach", "--detach-keys", "ctrl-x,x", name)
	time.Sleep(300 * time.Millisecond)
	a.Send("echo back-$((40+2))\r")
	a.Expect("back-42", 10*time.Second)
	a.Send("\x18x")
	// the docker CLI's own answer to a detached attach (as against dockerd)
	if code := a.Wait(10 * time.Second); code != 1 || !strings.Contains(a.Output(), "read escape sequence") {
		t.Fatalf("docker attach detached with exit %d; terminal:\n%s", code, a.Output())
	}
	if st := s.MustDocker("inspect", "-f", "{{.State.Status}}", name); st != "running" {
		t.Fatalf("after detaching from attach the container is %s", st)
	}
	// the shell's exit ends attach with its code
	b := s.DockerPty("attach", name)
	time.Sleep(300 * time.Millisecond)
	b.Send("exit 3\r")
	if code := b.Wait(10 * time.Second); code != 3 {
		t.Fatalf("docker attach ended with %d, want the shell's 3; terminal:\n%s", code, b.Output())
	}
	if got := s.MustDocker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name); got != "exited 3" {
		t.Fatalf("container after exit: %s", got)
	}
}

func TestTerminalCreateThenStartAttach(t *testing.T) {
	s := shared(t)
	plain, tty := uniq("starta"), uniq("startai")
	t.Cleanup(func() { s.Docker("rm", "-f", plain, tty) })
	s.MustDocker("create", "--name", plain, "busybox", "sh", "-c", "echo hi; echo err >&2; exit 4")
	out, eout, code := s.Docker("start", "-a", plain)
	if out != "hi" || eout != "err" || code != 4 {
		t.Fatalf("docker start -a: exit %d stdout %q stderr %q, want 4 \"hi\" \"err\"", code, out, eout)
	}
	s.MustDocker("create", "-it", "--name", tty, "busybox", "sh")
	p := s.DockerPty("start", "-ai", tty)
	p.Expect("# ", 15*time.Second)
	p.Send("echo in-$((2*3))\r")
	p.Expect("in-6", 5*time.Second)
	p.Send("exit 5\r")
	if code := p.Wait(10 * time.Second); code != 5 {
		t.Fatalf("docker start -ai exited %d, want 5; terminal:\n%s", code, p.Output())
	}
}

func TestTerminalRawStream(t *testing.T) {
	s := shared(t)
	// with a tty there is one raw stream: stderr arrives on stdout, with \r\n
	out, eout, code := s.Docker("run", "--rm", "-t", "busybox", "sh", "-c", "echo out; echo err >&2")
	if out != "out\r\nerr\r" || eout != "" || code != 0 {
		t.Fatalf("run -t: exit %d stdout %q stderr %q", code, out, eout)
	}
	out, eout, _ = s.Docker("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2")
	if out != "out" || eout != "err" {
		t.Fatalf("run without -t: stdout %q stderr %q", out, eout)
	}
	// the content types of the hijacked streams
	ttyName := runSleeper(t, s, "-t")
	plainName := runSleeper(t, s)
	for _, c := range []struct{ path, body, want string }{
		{"/containers/" + ttyName + "/attach?stream=1&stdout=1", "", "application/vnd.docker.raw-stream"},
		{"/containers/" + plainName + "/attach?stream=1&stdout=1", "", "application/vnd.docker.multiplexed-stream"},
		{"/exec/" + execCreate(t, s, ttyName, `{"Cmd":["true"],"Tty":true,"AttachStdout":true}`) + "/start", `{"Tty":true}`, "application/vnd.docker.raw-stream"},
		{"/exec/" + execCreate(t, s, plainName, `{"Cmd":["true"],"AttachStdout":true}`) + "/start", `{}`, "application/vnd.docker.multiplexed-stream"},
	} {
		conn, resp := hijack(t, s, c.path, c.body)
		conn.Close()
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Content-Type") != c.want {
			t.Errorf("POST %s: %d %q, want 101 %q", c.path, resp.StatusCode, resp.Header.Get("Content-Type"), c.want)
		}
	}
}

// The server itself honours the detach keys (for clients other than the
// docker CLI, which also watches for them): the stream ends, the container
// runs on.
func TestTerminalServerDetachKeys(t *testing.T) {
	s := shared(t)
	name := uniq("detach")
	s.MustDocker("run", "-dit", "--name", name, "busybox", "sh")
	t.Cleanup(func() { s.Docker("rm", "-f", name) })
	for _, c := range []struct{ query, keys string }{{"", "\x10\x11"}, {"&detachKeys=ctrl-x,x", "\x18x"}} {
		conn, _ := hijack(t, s, "/containers/"+name+"/attach?stream=1&stdin=1&stdout=1"+c.query, "")
		if _, err := conn.Write([]byte("echo mark$((5*5))\n")); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		readUntil(t, r, "mark25")
		if _, err := conn.Write([]byte(c.keys)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatalf("detach keys %q: the stream did not end: %v", c.keys, err)
		}
		conn.Close()
	}
	if st := s.MustDocker("inspect", "-f", "{{.State.Status}}", name); st != "running" {
		t.Fatalf("after detaching the container is %s", st)
	}
	if code, msg := call(t, s, "POST", "/containers/"+name+"/attach?stream=1&stdin=1&detachKeys=ctrl-", ""); code != 400 || msg != "Invalid detach keys (ctrl-) provided" {
		t.Fatalf("bad detach keys: %d %q", code, msg)
	}
}

// hijack sends a POST that upgrades the connection (as the docker CLI
// does) and returns the connection after the response's header.
func hijack(t *testing.T, s *stack.Stack, path, body string) (net.Conn, *http.Response) {
	t.Helper()
	conn, err := net.Dial("unix", strings.TrimPrefix(s.Host, "unix://"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://berth"+path, strings.NewReader(body))
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "tcp")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	return &bufferedConn{Conn: conn, r: br}, resp
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func readUntil(t *testing.T, r *bufio.Reader, want string) {
	t.Helper()
	var got strings.Builder
	buf := make([]byte, 1024)
	for !strings.Contains(got.String(), want) {
		n, err := r.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("the stream ended before %q: %v (%q)", want, err, got.String())
		}
	}
}
