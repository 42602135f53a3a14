// Command mkbusybox writes a busybox root filesystem tarball (from Debian's
// busybox-static) to stdout, for `docker import` of the local busybox image.
package main

import (
	"bufio"
	"fmt"
	"os"

	"berth/pkg/busyboxfs"
)

func main() {
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	if err := busyboxfs.WriteTar(w); err != nil {
		fmt.Fprintln(os.Stderr, "mkbusybox:", err)
		os.Exit(1)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "mkbusybox:", err)
		os.Exit(1)
	}
}
