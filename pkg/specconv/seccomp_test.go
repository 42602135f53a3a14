package specconv

import (
	"encoding/binary"
	goruntime "runtime"
	"slices"
	"testing"

	"github.com/docker/docker/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"berth/services/runtime/seccomp"
)

// verdict runs the compiled filter on one x86_64 syscall in x/net/bpf's VM
// (which loads big-endian words; the data is written so).
func verdict(t *testing.T, prog []bpf.Instruction, nr uint32, args ...uint64) uint32 {
	t.Helper()
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], nr)
	binary.BigEndian.PutUint32(data[4:], 0xc000003e) // AUDIT_ARCH_X86_64
	for i, a := range args {
		binary.BigEndian.PutUint32(data[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(data[20+8*i:], uint32(a>>32))
	}
	out, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(out)
}

func compileFor(t *testing.T, hc *container.HostConfig) ([]bpf.Instruction, *specs.LinuxSeccomp) {
	t.Helper()
	s, err := Spec(Options{ID: id, Config: &container.Config{Cmd: []string{"sh"}}, HostConfig: hc})
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Seccomp == nil {
		return nil, nil
	}
	raw, err := seccomp.Compile(s.Linux.Seccomp)
	if err != nil {
		t.Fatal(err)
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("disassemble")
	}
	return ins, s.Linux.Seccomp
}

func TestDefaultSeccompProfile(t *testing.T) {
	if goruntime.GOARCH != "amd64" {
		t.Skip("syscall numbers below are x86_64's")
	}
	const (
		allow  = 0x7fff0000
		eperm  = 0x00050000 | uint32(unix.EPERM)
		enosys = 0x00050000 | uint32(unix.ENOSYS)
	)
	prog, sc := compileFor(t, &container.HostConfig{})
	if prog == nil {
		t.Fatal("a default container has no seccomp filter")
	}
	if len(prog) > 4096 {
		t.Fatalf("filter of %d instructions: the kernel takes 4096", len(prog))
	}
	if !slices.Equal(sc.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}) {
		t.Errorf("architectures %v", sc.Architectures)
	}
	for _, c := range []struct {
		name string
		nr   uint32
		args []uint64
		want uint32
	}{
		{"read", unix.SYS_READ, nil, allow},
		{"openat", unix.SYS_OPENAT, nil, allow},
		{"arch_prctl", unix.SYS_ARCH_PRCTL, nil, allow},
		{"mount", unix.SYS_MOUNT, nil, eperm},
		{"umount2", unix.SYS_UMOUNT2, nil, eperm},
		{"unshare", unix.SYS_UNSHARE, []uint64{unix.CLONE_NEWUSER}, eperm},
		{"setns", unix.SYS_SETNS, nil, eperm},
		{"keyctl", unix.SYS_KEYCTL, nil, eperm},
		{"add_key", unix.SYS_ADD_KEY, nil, eperm},
		{"request_key", unix.SYS_REQUEST_KEY, nil, eperm},
		{"kexec_load", unix.SYS_KEXEC_LOAD, nil, eperm},
		{"init_module", unix.SYS_INIT_MODULE, nil, eperm},
		{"reboot", unix.SYS_REBOOT, nil, eperm},
		{"clock_settime", unix.SYS_CLOCK_SETTIME, nil, eperm},
		{"ptrace", unix.SYS_PTRACE, nil, allow}, // kernel >= 4.8
		{"chroot (CAP_SYS_CHROOT is a default)", unix.SYS_CHROOT, nil, allow},
		{"clone of a thread", unix.SYS_CLONE, []uint64{unix.CLONE_VM | unix.CLONE_THREAD}, allow},
		{"clone of a user namespace", unix.SYS_CLONE, []uint64{unix.CLONE_NEWUSER}, eperm},
		{"clone3", unix.SYS_CLONE3, nil, enosys},
		{"socket AF_INET", unix.SYS_SOCKET, []uint64{unix.AF_INET}, allow},
		{"socket AF_VSOCK", unix.SYS_SOCKET, []uint64{unix.AF_VSOCK}, eperm},
		{"personality(PER_LINUX)", unix.SYS_PERSONALITY, []uint64{0}, allow},
		{"personality(ADDR_NO_RANDOMIZE)", unix.SYS_PERSONALITY, []uint64{0x0040000}, eperm},
	} {
		if got := verdict(t, prog, c.nr, c.args...); got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, got, c.want)
		}
	}

	// CAP_SYS_ADMIN opens the namespace and mount calls, as in Docker
	prog, _ = compileFor(t, &container.HostConfig{CapAdd: []string{"SYS_ADMIN"}})
	for _, nr := range []uint32{unix.SYS_MOUNT, unix.SYS_UNSHARE, unix.SYS_SETNS, unix.SYS_CLONE3} {
		if got := verdict(t, prog, nr, unix.CLONE_NEWUSER); got != allow {
			t.Errorf("with CAP_SYS_ADMIN, syscall %d: %#x", nr, got)
		}
	}
	if got := verdict(t, prog, unix.SYS_KEYCTL); got != eperm {
		t.Errorf("keyctl with CAP_SYS_ADMIN: %#x", got)
	}
	// without CAP_SYS_CHROOT, no chroot
	prog, _ = compileFor(t, &container.HostConfig{CapDrop: []string{"SYS_CHROOT"}})
	if got := verdict(t, prog, unix.SYS_CHROOT); got != eperm {
		t.Errorf("chroot without the capability: %#x", got)
	}
	// privileged and unconfined: no filter
	for _, hc := range []*container.HostConfig{{Privileged: true}, {SecurityOpt: []string{"seccomp=unconfined"}}} {
		if p, _ := compileFor(t, hc); p != nil {
			t.Errorf("%+v has a filter", hc)
		}
	}
}

