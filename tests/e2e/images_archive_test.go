package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth/tests/regtest"
)

// TestPushSaveLoadCommit: an image pulled from one registry is run,
// committed, pushed to another, saved, removed, loaded back and run again.
func TestPushSaveLoadCommit(t *testing.T) {
	s := shared(t)
	src := regtest.Start(t, regtest.Options{})
	dst := regtest.Start(t, regtest.Options{})
	img := layeredImage(t, regtest.BuildOptions{OCI: true})
	src.Push(t, "berth/oci", "v1", img)
	ref := src.Addr + "/berth/oci:v1"
	s.MustDocker("pull", ref)
	checkLayered(t, s, ref)

	// commit: a change on top, a deletion of a lower file, an opaque dir
	name := uniq("committer")
	s.MustDocker("run", "--name", name, ref, "sh", "-c", "echo committed > /data/new; rm /data/keep; rm -rf /opq; mkdir /opq; echo fresh > /opq/only")
	pushed := dst.Addr + "/berth/committed:c1"
	id := s.MustDocker("commit", "-c", "ENV COMMITTED=yes", "-m", "a commit", name, pushed)
	s.MustDocker("rm", name)
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("commit printed %q", id)
	}
	check := func(ref string) {
		t.Helper()
		out := s.MustDocker("run", "--rm", ref, "sh", "-c", "ls /data; ls /opq; echo $COMMITTED")
		if out != "new\nonly\nyes" {
			t.Fatalf("committed image %s: %q", ref, out)
		}
	}
	check(pushed)
	if got := s.MustDocker("image", "inspect", "-f", "{{.Comment}} {{len .RootFS.Layers}}", pushed); got != "a commit 4" {
		t.Errorf("committed image inspect: %q", got)
	}
	hist := s.MustDocker("history", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Comment}}", pushed)
	if lines := strings.Split(hist, "\n"); len(lines) != 4 || !strings.Contains(lines[0], "a commit") || !strings.HasPrefix(lines[0], id[7:19]) || !strings.HasPrefix(lines[3], "<missing>|layer 0") {
		t.Errorf("history:\n%s", hist)
	}

	// push, then pull into a clean name: the same image
	out, errOut, code := s.Docker("push", pushed)
	if code != 0 {
		t.Fatalf("push: %d %s", code, errOut)
	}
	if !strings.Contains(out, "The push refers to repository ["+dst.Addr+"/berth/committed]") || !strings.Contains(out, "c1: digest: sha256:") || !strings.Contains(out, "Pushed") {
		t.Errorf("push output:\n%s", out)
	}
	if out := s.MustDocker("push", pushed); !strings.Contains(out, "Layer already exists") {
		t.Errorf("second push:\n%s", out)
	}
	digests := s.MustDocker("image", "inspect", "-f", "{{json .RepoDigests}}", pushed)
	if !strings.Contains(digests, dst.Addr+"/berth/committed@sha256:") {
		t.Errorf("no repo digest after push: %s", digests)
	}
	s.MustDocker("rmi", pushed)
	s.MustDocker("pull", pushed)
	check(pushed)

	// save both, remove both, load, run
	tarPath := filepath.Join(t.TempDir(), "images.tar")
	s.MustDocker("save", "-o", tarPath, ref, pushed)
	s.MustDocker("rmi", ref, pushed)
	if out := s.MustDocker("images", "-q", pushed); out != "" {
		t.Fatalf("still there: %q", out)
	}
	out = s.MustDocker("load", "-i", tarPath)
	if !strings.Contains(out, "Loaded image: "+ref) || !strings.Contains(out, "Loaded image: "+pushed) {
		t.Errorf("load: %s", out)
	}
	checkLayered(t, s, ref)
	check(pushed)
	s.MustDocker("rmi", ref, pushed)

	// an archive a hostile tool made: nothing outside the store is touched
	bad := filepath.Join(t.TempDir(), "bad.tar")
	os.WriteFile(bad, regtest.Tar(t, regtest.TarEntry{Name: "manifest.json", Body: `[{"Config":"../../../../etc/passwd","RepoTags":["evil:1"],"Layers":[]}]`}), 0o644)
	if _, errOut, code := s.Docker("load", "-i", bad); code == 0 {
		t.Errorf("hostile archive loaded: %s", errOut)
	}
	if _, _, code := s.Docker("image", "inspect", "evil:1"); code == 0 {
		t.Error("hostile archive made an image")
	}
}

