package seccomp

import (
	"encoding/binary"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
)

var _ = func() int { tables(); return 0 }()

// run executes the compiled filter in x/net/bpf's VM. The VM loads words
// big-endian while the kernel loads them in native order, so each 32-bit
// word of seccomp_data is written big-endian here.
func run(t *testing.T, s *specs.LinuxSeccomp, arch uint32, nr uint32, args ...uint64) uint32 {
	t.Helper()
	raw, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("disassemble")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], nr)
	binary.BigEndian.PutUint32(data[4:], arch)
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

func TestActionsAndArch(t *testing.T) {
	e := uint(13)
	s := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: &e},
			{Names: []string{"reboot"}, Action: specs.ActKillProcess},
			{Names: []string{"getcwd"}, Action: specs.ActLog},
			{Names: []string{"ptrace"}, Action: specs.ActTrap},
			{Names: []string{"not_a_syscall"}, Action: specs.ActKill},
		},
	}
	cases := []struct {
		arch, nr, want uint32
	}{
		{auditArchX86_64, sysAMD64["mkdir"], retErrno | 13},
		{auditArchI386, sys386["mkdir"], retErrno | 13},
		{auditArchX86_64, sysAMD64["reboot"], retKillProcess},
		{auditArchX86_64, sysAMD64["getcwd"], retLog},
		{auditArchX86_64, sysAMD64["ptrace"], retTrap},
		{auditArchX86_64, sysAMD64["read"], retAllow},
		{auditArchX86_64, sysAMD64["mkdir"] | x32SyscallBit, retAllow}, // x32 not listed: default
		{0xc00000b7 /* aarch64 */, 1, retKillProcess},
	}
	for _, c := range cases {
		if got := run(t, s, c.arch, c.nr); got != c.want {
			t.Errorf("arch %#x nr %d: got %#x want %#x", c.arch, c.nr, got, c.want)
		}
	}
	// default errno
	en := uint(38)
	d := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: &en, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}}}
	if got := run(t, d, auditArchX86_64, sysAMD64["write"]); got != retErrno|38 {
		t.Errorf("default errno: %#x", got)
	}
	if got := run(t, d, auditArchX86_64, sysAMD64["read"]); got != retAllow {
		t.Errorf("allowed: %#x", got)
	}
}

func TestArgumentOperators(t *testing.T) {
	nr := sysAMD64["personality"]
	big := uint64(1) << 40
	cases := []struct {
		op        specs.LinuxSeccompOperator
		val, val2 uint64
		arg       uint64
		match     bool
	}{
		{specs.OpEqualTo, 5, 0, 5, true},
		{specs.OpEqualTo, 5, 0, 5 | big, false},
		{specs.OpNotEqual, 5, 0, 5, false},
		{specs.OpNotEqual, 5, 0, 6, true},
		{specs.OpNotEqual, 5, 0, 5 | big, true},
		{specs.OpGreaterThan, 5, 0, 6, true},
		{specs.OpGreaterThan, 5, 0, 5, false},
		{specs.OpGreaterThan, 5, 0, big, true},
		{specs.OpGreaterThan, big, 0, 7, false},
		{specs.OpGreaterEqual, 5, 0, 5, true},
		{specs.OpGreaterEqual, 5, 0, 4, false},
		{specs.OpLessThan, 5, 0, 4, true},
		{specs.OpLessThan, 5, 0, 5, false},
		{specs.OpLessThan, big, 0, 7, true},
		{specs.OpLessThan, 5, 0, big, false},
		{specs.OpLessEqual, 5, 0, 5, true},
		{specs.OpLessEqual, 5, 0, 6, false},
		{specs.OpMaskedEqual, 0xf0, 0x30, 0x3c, true},
		{specs.OpMaskedEqual, 0xf0, 0x30, 0x4c, false},
	}
	for _, c := range cases {
		s := &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"personality"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: 2, Value: c.val, ValueTwo: c.val2, Op: c.op}}}},
		}
		got := run(t, s, auditArchX86_64, nr, 0, 0, c.arg)
		if (got == retErrno|1) != c.match {
			t.Errorf("%s %#x vs arg %#x: got %#x, match want %v", c.op, c.val, c.arg, got, c.match)
		}
	}
	// two conditions are AND-ed; two rules OR-ed
	s := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"kill"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}, {Index: 1, Value: 9, Op: specs.OpEqualTo}}},
			{Names: []string{"kill"}, Action: specs.ActKill, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 15, Op: specs.OpEqualTo}}},
		},
	}
	k := sysAMD64["kill"]
	for _, c := range []struct {
		a0, a1 uint64
		want   uint32
	}{{1, 9, retErrno | 1}, {2, 9, retAllow}, {1, 8, retAllow}, {7, 15, retKillThread}} {
		if got := run(t, s, auditArchX86_64, k, c.a0, c.a1); got != c.want {
			t.Errorf("kill(%d,%d): %#x want %#x", c.a0, c.a1, got, c.want)
		}
	}
}

func TestPrepareRefuses(t *testing.T) {
	if _, err := Prepare(&specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NOPE"}); err == nil {
		t.Error("bad default action accepted")
	}
	if _, err := Prepare(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActNotify}}}); err == nil {
		t.Error("notify accepted")
	}
	if _, err := Prepare(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}}); err == nil {
		t.Error("arg index 6 accepted")
	}
}
