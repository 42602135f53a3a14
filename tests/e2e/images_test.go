package e2e

import (
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
