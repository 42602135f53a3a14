package faults

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/bus/natsbus"
	"berth/tests/stack"
)

// permErrors collects the asynchronous permission errors of a connection.
type permErrors struct {
	mu   sync.Mutex
	errs []string
}

func (p *permErrors) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	p.mu.Lock()
	p.errs = append(p.errs, err.Error())
	p.mu.Unlock()
}

// wait returns once an error mentioning what has arrived (or fails t).
func (p *permErrors) wait(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, e := range p.errs {
			if strings.Contains(e, "Permissions Violation") && strings.Contains(e, what) {
				p.mu.Unlock()
				return
			}
		}
		p.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t.Fatalf("no permissions violation for %q; errors: %v", what, p.errs)
}

func (p *permErrors) none(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errs) > 0 {
		t.Fatalf("unexpected errors: %v", p.errs)
	}
}

func connectAs(t *testing.T, s *stack.Stack, user, pass string, pe *permErrors, extra ...nats.Option) *nats.Conn {
	t.Helper()
	opts := append([]nats.Option{nats.UserInfo(user, pass), nats.ErrorHandler(pe.handler)}, extra...)
	nc, err := nats.Connect("nats://"+s.NATSAddr, opts...)
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestBusRefusesAnonymous: no credentials, wrong ones, or a forged shim
// user are refused by the embedded NATS.
func TestBusRefusesAnonymous(t *testing.T) {
	s := stack.Start(t)
	refusesStrangers(t, s)
	// the credentials files are root's alone
	if m, err := statMode(filepath.Dir(s.Credentials("apigw"))); err != nil || m != 0o700 {
		t.Errorf("auth directory: mode %o, %v", m, err)
	}
	for _, u := range []string{"apigw", "supervisor"} {
		st, err := statMode(s.Credentials(u))
		if err != nil || st != 0o600 {
			t.Errorf("%s credentials: mode %o, %v", u, st, err)
		}
	}
}

// refusesStrangers: the bus of s admits no client without credentials, with
// wrong ones or as a shim that does not exist.
func refusesStrangers(t *testing.T, s *stack.Stack) {
	t.Helper()
	for name, opts := range map[string][]nats.Option{
		"anonymous":      nil,
		"wrong password": {nats.UserInfo(bus.UserAPIGW, "nope")},
		"forged shim":    {nats.UserInfo(bus.ShimUser(s.Node, strings.Repeat("a", 64)), "x")},
		"token":          {nats.Token("x")},
	} {
		nc, err := nats.Connect("nats://"+s.NATSAddr, append(opts, nats.NoReconnect())...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
			continue
		}
		if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			t.Errorf("%s: %v, want an authorization violation", name, err)
		}
	}
}

// TestBusShimIsolation: a shim's credentials let it report and write output
// only for its own container.
func TestBusShimIsolation(t *testing.T) {
	shimIsolation(t, newStack(t))
}

// shimIsolation: on the bus of s, the credentials of one container's shim
// are refused everything that concerns another container, the supervisor
// sees nothing of the attempts and both containers keep running.
func shimIsolation(t *testing.T, s *stack.Stack) {
	t.Helper()
	a := s.MustDocker("run", "-d", "busybox", "sleep", "300")
	b := s.MustDocker("run", "-d", "busybox", "sleep", "300")
	sa := shimConfig(t, s, a)
	if sa.NATSUser != bus.ShimUser(s.Node, a) || sa.NATSPassword == "" {
		t.Fatalf("shim of %s has user %q", a, sa.NATSUser)
	}
	if sb := shimConfig(t, s, b); sb.NATSPassword == sa.NATSPassword {
		t.Fatal("two shims share a password")
	}
	// the supervisor's view of reports: nothing forged may reach it
	sup, err := bus.LoadCredentials(s.Credentials("supervisor"))
	if err != nil {
		t.Fatal(err)
	}
	var spe permErrors
	snc := connectAs(t, s, sup.User, sup.Password, &spe)
	reports := make(chan *nats.Msg, 16)
	if _, err := snc.ChanSubscribe(bus.ReportsAll(s.Node), reports); err != nil {
		t.Fatal(err)
	}
	snc.Flush()

	var pe permErrors
	nc := connectAs(t, s, sa.NATSUser, sa.NATSPassword, &pe, nats.CustomInboxPrefix(bus.ShimInboxPrefix(s.Node, a)))
	// another container's exit report
	nc.Publish(bus.Report(s.Node, b, bus.ReportExit), []byte(`{"id":"`+b+`","exitCode":0}`))
	pe.wait(t, bus.Report(s.Node, b, bus.ReportExit))
	// another container's output, stdin, commands
	nc.Publish(bus.IOOut(s.Node, b), []byte("forged"))
	pe.wait(t, bus.IOOut(s.Node, b))
	nc.Subscribe(bus.IOIn(s.Node, b), func(*nats.Msg) {})
	pe.wait(t, bus.IOIn(s.Node, b))
	nc.Subscribe(bus.IOOut(s.Node, b), func(*nats.Msg) {})
	pe.wait(t, bus.IOOut(s.Node, b))
	nc.Subscribe(bus.ShimAll(s.Node, b), func(*nats.Msg) {})
	pe.wait(t, bus.ShimAll(s.Node, b))
	nc.Publish(bus.Shim(s.Node, b, bus.ShimKill), []byte(`{"signal":9}`))
	pe.wait(t, bus.Shim(s.Node, b, bus.ShimKill))
	// commands to the supervisor, events, everyone's inboxes
	nc.Publish(bus.Command(bus.AreaContainers, s.Node, bus.VerbRemove), []byte(`{"id":"`+b+`","force":true}`))
	pe.wait(t, bus.Command(bus.AreaContainers, s.Node, bus.VerbRemove))
	nc.Publish(bus.EventSubject(s.Node, "container", "die"), []byte(`{}`))
	pe.wait(t, bus.EventSubject(s.Node, "container", "die"))
	nc.Subscribe("_INBOX.>", func(*nats.Msg) {})
	pe.wait(t, "_INBOX.>")

	select {
	case m := <-reports:
		t.Fatalf("a forged report reached the supervisor: %s %s", m.Subject, m.Data)
	case <-time.After(300 * time.Millisecond):
	}
	for _, id := range []string{a, b} {
		if c := mustInspect(t, s, id); c.State.Status != "running" {
			t.Errorf("%s is %s after the forgeries", id, c.State.Status)
		}
	}
	spe.none(t)
}

