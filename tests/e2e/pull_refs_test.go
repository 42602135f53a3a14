package e2e

import (
	"archive/tar"
	"fmt"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"berth/tests/regtest"
)

// smallImage is a one-file image unique to the call.
func smallImage(t *testing.T, o regtest.BuildOptions) *regtest.Image {
	return regtest.Build(t, [][]byte{regtest.Tar(t, regtest.TarEntry{Name: "id", Body: uniq("small")})}, o)
}

// TestPullDigestNamesOneImage: a name@digest reference names one image, as
// in dockerd's reference store: a pull by digest moves it to the image
// pulled, a pull by tag leaves it where it is, and an image keeps every
// digest it was pulled by.
func TestPullDigestNamesOneImage(t *testing.T) {
	s := shared(t)
	reg := regtest.Start(t, regtest.Options{})
	amd := smallImage(t, regtest.BuildOptions{})
	arm := smallImage(t, regtest.BuildOptions{Arch: "arm64"})
	mt, idx := regtest.Index(t, true, map[string]*regtest.Image{"linux/amd64": amd, "linux/arm64": arm})
	index := digest.FromBytes(idx)
	inspect := func(ref, format string) string {
		t.Helper()
		return s.MustDocker("image", "inspect", "-f", format, ref)
	}
	for _, repo := range []string{"berth/bydigest", "berth/bytag"} {
		reg.Push(t, repo, "amd", amd)
		reg.Push(t, repo, "arm", arm)
		reg.PutManifest(t, repo, "multi", mt, idx)
	}
	defer s.Docker("rmi", "-f", amd.ConfigDigest.String(), arm.ConfigDigest.String())

	// by digest: the second platform's image takes the digest
	byDigest := reg.Addr + "/berth/bydigest@" + index.String()
	s.MustDocker("pull", byDigest)
	if got := inspect(byDigest, "{{.Id}}"); got != amd.ConfigDigest.String() {
		t.Fatalf("%s is %s, want the amd64 image %s", byDigest, got, amd.ConfigDigest)
	}
	s.MustDocker("pull", "--platform", "linux/arm64", byDigest)
	for range 5 {
		if got := inspect(byDigest, "{{.Id}}"); got != arm.ConfigDigest.String() {
			t.Fatalf("after the arm64 pull %s is %s, want %s", byDigest, got, arm.ConfigDigest)
		}
	}
	if got := inspect(amd.ConfigDigest.String(), "{{json .RepoDigests}}"); got != "[]" {
		t.Errorf("the amd64 image still lists %s", got)
	}
	if got := s.MustDocker("images", "--digests", "--format", "{{.ID}} {{.Digest}}", reg.Addr+"/berth/bydigest"); got != arm.ConfigDigest.Encoded()[:12]+" "+index.String() {
		t.Errorf("images --digests:\n%s", got)
	}

	// by tag: the tag moves, the digest stays with the image that had it
	byTag := reg.Addr + "/berth/bytag"
	s.MustDocker("pull", byTag+":multi")
	s.MustDocker("pull", "--platform", "linux/arm64", byTag+":multi")
	if got := inspect(byTag+":multi", "{{.Id}}"); got != arm.ConfigDigest.String() {
		t.Errorf("the tag names %s, want the arm64 image", got)
	}
	if got := inspect(byTag+"@"+index.String(), "{{.Id}}"); got != amd.ConfigDigest.String() {
		t.Errorf("%s@%s names %s, want the amd64 image that had it", byTag, index, got)
	}
	if got := inspect(arm.ConfigDigest.String(), "{{json .RepoDigests}}"); got != `["`+byDigest+`"]` {
		t.Errorf("the arm64 image lists %s", got)
	}

	// the tag moves to another manifest of the same image (the same config,
	// its layer uncompressed now): the image keeps both digests
	layer := regtest.Tar(t, regtest.TarEntry{Name: "id", Body: uniq("small")})
	gzImg := regtest.Build(t, [][]byte{layer}, regtest.BuildOptions{})
	rawImg := regtest.Build(t, [][]byte{layer}, regtest.BuildOptions{Uncompressed: true})
	if gzImg.ConfigDigest != rawImg.ConfigDigest || gzImg.Digest() == rawImg.Digest() {
		t.Fatal("the two manifests should differ and share their config")
	}
	defer s.Docker("rmi", "-f", gzImg.ConfigDigest.String())
	repo := reg.Addr + "/berth/remanifest"
	reg.Push(t, "berth/remanifest", "v1", gzImg)
	s.MustDocker("pull", repo+":v1")
	reg.Push(t, "berth/remanifest", "v1", rawImg)
	s.MustDocker("pull", repo+":v1")
	for _, d := range []digest.Digest{gzImg.Digest(), rawImg.Digest()} {
		if got := inspect(repo+"@"+d.String(), "{{.Id}}"); got != gzImg.ConfigDigest.String() {
			t.Errorf("%s@%s names %s", repo, d, got)
		}
	}
	if got := inspect(repo+":v1", "{{len .RepoDigests}}"); got != "2" {
		t.Errorf("the image has %s repo digests, want both", got)
	}
}

