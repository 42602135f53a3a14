package libct

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/services/runtime/process"
	"berth/services/runtime/seccomp"
)

// An exec's init is C only (nsenter/execinit.c): it reads its process as
// the binary message below, not as JSON, so that it can exec without a Go
// runtime. The layout, in native byte order, must match execinit.c's decode:
//
//	u32 length of the rest
//	u32 magic, i32 console fd, u32 rows, u32 cols, u32 flags, i32 oom_score_adj,
//	u32 umask, u32 uid, u32 gid, u32 n + n×u32 additional gids,
//	5×u64 capability sets (bounding, effective, inheritable, permitted, ambient),
//	u32 n + n×(u32 resource, u64 soft, u64 hard, str name) rlimits,
//	u64 seccomp flags, u32 n + n bytes of sock_filter, u32 preserved fds,
//	str apparmor profile, str cwd, u32 n + n×str args, u32 n + n×str env
//
// where str is a u32 length and the bytes.
const (
	execMagic = 0x31584542 // "BEX1"
	execNNP   = 1
	execUmask = 2
	execOOM   = 4
)

// encodeExecConfig renders p (checked by validateProcess) for the C init.
func encodeExecConfig(p *specs.Process, consoleFd, preserve int, sc *seccomp.Filter) ([]byte, error) {
	for _, s := range append([]string{p.Cwd, p.ApparmorProfile}, p.Args...) {
		if strings.IndexByte(s, 0) >= 0 {
			return nil, errors.New("process: a string contains a nul byte")
		}
	}
	b := make([]byte, 4, 512)
	u32 := func(v uint32) { b = binary.NativeEndian.AppendUint32(b, v) }
	u64 := func(v uint64) { b = binary.NativeEndian.AppendUint64(b, v) }
	str := func(s string) { u32(uint32(len(s))); b = append(b, s...) }
	strs := func(v []string) {
		u32(uint32(len(v)))
		for _, s := range v {
			str(s)
		}
	}
	var flags uint32
	if p.NoNewPrivileges {
		flags |= execNNP
	}
	if p.User.Umask != nil {
		flags |= execUmask
	}
	if p.OOMScoreAdj != nil {
		flags |= execOOM
	}
	u32(execMagic)
	u32(uint32(int32(consoleFd)))
	var rows, cols uint
	if p.ConsoleSize != nil {
		rows, cols = p.ConsoleSize.Height, p.ConsoleSize.Width
	}
	u32(uint32(rows))
	u32(uint32(cols))
	u32(flags)
	var oom, umask uint32
	if p.OOMScoreAdj != nil {
		oom = uint32(int32(*p.OOMScoreAdj))
	}
	if p.User.Umask != nil {
		umask = *p.User.Umask
	}
	u32(oom)
	u32(umask)
	u32(p.User.UID)
	u32(p.User.GID)
	u32(uint32(len(p.User.AdditionalGids)))
	for _, g := range p.User.AdditionalGids {
		u32(g)
	}
	var sets [5][]string
	if c := p.Capabilities; c != nil {
		sets = [5][]string{c.Bounding, c.Effective, c.Inheritable, c.Permitted, c.Ambient}
	}
	for _, set := range sets {
		m, err := process.ParseCaps(set)
		if err != nil {
			return nil, err
		}
		u64(uint64(m))
	}
	u32(uint32(len(p.Rlimits)))
	for _, r := range p.Rlimits {
		res, ok := process.RlimitResource(r.Type)
		if !ok {
			return nil, fmt.Errorf("unknown rlimit %q", r.Type)
		}
		u32(uint32(res))
		u64(r.Soft)
		u64(r.Hard)
		str(r.Type)
	}
	if sc != nil {
		u64(uint64(sc.Flags))
		u32(uint32(len(sc.Prog)))
		b = append(b, sc.Prog...)
	} else {
		u64(0)
		u32(0)
	}
	u32(uint32(preserve))
	str(p.ApparmorProfile)
	str(p.Cwd)
	strs(p.Args)
	strs(p.Env)
	binary.NativeEndian.PutUint32(b, uint32(len(b)-4))
	return b, nil
}