func TestImagePruneAndDiskUsage(t *testing.T) {
	s := shared(t)
	tag := uniq("prunable")
	s.MustDocker("tag", "busybox", tag+":v1")
	// a dangling image: commit without a name
	name := uniq("dangler")
	s.MustDocker("run", "--name", name, "busybox", "sh", "-c", "echo x > /x")
	dangling := s.MustDocker("commit", name)
	s.MustDocker("rm", name)
	if got := s.MustDocker("images", "-q", "--no-trunc", "--filter", "dangling=true"); !strings.Contains(got, dangling) {
		t.Fatalf("dangling filter: %q lacks %s", got, dangling)
	}
	bb := s.MustDocker("image", "inspect", "-f", "{{.Id}}", "busybox")
	if got := s.MustDocker("images", "-q", "--no-trunc", "--filter", "since=busybox"); !strings.Contains(got, dangling) || strings.Contains(got, bb) {
		t.Errorf("since=busybox: %q", got)
	}
	if got := s.MustDocker("images", "-q", "--no-trunc", "--filter", "before="+dangling); !strings.Contains(got, bb) || strings.Contains(got, dangling) {
		t.Errorf("before=%s: %q", dangling, got)
	}
	var df struct {
		LayersSize int64
		Images     []struct {
			ID         string `json:"Id"`
			SharedSize int64
			Size       int64
		}
	}
	vol := uniq("dfvol")
	s.MustDocker("volume", "create", vol)
	defer s.Docker("volume", "rm", vol)
	out := s.MustDocker("system", "df", "--format", "{{.Type}} {{.TotalCount}}")
	if !strings.Contains(out, "Images ") || !strings.Contains(out, "Local Volumes ") || strings.Contains(out, "Local Volumes 0") {
		t.Errorf("system df: %s", out)
	}
	code, body := call(t, s, "GET", "/system/df", "")
	if code != 200 || json.Unmarshal([]byte(body), &df) != nil || df.LayersSize <= 0 {
		t.Fatalf("GET /system/df: %d %s", code, body)
	}
	for _, im := range df.Images {
		if im.ID == dangling && (im.SharedSize <= 0 || im.SharedSize >= im.Size) {
			t.Errorf("committed image shares busybox's layer: %+v", im)
		}
	}
	out = s.MustDocker("image", "prune", "-f")
	if !strings.Contains(out, "deleted: "+dangling) || !strings.Contains(out, "Total reclaimed space") {
		t.Errorf("prune: %s", out)
	}
	if _, _, code := s.Docker("image", "inspect", dangling); code == 0 {
		t.Error("dangling image survived prune")
	}
	// tagged images stay
	s.MustDocker("image", "inspect", tag+":v1")
	s.MustDocker("rmi", tag+":v1")

	// --all removes unused tagged images too (only this test's, by label);
	// one a container uses stays
	label := uniq("prunetest")
	for _, n := range []string{"unused", "used"} {
		c := uniq(n)
		s.MustDocker("run", "--name", c, "busybox", "true")
		s.MustDocker("commit", "-c", "LABEL "+label+"=1", c, label+"/"+n+":v1")
		s.MustDocker("rm", c)
	}
	user := uniq("user")
	s.MustDocker("create", "--name", user, label+"/used:v1", "true")
	out = s.MustDocker("image", "prune", "-a", "-f", "--filter", "label="+label)
	if !strings.Contains(out, "untagged: "+label+"/unused:v1") || strings.Contains(out, label+"/used") {
		t.Errorf("prune -a: %s", out)
	}
	s.MustDocker("image", "inspect", label+"/used:v1")
	s.MustDocker("rm", user)
	s.MustDocker("rmi", label+"/used:v1")
}

// TestCommitPausesRunning: docker commit freezes a running container while
// its layer is read, as dockerd does (pause and unpause events), not with
// --pause=false, and the container runs on afterwards.
func TestCommitPausesRunning(t *testing.T) {
	s := shared(t)
	c := s.MustDocker("run", "-d", "busybox", "sh", "-c", "echo x > /made; sleep 300")
	defer s.Docker("rm", "-f", c)
	since := fmt.Sprint(time.Now().Unix())
	img := s.MustDocker("commit", c)
	defer s.Docker("rmi", img)
	s.MustDocker("commit", "--pause=false", c)
	until := fmt.Sprint(time.Now().Unix() + 1)
	ev := s.MustDocker("events", "--since", since, "--until", until, "--filter", "container="+c,
		"--filter", "event=pause", "--filter", "event=unpause", "--filter", "event=commit", "--format", "{{.Action}}")
	// dockerd's order: the commit event before the deferred unpause
	if got := strings.Join(strings.Fields(ev), ","); got != "pause,commit,unpause,commit" {
		t.Errorf("events %q, want pause,commit,unpause,commit", got)
	}
	if st := s.MustDocker("inspect", "-f", "{{.State.Status}}", c); st != "running" {
		t.Errorf("after the commit: %s", st)
	}
	if out := s.MustDocker("run", "--rm", img, "cat", "/made"); out != "x" {
		t.Errorf("committed file: %q", out)
	}
}
