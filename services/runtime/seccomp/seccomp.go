// Package seccomp compiles the OCI seccomp profile to classic BPF in pure
// Go (golang.org/x/net/bpf) and loads it: no libseccomp, no cgo. The filter
// checks the architecture, then tries each rule in order (rules for the
// same syscall are OR-ed, the argument conditions of one rule AND-ed) and
// falls back to the default action.
package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000

	auditArchX86_64 = 0xc000003e
	auditArchI386   = 0x40000003
	x32SyscallBit   = 0x40000000

	offNr   = 0
	offArch = 4
	offArgs = 16
)

type arch struct {
	audit uint32
	table map[string]uint32
	x32   bool
}

// Action converts an OCI action to a seccomp return value.
func Action(a specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	errno := uint32(unix.EPERM)
	if errnoRet != nil {
		errno = uint32(*errnoRet)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return retKillThread, nil
	case specs.ActKillProcess:
		return retKillProcess, nil
	case specs.ActTrap:
		return retTrap, nil
	case specs.ActErrno:
		return retErrno | (errno & 0xffff), nil
	case specs.ActTrace:
		return retTrace | (errno & 0xffff), nil
	case specs.ActAllow:
		return retAllow, nil
	case specs.ActLog:
		return retLog, nil
	}
	return 0, fmt.Errorf("seccomp: unsupported action %q", a)
}

// program is an instruction list with symbolic jump targets.
type program struct {
	ins    []bpf.Instruction
	fixups map[int]string // index of a Jump -> label
	labels map[string]int
	n      int
}

func (p *program) emit(i bpf.Instruction) { p.ins = append(p.ins, i) }

func (p *program) jumpTo(label string) {
	p.fixups[len(p.ins)] = label
	p.ins = append(p.ins, bpf.Jump{})
}

func (p *program) label(l string) { p.labels[l] = len(p.ins) }

func (p *program) newLabel() string { p.n++; return fmt.Sprintf("L%d", p.n) }

// unless emits "if !cond goto label".
func (p *program) unless(cond bpf.JumpTest, val uint32, label string) {
	p.emit(bpf.JumpIf{Cond: cond, Val: val, SkipTrue: 1})
	p.jumpTo(label)
}

func (p *program) ret(v uint32) { p.emit(bpf.RetConstant{Val: v}) }

// Compile builds the filter.
func Compile(s *specs.LinuxSeccomp) ([]bpf.RawInstruction, error) {
	tables()
	def, err := Action(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	var arches []arch
	hasX32 := false
	for _, a := range s.Architectures {
		if a == specs.ArchX32 {
			hasX32 = true
		}
	}
	addArch := func(a arch) {
		for _, b := range arches {
			if b.audit == a.audit {
				return
			}
		}
		arches = append(arches, a)
	}
	for _, a := range s.Architectures {
		switch a {
		case specs.ArchX86_64, specs.ArchX32:
			addArch(arch{audit: auditArchX86_64, table: sysAMD64, x32: hasX32})
		case specs.ArchX86:
			addArch(arch{audit: auditArchI386, table: sys386})
		default:
			// Other architectures cannot run on this host; skip them.
		}
	}
	if len(arches) == 0 {
		arches = append(arches, arch{audit: auditArchX86_64, table: sysAMD64})
	}
	p := &program{fixups: map[int]string{}, labels: map[string]int{}}
	p.emit(bpf.LoadAbsolute{Off: offArch, Size: 4})
	for ai, a := range arches {
		next := fmt.Sprintf("arch%d", ai+1)
		p.unless(bpf.JumpEqual, a.audit, next)
		p.emit(bpf.LoadAbsolute{Off: offNr, Size: 4})
		if a.audit == auditArchX86_64 {
			p.emit(bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32SyscallBit, SkipTrue: 0, SkipFalse: 1})
			if a.x32 {
				// an x32 syscall is judged as its x86_64 counterpart
				p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ^uint32(x32SyscallBit)})
			} else {
				// x32 syscalls are not allowed unless asked for
				p.ret(def)
			}
		}
		if err := p.archBody(s, a, def); err != nil {
			return nil, err
		}
		p.label(next)
		if ai+1 < len(arches) {
			p.emit(bpf.LoadAbsolute{Off: offArch, Size: 4})
		}
	}
	// Unknown architecture.
	p.ret(retKillProcess)
	for i, l := range p.fixups {
		target, ok := p.labels[l]
		if !ok {
			return nil, fmt.Errorf("seccomp: internal error: label %s", l)
		}
		p.ins[i] = bpf.Jump{Skip: uint32(target - i - 1)}
	}
	if len(p.ins) > 4096 {
		return nil, fmt.Errorf("seccomp: filter too long (%d instructions)", len(p.ins))
	}
	return bpf.Assemble(p.ins)
}