// TestHistoryLayerSizes: docker history and the image's size count a layer
// as dockerd's overlay2 does: every non-directory by its lstat size (a
// symlink by its target's length), a hard link once, a file written twice
// at its final size, a whiteout nothing.
func TestHistoryLayerSizes(t *testing.T) {
	s := shared(t)
	reg := regtest.Start(t, regtest.Options{})
	id := uniq("sizes") // the image is this test's own
	l1 := regtest.Tar(t,
		regtest.TarEntry{Name: "d/", Type: tar.TypeDir},
		regtest.TarEntry{Name: "d/a", Body: "12345"},
		regtest.TarEntry{Name: "d/l", Type: tar.TypeSymlink, Link: "target/x"},
		regtest.TarEntry{Name: "d/h", Type: tar.TypeLink, Link: "d/a"},
		regtest.TarEntry{Name: "d/x", Body: "0123456789"},
		regtest.TarEntry{Name: "d/x", Body: "abc"},
		regtest.TarEntry{Name: "id", Body: id},
	)
	l2 := regtest.Tar(t,
		regtest.TarEntry{Name: "d/", Type: tar.TypeDir},
		regtest.TarEntry{Name: "d/.wh.a"},
		regtest.TarEntry{Name: "e", Body: "four"},
	)
	img := regtest.Build(t, [][]byte{l1, l2}, regtest.BuildOptions{})
	reg.Push(t, "berth/sizes", "v1", img)
	ref := reg.Addr + "/berth/sizes:v1"
	s.MustDocker("pull", ref)
	defer s.Docker("rmi", ref)
	// 5 (d/a, d/h) + 8 (the symlink) + 3 (d/x) + the id; then 4 (e)
	base := 5 + 8 + 3 + len(id)
	if got, want := s.MustDocker("history", "--human=false", "--format", "{{.Size}}", ref), fmt.Sprintf("4\n%d", base); got != want {
		t.Errorf("history sizes:\n%s\nwant:\n%s", got, want)
	}
	if got, want := s.MustDocker("image", "inspect", "-f", "{{.Size}}", ref), fmt.Sprint(base+4); got != want {
		t.Errorf("image size %s, want %s", got, want)
	}
}

// TestPullAllTags: docker pull -a pulls every tag the registry lists, one
// after the other, with one status line for the repository, as dockerd.
func TestPullAllTags(t *testing.T) {
	s := shared(t)
	reg := regtest.Start(t, regtest.Options{})
	one, two := smallImage(t, regtest.BuildOptions{}), smallImage(t, regtest.BuildOptions{OCI: true})
	reg.Push(t, "berth/alltags", "v1", one)
	reg.Push(t, "berth/alltags", "v2", two)
	reg.PutManifest(t, "berth/alltags", "v3", one.MediaType, one.Manifest)
	repo := reg.Addr + "/berth/alltags"
	defer s.Docker("rmi", "-f", one.ConfigDigest.String(), two.ConfigDigest.String())

	out, errOut, code := s.Docker("pull", "-a", repo)
	if code != 0 {
		t.Fatalf("pull -a: %d %s", code, errOut)
	}
	// v3 is v1's image, in the store by then: no line for its layer
	for _, want := range []string{"v1: Pulling from berth/alltags", "v2: Pulling from berth/alltags", "v3: Pulling from berth/alltags\nDigest: " + one.Digest().String(),
		"Digest: " + one.Digest().String(), "Digest: " + two.Digest().String(), "Status: Downloaded newer image for " + repo + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("pull -a output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "Status: "); n != 1 {
		t.Errorf("%d status lines, want one for the repository:\n%s", n, out)
	}
	tags := strings.Fields(s.MustDocker("images", "--format", "{{.Tag}}", repo))
	if slices.Sort(tags); strings.Join(tags, " ") != "v1 v2 v3" {
		t.Errorf("tags after pull -a: %v", tags)
	}
	for tag, img := range map[string]*regtest.Image{"v1": one, "v2": two, "v3": one} {
		if got := s.MustDocker("image", "inspect", "-f", "{{.Id}}", repo+":"+tag); got != img.ConfigDigest.String() {
			t.Errorf("%s:%s is %s, want %s", repo, tag, got, img.ConfigDigest)
		}
	}
	// again: nothing new
	if out := s.MustDocker("pull", "--all-tags", repo); !strings.Contains(out, "Status: Image is up to date for "+repo+"\n") {
		t.Errorf("second pull -a:\n%s", out)
	}
	// a plain pull of the name is still its latest tag
	if _, errOut, code := s.Docker("pull", repo); code != 1 || !strings.Contains(errOut, "manifest for "+repo+":latest not found") {
		t.Errorf("pull without -a: %d %s", code, errOut)
	}
	if _, errOut, code := s.Docker("pull", "-a", reg.Addr+"/berth/nosuch"); code != 1 || !strings.Contains(errOut, "repository "+reg.Addr+"/berth/nosuch not found: name unknown") {
		t.Errorf("pull -a of a missing repository: %d %s", code, errOut)
	}
}
