package bus

import (
	"errors"
	"strings"
	"testing"

	"berth/pkg/errdefs"
)

func TestToken(t *testing.T) {
	for _, ok := range []string{"node1", "abc-DEF_0", strings.Repeat("a", 64)} {
		if err := Token(ok); err != nil {
			t.Errorf("Token(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "*", ">", "a b", "x\n"} {
		if Token(bad) == nil {
			t.Errorf("Token(%q) accepted", bad)
		}
	}
}

func TestSubjects(t *testing.T) {
	if got := Command(AreaContainers, "n1", VerbCreate); got != "berth.v1.containers.n1.create" {
		t.Fatal(got)
	}
	if got := EventSubject("n1", "container", "exec_start: sh -c"); got != "berth.v1.events.n1.container.exec_start" {
		t.Fatal(got)
	}
	if got := IOIn("n1", "abc"); got != "berth.v1.io.n1.abc.in" {
		t.Fatal(got)
	}
}

func TestReplyRoundTrip(t *testing.T) {
	var got ShimStartResponse
	if err := DecodeReply(EncodeReply(ShimStartResponse{Pid: 7}, nil), &got); err != nil || got.Pid != 7 {
		t.Fatalf("%v %+v", err, got)
	}
	err := DecodeReply(EncodeReply(nil, errdefs.NoSuchContainer("c1")), nil)
	if !errdefs.Is(err, errdefs.NotFound) || err.Error() != "No such container: c1" {
		t.Fatalf("%v kind %q", err, errdefs.KindOf(err))
	}
	err = DecodeReply(EncodeReply(nil, errors.New("boom")), nil)
	if errdefs.KindOf(err) != errdefs.Unknown || err.Error() != "boom" {
		t.Fatalf("%v", err)
	}
	if err := DecodeReply([]byte("{"), nil); err == nil {
		t.Fatal("malformed reply accepted")
	}
}

// FuzzDecode feeds arbitrary bytes to the bus decoders: they must return an
// error or a value, never panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"key":"k","id":"x","timeout":3}`))
	f.Add([]byte(`{"error":{"kind":"not_found","message":"m"}}`))
	f.Add([]byte(`{"data":123}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c StopRequest
		_ = Decode(data, &c)
		var r ExitReport
		_ = Decode(data, &r)
		var resp ShimStateResponse
		_ = DecodeReply(data, &resp)
	})
}

// FuzzMessages feeds arbitrary bytes to every message a berth process
// decodes from another (commands, reports, shim messages, credentials).
func FuzzMessages(f *testing.F) {
	f.Add([]byte(`{"id":"x","node":"n","natsURL":"nats://a","natsUser":"shim-x"}`))
	f.Add([]byte(`{"pid":1,"initPid":2,"started":true,"error":"e","stage":"create"}`))
	f.Add([]byte(`{"user":"apigw","password":"p"}`))
	f.Add([]byte(`{"entries":[{"log":"a","stream":"stdout","time":"2020-01-01T00:00:00Z"}],"eof":true}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, v := range []any{
			&ShimConfig{}, &ShimReady{}, &ShimKillRequest{}, &ShimResizeRequest{}, &ShimStateResponse{},
			&StopRequest{}, &KillRequest{}, &RemoveRequest{}, &RenameRequest{}, &LogsRequest{}, &LogChunk{},
			&PruneRequest{}, &ImageImportRequest{}, &ImageTagRequest{}, &Event{}, &Credentials{},
		} {
			_ = Decode(data, v)
		}
	})
}

// FuzzSubjects: subject tokens and user names that pass the checks cannot
// add or wildcard subject levels.
func FuzzSubjects(f *testing.F) {
	f.Add("abc")
	f.Add("shim-abc")
	f.Add("a.b")
	f.Add("shim->")
	f.Fuzz(func(t *testing.T, s string) {
		if Token(s) == nil && strings.ContainsAny(s, ".*> ") {
			t.Fatalf("token %q accepted", s)
		}
		if node, id, ok := ParseShimUser(s); ok && strings.ContainsAny(node+id, ".*> ") {
			t.Fatalf("shim user %q accepted", s)
		}
	})
}

func TestParseShimUser(t *testing.T) {
	id := strings.Repeat("c", 64)
	for user, want := range map[string][3]string{
		ShimUser("node-1", id):    {"node-1", id, "ok"},
		ShimUserPrefix + id:       {"", id, "ok"}, // a shim started before the node was in the name
		ShimUser("a.b", id):       {},
		ShimUser("n", "x.y"):      {},
		"apigw":                   {},
		ShimUserPrefix:            {},
		ShimUserPrefix + "n-*":    {},
		ShimUserPrefix + "-" + id: {},
	} {
		node, gotID, ok := ParseShimUser(user)
		if ok != (want[2] == "ok") || node != want[0] || gotID != want[1] {
			t.Errorf("ParseShimUser(%q) = %q, %q, %v; want %q", user, node, gotID, ok, want)
		}
	}
}