func TestCustomSeccompProfile(t *testing.T) {
	prof := `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
		{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
		{"names":["chmod"],"action":"SCMP_ACT_ERRNO","includes":{"caps":["CAP_SYS_ADMIN"]}},
		{"name":"chown","action":"SCMP_ACT_ERRNO","excludes":{"caps":["CAP_CHOWN"]}}]}`
	s, err := Spec(Options{ID: id, Config: &container.Config{Cmd: []string{"sh"}}, HostConfig: &container.HostConfig{SecurityOpt: []string{"seccomp=" + prof}}})
	if err != nil {
		t.Fatal(err)
	}
	sc := s.Linux.Seccomp
	if sc == nil || sc.DefaultAction != specs.ActAllow || len(sc.Syscalls) != 1 || sc.Syscalls[0].Names[1] != "mkdirat" || *sc.Syscalls[0].ErrnoRet != 13 {
		t.Fatalf("custom profile resolved to %+v", sc)
	}
	for _, bad := range []string{"seccomp={nope", `seccomp={"syscalls":[]}`, "seccomp", "bogus=1", "no-new-privileges=maybe"} {
		if _, err := Spec(Options{ID: id, Config: &container.Config{Cmd: []string{"sh"}}, HostConfig: &container.HostConfig{SecurityOpt: []string{bad}}}); err == nil {
			t.Errorf("security option %q accepted", bad)
		}
	}
}

func TestCapabilitiesDockerRules(t *testing.T) {
	caps := func(hc *container.HostConfig) []string {
		c, err := capabilities(hc)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if got := caps(&container.HostConfig{CapDrop: []string{"ALL"}, CapAdd: []string{"net_admin", "CAP_KILL"}}); !slices.Equal(got, []string{"CAP_KILL", "CAP_NET_ADMIN"}) {
		t.Errorf("drop ALL add two: %v", got)
	}
	all := caps(&container.HostConfig{CapAdd: []string{"ALL"}, CapDrop: []string{"MKNOD"}})
	if slices.Contains(all, "CAP_MKNOD") || !slices.Contains(all, "CAP_SYS_ADMIN") {
		t.Errorf("add ALL drop MKNOD: %v", all)
	}
	for _, hc := range []*container.HostConfig{{CapAdd: []string{"FOO"}}, {CapDrop: []string{"BAR"}}, {Privileged: true, CapAdd: []string{"FOO"}}} {
		if err := ValidateCapabilities(hc); err == nil {
			t.Errorf("%+v accepted", hc)
		}
	}
	if err := ValidateCapabilities(&container.HostConfig{CapAdd: []string{"FOO"}}); err == nil || err.Error() != `invalid CapAdd: unknown capability: "CAP_FOO"` {
		t.Errorf("message %v", err)
	}
}
