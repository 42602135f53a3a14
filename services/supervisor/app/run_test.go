package app

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/nats-io/nats.go"

	"berth/pkg/bus"
	"berth/pkg/bus/dockermsg"
	"berth/pkg/bus/natsbus"
	"berth/pkg/errdefs"
)

func newRunEnv(t *testing.T) *env {
	e := newEnv(t)
	e.shim = shim(t)
	e.runtime = testRuntime(t)
	e.start()
	e.importBusybox("busybox")
	t.Cleanup(func() {
		if e.sup == nil {
			return
		}
		var list []dockermsg.Container
		e.call(bus.AreaContainers, bus.VerbList, bus.ListRequest{All: true}, &list)
		for _, c := range list {
			e.call(bus.AreaContainers, bus.VerbRemove, bus.RemoveRequest{ID: c.ID, Force: true}, nil)
		}
	})
	return e
}

func (e *env) waitStatus(ref, status string, d time.Duration) dockermsg.Container {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for {
		c := e.inspect(ref)
		if c.State.Status == status {
			return c
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: status %q, want %q (%+v)", ref, c.State.Status, status, c.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logs collects a container's log through the logs command.
func (e *env) logs(ref string, follow bool) (stdout, stderr string) {
	e.t.Helper()
	inbox := nats.NewInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := e.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		e.t.Fatal(err)
	}
	defer sub.Unsubscribe()
	e.must(bus.AreaContainers, bus.VerbLogs, bus.LogsRequest{ID: ref, Inbox: inbox, Tail: -1, Follow: follow}, nil)
	var out, errs strings.Builder
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-ch:
			var c bus.LogChunk
			if err := json.Unmarshal(m.Data, &c); err != nil {
				e.t.Fatal(err)
			}
			for _, en := range c.Entries {
				if en.Stream == "stderr" {
					errs.WriteString(en.Log)
				} else {
					out.WriteString(en.Log)
				}
			}
			if c.EOF {
				if c.Error != "" {
					e.t.Errorf("logs error: %s", c.Error)
				}
				return out.String(), errs.String()
			}
		case <-timeout:
			e.t.Fatal("logs: no EOF")
		}
	}
}

func (e *env) mounted(id string) bool {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	return strings.Contains(string(data), filepath.Join(e.execRoot, "bundles", id))
}

func TestRunToCompletion(t *testing.T) {
	e := newRunEnv(t)
	evs := e.events()
	id := e.create("once", &container.Config{Image: "busybox", Cmd: []string{"sh", "-c", "echo hello $FOO; echo oops >&2; id -u; ip -o link show lo | grep -q UP && echo lo-up; cat /etc/hostname; exit 3"}, Env: []string{"FOO=bar"}, User: "1234"}, nil)
	e.must(bus.AreaContainers, bus.VerbStart, bus.IDRequest{ID: id}, nil)
	c := e.waitStatus(id, "exited", 20*time.Second)
	if c.State.ExitCode != 3 || c.State.FinishedAt.IsZero() || c.State.StartedAt.IsZero() {
		t.Fatalf("state %+v", c.State)
	}
	out, errs := e.logs(id, false)
	if out != "hello bar\n1234\nlo-up\n"+id[:12]+"\n" || errs != "oops\n" {
		t.Errorf("logs %q %q", out, errs)
	}
	die := evs.find(id, "die")
	if die == nil || die.Actor.Attributes["exitCode"] != "3" {
		t.Errorf("die event %+v (events %v)", die, evs.actions(id))
	}
	if e.mounted(id) {
		t.Error("rootfs still mounted after exit")
	}
	// a repeated exit report is acknowledged without a second die
	rep := bus.ExitReport{ID: id, Pid: 4242, ExitCode: 3, ExitedAt: c.State.FinishedAt}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := natsbus.Call(ctx, e.shimConn(id), bus.Report(node, id, bus.ReportExit), rep, nil); err != nil {
		t.Fatalf("repeated exit report: %v", err)
	}
	if n := strings.Count(strings.Join(evs.actions(id), ","), "die"); n != 1 {
		t.Errorf("%d die events", n)
	}
	if c2 := e.inspect(id); c2.State != c.State {
		t.Errorf("state changed by a repeated report: %+v", c2.State)
	}
	if _, err := os.Stat(filepath.Join(e.execRoot, "bundles", id)); err == nil {
		t.Error("bundle left after exit")
	}
	// start again: runs again from the same record
	e.must(bus.AreaContainers, bus.VerbStart, bus.IDRequest{ID: "once"}, nil)
	e.waitStatus(id, "exited", 20*time.Second)
	out, _ = e.logs(id, false)
	if strings.Count(out, "hello bar") != 2 {
		t.Errorf("logs after 2 runs %q", out)
	}
	e.must(bus.AreaContainers, bus.VerbRemove, bus.RemoveRequest{ID: id}, nil)
}

