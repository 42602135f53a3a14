package containerfs

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"berth/pkg/errdefs"
)

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: whiteouts, chown, mount namespaces")
	}
}

func write(t *testing.T, p, data string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestChanges(t *testing.T) {
	needRoot(t)
	base, top, upper := t.TempDir(), t.TempDir(), t.TempDir()
	write(t, base+"/etc/passwd", "root")
	write(t, base+"/etc/group", "root")
	write(t, base+"/old/a", "a")
	write(t, base+"/gone/x", "x")
	write(t, top+"/etc/extra", "e")
	unix.Mknod(top+"/gone", unix.S_IFCHR, 0) // the upper image layer deleted /gone
	// the container's upper layer
	write(t, upper+"/etc/passwd", "changed")
	unix.Mknod(upper+"/etc/group", unix.S_IFCHR, 0)
	write(t, upper+"/gone/x", "new") // /gone was deleted below: added again
	os.MkdirAll(upper+"/old", 0o755)
	unix.Setxattr(upper+"/old", "trusted.overlay.opaque", []byte("y"), 0)
	write(t, upper+"/old/b", "b")
	write(t, upper+"/etc/hosts", "") // a mount point of the runtime
	got, err := Changes(upper, []string{base, top})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, c := range got {
		lines = append(lines, c.Kind.String()+" "+c.Path)
	}
	want := "C /etc,D /etc/group,C /etc/passwd,A /gone,A /gone/x,D /old,A /old/b"
	if strings.Join(lines, ",") != want {
		t.Fatalf("changes\n got %s\nwant %s", strings.Join(lines, ","), want)
	}
}

func mkTar(t *testing.T, hs ...*tar.Header) io.Reader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(h.Linkname))
		}
		body := h.Linkname
		if h.Typeflag == tar.TypeReg {
			h.Linkname = ""
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		tw.WriteHeader(h)
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(body))
		}
	}
	tw.Close()
	return &buf
}

func TestExtract(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	os.MkdirAll(dir+"/d", 0o755)
	write(t, dir+"/f", "old")
	err := Extract(mkTar(t,
		&tar.Header{Name: "f", Typeflag: tar.TypeReg, Linkname: "new", Uid: 12, Gid: 34},
		&tar.Header{Name: "sub/deep/g", Typeflag: tar.TypeReg, Linkname: "g", Mode: 0o4755},
		&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
		&tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "f"},
	), dir, ExtractOptions{NoOverwriteDirNonDir: true})
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Stat(dir+"/f", &st)
	if b, _ := os.ReadFile(dir + "/f"); string(b) != "new" || st.Uid != 12 || st.Gid != 34 || st.Nlink != 2 {
		t.Fatalf("f: %q uid %d gid %d links %d", b, st.Uid, st.Gid, st.Nlink)
	}
	if fi, _ := os.Stat(dir + "/sub/deep/g"); fi.Mode() != 0o755|os.ModeSetuid {
		t.Fatalf("g mode %v", fi.Mode())
	}
	if l, _ := os.Readlink(dir + "/l"); l != "/etc/passwd" {
		t.Fatalf("symlink %q", l)
	}
	for _, c := range []struct {
		h   *tar.Header
		msg string
	}{
		{&tar.Header{Name: "d", Typeflag: tar.TypeReg, Linkname: "x"}, "cannot overwrite directory"},
		{&tar.Header{Name: "f/", Typeflag: tar.TypeDir}, "cannot overwrite non-directory"},
		{&tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../../../etc"}, "invalid symlink"},
		{&tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}, ""},
	} {
		err := Extract(mkTar(t, c.h), dir, ExtractOptions{NoOverwriteDirNonDir: true})
		if c.msg == "" {
			// the link target is kept inside the destination: there is no such file there
			if err == nil {
				t.Errorf("%s: a hard link out of the destination was made", c.h.Name)
			}
			continue
		}
		if !errdefs.Is(err, errdefs.InvalidParameter) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v", c.h.Name, err)
		}
	}
	if err := Extract(strings.NewReader(strings.Repeat("junk", 300)), dir, ExtractOptions{}); !errdefs.Is(err, errdefs.InvalidParameter) {
		t.Errorf("junk: %v", err)
	}
}

func TestCopyUp(t *testing.T) {
	needRoot(t)
	root, vol := t.TempDir(), t.TempDir()
	write(t, root+"/data/a/file", "content")
	os.Symlink("a/file", root+"/data/rel")
	os.Link(root+"/data/a/file", root+"/data/hard")
	unix.Chmod(root+"/data", 0o1770)
	os.Chown(root+"/data", 7, 8)
	os.Symlink("/data", root+"/viasymlink")
	if err := CopyUp(root, "/viasymlink", vol); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(vol + "/a/file"); string(b) != "content" {
		t.Fatalf("file: %q", b)
	}
	if l, _ := os.Readlink(vol + "/rel"); l != "a/file" {
		t.Fatalf("symlink: %q", l)
	}
	var a, h, v unix.Stat_t
	unix.Stat(vol+"/a/file", &a)
	unix.Stat(vol+"/hard", &h)
	unix.Stat(vol, &v)
	if a.Ino != h.Ino {
		t.Fatal("the hard link became a copy")
	}
	if v.Mode&0o7777 != 0o1770 || v.Uid != 7 || v.Gid != 8 {
		t.Fatalf("the volume's root: mode %o uid %d gid %d", v.Mode&0o7777, v.Uid, v.Gid)
	}
	// a symlink out of the root resolves inside it: nothing to copy
	os.Symlink("/etc", root+"/out")
	vol2 := t.TempDir()
	if err := CopyUp(root, "/out", vol2); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(vol2); len(ents) != 0 {
		t.Fatalf("copied %d entries from the host's /etc", len(ents))
	}
}

func TestViewStaysInsideTheRoot(t *testing.T) {
	needRoot(t)
	root, data := t.TempDir(), t.TempDir()
	write(t, root+"/etc/hostname", "inside")
	os.Symlink("/", root+"/up")
	os.Symlink("../../../../..", root+"/rel")
	write(t, data+"/v", "volume")
	v, err := Open(Config{Root: root, Binds: []Bind{{Source: data, Destination: "/rel/mnt", ReadOnly: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var buf bytes.Buffer
	if err := v.Do(func() error { return Archive(&buf, "/up/etc/hostname") }); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	h, err := tr.Next()
	b, _ := io.ReadAll(tr)
	if err != nil || h.Name != "hostname" || string(b) != "inside" {
		t.Fatalf("archive through a symlink to /: %+v %q %v", h, b, err)
	}
	// the bind's destination, through a symlink out of the root, is inside it
	var st string
	err = v.Do(func() error {
		s, _, err := Stat("/mnt/v")
		if err == nil {
			st = s.Name
		}
		return err
	})
	if err != nil || st != "v" {
		t.Fatalf("stat in the bind: %q %v", st, err)
	}
	if err := v.Do(func() error { return os.WriteFile("/mnt/w", nil, 0o644) }); err == nil {
		t.Fatal("wrote into a read-only bind")
	}
	// the host sees none of the view's mounts
	if m, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(m, []byte(root)) {
		t.Fatal("the view's mounts are visible outside it")
	}
}
