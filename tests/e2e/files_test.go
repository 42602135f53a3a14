package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"berth/tests/stack"
)

// tarList is "name size" of each entry of a tar, in order.
func tarList(t *testing.T, data string) []string {
	t.Helper()
	tr := tar.NewReader(strings.NewReader(data))
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading the tar: %v", err)
		}
		out = append(out, h.Name)
	}
}

// tarFile is the content of one entry of a tar.
func tarFile(t *testing.T, data, name string) (string, *tar.Header) {
	t.Helper()
	tr := tar.NewReader(strings.NewReader(data))
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the tar: %v", name, err)
		}
		if h.Name == name {
			b, _ := io.ReadAll(tr)
			return string(b), h
		}
	}
}

func mkTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg, ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[n]))
	}
	tw.Close()
	return buf.Bytes()
}

func TestCpIntoAndOutOfRunningContainer(t *testing.T) {
	s := shared(t)
	dir := t.TempDir()
	c := uniq("cprun")
	since := time.Now().Unix()
	// the container waits for the file docker cp brings, then prints it
	s.MustDocker("run", "-d", "--name", c, "busybox", "sh", "-c", "while [ ! -f /tmp/in/f.txt ]; do sleep 0.05; done; cat /tmp/in/f.txt; echo made > /tmp/out.txt; sleep 300")
	defer s.Docker("rm", "-f", c)
	src := filepath.Join(dir, "in")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "f.txt"), []byte("from the host\n"), 0o640)
	wantDocker(t, s, "", "", 0, "cp", src, c+":/tmp/")
	waitLog(t, s, c, "from the host")
	// out: a file, to a file on the host
	for i := 0; i < 100; i++ {
		if _, _, code := s.Docker("cp", c+":/tmp/out.txt", filepath.Join(dir, "out.txt")); code == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "out.txt")); err != nil || string(b) != "made\n" {
		t.Fatalf("docker cp out: %q %v", b, err)
	}
	// out: a directory, as a tar on stdout, under the directory's name
	tarOut := s.MustDocker("cp", c+":/tmp/in", "-")
	if got := strings.Join(tarList(t, tarOut+"\n"), ","); got != "in/,in/f.txt" {
		t.Fatalf("tar of /tmp/in: %s", got)
	}
	content, h := tarFile(t, tarOut+"\n", "in/f.txt")
	if content != "from the host\n" || h.Mode&0o777 != 0o640 {
		t.Fatalf("in/f.txt: %q mode %o", content, h.Mode)
	}
	// in: a tar on stdin
	if _, errOut, code := s.DockerIn(mkTar(t, map[string]string{"piped.txt": "piped\n"}), "cp", "-", c+":/tmp"); code != 0 {
		t.Fatalf("cp - : %d %s", code, errOut)
	}
	out := s.MustDocker("cp", c+":/tmp/piped.txt", "-")
	if got, _ := tarFile(t, out+"\n", "piped.txt"); got != "piped\n" {
		t.Fatalf("piped.txt: %q", got)
	}
	// the stat header, as HEAD answers it
	req, _ := http.NewRequest("HEAD", "http://berth/containers/"+c+"/archive?path=/tmp/in/f.txt", nil)
	resp, err := api(s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	raw, _ := base64.StdEncoding.DecodeString(resp.Header.Get("X-Docker-Container-Path-Stat"))
	var st struct {
		Name string
		Size int64
		Mode os.FileMode
	}
	if resp.StatusCode != 200 || json.Unmarshal(raw, &st) != nil || st.Name != "f.txt" || st.Size != 14 || st.Mode != 0o640 {
		t.Fatalf("HEAD archive: %d %s", resp.StatusCode, raw)
	}
	// Docker's events for copies
	evs := s.MustDocker("events", "--since", fmt.Sprint(since), "--until", fmt.Sprint(time.Now().Unix()+1),
		"--filter", "container="+c, "--filter", "event=extract-to-dir", "--filter", "event=archive-path", "--format", "{{.Action}}")
	if n1, n2 := strings.Count(evs, "extract-to-dir"), strings.Count(evs, "archive-path"); n1 != 2 || n2 < 3 {
		t.Fatalf("events: %d extract-to-dir (want 2), %d archive-path (want at least 3):\n%s", n1, n2, evs)
	}
}

func TestCpStoppedContainer(t *testing.T) {
	s := shared(t)
	dir := t.TempDir()
	c := uniq("cpstopped")
	s.MustDocker("create", "--name", c, "busybox", "cat", "/etc/motd")
	defer s.Docker("rm", "-f", c)
	os.WriteFile(filepath.Join(dir, "motd"), []byte("copied before start\n"), 0o644)
	wantDocker(t, s, "", "", 0, "cp", filepath.Join(dir, "motd"), c+":/etc/motd")
	if out, errOut, code := s.Docker("start", "-a", c); code != 0 || out != "copied before start" {
		t.Fatalf("start -a: %d %q %q", code, out, errOut)
	}
	// exited: out again
	wantDocker(t, s, "", "", 0, "cp", c+":/etc/motd", filepath.Join(dir, "back"))
	if b, _ := os.ReadFile(filepath.Join(dir, "back")); string(b) != "copied before start\n" {
		t.Fatalf("cp out of an exited container: %q", b)
	}
	// nothing of the views stays mounted
	for _, m := range stack.Mounts(filepath.Dir(s.Root)) {
		if strings.Contains(m, s.MustDocker("inspect", "-f", "{{.Id}}", c)) {
			t.Fatalf("left mounted: %s", m)
		}
	}
}

