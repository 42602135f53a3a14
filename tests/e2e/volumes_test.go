package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"berth/tests/stack"
)

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// volumeDir is a volume's data directory on the host, Docker's layout.
func volumeDir(s *stack.Stack, name string) string {
	return filepath.Join(s.Root, "volumes", name, "_data")
}

// volumeNames lists the volumes (docker volume ls -q), sorted.
func volumeNames(s *stack.Stack) []string {
	out := s.MustDocker("volume", "ls", "-q")
	if out == "" {
		return nil
	}
	names := strings.Split(out, "\n")
	sort.Strings(names)
	return names
}

// volumeDirs lists what is under <root>/volumes.
func volumeDirs(s *stack.Stack) []string {
	ents, _ := os.ReadDir(filepath.Join(s.Root, "volumes"))
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func wantDocker(t *testing.T, s *stack.Stack, wantOut, wantErr string, wantCode int, args ...string) {
	t.Helper()
	out, errOut, code := s.Docker(args...)
	if code != wantCode || (wantOut != "*" && out != wantOut) || !strings.Contains(errOut, wantErr) {
		t.Fatalf("docker %s:\n got exit %d out %q err %q\nwant exit %d out %q err containing %q", strings.Join(args, " "), code, out, errOut, wantCode, wantOut, wantErr)
	}
}

func TestVolumeCreateInspectListRemove(t *testing.T) {
	s := shared(t)
	name := uniq("vol")
	wantDocker(t, s, name, "", 0, "volume", "create", "--label", "team=core", "--label", "tier", name)
	defer s.Docker("volume", "rm", "-f", name)
	// created again: the same volume, no error
	wantDocker(t, s, name, "", 0, "volume", "create", name)
	var vs []struct {
		Name, Driver, Mountpoint, Scope, CreatedAt string
		Labels, Options                            map[string]string
	}
	if err := json.Unmarshal([]byte(s.MustDocker("volume", "inspect", name)), &vs); err != nil || len(vs) != 1 {
		t.Fatalf("inspect: %v %+v", err, vs)
	}
	v := vs[0]
	if v.Name != name || v.Driver != "local" || v.Scope != "local" || v.Mountpoint != volumeDir(s, name) || v.Labels["team"] != "core" || v.Labels["tier"] != "" {
		t.Fatalf("inspect: %+v", v)
	}
	if _, err := time.Parse(time.RFC3339, v.CreatedAt); err != nil {
		t.Fatalf("CreatedAt %q: %v", v.CreatedAt, err)
	}
	if fi, err := os.Stat(v.Mountpoint); err != nil || !fi.IsDir() {
		t.Fatalf("the volume's directory: %v", err)
	}
	wantDocker(t, s, "local     "+name, "", 0, "volume", "ls", "--filter", "name="+name, "--format", "{{.Driver}}     {{.Name}}")
	wantDocker(t, s, name, "", 0, "volume", "ls", "-q", "--filter", "label=team=core", "--filter", "name="+name)
	wantDocker(t, s, "", "", 0, "volume", "ls", "-q", "--filter", "label=team=other", "--filter", "name="+name)
	wantDocker(t, s, name, "", 0, "volume", "ls", "-q", "--filter", "dangling=true", "--filter", "name="+name)
	wantDocker(t, s, "", "", 0, "volume", "ls", "-q", "--filter", "driver=other", "--filter", "name="+name)
	wantDocker(t, s, "", "invalid filter 'bogus'", 1, "volume", "ls", "--filter", "bogus=1")
	wantDocker(t, s, name, "", 0, "volume", "rm", name)
	if _, err := os.Stat(filepath.Dir(v.Mountpoint)); !os.IsNotExist(err) {
		t.Fatalf("the volume's directory is still there: %v", err)
	}
	wantDocker(t, s, "", "Error response from daemon: get "+name+": no such volume", 1, "volume", "rm", name)
	wantDocker(t, s, name, "", 0, "volume", "rm", "-f", name)
	wantDocker(t, s, "[]", "Error response from daemon: get "+name+": no such volume", 1, "volume", "inspect", name)

	// an empty name: a random one
	anon := s.MustDocker("volume", "create")
	if !hex64.MatchString(anon) {
		t.Fatalf("volume create without a name printed %q", anon)
	}
	s.MustDocker("volume", "rm", anon)
}

func TestVolumeBadInput(t *testing.T) {
	s := shared(t)
	before, dirs := volumeNames(s), volumeDirs(s)
	const allowed = `includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`
	for _, c := range []struct {
		args    []string
		errText string
		code    int
	}{
		{[]string{"volume", "create", "../x"}, `Error response from daemon: create ../x: "../x" ` + allowed, 1},
		{[]string{"volume", "create", "/"}, `Error response from daemon: create /: "/" ` + allowed, 1},
		{[]string{"volume", "create", "a"}, `Error response from daemon: create a: "a" ` + allowed, 1},
		{[]string{"volume", "create", ".hidden"}, `create .hidden: ".hidden" ` + allowed, 1},
		{[]string{"volume", "create", "-d", "nosuchdriver", "x1"}, `Error response from daemon: create x1: error looking up volume plugin nosuchdriver: plugin "nosuchdriver" not found`, 1},
		{[]string{"volume", "create", "-o", "bogus=1", "x2"}, `Error response from daemon: create x2: invalid option: "bogus"`, 1},
		{[]string{"volume", "create", "-o", "type=tmpfs", "x3"}, `Error response from daemon: create x3: missing required option: "device"`, 1},
		{[]string{"volume", "create", "-o", "size=1g", "x4"}, `create x4: quota size requested but no quota support`, 1},
		{[]string{"run", "--rm", "--mount", "type=volume,source=x/y,target=/x", "busybox", "true"}, `Error response from daemon: create x/y: "x/y" ` + allowed, 125},
		{[]string{"run", "--rm", "--mount", "type=bind,source=/berth-no-such-dir,target=/x", "busybox", "true"}, `Error response from daemon: invalid mount config for type "bind": bind source path does not exist: /berth-no-such-dir`, 125},
		{[]string{"run", "--rm", "-v", "/tmp:/x:bogus", "busybox", "true"}, `invalid mode: bogus`, 125},
		{[]string{"run", "--rm", "-v", "vv1:/x", "-v", "vv2:/x", "busybox", "true"}, `Duplicate mount point: /x`, 125},
		{[]string{"run", "--rm", "--mount", "type=volume,target=/x,readonly", "busybox", "true"}, `invalid mount config for type "volume": must not set ReadOnly mode when using anonymous volumes`, 125},
	} {
		wantDocker(t, s, "*", c.errText, c.code, c.args...)
	}
	if after := volumeNames(s); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("bad input left volumes: before %v after %v", before, after)
	}
	if after := volumeDirs(s); strings.Join(after, ",") != strings.Join(dirs, ",") {
		t.Fatalf("bad input left directories: before %v after %v", dirs, after)
	}
}