// entry is one rule's say on one syscall number.
type entry struct {
	args []specs.LinuxSeccompArg
	act  uint32
}

// archBody emits the decision for the syscall number in A: a binary
// search over the numbers the rules name (a profile like Docker's default
// names some 350 syscalls: a linear chain would cost every syscall hundreds
// of instructions and overflow the kernel's 4096), each number leading to
// the return of its action or, when its rules compare arguments, to a block
// that tries them in order. Anything else gets the default action.
func (p *program) archBody(s *specs.LinuxSeccomp, a arch, def uint32) error {
	byNr := map[uint32][]entry{}
	for _, rule := range s.Syscalls {
		act, err := Action(rule.Action, rule.ErrnoRet)
		if err != nil {
			return err
		}
		for _, name := range rule.Names {
			nr, ok := a.table[name]
			if !ok {
				continue // unknown on this architecture: ignored, as libseccomp
			}
			es := byNr[nr]
			if len(es) > 0 && len(es[len(es)-1].args) == 0 {
				continue // an earlier rule decides unconditionally
			}
			byNr[nr] = append(es, entry{args: rule.Args, act: act})
		}
	}
	nrs := make([]uint32, 0, len(byNr))
	for nr := range byNr {
		nrs = append(nrs, nr)
	}
	slices.Sort(nrs)
	// targets: one shared return per unconditional action, one block per
	// number with argument checks
	target := map[uint32]string{}
	actLabel := map[uint32]string{}
	var acts, blocks []uint32
	for _, nr := range nrs {
		es := byNr[nr]
		if len(es) == 1 && len(es[0].args) == 0 {
			l, ok := actLabel[es[0].act]
			if !ok {
				l = p.newLabel()
				actLabel[es[0].act] = l
				acts = append(acts, es[0].act)
			}
			target[nr] = l
			continue
		}
		target[nr] = p.newLabel()
		blocks = append(blocks, nr)
	}
	p.tree(nrs, target, def)
	for _, act := range acts {
		p.label(actLabel[act])
		p.ret(act)
	}
	for _, nr := range blocks {
		p.label(target[nr])
		for _, e := range byNr[nr] {
			skip := p.newLabel()
			if err := p.args(e.args, skip); err != nil {
				return err
			}
			p.ret(e.act)
			p.label(skip)
		}
		p.ret(def)
	}
	return nil
}

// tree emits a binary search of A over the sorted nrs, jumping to each
// number's target; a number not found returns def.
func (p *program) tree(nrs []uint32, target map[uint32]string, def uint32) {
	if len(nrs) <= 4 {
		for _, nr := range nrs {
			p.emit(bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipTrue: 0, SkipFalse: 1})
			p.jumpTo(target[nr])
		}
		p.ret(def)
		return
	}
	mid := len(nrs) / 2
	upper := p.newLabel()
	p.emit(bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: nrs[mid], SkipTrue: 0, SkipFalse: 1})
	p.jumpTo(upper)
	p.tree(nrs[:mid], target, def)
	p.label(upper)
	p.tree(nrs[mid:], target, def)
}

// args emits the argument checks of one rule; on mismatch jump to fail.
func (p *program) args(args []specs.LinuxSeccompArg, fail string) error {
	for _, a := range args {
		if a.Index > 5 {
			return fmt.Errorf("seccomp: argument index %d out of range", a.Index)
		}
		lo := uint32(offArgs + 8*a.Index)
		hi := lo + 4
		vlo, vhi := uint32(a.Value), uint32(a.Value>>32)
		load := func(off uint32) { p.emit(bpf.LoadAbsolute{Off: off, Size: 4}) }
		switch a.Op {
		case specs.OpEqualTo:
			load(hi)
			p.unless(bpf.JumpEqual, vhi, fail)
			load(lo)
			p.unless(bpf.JumpEqual, vlo, fail)
		case specs.OpNotEqual:
			// fail only when both halves are equal
			ok := p.newLabel()
			load(hi)
			p.unless(bpf.JumpEqual, vhi, ok)
			load(lo)
			p.unless(bpf.JumpEqual, vlo, ok)
			p.jumpTo(fail)
			p.label(ok)
		case specs.OpMaskedEqual:
			mlo, mhi := uint32(a.Value), uint32(a.Value>>32)
			wlo, whi := uint32(a.ValueTwo), uint32(a.ValueTwo>>32)
			load(hi)
			p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mhi})
			p.unless(bpf.JumpEqual, whi, fail)
			load(lo)
			p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: mlo})
			p.unless(bpf.JumpEqual, wlo, fail)
		case specs.OpGreaterThan, specs.OpGreaterEqual, specs.OpLessThan, specs.OpLessEqual:
			// hi > vhi: decided; hi == vhi: compare lo; else decided.
			var hiWin, loCond bpf.JumpTest
			switch a.Op {
			case specs.OpGreaterThan:
				hiWin, loCond = bpf.JumpGreaterThan, bpf.JumpGreaterThan
			case specs.OpGreaterEqual:
				hiWin, loCond = bpf.JumpGreaterThan, bpf.JumpGreaterOrEqual
			case specs.OpLessThan:
				hiWin, loCond = bpf.JumpLessThan, bpf.JumpLessThan
			default:
				hiWin, loCond = bpf.JumpLessThan, bpf.JumpLessOrEqual
			}
			ok := p.newLabel()
			cmpLo := p.newLabel()
			load(hi)
			p.unless(hiWin, vhi, cmpLo) // hi strictly wins -> ok
			p.jumpTo(ok)
			p.label(cmpLo)
			p.unless(bpf.JumpEqual, vhi, fail)
			load(lo)
			p.unless(loCond, vlo, fail)
			p.label(ok)
		default:
			return fmt.Errorf("seccomp: unsupported operator %q", a.Op)
		}
	}
	return nil
}

