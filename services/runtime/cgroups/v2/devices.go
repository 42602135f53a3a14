package v2

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cgroup v2 has no devices.allow/deny files: device access is decided by an
// eBPF program of type CGROUP_DEVICE attached to the cgroup. This file
// assembles that program from the OCI rules (the idea of runc's
// devicefilter, written out by hand to avoid an eBPF library).

// DefaultAllowed are the devices every container may use (as runc), the
// same list as the v1 manager's.
var DefaultAllowed = []specs.LinuxDeviceCgroup{
	dev("c", 1, 3), dev("c", 1, 5), dev("c", 1, 7), dev("c", 1, 8), dev("c", 1, 9),
	dev("c", 5, 0), dev("c", 5, 1), dev("c", 5, 2), dev("c", 136, -1), dev("c", 10, 200),
	{Allow: true, Type: "c", Access: "m"}, {Allow: true, Type: "b", Access: "m"},
}

func dev(t string, major, minor int64) specs.LinuxDeviceCgroup {
	d := specs.LinuxDeviceCgroup{Allow: true, Type: t, Access: "rwm", Major: &major}
	if minor >= 0 {
		d.Minor = &minor
	}
	return d
}

type insn struct {
	code uint8
	regs uint8 // dst | src<<4
	off  int16
	imm  int32
}

const (
	ldxW   = 0x61 // r_dst = *(u32 *)(r_src + off)
	andK   = 0x57 // r_dst &= imm (64-bit)
	rshK   = 0x77 // r_dst >>= imm
	movK   = 0xb7 // r_dst = imm
	movX   = 0xbf // r_dst = r_src
	jneK   = 0x55 // if r_dst != imm goto +off
	exitOp = 0x95

	accMknod = 1
	accRead  = 2
	accWrite = 4
	devBlock = 1
	devChar  = 2
)

// DeviceFilter assembles the program: for each rule, last first (a later
// rule overrides an earlier one, as with v1's lists), "if the request
// matches, return allow/deny"; nothing matched: deny.
func DeviceFilter(rules []specs.LinuxDeviceCgroup) ([]insn, error) {
	prog := []insn{
		{code: ldxW, regs: 2 | 1<<4, off: 0}, // r2 = access_type
		{code: andK, regs: 2, imm: 0xffff},   // r2 = device type
		{code: ldxW, regs: 3 | 1<<4, off: 0}, // r3 = access_type
		{code: rshK, regs: 3, imm: 16},       // r3 = access
		{code: ldxW, regs: 4 | 1<<4, off: 4}, // r4 = major
		{code: ldxW, regs: 5 | 1<<4, off: 8}, // r5 = minor
	}
	for i := len(rules) - 1; i >= 0; i-- {
		r := rules[i]
		var block []insn
		var jumps []int // indexes (in block) of "no match" jumps
		switch r.Type {
		case "", "a":
		case "c":
			jumps = append(jumps, len(block))
			block = append(block, insn{code: jneK, regs: 2, imm: devChar})
		case "b":
			jumps = append(jumps, len(block))
			block = append(block, insn{code: jneK, regs: 2, imm: devBlock})
		default:
			return nil, fmt.Errorf("device rule: invalid type %q", r.Type)
		}
		acc := int32(0)
		access := r.Access
		if access == "" {
			access = "rwm"
		}
		for _, c := range access {
			switch c {
			case 'r':
				acc |= accRead
			case 'w':
				acc |= accWrite
			case 'm':
				acc |= accMknod
			default:
				return nil, fmt.Errorf("device rule: invalid access %q", r.Access)
			}
		}
		if acc != accRead|accWrite|accMknod {
			// the request must ask for nothing outside the rule's access
			block = append(block, insn{code: movX, regs: 6 | 3<<4}, insn{code: andK, regs: 6, imm: ^acc & 7})
			jumps = append(jumps, len(block))
			block = append(block, insn{code: jneK, regs: 6, imm: 0})
		}
		if r.Major != nil && *r.Major >= 0 {
			jumps = append(jumps, len(block))
			block = append(block, insn{code: jneK, regs: 4, imm: int32(*r.Major)})
		}
		if r.Minor != nil && *r.Minor >= 0 {
			jumps = append(jumps, len(block))
			block = append(block, insn{code: jneK, regs: 5, imm: int32(*r.Minor)})
		}
		ret := int32(0)
		if r.Allow {
			ret = 1
		}
		block = append(block, insn{code: movK, regs: 0, imm: ret}, insn{code: exitOp})
		for _, j := range jumps {
			block[j].off = int16(len(block) - j - 1)
		}
		prog = append(prog, block...)
		if len(jumps) == 0 {
			// Matches everything: earlier rules are dead code, which the
			// verifier refuses.
			return prog, nil
		}
	}
	return append(prog, insn{code: movK, regs: 0, imm: 0}, insn{code: exitOp}), nil
}

