package specconv

import (
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultSeccompProfile is the filter every container gets unless it is
// privileged or runs with --security-opt seccomp=unconfined|FILE: the same
// decisions as Docker's default profile (moby's profiles/seccomp/
// default.json, whence the syscall name lists come), restated here as Go
// data. Everything not listed fails with EPERM; the syscalls that reach
// beyond the container (mount, namespaces, kernel modules, keyrings, kexec,
// clock setting, tracing…) are allowed only with the capability that
// would let root do it anyway, and clone only without namespace flags unless
// the container holds CAP_SYS_ADMIN. Only the rules that matter on x86 and
// arm64 hosts are kept; names unknown to an architecture are skipped by
// the runtime, as libseccomp does.
func DefaultSeccompProfile() *SeccompProfile {
	eperm, enosys := uint(unix.EPERM), uint(unix.ENOSYS)
	allow := func(names string, inc *SeccompFilter) SeccompRule {
		return SeccompRule{Names: strings.Fields(names), Action: specs.ActAllow, Includes: inc}
	}
	withCap := func(c string) *SeccompFilter { return &SeccompFilter{Caps: []string{c}} }
	arg := func(i uint, op specs.LinuxSeccompOperator, v, v2 uint64) []specs.LinuxSeccompArg {
		return []specs.LinuxSeccompArg{{Index: i, Value: v, ValueTwo: v2, Op: op}}
	}
	const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
		unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

	rules := []SeccompRule{
		allow(defaultAllowed, nil),
		allow("process_vm_readv process_vm_writev ptrace", &SeccompFilter{MinKernel: "4.8"}),
		{Names: []string{"socket"}, Action: specs.ActAllow, Args: arg(0, specs.OpNotEqual, unix.AF_VSOCK, 0)},
	}
	// personality: only the harmless personas (linux, linux32, the
	// query 0xffffffff), never the ones that weaken ASLR
	for _, p := range []uint64{0x0, 0x0008, 0x20000, 0x20008, 0xffffffff} {
		rules = append(rules, SeccompRule{Names: []string{"personality"}, Action: specs.ActAllow, Args: arg(0, specs.OpEqualTo, p, 0)})
	}
	rules = append(rules,
		allow("arch_prctl", &SeccompFilter{Arches: []string{"amd64", "x32"}}),
		allow("modify_ldt", &SeccompFilter{Arches: []string{"amd64", "x32", "x86"}}),
		allow("arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls", &SeccompFilter{Arches: []string{"arm", "arm64"}}),
		allow("open_by_handle_at", withCap("CAP_DAC_READ_SEARCH")),
		allow("bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr move_mount "+
			"open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare", withCap("CAP_SYS_ADMIN")),
		// without CAP_SYS_ADMIN: clone without namespace flags; clone3 (whose
		// flags sit in memory a filter cannot read) answers ENOSYS so that
		// libcs fall back to clone
		SeccompRule{Names: []string{"clone"}, Action: specs.ActAllow, Args: arg(0, specs.OpMaskedEqual, nsFlags, 0),
			Excludes: &SeccompFilter{Caps: []string{"CAP_SYS_ADMIN"}, Arches: []string{"s390", "s390x"}}},
		SeccompRule{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys, Excludes: withCap("CAP_SYS_ADMIN")},
		allow("reboot", withCap("CAP_SYS_BOOT")),
		allow("chroot", withCap("CAP_SYS_CHROOT")),
		allow("delete_module init_module finit_module", withCap("CAP_SYS_MODULE")),
		allow("acct", withCap("CAP_SYS_PACCT")),
		allow("kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace", withCap("CAP_SYS_PTRACE")),
		allow("iopl ioperm", withCap("CAP_SYS_RAWIO")),
		allow("settimeofday stime clock_settime clock_settime64", withCap("CAP_SYS_TIME")),
		allow("vhangup", withCap("CAP_SYS_TTY_CONFIG")),
		allow("get_mempolicy mbind set_mempolicy set_mempolicy_home_node", withCap("CAP_SYS_NICE")),
		allow("syslog", withCap("CAP_SYSLOG")),
		allow("bpf", withCap("CAP_BPF")),
		allow("perf_event_open", withCap("CAP_PERFMON")),
	)
	return &SeccompProfile{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &eperm,
		ArchMap: []SeccompArchMap{
			{Arch: specs.ArchX86_64, SubArches: []specs.Arch{specs.ArchX86, specs.ArchX32}},
			{Arch: specs.ArchAARCH64, SubArches: []specs.Arch{specs.ArchARM}},
		},
		Syscalls: rules,
	}
}

// defaultAllowed are the syscalls the default profile allows to everyone.
// Absent, so failing with EPERM: add_key, keyctl, request_key (the kernel
// keyring is not namespaced), kexec_load, kexec_file_load, nfsservctl,
// pivot_root, swapon, swapoff, userfaultfd, uselib, ustat, sysfs, _sysctl,
// the mount/namespace/module/clock calls above without their capability.
const defaultAllowed = `
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat
dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2
epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit exit_group
faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat
fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64
futex futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64
getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer
getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32
getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr
inotify_add_watch inotify_init inotify_init1 inotify_rm_watch
io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set
io_setup io_submit io_uring_enter io_uring_register io_uring_setup ipc kill
landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr
link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64
madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat
mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open
mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap
msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2
read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq
rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
sched_getaffinity sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min
sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity
sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select
semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto
setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer
setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32
setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area
set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack
signalfd signalfd4 sigprocmask sigreturn socketcall socketpair splice stat stat64
statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time
timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
`
