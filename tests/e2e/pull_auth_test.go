package e2e

import (
	"strings"
	"testing"

	"berth/tests/regtest"
)

// loginFlow: anonymous pulls are refused, a wrong password too; docker
// login stores the credentials the CLI sends in X-Registry-Auth, and pull,
// run and push work.
func loginFlow(t *testing.T, reg *regtest.Registry) {
	s := shared(t)
	cfg := "--config=" + t.TempDir() // the CLI's credential store for this test
	img := layeredImage(t, regtest.BuildOptions{})
	reg.Push(t, "private/layered", "v1", img)
	ref := reg.Addr + "/private/layered:v1"

	_, errOut, code := s.Docker(cfg, "pull", ref)
	if code != 1 || !strings.Contains(errOut, "pull access denied for "+reg.Addr+"/private/layered") {
		t.Errorf("anonymous pull: %d %s", code, errOut)
	}
	_, errOut, code = s.DockerIn([]byte("wrong\n"), cfg, "login", "-u", "alice", "--password-stdin", reg.Addr)
	if code == 0 || !strings.Contains(errOut, "login attempt to "+reg.Addr) {
		t.Errorf("login with a wrong password: %d %s", code, errOut)
	}
	out, errOut, code := s.DockerIn([]byte("s3cret\n"), cfg, "login", "-u", "alice", "--password-stdin", reg.Addr)
	if code != 0 || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("login: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := s.Docker(cfg, "pull", ref); code != 0 {
		t.Fatalf("pull after login: %s", errOut)
	}
	checkLayered(t, s, ref)
	pushed := reg.Addr + "/private/again:v2"
	s.MustDocker("tag", ref, pushed)
	if _, errOut, code := s.Docker(cfg, "push", pushed); code != 0 {
		t.Fatalf("push after login: %s", errOut)
	}
	s.MustDocker("rmi", ref, pushed)
	if _, errOut, code := s.Docker(cfg, "pull", pushed); code != 0 {
		t.Fatalf("pull of the pushed image: %s", errOut)
	}
	s.MustDocker("rmi", pushed)
	s.MustDocker(cfg, "logout", reg.Addr)
	if _, _, code := s.Docker(cfg, "pull", ref); code == 0 {
		t.Error("pull after logout worked")
	}
}

func TestRegistryBasicAuth(t *testing.T) {
	loginFlow(t, regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "s3cret"}}))
}

func TestRegistryTokenAuth(t *testing.T) {
	reg := regtest.Start(t, regtest.Options{Users: map[string]string{"alice": "s3cret"}, Token: true})
	loginFlow(t, reg)
	if reg.Token.Issued.Load() == 0 {
		t.Error("the token server issued no token")
	}
}

// HTTPS with a self-signed certificate: loopback registries are insecure
// by default, as in dockerd, so TLS is used without checking it.
func TestRegistryHTTPS(t *testing.T) {
	s := shared(t)
	reg := regtest.Start(t, regtest.Options{TLS: true, Users: map[string]string{"alice": "s3cret"}})
	img := layeredImage(t, regtest.BuildOptions{OCI: true, Uncompressed: true})
	reg.Push(t, "tls/layered", "v1", img)
	ref := reg.Addr + "/tls/layered:v1"
	cfg := "--config=" + t.TempDir()
	if out, errOut, code := s.DockerIn([]byte("s3cret\n"), cfg, "login", "-u", "alice", "--password-stdin", reg.Addr); code != 0 {
		t.Fatalf("login over https: %s %s", out, errOut)
	}
	if _, errOut, code := s.Docker(cfg, "pull", ref); code != 0 {
		t.Fatalf("pull over https: %s", errOut)
	}
	checkLayered(t, s, ref)
	s.MustDocker("rmi", ref)
}