func TestNamedVolumeKeepsData(t *testing.T) {
	s := shared(t)
	name := uniq("data")
	defer s.Docker("volume", "rm", "-f", name)
	// -v NAME:/path creates the volume
	wantDocker(t, s, "", "", 0, "run", "--rm", "-v", name+":/data", "busybox", "sh", "-c", "echo kept > /data/f")
	if b, err := os.ReadFile(filepath.Join(volumeDir(s, name), "f")); err != nil || string(b) != "kept\n" {
		t.Fatalf("the volume's file on the host: %q %v", b, err)
	}
	wantDocker(t, s, "kept", "", 0, "run", "--rm", "--mount", "type=volume,src="+name+",dst=/v", "busybox", "cat", "/v/f")
	wantDocker(t, s, "", "Read-only file system", 1, "run", "--rm", "-v", name+":/data:ro", "busybox", "sh", "-c", "echo x > /data/g")
	wantDocker(t, s, "", "Read-only file system", 1, "run", "--rm", "--mount", "type=volume,src="+name+",dst=/data,readonly", "busybox", "touch", "/data/g")
	// a subpath of the volume
	s.MustDocker("run", "--rm", "-v", name+":/data", "busybox", "sh", "-c", "mkdir -p /data/sub && echo inner > /data/sub/i")
	wantDocker(t, s, "i", "", 0, "run", "--rm", "--mount", "type=volume,src="+name+",dst=/s,volume-subpath=sub", "busybox", "ls", "/s")
}

