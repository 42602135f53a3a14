package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth/pkg/busyboxfs"
	"berth/pkg/errdefs"
)

type entry struct {
	name, link, body string
	typ              byte
	mode             int64
}

func mkTar(t *testing.T, ents ...entry) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body))}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return &b
}

func TestExtractRefusesHostileEntries(t *testing.T) {
	cases := map[string][]entry{
		"dotdot":          {{name: "../evil", typ: tar.TypeReg, body: "x"}},
		"nested-dotdot":   {{name: "a/../../evil", typ: tar.TypeReg, body: "x"}},
		"absolute":        {{name: "/etc/evil", typ: tar.TypeReg, body: "x"}},
		"hardlink-out":    {{name: "pw", typ: tar.TypeLink, link: "/etc/passwd"}},
		"hardlink-dotdot": {{name: "pw", typ: tar.TypeLink, link: "../../etc/passwd"}},
		"through-symlink": {
			{name: "d", typ: tar.TypeSymlink, link: "/tmp"},
			{name: "d/evil", typ: tar.TypeReg, body: "x"},
		},
		"through-relative-symlink": {
			{name: "d", typ: tar.TypeSymlink, link: "../../.."},
			{name: "d/evil", typ: tar.TypeReg, body: "x"},
		},
	}
	for name, ents := range cases {
		t.Run(name, func(t *testing.T) {
			outside := t.TempDir()
			dir := filepath.Join(outside, "a", "b", "layer")
			os.MkdirAll(dir, 0o755)
			_, err := Extract(mkTar(t, ents...), dir)
			if !errdefs.Is(err, errdefs.InvalidParameter) || !strings.Contains(err.Error(), "hostile") {
				t.Fatalf("want hostile-entry error, got %v", err)
			}
			if _, err := os.Stat(filepath.Join(outside, "evil")); err == nil {
				t.Fatal("wrote outside the layer")
			}
			if _, err := os.Stat("/tmp/evil"); err == nil {
				t.Fatal("wrote /tmp/evil")
			}
		})
	}
}

