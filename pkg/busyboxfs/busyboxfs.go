// Package busyboxfs builds a minimal root filesystem from the host's static
// busybox (Debian's busybox-static). Tests use it as a container bundle's
// rootfs, and `make run` imports it as the local busybox:latest image, so no
// test or first run ever needs a registry.
package busyboxfs

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binary is where Debian's busybox-static installs the static binary.
const Binary = "/bin/busybox"

var files = map[string]string{
	"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
	"etc/group":    "root:x:0:\nnogroup:x:65534:\n",
	"etc/hostname": "busybox\n",
}

var dirs = []string{"bin", "dev", "etc", "proc", "sys", "tmp", "root", "var", "run", "usr/bin", "usr/sbin", "sbin"}

// Applets lists the applet names the host busybox provides.
func Applets() ([]string, error) {
	if err := checkStatic(); err != nil {
		return nil, err
	}
	out, err := exec.Command(Binary, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("busybox --list: %w", err)
	}
	return strings.Fields(string(out)), nil
}

func checkStatic() error {
	if _, err := os.Stat(Binary); err != nil {
		return fmt.Errorf("%s not found (install Debian's busybox-static): %w", Binary, err)
	}
	return nil
}

// Build writes the root filesystem into dir (created if missing).
func Build(dir string) error {
	applets, err := Applets()
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o777|os.ModeSticky); err != nil {
		return err
	}
	data, err := os.ReadFile(Binary)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), data, 0o755); err != nil {
		return err
	}
	for _, a := range applets {
		if a == "busybox" {
			continue
		}
		p := filepath.Join(dir, "bin", a)
		if err := os.Symlink("busybox", p); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// WriteTar writes the same root filesystem as an uncompressed tar stream,
// the form `docker import` takes.
func WriteTar(w io.Writer) error {
	applets, err := Applets()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(Binary)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, d := range dirs {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(data))}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, bytes.NewReader(data)); err != nil {
		return err
	}
	for _, a := range applets {
		if a == "busybox" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777}); err != nil {
			return err
		}
	}
	for name, content := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content))}); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, content); err != nil {
			return err
		}
	}
	return tw.Close()
}