func TestStartFailures(t *testing.T) {
	e := newRunEnv(t)
	id := e.create("nobin", &container.Config{Image: "busybox", Cmd: []string{"/no/such/binary"}}, nil)
	err := e.call(bus.AreaContainers, bus.VerbStart, bus.IDRequest{ID: id}, nil)
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") || !strings.HasPrefix(err.Error(), "failed to create task for container: ") {
		t.Fatalf("start: %v", err)
	}
	c := e.inspect(id)
	if c.State.ExitCode != 127 || c.State.Running || c.State.Error == "" {
		t.Errorf("state %+v", c.State)
	}
	if e.mounted(id) {
		t.Error("rootfs left mounted")
	}
	if ents := dirEntries(t, filepath.Join(e.execRoot, "bundles")); len(ents) != 0 {
		t.Errorf("bundles left: %v", ents)
	}
	// an unknown user fails at start, like Docker
	id2 := e.create("nouser", &container.Config{Image: "busybox", Cmd: []string{"true"}, User: "nosuchuser"}, nil)
	err = e.call(bus.AreaContainers, bus.VerbStart, bus.IDRequest{ID: id2}, nil)
	if err == nil || !strings.Contains(err.Error(), "unable to find user nosuchuser") {
		t.Fatalf("start: %v", err)
	}
	// --rm with a failed start removes the container
	id3 := e.create("", &container.Config{Image: "busybox", Cmd: []string{"/no/such/binary"}}, &container.HostConfig{AutoRemove: true})
	if err := e.call(bus.AreaContainers, bus.VerbStart, bus.IDRequest{ID: id3}, nil); err == nil {
		t.Fatal("started")
	}
	wantErr(t, e.call(bus.AreaContainers, bus.VerbInspect, bus.IDRequest{ID: id3}, nil), errdefs.NotFound, "No such container")
}

func TestDetachedLifecycle(t *testing.T) {
	e := newRunEnv(t)
	evs := e.events()
	id := e.create("dd", &container.Config{Image: "busybox", Cmd: []string{"sh", "-c", "echo started; exec sleep 300"}}, nil)
	e.must(bus.AreaContainers, bus.VerbStart, bus.IDRequest{ID: "dd"}, nil)
	c := e.inspect("dd")
	if c.State.Status != "running" || !c.State.Running || c.State.Pid <= 0 {
		t.Fatalf("state %+v", c.State)
	}
	if !e.mounted(id) {
		t.Error("rootfs not mounted")
	}
	wantErr(t, e.call(bus.AreaContainers, bus.VerbStart, bus.IDRequest{ID: "dd"}, nil), errdefs.NotModified, "")
	wantErr(t, e.call(bus.AreaContainers, bus.VerbRemove, bus.RemoveRequest{ID: "dd"}, nil), errdefs.Conflict,
		`cannot remove container "/dd": container is running: stop the container before removing or force remove`)
	var list []dockermsg.Container
	e.must(bus.AreaContainers, bus.VerbList, bus.ListRequest{}, &list)
	if len(list) != 1 || list[0].ID != id {
		t.Fatalf("ps: %+v", list)
	}
	// a follow can be cancelled by its reader
	inbox := nats.NewInbox()
	ch := make(chan *nats.Msg, 64)
	sub, _ := e.nc.ChanSubscribe(inbox, ch)
	e.must(bus.AreaContainers, bus.VerbLogs, bus.LogsRequest{ID: id, Inbox: inbox, Tail: -1, Follow: true}, nil)
	time.Sleep(200 * time.Millisecond)
	e.nc.Publish(inbox+".cancel", nil)
	for eof := false; !eof; {
		select {
		case m := <-ch:
			var c bus.LogChunk
			json.Unmarshal(m.Data, &c)
			eof = c.EOF
		case <-time.After(5 * time.Second):
			t.Fatal("cancelled follow did not end")
		}
	}
	sub.Unsubscribe()
	wantErr(t, e.call(bus.AreaContainers, bus.VerbLogs, bus.LogsRequest{ID: "nosuch", Inbox: inbox}, nil), errdefs.NotFound, "No such container: nosuch")

	// follow stops when the container stops
	done := make(chan string)
	go func() {
		out, _ := e.logs(id, true)
		done <- out
	}()
	time.Sleep(300 * time.Millisecond)

	timeout := 1
	t0 := time.Now()
	e.must(bus.AreaContainers, bus.VerbStop, bus.StopRequest{ID: "dd", Timeout: &timeout}, nil)
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("stop took %v", d)
	}
	c = e.inspect("dd")
	if c.State.Status != "exited" || c.State.ExitCode != 137 {
		t.Fatalf("after stop %+v", c.State)
	}
	select {
	case out := <-done:
		if out != "started\n" {
			t.Errorf("followed logs %q", out)
		}
	case <-time.After(10 * time.Second):
		t.Error("log follow did not end with the container")
	}
	acts := strings.Join(evs.actions(id), ",")
	if !strings.Contains(acts, "create,start,kill,kill,die,stop") {
		t.Errorf("events %s", acts)
	}
	if k := evs.find(id, "kill"); k == nil || k.Actor.Attributes["signal"] != "15" {
		t.Errorf("kill event %+v", k)
	}
	wantErr(t, e.call(bus.AreaContainers, bus.VerbStop, bus.StopRequest{ID: "dd"}, nil), errdefs.NotModified, "")

	// start again, kill, restart, remove -f
	e.must(bus.AreaContainers, bus.VerbStart, bus.IDRequest{ID: "dd"}, nil)
	e.must(bus.AreaContainers, bus.VerbKill, bus.KillRequest{ID: "dd"}, nil)
	if c := e.inspect("dd"); c.State.Status != "exited" || c.State.ExitCode != 137 {
		t.Fatalf("after kill %+v", c.State)
	}
	e.must(bus.AreaContainers, bus.VerbRestart, bus.StopRequest{ID: "dd", Timeout: &timeout}, nil)
	if c := e.inspect("dd"); c.State.Status != "running" {
		t.Fatalf("after restart %+v", c.State)
	}
	if evs.find(id, "restart") == nil {
		t.Error("no restart event")
	}
	// the image of a running container cannot be deleted, even forced
	err := e.call(bus.AreaImages, bus.VerbImageRemove, bus.ImageRemoveRequest{Name: c.Image, Force: true}, nil)
	wantErr(t, err, errdefs.Conflict, "image is being used by running container "+id[:12])

	e.must(bus.AreaContainers, bus.VerbRemove, bus.RemoveRequest{ID: "dd", Force: true}, nil)
	wantErr(t, e.call(bus.AreaContainers, bus.VerbInspect, bus.IDRequest{ID: "dd"}, nil), errdefs.NotFound, "No such container: dd")
	if e.mounted(id) {
		t.Error("rootfs still mounted")
	}
	for _, d := range []string{filepath.Join(e.execRoot, "bundles", id), filepath.Join(e.execRoot, "shims", id), filepath.Join(e.root, "containers", id)} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s left", d)
		}
	}
}