func TestExtractOverwriteSymlinkDoesNotFollow(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("safe"), 0o644)
	dir := filepath.Join(outside, "layer")
	os.Mkdir(dir, 0o755)
	_, err := Extract(mkTar(t,
		entry{name: "f", typ: tar.TypeSymlink, link: victim},
		entry{name: "f", typ: tar.TypeReg, body: "pwned"},
	), dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "safe" {
		t.Fatalf("victim overwritten: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "pwned" {
		t.Fatalf("f = %q", b)
	}
}

func TestExtractOK(t *testing.T) {
	dir := t.TempDir()
	_, err := Extract(mkTar(t,
		entry{name: "./", typ: tar.TypeDir, mode: 0o755},
		entry{name: "./bin/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "./bin/busybox", typ: tar.TypeReg, body: "elf", mode: 0o755},
		entry{name: "./bin/sh", typ: tar.TypeSymlink, link: "/bin/busybox"},
		entry{name: "./bin/ls", typ: tar.TypeLink, link: "./bin/busybox"},
	), dir)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := os.Readlink(filepath.Join(dir, "bin/sh")); l != "/bin/busybox" {
		t.Fatalf("symlink %q", l)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "bin/ls")); string(b) != "elf" {
		t.Fatalf("hardlink %q", b)
	}
}

func TestApplyChanges(t *testing.T) {
	var c ocispec.ImageConfig
	err := ApplyChanges(&c, []string{
		`ENV A=1 B="two words"`,
		`ENV LEGACY some value`,
		`CMD ["echo", "hi"]`,
		`ENTRYPOINT /bin/sh -c`,
		`WORKDIR /srv`,
		`WORKDIR app`,
		`USER nobody`,
		`LABEL a=b "c d"=e`,
		`EXPOSE 80 53/udp`,
		`VOLUME ["/data"]`,
		`STOPSIGNAL SIGINT`,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := ocispec.ImageConfig{
		Env:          []string{"A=1", "B=two words", "LEGACY=some value"},
		Cmd:          []string{"echo", "hi"},
		Entrypoint:   []string{"/bin/sh", "-c", "/bin/sh -c"},
		WorkingDir:   "/srv/app",
		User:         "nobody",
		Labels:       map[string]string{"a": "b", "c d": "e"},
		ExposedPorts: map[string]struct{}{"80/tcp": {}, "53/udp": {}},
		Volumes:      map[string]struct{}{"/data": {}},
		StopSignal:   "SIGINT",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
	if err := ApplyChanges(&c, []string{"RUN rm -rf /"}); !errdefs.Is(err, errdefs.InvalidParameter) {
		t.Fatalf("RUN: %v", err)
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                          "busybox:latest",
		"docker.io/library/busybox:latest": "busybox:latest",
		"library/busybox:1":                "busybox:1",
		"example.com:5000/x/y":             "example.com:5000/x/y:latest",
	} {
		got, err := NormalizeRef(in)
		if err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", in, got, err, want)
		}
	}
	if _, err := NormalizeRef("UPPER"); err == nil {
		t.Error("UPPER accepted")
	}
}

func TestStore(t *testing.T) {
	if _, err := os.Stat(busyboxfs.Binary); err != nil {
		t.Skip("needs busybox-static")
	}
	root := t.TempDir()
	users := map[string][]User{}
	var events []string
	hooks := Hooks{
		Users: func(id string) []User { return users[id] },
		Event: func(a, id string, attrs map[string]string) { events = append(events, a+" "+attrs["name"]) },
	}
	s, err := Open(root, hooks)
	if err != nil {
		t.Fatal(err)
	}
	var tb bytes.Buffer
	if err := busyboxfs.WriteTar(&tb); err != nil {
		t.Fatal(err)
	}
	img, err := s.Import(bytes.NewReader(tb.Bytes()), ImportOptions{Repo: "busybox", Changes: []string{`CMD ["sh"]`, "ENV X=1"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(img.RepoTags, []string{"busybox:latest"}) || img.Config.Cmd[0] != "sh" || img.Config.Env[0] != "X=1" {
		t.Fatalf("image %+v", img)
	}
	if _, err := os.Stat(filepath.Join(s.LayerDirs(img)[0], "bin/busybox")); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"busybox", "busybox:latest", "docker.io/library/busybox:latest", img.ID, img.ID[7:], img.ID[7:13], img.ID[:12]} {
		got, err := s.Get(ref)
		if err != nil || got.ID != img.ID {
			t.Errorf("Get(%s): %v", ref, err)
		}
	}
	if _, err := s.Get("nosuch"); err == nil || err.Error() != "No such image: nosuch:latest" {
		t.Errorf("nosuch: %v", err)
	}
	if _, err := s.Tag("busybox", "mine", "v1"); err != nil {
		t.Fatal(err)
	}
	// reopen: everything is on disk
	s, err = Open(root, hooks)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get("mine:v1")
	if !reflect.DeepEqual(got.RepoTags, []string{"busybox:latest", "mine:v1"}) {
		t.Fatalf("tags %v", got.RepoTags)
	}
	// by ID with two tags: conflict
	if _, err := s.Remove(ShortID(img.ID), false); !errdefs.Is(err, errdefs.Conflict) {
		t.Fatalf("remove by id with 2 tags: %v", err)
	}
	del, err := s.Remove("mine:v1", false)
	if err != nil || len(del) != 1 || del[0].Untagged != "mine:v1" {
		t.Fatalf("untag: %v %v", del, err)
	}
	cid := strings.Repeat("ab", 32)
	users[img.ID] = []User{{ID: cid}}
	_, err = s.Remove(img.ID, false)
	want := "conflict: unable to delete " + ShortID(img.ID) + " (must be forced) - image is being used by stopped container abababababab"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	users[img.ID] = []User{{ID: cid, Running: true}}
	if _, err := s.Remove(img.ID, true); err == nil || !strings.Contains(err.Error(), "being used by running container abababababab") {
		t.Fatalf("running: %v", err)
	}
	if _, err := s.Remove("busybox", false); err == nil || !strings.Contains(err.Error(), "unable to remove repository reference") {
		t.Fatalf("by ref in use: %v", err)
	}
	users[img.ID] = nil
	del, err = s.Remove("busybox", false)
	if err != nil || len(del) != 3 || del[1].Deleted != img.ID {
		t.Fatalf("delete: %v %v", del, err)
	}
	if s.Count() != 0 {
		t.Fatal("image left")
	}
	if _, err := os.Stat(filepath.Join(root, "layers", img.RootFS.DiffIDs[0].Encoded())); err == nil {
		t.Fatal("layer left")
	}
	if len(events) == 0 || events[0] != "import "+img.ID {
		t.Fatalf("events %v", events)
	}
}

func TestImportGzipAndGarbage(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(mkTar(t, entry{name: "hello", typ: tar.TypeReg, body: "hi"}).Bytes())
	zw.Close()
	img, err := s.Import(&gz, ImportOptions{Repo: "example.com/x/y", Tag: "v2", Message: "msg"})
	if err != nil {
		t.Fatal(err)
	}
	if img.RepoTags[0] != "example.com/x/y:v2" || img.Comment != "msg" || img.Size != 2 {
		t.Fatalf("%+v", img)
	}
	// the same content gives the same layer directory
	img2, err := s.Import(mkTar(t, entry{name: "hello", typ: tar.TypeReg, body: "hi"}), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.LayerDirs(img2)[0] != s.LayerDirs(img)[0] {
		t.Error("same content, different layer")
	}
	for _, bad := range [][]byte{[]byte("this is not a tar archive at all, not even close........"), {}} {
		if _, err := s.Import(bytes.NewReader(bad), ImportOptions{Repo: "bad"}); !errdefs.Is(err, errdefs.InvalidParameter) {
			t.Errorf("garbage import: %v", err)
		}
	}
	if _, err := s.Import(mkTar(t, entry{name: "../x", typ: tar.TypeReg, body: "x"}), ImportOptions{Repo: "bad"}); err == nil {
		t.Error("hostile import accepted")
	}
	if _, err := s.Import(mkTar(t, entry{name: "x", typ: tar.TypeReg}), ImportOptions{Changes: []string{"FROM scratch"}}); err == nil {
		t.Error("bad change accepted")
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "tmp")); len(ents) != 0 {
		t.Errorf("tmp left: %v", ents)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "layers")); len(ents) != 2 { // the directory and its record
		t.Errorf("layers: %v", ents)
	}
	if _, err := s.Get("bad"); err == nil {
		t.Error("failed import tagged")
	}
}

// TestSingleReference: a pulled image's tag and its digest are one name
// (rmi of that tag needs force while a container uses the image); another
// tag or another repository's digest is not.
func TestSingleReference(t *testing.T) {
	for _, c := range []struct {
		tags, digests []string
		want          bool
	}{
		{nil, nil, false},
		{[]string{"a:v1"}, nil, true},
		{nil, []string{"h:5000/a@sha256:1"}, true},
		{[]string{"h:5000/a:v1"}, []string{"h:5000/a@sha256:1"}, true},
		{nil, []string{"h:5000/a@sha256:1", "h:5000/a@sha256:2"}, true},
		{[]string{"h:5000/a:v1"}, []string{"h:5000/b@sha256:1"}, false},
		{[]string{"a:v1", "a:v2"}, nil, false},
		{nil, []string{"a@sha256:1", "b@sha256:1"}, false},
	} {
		if got := singleReference(c.tags, c.digests); got != c.want {
			t.Errorf("singleReference(%q, %q) = %v", c.tags, c.digests, got)
		}
	}
}

// TestSharedDigestOnOpen: a store written when two images could list one
// digest reference comes back with it on one image only.
func TestSharedDigestOnOpen(t *testing.T) {
	root := t.TempDir()
	s, err := Open(root, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	const d = "example.com/x@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	var ids []string
	for _, body := range []string{"one", "two"} {
		img, err := s.Import(mkTar(t, entry{name: "f", body: body, typ: tar.TypeReg}), ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		img.RepoDigests = []string{d}
		if err := s.writeImage(img); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, img.ID)
	}
	slices.Sort(ids)
	for range 3 {
		s, err = Open(root, Hooks{})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(d); err != nil || got.ID != ids[0] {
			t.Fatalf("Get(%s) = %v, %v; want %s", d, got, err, ids[0])
		}
		if got, _ := s.Get(ids[1]); len(got.RepoDigests) != 0 {
			t.Fatalf("the other image still lists %v", got.RepoDigests)
		}
	}
}

// TestExtractSize: a layer's size as dockerd's overlay2 counts it.
func TestExtractSize(t *testing.T) {
	st, err := ExtractWith(mkTar(t,
		entry{name: "d", typ: tar.TypeDir, mode: 0o755},
		entry{name: "d/a", body: "12345", typ: tar.TypeReg},
		entry{name: "d/l", link: "target/x", typ: tar.TypeSymlink},
		entry{name: "d/h", link: "d/a", typ: tar.TypeLink},
		entry{name: "d/x", body: "0123456789", typ: tar.TypeReg},
		entry{name: "d/x", body: "abc", typ: tar.TypeReg},
		entry{name: "d/.wh.gone", typ: tar.TypeReg},
	), t.TempDir(), ExtractOptions{Whiteouts: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != 5+8+3 {
		t.Errorf("size %d, want 16", st.Size)
	}
}
