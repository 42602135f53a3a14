package e2e

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/pkg/busyboxfs"
	"berth/tests/regtest"
)

// busyboxLayer is the busybox root filesystem as an uncompressed layer.
func busyboxLayer(t *testing.T) []byte {
	t.Helper()
	if _, err := os.Stat(busyboxfs.Binary); err != nil {
		t.Skip("needs busybox-static")
	}
	var b bytes.Buffer
	if err := busyboxfs.WriteTar(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// layeredImage is busybox plus two layers: files, then deletions (a
// whiteout, an opaque directory), a hard link, a symlink, set-uid and
// owned files and an xattr. The top layer is unique to each call.
func layeredImage(t *testing.T, o regtest.BuildOptions) *regtest.Image {
	l2 := regtest.Tar(t,
		regtest.TarEntry{Name: "data/", Type: tar.TypeDir},
		regtest.TarEntry{Name: "data/keep", Body: "kept\n"},
		regtest.TarEntry{Name: "data/gone", Body: "to be deleted\n"},
		regtest.TarEntry{Name: "opq/", Type: tar.TypeDir},
		regtest.TarEntry{Name: "opq/old", Body: "hidden by the opaque dir\n"},
		regtest.TarEntry{Name: "etc/motd", Body: "layer two\n"},
	)
	l3 := regtest.Tar(t,
		regtest.TarEntry{Name: "data/", Type: tar.TypeDir},
		regtest.TarEntry{Name: "data/.wh.gone"},
		regtest.TarEntry{Name: "opq/", Type: tar.TypeDir},
		regtest.TarEntry{Name: "opq/.wh..wh..opq"},
		regtest.TarEntry{Name: "opq/new", Body: "new\n"},
		regtest.TarEntry{Name: "etc/motd", Body: "layer three\n"},
		regtest.TarEntry{Name: "srv/", Type: tar.TypeDir},
		regtest.TarEntry{Name: "srv/owned", Body: "x", Uid: 1000, Gid: 1000, Mode: 0o4755, Xattrs: map[string]string{"user.berth": "yes"}},
		regtest.TarEntry{Name: "srv/hard", Type: tar.TypeLink, Link: "srv/owned"},
		regtest.TarEntry{Name: "srv/soft", Type: tar.TypeSymlink, Link: "../etc/motd"},
		// each test's image is its own: tests share a stack
		regtest.TarEntry{Name: "srv/id", Body: uniq("image")},
	)
	if o.Config.Cmd == nil {
		o.Config = ocispec.ImageConfig{Cmd: []string{"sh"}, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LAYERED=1"}}
	}
	return regtest.Build(t, [][]byte{busyboxLayer(t), l2, l3}, o)
}

// checkLayered runs what layeredImage promises inside a container.
func checkLayered(t *testing.T, s interface {
	MustDocker(args ...string) string
}, ref string) {
	t.Helper()
	out := s.MustDocker("run", "--rm", ref, "sh", "-c",
		`ls /data; ls /opq; cat /etc/motd; stat -c '%u:%g %a' /srv/owned; stat -c '%h' /srv/owned; readlink /srv/soft; cat /srv/soft; echo $LAYERED`)
	want := "keep\nnew\nlayer three\n1000:1000 4755\n2\n../etc/motd\nlayer three\n1"
	if out != want {
		t.Fatalf("inside the pulled image:\n%s\nwant:\n%s", out, want)
	}
}

func TestPullRunRemove(t *testing.T) {
	s := shared(t)
	reg := regtest.Start(t, regtest.Options{})
	proxy := reg.Proxy(t)
	img := layeredImage(t, regtest.BuildOptions{})
	reg.Push(t, "berth/layered", "v1", img)
	ref := proxy.Addr + "/berth/layered:v1"
	since := fmt.Sprint(time.Now().Unix())

	out, errOut, code := s.Docker("pull", ref)
	if code != 0 {
		t.Fatalf("pull: %d %s", code, errOut)
	}
	for _, want := range []string{"v1: Pulling from berth/layered", "Pull complete", "Digest: " + img.Digest().String(), "Status: Downloaded newer image for " + ref} {
		if !strings.Contains(out, want) {
			t.Errorf("pull output lacks %q:\n%s", want, out)
		}
	}
	checkLayered(t, s, ref)
	if got := s.MustDocker("image", "inspect", "-f", "{{.Id}} {{len .RootFS.Layers}} {{index .RepoDigests 0}} {{.Os}}/{{.Architecture}}", ref); got != img.ConfigDigest.String()+" 3 "+proxy.Addr+"/berth/layered@"+img.Digest().String()+" linux/amd64" {
		t.Errorf("inspect: %q", got)
	}
	if got := s.MustDocker("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}", proxy.Addr+"/berth/layered"); got != proxy.Addr+"/berth/layered v1 "+img.Digest().String() {
		t.Errorf("images --digests: %q", got)
	}
	// layers are whiteouts on disk, as overlayfs wants them
	lower := filepath.Join(s.Root, "images", "layers", img.DiffIDs[2].Encoded())
	if fi, err := os.Lstat(filepath.Join(lower, "data", "gone")); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("whiteout on disk: %v %v", fi, err)
	}
	resp, err := http.Get("http://" + s.SupervisorMetrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `berth_supervisor_image_transfers_total{kind="pull",outcome="ok"}`) {
		t.Error("no pull in the supervisor's metrics")
	}
	// a second pull fetches nothing
	before := proxy.TotalGets()
	out = s.MustDocker("pull", ref)
	// dockerd's pull event, for both pulls: the reference as the actor
	ev := s.MustDocker("events", "--since", since, "--until", fmt.Sprint(time.Now().Unix()+1), "--filter", "type=image", "--filter", "event=pull", "--filter", "image="+ref,
		"--format", `{{.Actor.ID}} {{index .Actor.Attributes "name"}}`)
	if want := ref + " " + proxy.Addr + "/berth/layered"; ev != want+"\n"+want {
		t.Errorf("pull events %q, want twice %q", ev, want)
	}
	if !strings.Contains(out, "Image is up to date for "+ref) || proxy.TotalGets() != before {
		t.Errorf("second pull fetched %d blobs:\n%s", proxy.TotalGets()-before, out)
	}
	// pull by digest
	s.MustDocker("pull", proxy.Addr+"/berth/layered@"+img.Digest().String())
	checkLayered(t, s, proxy.Addr+"/berth/layered@"+img.Digest().String())

	// rmi refuses while a container uses it, unless forced
	name := uniq("puller")
	s.MustDocker("create", "--name", name, ref, "true")
	if _, errOut, code := s.Docker("rmi", img.ConfigDigest.Encoded()[:12]); code == 0 || !strings.Contains(errOut, "image is being used by stopped container") {
		t.Errorf("rmi of a used image: %d %s", code, errOut)
	}
	// its tag and digest are one name: untagging needs force too
	if _, errOut, code := s.Docker("rmi", ref); code != 1 || !strings.Contains(errOut, `unable to remove repository reference "`+ref+`" (must force) - container`) {
		t.Errorf("rmi of a used image's tag: %d %s", code, errOut)
	}
	s.MustDocker("rm", name)
	out = s.MustDocker("rmi", ref)
	if !strings.Contains(out, "Untagged: "+ref) || !strings.Contains(out, "Deleted: "+img.ConfigDigest.String()) {
		t.Errorf("rmi: %s", out)
	}
	if _, err := os.Stat(lower); !os.IsNotExist(err) {
		t.Errorf("layer directory left after rmi: %v", err)
	}
	// docker run pulls what is missing
	reg.PutManifest(t, "berth/layered", "v2", img.MediaType, img.Manifest)
	out, errOut, code = s.Docker("run", "--rm", proxy.Addr+"/berth/layered:v2", "cat", "/etc/motd")
	if code != 0 || out != "layer three" || !strings.Contains(errOut, "Unable to find image") {
		t.Errorf("run of an image to pull: %d %q %s", code, out, errOut)
	}
	s.MustDocker("rmi", proxy.Addr+"/berth/layered:v2")
}

func TestPullErrors(t *testing.T) {
	s := shared(t)
	reg := regtest.Start(t, regtest.Options{})
	_, errOut, code := s.Docker("pull", reg.Addr+"/nosuch:latest")
	if code != 1 || !strings.Contains(errOut, "manifest for "+reg.Addr+"/nosuch:latest not found") {
		t.Errorf("missing manifest: %d %s", code, errOut)
	}
	// an arm64-only index
	arm := regtest.Build(t, [][]byte{regtest.Tar(t, regtest.TarEntry{Name: "f", Body: "x"})}, regtest.BuildOptions{Arch: "arm64"})
	reg.Push(t, "berth/arm", "only", arm)
	mt, idx := regtest.Index(t, true, map[string]*regtest.Image{"linux/arm64": arm})
	reg.PutManifest(t, "berth/arm", "index", mt, idx)
	_, errOut, code = s.Docker("pull", reg.Addr+"/berth/arm:index")
	if code != 1 || !strings.Contains(errOut, "no matching manifest for linux/amd64") {
		t.Errorf("wrong platform index: %d %s", code, errOut)
	}
	_, errOut, code = s.Docker("pull", reg.Addr+"/berth/arm:only")
	if code != 1 || !strings.Contains(errOut, "does not match the specified platform") {
		t.Errorf("wrong platform manifest: %d %s", code, errOut)
	}
	if out := s.MustDocker("images", "-q", reg.Addr+"/berth/arm"); out != "" {
		t.Errorf("an image was left: %q", out)
	}
	// a hostile layer: refused, nothing written outside, no image
	victim := filepath.Join(t.TempDir(), "victim")
	os.Mkdir(victim, 0o755)
	evil := regtest.Build(t, [][]byte{regtest.Tar(t,
		regtest.TarEntry{Name: "d", Type: tar.TypeSymlink, Link: victim},
		regtest.TarEntry{Name: "d/evil", Body: "pwned"},
	)}, regtest.BuildOptions{})
	reg.Push(t, "berth/evil", "v1", evil)
	_, errOut, code = s.Docker("pull", reg.Addr+"/berth/evil:v1")
	if code != 1 || !strings.Contains(errOut, "refusing hostile archive entry") {
		t.Errorf("hostile layer: %d %s", code, errOut)
	}
	if ents, _ := os.ReadDir(victim); len(ents) != 0 {
		t.Errorf("the hostile layer wrote outside: %v", ents)
	}
	if out := s.MustDocker("images", "-q", reg.Addr+"/berth/evil"); out != "" {
		t.Errorf("an image from a hostile layer: %q", out)
	}
	// nobody listening
	_, errOut, code = s.Docker("pull", "127.0.0.1:1/x")
	if code != 1 || !strings.Contains(errOut, "connection refused") {
		t.Errorf("no registry: %d %s", code, errOut)
	}
}