func TestCpErrors(t *testing.T) {
	s := shared(t)
	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("x"), 0o644)
	vol, c, ro := uniq("cpro"), uniq("cperr"), uniq("cprofs")
	s.MustDocker("create", "--name", c, "-v", vol+":/ro:ro", "busybox", "true")
	s.MustDocker("create", "--name", ro, "--read-only", "busybox", "true")
	defer s.Docker("rm", "-f", c, ro)
	defer s.Docker("volume", "rm", "-f", vol)
	wantDocker(t, s, "", "Error response from daemon: Could not find the file /x in container "+c, 1, "cp", c+":/x", dir)
	wantDocker(t, s, "", "Error response from daemon: Could not find the file /no/such/dir/ in container "+c, 1, "cp", c+":/no/such/dir/", dir)
	wantDocker(t, s, "", "Error response from daemon: mounted volume is marked read-only", 1, "cp", f, c+":/ro/")
	wantDocker(t, s, "", "Error response from daemon: container rootfs is marked read-only", 1, "cp", f, ro+":/tmp/")
	wantDocker(t, s, "", "Error response from daemon: No such container: berth-nosuch", 1, "cp", "berth-nosuch:/etc/passwd", dir)
	for _, c := range []struct {
		method, path string
		status       int
		msg          string
	}{
		{"GET", "/containers/" + c + "/archive", 400, "bad parameter: path cannot be empty"},
		{"PUT", "/containers/" + c + "/archive?path=/etc/passwd", 400, "extraction point is not a directory"},
		{"PUT", "/containers/" + c + "/archive?path=/nope", 404, "Could not find the file /nope in container " + c},
		{"GET", "/containers/berth-nosuch/export", 404, "No such container: berth-nosuch"},
		{"GET", "/containers/berth-nosuch/changes", 404, "No such container: berth-nosuch"},
	} {
		if st, msg := call(t, s, c.method, c.path, ""); st != c.status || !strings.Contains(msg, c.msg) {
			t.Errorf("%s %s: %d %q, want %d %q", c.method, c.path, st, msg, c.status, c.msg)
		}
	}
	// a broken tar: an error, and the container can still be used
	req, _ := http.NewRequest("PUT", "http://berth/containers/"+c+"/archive?path=/tmp", strings.NewReader(strings.Repeat("garbage!", 1000)))
	resp, err := api(s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("PUT of a broken tar: %d", resp.StatusCode)
	}
	wantDocker(t, s, "", "", 0, "cp", f, c+":/tmp/")
}