func TestVolumeInUse(t *testing.T) {
	s := shared(t)
	vol, c := uniq("busy"), uniq("user")
	id := s.MustDocker("create", "--name", c, "-v", vol+":/data", "busybox", "true")
	defer s.Docker("rm", "-f", c)
	defer s.Docker("volume", "rm", "-f", vol)
	// in use by a container that never ran: 409 with the container's ID
	wantDocker(t, s, "", fmt.Sprintf("Error response from daemon: remove %s: volume is in use - [%s]", vol, id), 1, "volume", "rm", vol)
	wantDocker(t, s, "", fmt.Sprintf("remove %s: volume is in use - [%s]", vol, id), 1, "volume", "rm", "-f", vol)
	if st, msg := call(t, s, "DELETE", "/volumes/"+vol, ""); st != 409 || !strings.Contains(msg, "volume is in use") {
		t.Fatalf("DELETE /volumes/%s: %d %q", vol, st, msg)
	}
	wantDocker(t, s, "", "", 0, "volume", "ls", "-q", "--filter", "dangling=true", "--filter", "name="+vol)
	// rm -v keeps a named volume
	s.MustDocker("rm", "-v", c)
	wantDocker(t, s, vol, "", 0, "volume", "ls", "-q", "--filter", "dangling=true", "--filter", "name="+vol)
	wantDocker(t, s, vol, "", 0, "volume", "rm", vol)
}

func TestAnonymousVolumes(t *testing.T) {
	s := shared(t)
	before := volumeNames(s)
	c := uniq("anon")
	s.MustDocker("run", "--name", c, "-v", "/data", "busybox", "sh", "-c", "echo a > /data/f")
	var mounts []struct{ Type, Name, Source, Destination, Driver, Mode string }
	if err := json.Unmarshal([]byte(s.MustDocker("inspect", "-f", "{{json .Mounts}}", c)), &mounts); err != nil || len(mounts) != 1 {
		t.Fatalf("mounts: %v %+v", err, mounts)
	}
	m := mounts[0]
	if m.Type != "volume" || !hex64.MatchString(m.Name) || m.Destination != "/data" || m.Driver != "local" || m.Source != volumeDir(s, m.Name) {
		t.Fatalf("anonymous volume mount: %+v", m)
	}
	wantDocker(t, s, `map[com.docker.volume.anonymous:]`, "", 0, "volume", "inspect", "-f", "{{.Labels}}", m.Name)
	// docker rm without -v keeps it
	s.MustDocker("rm", c)
	if b, err := os.ReadFile(filepath.Join(m.Source, "f")); err != nil || string(b) != "a\n" {
		t.Fatalf("the anonymous volume after rm: %q %v", b, err)
	}
	// pruned by default (anonymous and unused)
	out := s.MustDocker("volume", "prune", "-f")
	if !strings.Contains(out, m.Name) || !strings.Contains(out, "Total reclaimed space: 2B") {
		t.Fatalf("volume prune: %q", out)
	}
	// rm -v takes the anonymous volume, not the named one
	named := uniq("named")
	defer s.Docker("volume", "rm", "-f", named)
	s.MustDocker("run", "--name", c, "-v", "/data", "-v", named+":/named", "--mount", "type=volume,target=/m", "busybox", "true")
	s.MustDocker("rm", "-v", c)
	if after := volumeNames(s); strings.Join(after, ",") != strings.Join(sortedWith(before, named), ",") {
		t.Fatalf("after rm -v: %v, want %v", after, sortedWith(before, named))
	}
	// --rm: its anonymous volumes leave no volume nor directory
	dirs := volumeDirs(s)
	s.MustDocker("run", "--rm", "-v", "/data", "busybox", "sh", "-c", "echo x > /data/x")
	if after := volumeNames(s); strings.Join(after, ",") != strings.Join(sortedWith(before, named), ",") {
		t.Fatalf("after run --rm: %v", after)
	}
	if after := volumeDirs(s); strings.Join(after, ",") != strings.Join(dirs, ",") {
		t.Fatalf("run --rm left %v (before %v)", after, dirs)
	}
}

func sortedWith(list []string, more ...string) []string {
	out := append(append([]string(nil), list...), more...)
	sort.Strings(out)
	return out
}

