package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestRunDaemon(t *testing.T) {
	ns := startNATS(t)
	dir, _ := os.MkdirTemp("", "apigwd")
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "sub", "berth.sock")
	// a stale socket from a previous run
	_ = os.MkdirAll(filepath.Dir(sock), 0o755)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()

	tcpAddr := freePort(t)
	metricsAddr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan []net.Addr, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, DaemonOptions{
			Hosts:       []string{"unix://" + sock, "tcp://" + tcpAddr},
			Listen:      ListenOptions{InsecureTCP: true, Group: "daemon"},
			NATSURL:     ns.ClientURL(),
			Node:        testNode,
			MetricsAddr: metricsAddr,
			Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ready:       func(a []net.Addr) { ready <- a },
		})
	}()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v %v", fi.Mode(), err)
	}
	if g, err := user.LookupGroup("daemon"); err == nil && os.Geteuid() == 0 {
		if gid := fmt.Sprint(fi.Sys().(*syscall.Stat_t).Gid); gid != g.Gid {
			t.Fatalf("socket group %s, want daemon's %s", gid, g.Gid)
		}
	}
	uc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := uc.Get("http://d/_ping")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("unix ping: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get("http://" + tcpAddr + "/v1.44/_ping")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("tcp ping: %v %v", resp, err)
	}
	resp.Body.Close()
	// No supervisor on the bus: a clear 503 once connected.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err = uc.Get("http://d/info")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 503 && strings.Contains(string(body), "no responders") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("info without supervisor: %d %s", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err = http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`berth_apigw_requests_total{code="200",method="GET",route="/_ping"}`, "berth_apigw_bus_errors_total", "berth_apigw_attach_sessions", "berth_apigw_request_duration_seconds_bucket"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("metrics lack %s", m)
		}
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no graceful shutdown")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestListenRefusesPlainTCP(t *testing.T) {
	_, err := Listen("tcp://127.0.0.1:0", ListenOptions{})
	if err == nil || !strings.Contains(err.Error(), "mutual TLS") {
		t.Fatalf("plain tcp: %v", err)
	}
	if _, err := Listen("tcp://127.0.0.1:0", ListenOptions{TLSVerify: true}); err == nil {
		t.Fatal("tls-verify without certificates accepted")
	}
	if _, err := Listen("fd://3", ListenOptions{}); err == nil {
		t.Fatal("fd:// accepted")
	}
	// A live socket is not stolen.
	dir, _ := os.MkdirTemp("", "apigwl")
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "s.sock")
	l, err := Listen("unix://"+p, ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := Listen("unix://"+p, ListenOptions{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("live socket: %v", err)
	}
}