// Flags converts the spec's filter flags.
func Flags(fl []specs.LinuxSeccompFlag) (uintptr, error) {
	var out uintptr
	for _, f := range fl {
		switch f {
		case specs.LinuxSeccompFlagLog:
			out |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			out |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case specs.LinuxSeccompFlagWaitKillableRecv:
			out |= 1 << 5
		default:
			return 0, fmt.Errorf("seccomp: unsupported flag %q", f)
		}
	}
	return out, nil
}

// Filter is a compiled profile ready to load: create compiles it once,
// before anything is made (a bad profile is refused then), and the init
// of the container and of each exec only loads it.
type Filter struct {
	Prog  []byte  `json:"prog"` // sock_filter instructions, 8 bytes each, native byte order
	Flags uintptr `json:"flags"`
}

// Prepare compiles s (nil for none).
func Prepare(s *specs.LinuxSeccomp) (*Filter, error) {
	if s == nil {
		return nil, nil
	}
	if s.ListenerPath != "" {
		return nil, errors.New("seccomp: notify listeners are not supported")
	}
	for _, r := range s.Syscalls {
		if r.Action == specs.ActNotify {
			return nil, errors.New("seccomp: SCMP_ACT_NOTIFY is not supported")
		}
	}
	raw, err := Compile(s)
	if err != nil {
		return nil, err
	}
	flags, err := Flags(s.Flags)
	if err != nil {
		return nil, err
	}
	prog := make([]byte, 8*len(raw))
	for i, r := range raw {
		b := prog[8*i:]
		binary.NativeEndian.PutUint16(b, r.Op)
		b[2], b[3] = r.Jt, r.Jf
		binary.NativeEndian.PutUint32(b[4:], r.K)
	}
	return &Filter{Prog: prog, Flags: flags}, nil
}

// MarshalBinary is the filter as a file keeps it: its flags (8 bytes,
// native order), then the program.
func (f *Filter) MarshalBinary() ([]byte, error) {
	return append(binary.NativeEndian.AppendUint64(nil, uint64(f.Flags)), f.Prog...), nil
}

// UnmarshalBinary reads what MarshalBinary wrote.
func (f *Filter) UnmarshalBinary(b []byte) error {
	if len(b) < 16 || len(b)%8 != 0 {
		return fmt.Errorf("seccomp: a filter file of %d bytes", len(b))
	}
	f.Flags, f.Prog = uintptr(binary.NativeEndian.Uint64(b)), b[8:]
	return nil
}

// Load installs the filter on the calling thread (the caller has locked
// it and execs from it). no_new_privs must already be set unless the
// thread holds CAP_SYS_ADMIN.
func (f *Filter) Load() error {
	n := len(f.Prog) / 8
	if n == 0 || len(f.Prog)%8 != 0 || n > 0xffff {
		return fmt.Errorf("seccomp: a filter of %d bytes", len(f.Prog))
	}
	// sock_filter is {u16 code; u8 jt; u8 jf; u32 k}: Prog's layout
	prog := unix.SockFprog{Len: uint16(n), Filter: (*unix.SockFilter)(unsafe.Pointer(&f.Prog[0]))}
	_, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, f.Flags, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(f.Prog)
	if e != 0 {
		return fmt.Errorf("seccomp: load filter: %w", e)
	}
	return nil
}