type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
}

type progAttachAttr struct {
	targetFd     uint32
	attachBpfFd  uint32
	attachType   uint32
	attachFlags  uint32
	replaceBpfFd uint32
}

// setDevices loads the filter and attaches it to the cgroup directory.
// The attachment holds the program; our fds are closed.
func (m *Manager) setDevices(rules []specs.LinuxDeviceCgroup) error {
	prog, err := DeviceFilter(append(append([]specs.LinuxDeviceCgroup{}, rules...), DefaultAllowed...))
	if err != nil {
		return err
	}
	fd, err := loadProg(prog, 0)
	if err != nil {
		// Once more with the verifier's log, for the error message.
		if _, lerr := loadProg(prog, 1); lerr != nil {
			err = lerr
		}
		return err
	}
	defer unix.Close(fd)
	dir, err := os.Open(m.dir)
	if err != nil {
		return err
	}
	defer dir.Close()
	aa := progAttachAttr{targetFd: uint32(dir.Fd()), attachBpfFd: uint32(fd), attachType: unix.BPF_CGROUP_DEVICE, attachFlags: unix.BPF_F_ALLOW_MULTI}
	if _, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_ATTACH, uintptr(unsafe.Pointer(&aa)), unsafe.Sizeof(aa)); e != 0 {
		return fmt.Errorf("attach device filter: %w", e)
	}
	return nil
}

func loadProg(prog []insn, logLevel uint32) (int, error) {
	license := []byte("Apache-2.0\x00")
	la := progLoadAttr{
		progType: unix.BPF_PROG_TYPE_CGROUP_DEVICE,
		insnCnt:  uint32(len(prog)),
		insns:    uint64(uintptr(unsafe.Pointer(&prog[0]))),
		license:  uint64(uintptr(unsafe.Pointer(&license[0]))),
	}
	var logBuf []byte
	if logLevel > 0 {
		logBuf = make([]byte, 1<<20)
		la.logLevel, la.logSize, la.logBuf = logLevel, uint32(len(logBuf)), uint64(uintptr(unsafe.Pointer(&logBuf[0])))
	}
	copy(la.progName[:], "berth_devices")
	fd, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, uintptr(unsafe.Pointer(&la)), unsafe.Sizeof(la))
	runtime.KeepAlive(prog)
	runtime.KeepAlive(license)
	runtime.KeepAlive(logBuf)
	if e != 0 {
		msg := string(logBuf)
		if i := strings.IndexByte(msg, 0); i >= 0 {
			msg = msg[:i]
		}
		if f := strings.Fields(msg); len(f) > 40 {
			msg = strings.Join(f[len(f)-40:], " ")
		}
		if msg != "" {
			return -1, fmt.Errorf("load device filter: %w: %s", e, strings.Join(strings.Fields(msg), " "))
		}
		return -1, fmt.Errorf("load device filter: %w", e)
	}
	return int(fd), nil
}