func TestCpVolumesBindsAndSymlinks(t *testing.T) {
	s := shared(t)
	host := t.TempDir()
	vol, c := uniq("cpvol"), uniq("cpvol")
	defer s.Docker("volume", "rm", "-f", vol)
	s.MustDocker("run", "-d", "--name", c, "-v", vol+":/v", "-v", host+":/h", "busybox", "sh", "-c",
		"ln -s / /tmp/root; ln -s ../../../../../../.. /tmp/up; ln -s /v /tmp/tovol; hostname > /tmp/name; ln -s name /tmp/namelink; touch /tmp/ready; sleep 300")
	defer s.Docker("rm", "-f", c)
	for i := 0; i < 100; i++ {
		if _, _, code := s.Docker("cp", c+":/tmp/ready", "-"); code == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	f := filepath.Join(t.TempDir(), "file.txt")
	os.WriteFile(f, []byte("data\n"), 0o644)
	// into a volume and a bind mount: the data lands in their directories
	wantDocker(t, s, "", "", 0, "cp", f, c+":/v/")
	wantDocker(t, s, "", "", 0, "cp", f, c+":/h/")
	if b, _ := os.ReadFile(filepath.Join(volumeDir(s, vol), "file.txt")); string(b) != "data\n" {
		t.Fatalf("cp into the volume: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(host, "file.txt")); string(b) != "data\n" {
		t.Fatalf("cp into the bind mount: %q", b)
	}
	// through a symlink into the volume, and out of it: "link/" is the
	// directory it points to
	wantDocker(t, s, "", "", 0, "cp", f, c+":/tmp/tovol/second.txt")
	if _, err := os.Stat(filepath.Join(volumeDir(s, vol), "second.txt")); err != nil {
		t.Fatalf("cp through a symlink to the volume: %v", err)
	}
	if got := strings.Join(tarList(t, s.MustDocker("cp", c+":/tmp/tovol/", "-")+"\n"), ","); got != "tovol/,tovol/file.txt,tovol/second.txt" {
		t.Fatalf("cp out of link/: %s", got)
	}
	// symlinks never lead out of the container: / is its root
	name := s.MustDocker("cp", c+":/tmp/name", "-")
	want, _ := tarFile(t, name+"\n", "name")
	got, _ := tarFile(t, s.MustDocker("cp", c+":/tmp/root/etc/hostname", "-")+"\n", "hostname")
	if got != want {
		t.Fatalf("/tmp/root/etc/hostname read %q, want the container's %q", got, want)
	}
	marker := uniq("berth-escape")
	os.WriteFile(filepath.Join(filepath.Dir(f), marker), []byte("m"), 0o644)
	wantDocker(t, s, "", "", 0, "cp", filepath.Join(filepath.Dir(f), marker), c+":/tmp/up/tmp/")
	if _, err := os.Stat(filepath.Join("/tmp", marker)); err == nil {
		os.Remove(filepath.Join("/tmp", marker))
		t.Fatal("docker cp through ../../.. wrote to the host's /tmp")
	}
	if _, _, code := s.Docker("cp", c+":/tmp/"+marker, "-"); code != 0 {
		t.Fatal("the file copied through ../../.. is not in the container's /tmp")
	}
	// a symlink itself is copied as a symlink; with -L, what it points to
	_, h := tarFile(t, s.MustDocker("cp", c+":/tmp/root", "-")+"\n", "root")
	if h.Typeflag != tar.TypeSymlink || h.Linkname != "/" {
		t.Fatalf("the symlink /tmp/root came out as %+v", h)
	}
	if got, _ := tarFile(t, s.MustDocker("cp", "-L", c+":/tmp/namelink", "-")+"\n", "name"); got != want { // the link target, under its own name on stdout
		t.Fatalf("cp -L of a symlink: %q, want %q", got, want)
	}
}

func TestCpArchiveOwnership(t *testing.T) {
	s := shared(t)
	c := uniq("cpown")
	s.MustDocker("create", "--name", c, "--user", "1234:5678", "busybox", "true")
	defer s.Docker("rm", "-f", c)
	f := filepath.Join(t.TempDir(), "owned")
	os.WriteFile(f, []byte("o"), 0o600)
	wantDocker(t, s, "", "", 0, "cp", "-a", f, c+":/tmp/")
	_, h := tarFile(t, s.MustDocker("cp", c+":/tmp/owned", "-")+"\n", "owned")
	if h.Uid != 1234 || h.Gid != 5678 || h.Mode&0o777 != 0o600 {
		t.Fatalf("cp -a: uid %d gid %d mode %o", h.Uid, h.Gid, h.Mode)
	}
}

func TestDiff(t *testing.T) {
	s := shared(t)
	c := uniq("diff")
	s.MustDocker("run", "--name", c, "-v", "/vol", "busybox", "sh", "-c",
		"rm /etc/group; echo x > /tmp/new; mkdir -p /root/a/b; echo y > /root/a/b/f; echo z > /vol/inside; chmod 700 /usr")
	defer s.Docker("rm", "-fv", c)
	want := strings.Join([]string{
		"C /etc", "D /etc/group",
		"C /root", "A /root/a", "A /root/a/b", "A /root/a/b/f",
		"C /tmp", "A /tmp/new",
		"C /usr",
		"A /vol",
	}, "\n")
	if got := s.MustDocker("diff", c); got != want {
		t.Fatalf("docker diff:\n%s\nwant\n%s", got, want)
	}
	fresh := uniq("fresh")
	s.MustDocker("create", "--name", fresh, "busybox", "true")
	defer s.Docker("rm", fresh)
	wantDocker(t, s, "", "", 0, "diff", fresh)
}

func TestExport(t *testing.T) {
	s := shared(t)
	c := uniq("export")
	s.MustDocker("run", "-d", "--name", c, "-v", "/vol", "busybox", "sh", "-c", "echo kept > /root/new; echo no > /vol/skip; sleep 300")
	defer s.Docker("rm", "-fv", c)
	waitFile := func() string {
		for i := 0; i < 100; i++ {
			out := s.MustDocker("export", c)
			if strings.Contains(strings.Join(tarList(t, out+"\n"), ","), "root/new") {
				return out
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("export never showed root/new")
		return ""
	}
	out := waitFile()
	names := tarList(t, out+"\n")
	joined := "," + strings.Join(names, ",") + ","
	for _, want := range []string{",bin/,", ",bin/sh,", ",etc/passwd,", ",root/new,", ",vol/,"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("export lacks %s", want)
		}
	}
	if strings.Contains(joined, "vol/skip") {
		t.Fatal("export holds a volume's content")
	}
	// stopped: the same root; the export imports as an image
	s.MustDocker("stop", "-t", "0", c)
	f := filepath.Join(t.TempDir(), "c.tar")
	wantDocker(t, s, "", "", 0, "export", "-o", f, c)
	data, _ := os.ReadFile(f)
	img := uniq("exported")
	if _, errOut, code := s.DockerIn(data, "import", "-", img); code != 0 {
		t.Fatalf("import of the export: %s", errOut)
	}
	defer s.Docker("rmi", img)
	wantDocker(t, s, "kept", "", 0, "run", "--rm", img, "cat", "/root/new")
}
