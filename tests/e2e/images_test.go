package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImages(t *testing.T) {
	s := shared(t)
	id := s.MustDocker("image", "inspect", "-f", "{{.Id}}", "busybox")
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Fatalf("image id %q", id)
	}
	if got := s.MustDocker("image", "inspect", "-f", "{{.Os}} {{.RootFS.Type}} {{len .RootFS.Layers}} {{index .RepoTags 0}}", "busybox"); got != "linux layers 1 busybox:latest" {
		t.Fatalf("image inspect: %q", got)
	}
	tag := uniq("tagged")
	s.MustDocker("tag", "busybox", tag+":v1")
	if got := s.MustDocker("images", "--format", "{{.Repository}}:{{.Tag}}", tag); got != tag+":v1" {
		t.Fatalf("images after tag: %q", got)
	}
	// the tag runs like the original
	if got := s.MustDocker("run", "--rm", tag+":v1", "echo", "ok"); got != "ok" {
		t.Fatalf("run by tag: %q", got)
	}
	// an image in use cannot be removed without force
	name := uniq("user")
	s.MustDocker("create", "--name", name, tag+":v1", "true")
	s.MustDocker("rmi", tag+":v1") // untag only: busybox:latest still names it
	if _, errOut, code := s.Docker("rmi", "no-such-image:nope"); code != 1 || !strings.Contains(errOut, "No such image: no-such-image:nope") {
		t.Fatalf("rmi missing: %d %q", code, errOut)
	}
	s.MustDocker("rm", name)
	if _, _, code := s.Docker("image", "inspect", "no-such-image"); code != 1 {
		t.Fatal("inspect of a missing image succeeded")
	}
}

func TestImportWithChanges(t *testing.T) {
	s := shared(t)
	repo := uniq("imported")
	tar := busyboxTar(t)
	_, errOut, code := s.DockerIn(tar, "import",
		"-c", "ENV GREETING=hello", "-c", "WORKDIR /tmp", "-c", `ENTRYPOINT ["sh","-c"]`, "-c", `CMD ["echo $GREETING from $(pwd)"]`,
		"-m", "imported by a test", "-", repo+":v2")
	if code != 0 {
		t.Fatalf("import: %s", errOut)
	}
	if got := s.MustDocker("run", "--rm", repo+":v2"); got != "hello from /tmp" {
		t.Fatalf("run imported: %q", got)
	}
	if got := s.MustDocker("image", "inspect", "-f", "{{.Comment}} {{.Config.WorkingDir}}", repo+":v2"); got != "imported by a test /tmp" {
		t.Fatalf("inspect imported: %q", got)
	}
	out := s.MustDocker("rmi", repo+":v2")
	if !strings.Contains(out, "Untagged: "+repo+":v2") || !strings.Contains(out, "Deleted: sha256:") {
		t.Fatalf("rmi: %q", out)
	}
}

// TestForcedRemoveKeepsContainerLayers: as with Docker, `rmi -f` of the image
// of a stopped container deletes the image but not the layers the container
// stands on: it still starts, and its removal then frees them.
func TestForcedRemoveKeepsContainerLayers(t *testing.T) {
	s := shared(t)
	layers := func() int {
		ents, err := os.ReadDir(filepath.Join(s.Root, "images", "layers"))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := layers()
	repo, w, c := uniq("forced"), uniq("writer"), uniq("stander")
	s.MustDocker("run", "--name", w, "busybox", "sh", "-c", "echo kept > /kept")
	s.MustDocker("commit", w, repo+":v1")
	s.MustDocker("rm", w)
	s.MustDocker("create", "--name", c, repo+":v1", "cat", "/kept")
	cid := s.MustDocker("inspect", "-f", "{{.Id}}", c)
	_, errOut, code := s.Docker("rmi", repo+":v1")
	if want := `unable to remove repository reference "` + repo + `:v1" (must force) - container ` + cid[:12]; code != 1 || !strings.Contains(errOut, want) {
		t.Fatalf("rmi of a used image: %d %q, want %q", code, errOut, want)
	}
	if out := s.MustDocker("rmi", "-f", repo+":v1"); !strings.Contains(out, "Untagged: "+repo+":v1") || !strings.Contains(out, "Deleted: sha256:") {
		t.Fatalf("rmi -f: %q", out)
	}
	if _, _, code := s.Docker("image", "inspect", repo+":v1"); code != 1 {
		t.Fatal("the image is still there after rmi -f")
	}
	if out, errOut, code := s.Docker("start", "-a", c); code != 0 || out != "kept" {
		t.Fatalf("start after its image's removal: %d %q %s", code, out, errOut)
	}
	if out := s.MustDocker("ps", "-a", "--filter", "name="+c, "--format", "{{.Names}}"); out != c {
		t.Fatalf("ps -a: %q", out)
	}
	s.MustDocker("rm", c)
	if n := layers(); n != before {
		t.Fatalf("%d layers after removing the container, %d before", n, before)
	}
}