// TestBusAPIGWLimits: apigw's credentials command the supervisor but cannot
// report exits, publish events or output, or read reports.
func TestBusAPIGWLimits(t *testing.T) {
	s := stack.Start(t)
	gw, err := bus.LoadCredentials(s.Credentials("apigw"))
	if err != nil {
		t.Fatal(err)
	}
	var pe permErrors
	nc := connectAs(t, s, gw.User, gw.Password, &pe)
	id := strings.Repeat("b", 64)
	nc.Publish(bus.Report(s.Node, id, bus.ReportExit), []byte(`{}`))
	pe.wait(t, bus.Report(s.Node, id, bus.ReportExit))
	nc.Subscribe(bus.ReportsAll(s.Node), func(*nats.Msg) {})
	pe.wait(t, bus.ReportsAll(s.Node))
	nc.Publish(bus.EventSubject(s.Node, "container", "die"), []byte(`{}`))
	pe.wait(t, bus.EventSubject(s.Node, "container", "die"))
	nc.Publish(bus.IOOut(s.Node, id), []byte("x"))
	pe.wait(t, bus.IOOut(s.Node, id))
	nc.Publish(bus.Shim(s.Node, id, bus.ShimKill), []byte(`{}`))
	pe.wait(t, bus.Shim(s.Node, id, bus.ShimKill))
	nc.Subscribe(bus.CommandsAll(s.Node)[0], func(*nats.Msg) {})
	pe.wait(t, bus.CommandsAll(s.Node)[0])
	// the events stream is read-only to it
	for _, subj := range []string{"$JS.API.STREAM.DELETE." + bus.EventsStream, "$JS.API.STREAM.PURGE." + bus.EventsStream, "$JS.API.STREAM.UPDATE." + bus.EventsStream} {
		nc.Publish(subj, []byte(`{}`))
		pe.wait(t, subj)
	}
	// what it is for still works
	ctx, cancel := contextTimeout(5 * time.Second)
	defer cancel()
	var pong string
	if err := natsbus.Call(ctx, nc, bus.Command(bus.AreaSystem, s.Node, bus.VerbPing), struct{}{}, &pong); err != nil || pong != "OK" {
		t.Fatalf("ping as apigw: %q %v", pong, err)
	}
}

// TestBusHostNetworkContainerRefused: a process in a --network host
// container reaches the bus's port but cannot get in without credentials.
func TestBusHostNetworkContainerRefused(t *testing.T) {
	s := newStack(t)
	_, port, _ := strings.Cut(s.NATSAddr, ":")
	script := `printf 'CONNECT {"verbose":false,"pedantic":false}\r\nSUB berth.v1.> 1\r\nPING\r\n' | timeout 5 nc 127.0.0.1 ` + port + `; echo done`
	out, errOut, code := s.Docker("run", "--rm", "--network", "host", "busybox", "sh", "-c", script)
	if code != 0 {
		t.Fatalf("docker run: %d %s", code, errOut)
	}
	if !strings.Contains(out, "INFO") {
		t.Fatalf("the container did not reach the bus: %q", out)
	}
	if !strings.Contains(out, "Authorization Violation") || strings.Contains(out, "PONG") {
		t.Fatalf("an anonymous client in a host-network container was not refused: %q", out)
	}
}