func TestVolumeCopyUp(t *testing.T) {
	s := shared(t)
	full, nocopy, kept := uniq("full"), uniq("nocopy"), uniq("kept")
	defer s.Docker("volume", "rm", "-f", full, nocopy, kept)
	s.MustDocker("run", "--rm", "-v", full+":/etc", "busybox", "true")
	if _, err := os.Stat(filepath.Join(volumeDir(s, full), "passwd")); err != nil {
		t.Fatalf("the image's /etc was not copied into the new volume: %v", err)
	}
	s.MustDocker("run", "--rm", "-v", nocopy+":/etc:nocopy", "busybox", "true")
	if ents, _ := os.ReadDir(volumeDir(s, nocopy)); len(ents) != 0 {
		t.Fatalf("nocopy volume holds %d entries", len(ents))
	}
	// a volume with content is left as it is
	s.MustDocker("run", "--rm", "-v", kept+":/v", "busybox", "touch", "/v/mine")
	wantDocker(t, s, "mine", "", 0, "run", "--rm", "-v", kept+":/etc", "busybox", "ls", "/etc")
	// docker cp into a volume of a container that never ran: the image's
	// content is there too, as Docker fills the volume at create
	early, c0 := uniq("early"), uniq("early")
	defer s.Docker("volume", "rm", "-f", early)
	s.MustDocker("create", "--name", c0, "-v", early+":/etc", "busybox", "sh", "-c", "ls /etc | grep -c -e passwd -e added")
	defer s.Docker("rm", "-f", c0)
	f := filepath.Join(t.TempDir(), "added")
	os.WriteFile(f, []byte("a"), 0o644)
	s.MustDocker("cp", f, c0+":/etc/added")
	wantDocker(t, s, "2", "", 0, "start", "-a", c0)
	// an image VOLUME gets an anonymous volume filled from the image
	img := uniq("volimg")
	s.DockerIn(busyboxTar(t), "import", "-c", `CMD ["sh"]`, "-c", "VOLUME /etc", "-", img)
	defer s.Docker("rmi", img)
	c := uniq("imgvol")
	s.MustDocker("run", "--name", c, img, "cat", "/etc/passwd")
	name := s.MustDocker("inspect", "-f", `{{range .Mounts}}{{.Name}} {{.Destination}} {{.Mode}}{{end}}`, c)
	vol, rest, _ := strings.Cut(name, " ")
	if !hex64.MatchString(vol) || rest != "/etc " {
		t.Fatalf("image volume mount: %q", name)
	}
	if _, err := os.Stat(filepath.Join(volumeDir(s, vol), "passwd")); err != nil {
		t.Fatalf("image volume not filled: %v", err)
	}
	s.MustDocker("rm", "-v", c)
	if _, err := os.Stat(filepath.Dir(volumeDir(s, vol))); !os.IsNotExist(err) {
		t.Fatalf("rm -v left the image volume: %v", err)
	}
}

func TestMountOptions(t *testing.T) {
	s := shared(t)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "hello"), []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantDocker(t, s, "hi", "", 0, "run", "--rm", "-v", host+":/h:ro", "busybox", "cat", "/h/hello")
	wantDocker(t, s, "", "Read-only file system", 1, "run", "--rm", "-v", host+":/h:ro", "busybox", "touch", "/h/x")
	wantDocker(t, s, "", "Read-only file system", 1, "run", "--rm", "--mount", "type=bind,src="+host+",dst=/h,readonly", "busybox", "touch", "/h/x")
	wantDocker(t, s, "", "", 0, "run", "--rm", "--mount", "type=bind,source="+host+",target=/h", "busybox", "touch", "/h/written")
	if _, err := os.Stat(filepath.Join(host, "written")); err != nil {
		t.Fatalf("a bind mount's write is not on the host: %v", err)
	}
	// bind-propagation: the container's mount is a slave of the host's,
	// which must propagate (Docker's check)
	args := []string{"run", "--rm", "--mount", "type=bind,src=" + host + ",dst=/h,bind-propagation=rslave", "busybox", "grep", " /h ", "/proc/self/mountinfo"}
	if mnt, shared := hostMount(host); shared {
		if out := s.MustDocker(args...); !strings.Contains(out, "master:") {
			t.Fatalf("rslave bind: %q", out)
		}
	} else {
		wantDocker(t, s, "", fmt.Sprintf("Error response from daemon: path %s is mounted on %s but it is not a shared or slave mount", host, mnt), 125, args...)
	}
	// -v with a missing host path makes it, like Docker
	missing := filepath.Join(host, "made", "by", "run")
	wantDocker(t, s, "", "", 0, "run", "--rm", "-v", missing+":/m", "busybox", "true")
	if fi, err := os.Stat(missing); err != nil || !fi.IsDir() {
		t.Fatalf("-v did not make the missing host directory: %v", err)
	}
	// tmpfs: size and mode
	wantDocker(t, s, "tmpfs /t tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k,mode=1770 0 0 1770", "", 0,
		"run", "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770", "busybox", "sh", "-c", `echo $(grep " /t " /proc/mounts) $(stat -c %a /t)`)
	// a volume with mount options is mounted while a container uses it
	v := uniq("tmpvol")
	defer s.Docker("volume", "rm", "-f", v)
	wantDocker(t, s, "tmpfs /m tmpfs rw,relatime,size=2048k 0 0", "", 0,
		"run", "--rm", "--mount", "type=volume,src="+v+",dst=/m,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=2m", "busybox", "grep", " /m ", "/proc/mounts")
	for _, m := range stack.Mounts(filepath.Dir(s.Root)) {
		if strings.Contains(m, v) {
			t.Fatalf("the volume is still mounted after its container: %s", m)
		}
	}
	wantDocker(t, s, "map[device:tmpfs o:size=2m type:tmpfs]", "", 0, "volume", "inspect", "-f", "{{.Options}}", v)
}

