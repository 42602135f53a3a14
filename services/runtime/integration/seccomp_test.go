package integration

import (
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSeccomp(t *testing.T) {
	e := newEnv(t)
	eacces := uint(13)
	script := `mkdir /tmp/d 2>&1; echo mkdir=$?; sleep 100 & kill -9 $! 2>&1; echo kill9=$?; kill -15 $! ; echo kill15=$?; wait; hostname foo; echo hostname=$?`
	b := e.bundle([]string{"sh", "-c", script}, func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eacces},
				// kill(pid, 9) -> EPERM, other signals allowed
				{Names: []string{"kill"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 9, Op: specs.OpEqualTo}}},
				{Names: []string{"sethostname"}, Action: specs.ActKillProcess},
				{Names: []string{"getcwd"}, Action: specs.ActLog},
				{Names: []string{"no_such_syscall"}, Action: specs.ActErrno},
			},
		}
	})
	r := e.run(b)
	for _, want := range []string{"Permission denied", "mkdir=1", "kill9=1", "kill15=0", "hostname=159"} {
		contains(t, r.stdout, want)
	}
	contains(t, r.stderr, "Bad system call")
}

// TestSeccompExec: an exec'd process gets the container's filter too: the
// one create compiled and kept, or (a container of an older runtime, which
// kept none) compiled again from its spec.
func TestSeccompExec(t *testing.T) {
	e := newEnv(t)
	eacces := uint(13)
	b := e.bundle([]string{"sleep", "100"}, func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eacces}},
		}
	})
	e.create("sx", b)
	e.ok("start", "sx")
	defer e.rt("delete", "--force", "sx")
	kept := filepath.Join(e.root, "sx", "seccomp.bpf")
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("create kept no filter: %v", err)
	}
	for _, old := range []bool{false, true} {
		if old {
			os.Remove(kept)
		}
		r := e.ok("exec", "sx", "sh", "-c", "grep Seccomp: /proc/self/status; mkdir /tmp/d 2>&1; echo mkdir=$?")
		for _, want := range []string{"Seccomp:\t2", "Permission denied", "mkdir=1"} {
			contains(t, r.stdout, want)
		}
	}
}

func TestSeccompDefaultErrnoAndNoNewPrivsOff(t *testing.T) {
	e := newEnv(t)
	// Allow-list profile: everything not listed fails with ENOSYS-like errno.
	enosys := uint(38)
	allowed := []string{"execve", "brk", "arch_prctl", "set_tid_address", "write", "exit_group", "exit", "rt_sigaction",
		"rt_sigprocmask", "getpid", "getppid", "getuid", "geteuid", "ioctl", "fcntl", "close", "dup2", "mmap", "munmap",
		"read", "newfstatat", "fstat", "stat", "lstat", "getcwd", "prctl", "capget", "capset", "setresuid", "setresgid", "setgroups",
		"chdir", "rt_sigreturn", "wait4", "clone", "clone3", "vfork", "fork", "openat", "open", "uname", "getpgrp", "setpgid",
		"prlimit64", "pipe", "pipe2", "lseek", "sigaltstack", "futex", "sched_yield", "nanosleep", "madvise", "mprotect",
		"set_robust_list", "rseq", "gettid", "tgkill", "close_range", "getrandom", "getdents64", "getgid", "getegid", "umask", "dup3", "faccessat2", "access", "execveat"}
	b := e.bundle([]string{"sh", "-c", "echo ok; mkdir /tmp/x; echo rc=$?"}, func(s *specs.Spec) {
		s.Process.NoNewPrivileges = false
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction:   specs.ActErrno,
			DefaultErrnoRet: &enosys,
			Syscalls:        []specs.LinuxSyscall{{Names: allowed, Action: specs.ActAllow}},
		}
	})
	r := e.run(b)
	contains(t, r.stdout, "ok")
	contains(t, r.stdout, "rc=1")
	contains(t, r.stderr, "Function not implemented")
}