func TestAutoRemoveAndRestoreRunning(t *testing.T) {
	e := newRunEnv(t)
	evs := e.events()
	rm := e.create("", &container.Config{Image: "busybox", Cmd: []string{"true"}}, &container.HostConfig{AutoRemove: true})
	e.must(bus.AreaContainers, bus.VerbStart, bus.IDRequest{ID: rm}, nil)
	deadline := time.Now().Add(15 * time.Second)
	for e.call(bus.AreaContainers, bus.VerbInspect, bus.IDRequest{ID: rm}, nil) == nil {
		if time.Now().After(deadline) {
			t.Fatal("--rm container not removed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(strings.Join(evs.actions(rm), ","), "start,die,destroy") {
		t.Errorf("events %v", evs.actions(rm))
	}

	// a container keeps running across a supervisor restart, and its exit
	// while the supervisor is away is reported when it is back
	id := e.create("survivor", &container.Config{Image: "busybox", Cmd: []string{"sh", "-c", "sleep 1; exit 5"}}, nil)
	e.must(bus.AreaContainers, bus.VerbStart, bus.IDRequest{ID: id}, nil)
	e.stop()
	time.Sleep(1500 * time.Millisecond)
	e.start()
	c := e.waitStatus(id, "exited", 20*time.Second)
	if c.State.ExitCode != 5 {
		t.Fatalf("exit after restore %+v", c.State)
	}
	e.must(bus.AreaContainers, bus.VerbRemove, bus.RemoveRequest{ID: id}, nil)
}

// shimConn connects with the credentials of the shim of id (from its
// shim.json), as only a shim may report for its container.
func (e *env) shimConn(id string) *nats.Conn {
	e.t.Helper()
	data, err := os.ReadFile(filepath.Join(e.execRoot, "shims", id, bus.ShimConfigFile))
	if err != nil {
		e.t.Fatal(err)
	}
	var sc bus.ShimConfig
	if err := json.Unmarshal(data, &sc); err != nil {
		e.t.Fatal(err)
	}
	nc, err := nats.Connect(e.sup.NATSURL, nats.UserInfo(sc.NATSUser, sc.NATSPassword), nats.CustomInboxPrefix(bus.ShimInboxPrefix(node, id)))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	return nc
}
