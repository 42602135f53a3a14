package cli

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{"KILL": unix.SIGKILL, "SIGKILL": unix.SIGKILL, "kill": unix.SIGKILL, "9": unix.SIGKILL, "term": unix.SIGTERM, "SIGRTMIN": 34, "RTMIN+2": 36, "SIGRTMAX-1": 63} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"NOPE", "SIGNOPE", "0", "65", "-1", "", "RTMAX+1", "RTMINx"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFlags(t *testing.T) {
	f := newFlags([]string{"detach", "tty"}, []string{"env", "cwd"}, map[string]string{"d": "detach", "e": "env"})
	f.stopAfter = 1
	if err := f.parse([]string{"-d", "--env", "A=1", "-e=B=2", "--cwd=/x", "id", "sh", "-c", "--tty"}); err != nil {
		t.Fatal(err)
	}
	if !f.boolean("detach") || f.boolean("tty") || len(f.list("env")) != 2 || f.list("env")[1] != "B=2" || f.str("cwd") != "/x" {
		t.Fatalf("%+v", f)
	}
	if len(f.args) != 4 || f.args[0] != "id" || f.args[3] != "--tty" {
		t.Fatalf("args %v", f.args)
	}
	if err := newFlags(nil, nil, nil).parse([]string{"--nope"}); err == nil {
		t.Fatal("unknown flag accepted")
	}
}