func TestInspectMounts(t *testing.T) {
	s := shared(t)
	host, vol, c := t.TempDir(), uniq("insp"), uniq("insp")
	defer s.Docker("volume", "rm", "-f", vol)
	s.MustDocker("create", "--name", c, "-v", host+":/b:ro", "-v", vol+":/v",
		"--mount", "type=bind,src="+host+",dst=/mb,bind-propagation=rshared",
		"--mount", "type=tmpfs,dst=/t", "busybox", "true")
	defer s.Docker("rm", "-f", c)
	got := s.MustDocker("inspect", "-f", `{{range .Mounts}}{{.Type}}|{{.Name}}|{{.Source}}|{{.Destination}}|{{.Driver}}|{{.Mode}}|{{.RW}}|{{.Propagation}};{{end}}`, c)
	want := strings.Join([]string{
		"bind||" + host + "|/b||ro|false|rprivate",
		"bind||" + host + "|/mb|||true|rshared",
		"tmpfs|||/t|||true|",
		"volume|" + vol + "|" + volumeDir(s, vol) + "|/v|local|z|true|",
	}, ";") + ";"
	if got != want {
		t.Fatalf("inspect Mounts:\n got %s\nwant %s", got, want)
	}
	if ps := s.MustDocker("ps", "-a", "--filter", "name="+c, "--format", "{{.Mounts}}"); !strings.Contains(ps, vol) {
		t.Fatalf("ps Mounts: %q", ps)
	}
}

func TestVolumePruneFilters(t *testing.T) {
	s := shared(t)
	keep, drop, used, c := uniq("keep"), uniq("drop"), uniq("used"), uniq("pruneuser")
	s.MustDocker("volume", "create", "--label", "prune=no", keep)
	s.MustDocker("volume", "create", "--label", "prune=yes", drop)
	s.MustDocker("create", "--name", c, "-v", used+":/u", "busybox", "true")
	defer s.Docker("rm", "-f", c)
	defer s.Docker("volume", "rm", "-f", keep, drop, used)
	// named volumes are not pruned without --all
	out := s.MustDocker("volume", "prune", "-f", "--filter", "label=prune")
	if strings.Contains(out, keep) || strings.Contains(out, drop) {
		t.Fatalf("prune without --all took named volumes: %q", out)
	}
	out = s.MustDocker("volume", "prune", "-a", "-f", "--filter", "label=prune=yes")
	if !strings.Contains(out, drop) || strings.Contains(out, keep) || strings.Contains(out, used) {
		t.Fatalf("prune --all label=prune=yes: %q", out)
	}
	out = s.MustDocker("volume", "prune", "-a", "-f", "--filter", "label!=prune")
	if strings.Contains(out, keep) || strings.Contains(out, used) {
		t.Fatalf("prune label!=prune: %q", out)
	}
	wantDocker(t, s, keep, "", 0, "volume", "ls", "-q", "--filter", "name="+keep)
	wantDocker(t, s, used, "", 0, "volume", "ls", "-q", "--filter", "name="+used)
}

