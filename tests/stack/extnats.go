package stack

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ExternalNATS is a nats-server process of its own (the module's
// nats-server dependency, built once), configured from deploy/nats.conf the
// way a deployer runs it: the passwords and the auth callout issuer come
// from the environment, the credentials files are written by hand and the
// issuer's seed by `berth-supervisor callout-key`. Only the listen address
// and the JetStream store differ.
type ExternalNATS struct {
	Addr string // host:port clients dial
	Dir  string // configuration, credentials, store, log

	t    testing.TB
	conf string
	env  []string
	cmd  *exec.Cmd
}

var (
	natsServerOnce sync.Once
	natsServerBin  string
	natsServerErr  error
)

// natsServerBinary is $BERTH_BIN/nats-server (make build) or one built once.
func natsServerBinary() (string, error) {
	natsServerOnce.Do(func() {
		if d := os.Getenv("BERTH_BIN"); d != "" {
			if p := filepath.Join(d, "nats-server"); fileExists(p) {
				natsServerBin = p
				return
			}
		}
		root, err := ModuleRoot()
		if err != nil {
			natsServerErr = err
			return
		}
		dir, err := os.MkdirTemp("", "berth-nats-server-")
		if err != nil {
			natsServerErr = err
			return
		}
		natsServerBin = filepath.Join(dir, "nats-server")
		cmd := exec.Command("go", "build", "-o", natsServerBin, "github.com/nats-io/nats-server/v2")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			natsServerErr = fmt.Errorf("build nats-server: %v\n%s", err, out)
		}
	})
	return natsServerBin, natsServerErr
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// NewExternalNATS prepares an external NATS server in dir as deploy/nats.conf
// describes (credentials of apigw and the supervisor, the callout issuer made
// with supervisorBin) and starts it.
func NewExternalNATS(t testing.TB, dir, supervisorBin string) *ExternalNATS {
	t.Helper()
	if _, err := natsServerBinary(); err != nil {
		t.Fatal(err)
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	n := &ExternalNATS{Addr: addr, Dir: dir, t: t}
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o700); err != nil {
		t.Fatal(err)
	}
	// the deployer's steps: one password per service, the callout issuer
	env := map[string]string{}
	for _, user := range []string{"apigw", "supervisor"} {
		pw := randomHex()
		env["BERTH_NATS_"+strings.ToUpper(user)+"_PASSWORD"] = pw
		b, _ := json.Marshal(map[string]string{"user": user, "password": pw})
		if err := os.WriteFile(n.Credentials(user), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(supervisorBin, "callout-key", n.CalloutKey()).Output()
	if err != nil {
		t.Fatalf("berth-supervisor callout-key: %v", err)
	}
	env["BERTH_NATS_CALLOUT_ISSUER"] = strings.TrimSpace(string(out))
	for k, v := range env {
		n.env = append(n.env, k+"="+v)
	}

	conf, err := os.ReadFile(filepath.Join(root, "deploy", "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	s := string(conf)
	for _, r := range []struct{ re, with string }{
		{`(?m)^port: 4222$`, "host: " + host + "\nport: " + port},
		{`(?m)^http: .*$`, ""}, // no monitoring port
		{`(?m)^(\s*)store_dir: /data$`, "${1}store_dir: " + `"` + filepath.Join(dir, "jetstream") + `"`},
	} {
		re := regexp.MustCompile(r.re)
		if !re.MatchString(s) {
			t.Fatalf("deploy/nats.conf no longer has %s: update tests/stack", r.re)
		}
		s = re.ReplaceAllString(s, r.with)
	}
	n.conf = filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(n.conf, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	n.Start()
	return n
}

func randomHex() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(rand.UintN(256))
	}
	return hex.EncodeToString(b[:])
}

// Credentials is the credentials file of user ("apigw", "supervisor").
func (n *ExternalNATS) Credentials(user string) string {
	return filepath.Join(n.Dir, "etc", user+".json")
}

// CalloutKey is the seed file of the auth callout issuer.
func (n *ExternalNATS) CalloutKey() string { return filepath.Join(n.Dir, "etc", "callout.nk") }

// Start starts (or restarts, on the same address and store) the server and
// waits until it accepts connections.
func (n *ExternalNATS) Start() {
	n.t.Helper()
	bin, _ := natsServerBinary()
	log, err := os.OpenFile(filepath.Join(n.Dir, "nats.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(bin, "-c", n.conf)
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	n.cmd = cmd
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", n.Addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("nats-server did not listen on %s in 30s; log in %s", n.Addr, filepath.Join(n.Dir, "nats.log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server with sig (SIGTERM: a clean shutdown; SIGKILL: a
// crash) and reaps it.
func (n *ExternalNATS) Stop(sig syscall.Signal) {
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Signal(sig)
		n.cmd.Wait()
		n.cmd = nil
	}
}
