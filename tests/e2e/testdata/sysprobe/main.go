// sysprobe tries syscalls that a container's seccomp filter decides on
// while its capabilities would allow them, and prints name=result for
// each ("ok", or the errno's name): the seccomp tests compare the default
// profile, unconfined and CAP_SYS_ADMIN containers with it. Static, so it
// runs in any image (bind-mounted in).
package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func result(err error) string {
	if err == nil {
		return "ok"
	}
	if e, ok := err.(syscall.Errno); ok {
		return unix.ErrnoName(e)
	}
	return err.Error()
}

func errno(_, _ uintptr, e syscall.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

var probes = map[string]func() error{
	// the session keyring: the kernel's keyrings are not namespaced
	"keyctl": func() error {
		return errno(unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, uintptr(0xfffffffd), 0))
	},
	"add_key": func() error {
		t, d, v := []byte("user\x00"), []byte("probe\x00"), []byte("x")
		return errno(unix.Syscall6(unix.SYS_ADD_KEY, uintptr(unsafe.Pointer(&t[0])), uintptr(unsafe.Pointer(&d[0])),
			uintptr(unsafe.Pointer(&v[0])), 1, uintptr(0xfffffffd), 0))
	},
	// a user namespace needs no capability, only the filter's consent
	// (clone, since a threaded process may not unshare one)
	"clone_newuser": func() error {
		pid, err := syscall.ForkExec("/proc/self/exe", []string{"sysprobe", "getpid"}, &syscall.ProcAttr{
			Sys: &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}})
		if err == nil {
			var ws syscall.WaitStatus
			_, err = syscall.Wait4(pid, &ws, 0, nil)
		}
		return err
	},
	// size 0 is invalid: EINVAL when the call gets through, ENOSYS from the filter
	"clone3": func() error { return errno(unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)) },
	// ADDR_NO_RANDOMIZE weakens ASLR; 0xffffffff only queries
	"personality_norandom": func() error {
		cur, _, _ := unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
		err := errno(unix.RawSyscall(unix.SYS_PERSONALITY, 0x0040000, 0, 0))
		unix.RawSyscall(unix.SYS_PERSONALITY, cur, 0, 0)
		return err
	},
	"userfaultfd": func() error {
		fd, _, e := unix.RawSyscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
		if e == 0 {
			unix.Close(int(fd))
			return nil
		}
		return e
	},
	"socket_vsock": func() error {
		fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	},
	"getpid": func() error { unix.Getpid(); return nil },
}

func main() {
	for _, name := range os.Args[1:] {
		p, ok := probes[name]
		if !ok {
			fmt.Fprintln(os.Stderr, "unknown probe", name)
			os.Exit(2)
		}
		fmt.Printf("%s=%s\n", name, result(p()))
	}
}