func TestVolumeEvents(t *testing.T) {
	s := shared(t)
	vol := uniq("evvol")
	since := time.Now().Unix()
	s.MustDocker("volume", "create", vol)
	id := s.MustDocker("run", "-d", "-v", vol+":/e:ro", "busybox", "true")
	s.MustDocker("wait", id)
	s.MustDocker("rm", id)
	s.MustDocker("volume", "rm", vol)
	out := s.MustDocker("events", "--since", fmt.Sprint(since), "--until", fmt.Sprint(time.Now().Unix()+1),
		"--filter", "type=volume", "--filter", "volume="+vol, "--format", "{{json .}}")
	var got []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var m struct {
			Type, Action string
			Actor        struct {
				ID         string
				Attributes map[string]string
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("event %q: %v", sc.Text(), err)
		}
		a := m.Actor.Attributes
		if m.Type != "volume" || m.Actor.ID != vol || a["driver"] != "local" {
			t.Fatalf("event %s", sc.Text())
		}
		e := m.Action
		if m.Action == "mount" || m.Action == "unmount" {
			if a["container"] != id {
				t.Fatalf("%s event for container %q, want %s", m.Action, a["container"], id)
			}
		}
		if m.Action == "mount" {
			e += fmt.Sprintf("(%s,rw=%s)", a["destination"], a["read/write"])
		}
		got = append(got, e)
	}
	if strings.Join(got, " ") != "create mount(/e,rw=false) unmount destroy" {
		t.Fatalf("volume events: %v", got)
	}
}

// TestVolumesSurviveRestart runs its own stack: it restarts the supervisor.
func TestVolumesSurviveRestart(t *testing.T) {
	s := stack.Start(t)
	s.ImportBusybox()
	s.MustDocker("volume", "create", "--label", "k=v", "persist")
	id := s.MustDocker("create", "-v", "persist:/p", "-v", "/anon", "busybox", "true")
	s.KillSupervisor(9)
	s.StartSupervisor()
	wantDocker(t, s, "persist map[k:v]", "", 0, "volume", "inspect", "-f", "{{.Name}} {{.Labels}}", "persist")
	wantDocker(t, s, "", "remove persist: volume is in use - ["+id+"]", 1, "volume", "rm", "persist")
	s.MustDocker("rm", "-v", id)
	wantDocker(t, s, "persist", "", 0, "volume", "ls", "-q")
	wantDocker(t, s, "persist", "", 0, "volume", "rm", "persist")
	if dirs := volumeDirs(s); len(dirs) != 0 {
		t.Fatalf("left under volumes/: %v", dirs)
	}
}

// hostMount is the host's mount point holding dir and whether it
// propagates (shared or slave).
func hostMount(dir string) (string, bool) {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	best, shared := "", false
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		if mp := f[4]; (dir == mp || mp == "/" || strings.HasPrefix(dir, mp+"/")) && len(mp) >= len(best) {
			opt := strings.Join(f[6:], " ")
			best, shared = mp, strings.Contains(opt, "shared:") || strings.Contains(opt, "master:")
		}
	}
	return best, shared
}

// TestVolumesFilledAtCreate: as dockerd's create, a new volume (anonymous
// or named, empty) gets the image's content at its path before the
// container ever runs: the data-container pattern, a never-started
// container whose volumes others borrow, sees the image's files. It is
// filled once: the first start copies nothing again.
func TestVolumesFilledAtCreate(t *testing.T) {
	s := shared(t)
	data, vol := uniq("datactr"), uniq("filled")
	s.MustDocker("create", "-v", "/bin", "-v", vol+":/etc", "--name", data, "busybox", "true")
	defer s.Docker("volume", "rm", vol)
	defer s.Docker("rm", "-v", data)
	if out := s.MustDocker("run", "--rm", "--volumes-from", data, "busybox", "ls", "/bin/busybox"); out != "/bin/busybox" {
		t.Errorf("the borrowed anonymous volume: %q", out)
	}
	if out := s.MustDocker("run", "--rm", "-v", vol+":/x", "busybox", "grep", "-c", "^root:", "/x/passwd"); out != "1" {
		t.Errorf("the named volume: %q", out)
	}
	s.MustDocker("run", "--rm", "-v", vol+":/x", "busybox", "rm", "/x/passwd")
	if out, errOut, code := s.Docker("start", "-a", data); code != 0 {
		t.Fatalf("start: %d %s %s", code, out, errOut)
	}
	if _, _, code := s.Docker("run", "--rm", "-v", vol+":/x", "busybox", "ls", "/x/passwd"); code == 0 {
		t.Error("the start copied the image's content into the volume again")
	}
}
