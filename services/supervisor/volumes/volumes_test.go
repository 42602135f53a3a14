package volumes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/pkg/bus/dockermsg"
	"berth/pkg/errdefs"
)

func open(t *testing.T, dir string, events *[]string) *Store {
	t.Helper()
	s, err := Open(dir, nil, func(action, name string, _ map[string]string) {
		if events != nil {
			*events = append(*events, action+" "+name)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreLifecycle(t *testing.T) {
	dir := t.TempDir()
	var events []string
	s := open(t, dir, &events)
	v, err := s.Create(&dockermsg.VolumeCreateRequest{Name: "data", Labels: map[string]string{"a": "b"}})
	if err != nil || v.Name != "data" || v.Mountpoint != filepath.Join(dir, "data", DataDir) || v.Driver != "local" {
		t.Fatalf("create: %+v %v", v, err)
	}
	if _, err := s.Acquire("data", "", nil, nil, "c1"); err != nil {
		t.Fatal(err)
	}
	anon, err := s.Acquire("", "", nil, nil, "c1")
	if err != nil || len(anon) != 64 {
		t.Fatalf("anonymous: %q %v", anon, err)
	}
	err = s.Remove("data", true)
	if !errdefs.Is(err, errdefs.Conflict) || err.Error() != "remove data: volume is in use - [c1]" {
		t.Fatalf("remove in use: %v", err)
	}
	// a restart finds the records; references come from the containers
	s2 := open(t, dir, nil)
	if got, _ := s2.Inspect("data"); got.Labels["a"] != "b" {
		t.Fatalf("restored labels %v", got.Labels)
	}
	if got, _ := s2.Inspect(anon); got.Labels[AnonymousLabel] != "" {
		t.Fatalf("anonymous label lost: %v", got.Labels)
	} else if _, ok := got.Labels[AnonymousLabel]; !ok {
		t.Fatalf("anonymous label lost: %v", got.Labels)
	}
	s.Release("data", "c1")
	if err := s.Remove("data", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("data", false); !errdefs.Is(err, errdefs.NotFound) || err.Error() != "get data: no such volume" {
		t.Fatalf("remove twice: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Fatalf("removed volume's directory: %v", err)
	}
	s.Release(anon, "c1")
	if err := s.RemoveAnonymous(anon); err != nil {
		t.Fatal(err)
	}
	want := "create data,create " + anon + ",destroy data,destroy " + anon
	if got := strings.Join(events, ","); got != want {
		t.Fatalf("events %s\nwant %s", got, want)
	}
}

func TestStoreRestoreLeftovers(t *testing.T) {
	dir := t.TempDir()
	// a creation and a removal cut short, a volume copied in by hand
	for _, d := range []string{creating + "half", removing + "0123", "byhand/" + DataDir} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	s := open(t, dir, nil)
	if _, err := os.Stat(filepath.Join(dir, creating+"half")); !os.IsNotExist(err) {
		t.Fatal("a half-made volume was kept")
	}
	if _, err := os.Stat(filepath.Join(dir, removing+"0123")); !os.IsNotExist(err) {
		t.Fatal("a half-removed volume was kept")
	}
	vs, _ := s.List(nil)
	if len(vs) != 1 || vs[0].Name != "byhand" {
		t.Fatalf("volumes %+v", vs)
	}
}

func TestStoreListAndPrune(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	s.Create(&dockermsg.VolumeCreateRequest{Name: "web", Labels: map[string]string{"app": "web"}})
	s.Create(&dockermsg.VolumeCreateRequest{Name: "db", Labels: map[string]string{"app": "db"}})
	s.Create(&dockermsg.VolumeCreateRequest{Name: "mnt", DriverOpts: map[string]string{"type": "tmpfs", "device": "tmpfs"}})
	anon, _ := s.Acquire("", "", nil, nil, "c")
	s.Release(anon, "c")
	s.Acquire("db", "", nil, nil, "c2")
	names := func(fm map[string][]string) string {
		vs, err := s.List(fm)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for _, v := range vs {
			n = append(n, v.Name)
		}
		return strings.Join(n, ",")
	}
	if got := names(map[string][]string{"dangling": {"false"}}); got != "db" {
		t.Errorf("dangling=false: %s", got)
	}
	if got := names(map[string][]string{"label": {"app=web"}}); got != "web" {
		t.Errorf("label: %s", got)
	}
	if got := names(map[string][]string{"name": {"^w"}}); got != "web" {
		t.Errorf("name: %s", got)
	}
	if _, err := s.List(map[string][]string{"dangling": {"maybe"}}); !errdefs.Is(err, errdefs.InvalidParameter) {
		t.Errorf("dangling=maybe: %v", err)
	}
	r, _ := s.Prune(nil)
	if strings.Join(r.Deleted, ",") != anon {
		t.Fatalf("default prune: %v", r.Deleted)
	}
	r, _ = s.Prune(map[string][]string{"all": {"true"}})
	if strings.Join(r.Deleted, ",") != "web" { // db in use, mnt has mount options
		t.Fatalf("prune all: %v", r.Deleted)
	}
}

func TestStoreValidation(t *testing.T) {
	s := open(t, t.TempDir(), nil)
	for _, c := range []struct {
		req  dockermsg.VolumeCreateRequest
		kind errdefs.Kind
		msg  string
	}{
		{dockermsg.VolumeCreateRequest{Name: "../x"}, errdefs.InvalidParameter, `create ../x: "../x" includes invalid characters for a local volume name`},
		{dockermsg.VolumeCreateRequest{Name: "/"}, errdefs.InvalidParameter, `create /: "/" includes invalid characters`},
		{dockermsg.VolumeCreateRequest{Name: "x", Driver: "nfs"}, errdefs.NotFound, `create x: error looking up volume plugin nfs: plugin "nfs" not found`},
		{dockermsg.VolumeCreateRequest{Name: "xx", DriverOpts: map[string]string{"o": "size=1m"}}, errdefs.InvalidParameter, `create xx: missing required option: "device"`},
	} {
		_, err := s.Create(&c.req)
		if !errdefs.Is(err, c.kind) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v: %v", c.req, err)
		}
	}
	if ents, _ := os.ReadDir(s.dir); len(ents) != 0 {
		t.Fatalf("refused volumes left %d entries", len(ents))
	}
}
