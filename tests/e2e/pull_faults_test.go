package e2e

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"berth/tests/regtest"
)

// noise is n bytes of random data (incompressible: the blob is as big as
// the layer).
func noise(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func tmpEmpty(t *testing.T, dir string) {
	t.Helper()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("%s not empty: %v", dir, names)
	}
}

// A transfer that breaks is resumed with a ranged request; a registry that
// dies leaves no image and a partial download the next pull resumes; a
// corrupt blob is refused and leaves nothing.
func TestPullResumeDeadRegistryCorruptBlob(t *testing.T) {
	s := shared(t)
	reg := regtest.Start(t, regtest.Options{})
	proxy := reg.Proxy(t)
	big := regtest.Tar(t, regtest.TarEntry{Name: "big", Body: noise(t, 3<<20)})
	img := regtest.Build(t, [][]byte{busyboxLayer(t), big}, regtest.BuildOptions{})
	reg.Push(t, "berth/big", "v1", img)
	ref := proxy.Addr + "/berth/big:v1"
	layer := img.Layers[1]

	// 1. cut once: the same pull resumes from where it broke
	proxy.CutAfter(layer, 1<<20)
	out := s.MustDocker("pull", ref)
	if !strings.Contains(out, "Downloaded newer image") {
		t.Fatalf("pull after a cut: %s", out)
	}
	if rs := proxy.Ranges(); len(rs) != 1 || !strings.HasSuffix(rs[0], "bytes=1048576-") {
		t.Errorf("ranged requests: %v", rs)
	}
	s.MustDocker("run", "--rm", ref, "test", "-s", "/big")
	s.MustDocker("rmi", ref)

	// 2. the registry dies mid-transfer: a clear error, no image
	proxy.CutAfter(layer, 2<<20)
	proxy.DieOnCut()
	_, errOut, code := s.Docker("pull", ref)
	if code == 0 || !strings.Contains(errOut, "downloading layer "+layer.Encoded()[:12]) {
		t.Fatalf("pull from a dying registry: %d %s", code, errOut)
	}
	if out := s.MustDocker("images", "-q", proxy.Addr+"/berth/big"); out != "" {
		t.Errorf("a partial image is listed: %q", out)
	}
	tmpEmpty(t, filepath.Join(s.Root, "images", "tmp"))
	partial := filepath.Join(s.Root, "images", "blobs", "partial", layer.Encoded())
	fi, err := os.Stat(partial)
	if err != nil || fi.Size() != 2<<20 {
		t.Fatalf("partial download kept: %v %v", fi, err)
	}
	// the registry is back: the next pull resumes
	proxy.Down(false)
	n := len(proxy.Ranges())
	s.MustDocker("pull", ref)
	if rs := proxy.Ranges(); len(rs) != n+1 || !strings.HasSuffix(rs[n], "bytes=2097152-") {
		t.Errorf("resumed pull ranges: %v", rs)
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("partial file left after the pull completed: %v", err)
	}
	s.MustDocker("run", "--rm", ref, "test", "-s", "/big")
	s.MustDocker("rmi", ref)

	// 3. a corrupt blob
	proxy.Corrupt(layer, true)
	_, errOut, code = s.Docker("pull", ref)
	if code == 0 || !strings.Contains(errOut, "verification failed for digest "+layer.String()) {
		t.Fatalf("corrupt blob: %d %s", code, errOut)
	}
	if out := s.MustDocker("images", "-q", proxy.Addr+"/berth/big"); out != "" {
		t.Errorf("an image from a corrupt blob: %q", out)
	}
	if _, err := os.Stat(filepath.Join(s.Root, "images", "layers", img.DiffIDs[1].Encoded())); !os.IsNotExist(err) {
		t.Errorf("a layer from a corrupt blob: %v", err)
	}
	tmpEmpty(t, filepath.Join(s.Root, "images", "tmp"))
	// (a sibling download cut short by the failure may stay, to be resumed)
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Errorf("the corrupt blob was kept for resuming: %v", err)
	}
	proxy.Corrupt(layer, false)
	s.MustDocker("pull", ref)
	s.MustDocker("rmi", ref)
}

// A second image sharing two layers with one pulled before downloads and
// unpacks only its third.
func TestPullSharesLayers(t *testing.T) {
	s := shared(t)
	reg := regtest.Start(t, regtest.Options{})
	proxy := reg.Proxy(t)
	base := busyboxLayer(t)
	mid := regtest.Tar(t, regtest.TarEntry{Name: "mid", Body: noise(t, 1<<20)})
	a := regtest.Build(t, [][]byte{base, mid, regtest.Tar(t, regtest.TarEntry{Name: "a", Body: "a"})}, regtest.BuildOptions{})
	b := regtest.Build(t, [][]byte{base, mid, regtest.Tar(t, regtest.TarEntry{Name: "b", Body: "b"})}, regtest.BuildOptions{})
	reg.Push(t, "berth/a", "v1", a)
	reg.Push(t, "berth/b", "v1", b)
	s.MustDocker("pull", proxy.Addr+"/berth/a:v1")
	before := proxy.TotalGets()
	out := s.MustDocker("pull", proxy.Addr+"/berth/b:v1")
	if got := proxy.TotalGets() - before; got != 2 || proxy.Gets(b.Layers[2]) != 1 || proxy.Gets(b.ConfigDigest) != 1 {
		t.Errorf("second pull fetched %d blobs (want its third layer and config)", got)
	}
	if strings.Count(out, "Already exists") != 2 {
		t.Errorf("second pull output:\n%s", out)
	}
	// the shared layers are one directory each
	ents, _ := os.ReadDir(filepath.Join(s.Root, "images", "layers"))
	dirs := map[string]bool{}
	for _, e := range ents {
		if e.IsDir() {
			dirs[e.Name()] = true
		}
	}
	for _, d := range append(a.DiffIDs, b.DiffIDs[2]) {
		if !dirs[d.Encoded()] {
			t.Errorf("layer %s not unpacked", d)
		}
	}
	if out := s.MustDocker("run", "--rm", proxy.Addr+"/berth/b:v1", "sh", "-c", "cat /b; echo; test -s /mid && echo mid"); out != "b\nmid" {
		t.Errorf("run b: %q", out)
	}
	// removing a keeps the shared layers for b
	s.MustDocker("rmi", proxy.Addr+"/berth/a:v1")
	s.MustDocker("run", "--rm", proxy.Addr+"/berth/b:v1", "test", "-s", "/mid")
	s.MustDocker("rmi", proxy.Addr+"/berth/b:v1")
}
