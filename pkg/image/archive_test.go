package image

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
)

func TestSaveLoad(t *testing.T) {
	s, err := Open(t.TempDir(), Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Import(mkTar(t, entry{name: "hello", typ: tar.TypeReg, body: "hi"}), ImportOptions{Repo: "x/y", Tag: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := s.Save([]string{"x/y:v1"}, &b); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(t.TempDir(), Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	lines, err := s2.Load(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(lines, ",") != "Loaded image: x/y:v1" {
		t.Fatalf("lines %v", lines)
	}
	got, err := s2.Get("x/y:v1")
	if err != nil || got.ID != img.ID {
		t.Fatalf("loaded %v %v", got, err)
	}
}
