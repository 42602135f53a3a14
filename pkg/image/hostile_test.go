package image

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hostileCase is a crafted layer: after extracting it (with whiteouts on,
// as for a pulled layer), nothing outside the layer may have changed.
type hostileCase struct {
	ents   func(victim string) []entry
	refuse bool // the archive must be refused (else it may be accepted, harmlessly)
}

func TestHostileLayers(t *testing.T) {
	cases := map[string]hostileCase{
		"dotdot":   {refuse: true, ents: func(string) []entry { return []entry{{name: "../../victim/evil", typ: tar.TypeReg, body: "x"}} }},
		"absolute": {refuse: true, ents: func(v string) []entry { return []entry{{name: v + "/evil", typ: tar.TypeReg, body: "x"}} }},
		"symlink-parent": {refuse: true, ents: func(v string) []entry {
			return []entry{{name: "d", typ: tar.TypeSymlink, link: v}, {name: "d/evil", typ: tar.TypeReg, body: "x"}}
		}},
		"relative-parent": {refuse: true, ents: func(string) []entry {
			return []entry{{name: "d", typ: tar.TypeSymlink, link: "../../victim"}, {name: "d/evil", typ: tar.TypeReg, body: "x"}}
		}},
		"nested-symlink-parent": {refuse: true, ents: func(v string) []entry {
			return []entry{{name: "a/", typ: tar.TypeDir}, {name: "a/d", typ: tar.TypeSymlink, link: v}, {name: "a/d/sub/evil", typ: tar.TypeReg, body: "x"}}
		}},
		"hardlink-out":    {refuse: true, ents: func(v string) []entry { return []entry{{name: "pw", typ: tar.TypeLink, link: v + "/file"}} }},
		"hardlink-dotdot": {refuse: true, ents: func(string) []entry { return []entry{{name: "pw", typ: tar.TypeLink, link: "../../victim/file"}} }},
		"hardlink-via-symlink": {refuse: true, ents: func(v string) []entry {
			return []entry{{name: "d", typ: tar.TypeSymlink, link: v}, {name: "pw", typ: tar.TypeLink, link: "d/file"}}
		}},
		"whiteout-via-symlink": {refuse: true, ents: func(v string) []entry {
			return []entry{{name: "d", typ: tar.TypeSymlink, link: v}, {name: "d/.wh.file", typ: tar.TypeReg}}
		}},
		"opaque-via-symlink": {refuse: true, ents: func(v string) []entry {
			return []entry{{name: "d", typ: tar.TypeSymlink, link: v}, {name: "d/.wh..wh..opq", typ: tar.TypeReg}}
		}},
		"whiteout-dotdot": {refuse: true, ents: func(string) []entry { return []entry{{name: "a/.wh..", typ: tar.TypeReg}} }},
		"overwrite-symlink": {ents: func(v string) []entry {
			// a file over a symlink replaces the link, never writes through it
			return []entry{{name: "f", typ: tar.TypeSymlink, link: v + "/file"}, {name: "f", typ: tar.TypeReg, body: "pwned"}}
		}},
		"hardlink-to-symlink-then-write": {ents: func(v string) []entry {
			return []entry{{name: "l", typ: tar.TypeSymlink, link: v + "/file"}, {name: "h", typ: tar.TypeLink, link: "l"}, {name: "h", typ: tar.TypeReg, body: "pwned"}}
		}},
		"dir-over-symlink": {ents: func(v string) []entry {
			return []entry{{name: "d", typ: tar.TypeSymlink, link: v}, {name: "d/", typ: tar.TypeDir, mode: 0o777}}
		}},
		"chmod-symlink": {ents: func(v string) []entry {
			// metadata of a symlink entry is never applied to its target
			return []entry{{name: "s", typ: tar.TypeSymlink, link: v + "/file", mode: 0o777}}
		}},
		"device-node": {ents: func(string) []entry {
			return []entry{{name: "dev/", typ: tar.TypeDir}, {name: "dev/null", typ: tar.TypeChar, mode: 0o666}}
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			victim := filepath.Join(base, "victim")
			os.Mkdir(victim, 0o700)
			os.WriteFile(filepath.Join(victim, "file"), []byte("safe"), 0o600)
			layer := filepath.Join(base, "a", "layer")
			os.MkdirAll(layer, 0o755)
			before := snapshot(t, base, layer)
			_, err := ExtractWith(mkTar(t, c.ents(victim)...), layer, ExtractOptions{Whiteouts: true})
			if c.refuse && (err == nil || !strings.Contains(err.Error(), "hostile")) {
				t.Errorf("want a hostile-entry error, got %v", err)
			}
			if !c.refuse && err != nil {
				t.Errorf("harmless archive refused: %v", err)
			}
			if after := snapshot(t, base, layer); after != before {
				t.Errorf("outside the layer changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// snapshot describes every file under base except the layer: names, modes,
// contents, xattrs.
func snapshot(t *testing.T, base, layer string) string {
	var b bytes.Buffer
	filepath.Walk(base, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		if p == layer {
			return filepath.SkipDir
		}
		b.WriteString(p + " " + fi.Mode().String())
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			b.WriteString(" " + string(data))
		}
		buf := make([]byte, 1024)
		if n, _ := unix.Llistxattr(p, buf); n > 0 {
			b.WriteString(" xattrs:" + string(buf[:n]))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

// Whiteouts and opaque directories become overlayfs ones; overlayfs'
// own xattrs are never taken from an archive.
func TestExtractWhiteouts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: whiteouts are device nodes, opaque marks trusted xattrs")
	}
	dir := t.TempDir()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "a/.wh.gone", Typeflag: tar.TypeReg},
		{Name: "o/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "o/.wh..wh..opq", Typeflag: tar.TypeReg},
		{Name: "r", Typeflag: tar.TypeReg, Mode: 0o644, PAXRecords: map[string]string{"SCHILY.xattr.trusted.overlay.redirect": "/etc", "SCHILY.xattr.user.keep": "1"}},
	} {
		tw.WriteHeader(h)
	}
	tw.Close()
	if _, err := ExtractWith(&b, dir, ExtractOptions{Whiteouts: true}); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "a/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout: %v %o %d", err, st.Mode, st.Rdev)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(dir, "o"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("opaque: %v %q", err, buf[:n])
	}
	if _, err := unix.Lgetxattr(filepath.Join(dir, "r"), "trusted.overlay.redirect", buf); err == nil {
		t.Error("an overlayfs xattr from the archive was kept")
	}
	if n, err := unix.Lgetxattr(filepath.Join(dir, "r"), "user.keep", buf); err != nil || string(buf[:n]) != "1" {
		t.Errorf("user xattr: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a", ".wh.gone")); !os.IsNotExist(err) {
		t.Error("the .wh. file itself was written")
	}
}
