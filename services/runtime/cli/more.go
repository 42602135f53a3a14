package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"berth/services/runtime/libct"
	"berth/services/runtime/process"
)

func specVersion() string { return specs.Version }

func cmdExec(g *globals, args []string) (int, error) {
	f := newFlags([]string{"tty", "detach", "no-new-privs"},
		[]string{"process", "console-socket", "pid-file", "env", "cwd", "user", "cap", "preserve-fds", "apparmor", "process-label", "additional-gids"},
		map[string]string{"t": "tty", "d": "detach", "p": "process", "e": "env", "u": "user", "c": "cap", "g": "additional-gids"})
	f.stopAfter = 1
	if err := f.parse(args); err != nil {
		return 1, err
	}
	if len(f.args) < 1 {
		return 1, errors.New("usage: exec [flags] ID [COMMAND [ARGS...]]")
	}
	id := f.args[0]
	var p specs.Process
	var err error
	if pf := f.str("process"); pf != "" {
		var b []byte
		if pf == "-" {
			b, err = io.ReadAll(os.Stdin)
		} else {
			b, err = os.ReadFile(pf)
		}
		if err != nil {
			return 1, err
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return 1, fmt.Errorf("process: malformed: %v", err)
		}
	} else {
		cmdArgs := f.args[1:]
		if len(cmdArgs) > 0 && cmdArgs[0] == "--" { // exec ID -- CMD ARGS
			cmdArgs = cmdArgs[1:]
		}
		if len(cmdArgs) == 0 {
			return 1, errors.New("exec needs a command or --process")
		}
		// libct.Exec loads the state again: with --process it is read once
		st, err := libct.Load(g.root, id)
		if err != nil {
			return 1, err
		}
		spec, err := st.Spec()
		if err != nil {
			return 1, err
		}
		base := spec.Process
		p = *base
		p.Args = cmdArgs
		p.Terminal = f.boolean("tty")
		p.Env = append(append([]string{}, base.Env...), f.list("env")...)
		if c := f.str("cwd"); c != "" {
			p.Cwd = c
		}
		if u := f.str("user"); u != "" {
			uidS, gidS, _ := strings.Cut(u, ":")
			uid, err := strconv.ParseUint(uidS, 10, 32)
			if err != nil {
				return 1, fmt.Errorf("invalid --user %q (want uid[:gid])", u)
			}
			p.User.UID, p.User.GID = uint32(uid), 0
			if gidS != "" {
				gid, err := strconv.ParseUint(gidS, 10, 32)
				if err != nil {
					return 1, fmt.Errorf("invalid --user %q (want uid[:gid])", u)
				}
				p.User.GID = uint32(gid)
			}
			p.User.AdditionalGids = nil
		}
		for _, g := range f.list("additional-gids") {
			n, err := strconv.ParseUint(g, 10, 32)
			if err != nil {
				return 1, fmt.Errorf("invalid --additional-gids %q", g)
			}
			p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(n))
		}
		if caps := f.list("cap"); len(caps) > 0 && p.Capabilities != nil {
			c := *p.Capabilities
			c.Bounding = append(append([]string{}, c.Bounding...), caps...)
			c.Effective = append(append([]string{}, c.Effective...), caps...)
			c.Permitted = append(append([]string{}, c.Permitted...), caps...)
			c.Ambient = append(append([]string{}, c.Ambient...), caps...)
			p.Capabilities = &c
		}
		if f.boolean("no-new-privs") {
			p.NoNewPrivileges = true
		}
		if a := f.str("apparmor"); a != "" {
			p.ApparmorProfile = a
		}
	}
	if p.Cwd == "" {
		p.Cwd = "/"
	}
	pf, err := f.integer("preserve-fds")
	if err != nil {
		return 1, err
	}
	pidFile := f.str("pid-file")
	if pidFile != "" {
		if pidFile, err = filepath.Abs(pidFile); err != nil {
			return 1, err
		}
	}
	code, err := libct.Exec(libct.ExecOpts{
		Root: g.root, ID: id, Process: &p, ConsoleSocket: f.str("console-socket"),
		PidFile: pidFile, PreserveFds: pf, Detach: f.boolean("detach"),
	})
	if err != nil {
		err = fmt.Errorf("exec failed: %w", err) // runc's wording, which Docker shows
	}
	return code, err
}

func cmdPs(g *globals, args []string) error {
	f := newFlags(nil, []string{"format"}, map[string]string{"f": "format"})
	f.stopAfter = 1
	if err := f.parse(args); err != nil {
		return err
	}
	if len(f.args) < 1 {
		return errors.New("usage: ps [--format table|json] ID [ps options]")
	}
	pids, err := libct.Pids(g.root, f.args[0])
	if err != nil {
		return err
	}
	switch f.str("format") {
	case "json":
		if pids == nil {
			pids = []int{}
		}
		return json.NewEncoder(os.Stdout).Encode(pids)
	case "", "table":
	default:
		return fmt.Errorf("invalid format %q", f.str("format"))
	}
	psArgs := f.args[1:]
	if len(psArgs) == 0 {
		psArgs = []string{"-ef"}
	}
	out, err := exec.Command("ps", psArgs...).Output()
	if err != nil {
		// No ps: print the pids.
		fmt.Println("PID")
		for _, p := range pids {
			fmt.Println(p)
		}
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	pidCol := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == "PID" {
			pidCol = i
		}
	}
	if pidCol < 0 {
		return errors.New("no PID column in ps output")
	}
	fmt.Println(lines[0])
	in := map[int]bool{}
	for _, p := range pids {
		in[p] = true
	}
	for _, l := range lines[1:] {
		fs := strings.Fields(l)
		if len(fs) > pidCol {
			if n, err := strconv.Atoi(fs[pidCol]); err == nil && in[n] {
				fmt.Println(l)
			}
		}
	}
	return nil
}

func cmdList(g *globals, args []string) error {
	f := newFlags([]string{"quiet"}, []string{"format"}, map[string]string{"q": "quiet", "f": "format"})
	if err := f.parse(args); err != nil {
		return err
	}
	sts, err := libct.List(g.root)
	if err != nil {
		return err
	}
	if f.boolean("quiet") {
		for _, s := range sts {
			fmt.Println(s.ID)
		}
		return nil
	}
	switch f.str("format") {
	case "json":
		out := make([]libct.OCIState, 0, len(sts))
		for _, s := range sts {
			out = append(out, s.OCI(s.Status()))
		}
		return json.NewEncoder(os.Stdout).Encode(out)
	case "", "table":
	default:
		return fmt.Errorf("invalid format %q", f.str("format"))
	}
	w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
	fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
	for _, s := range sts {
		o := s.OCI(s.Status())
		owner := o.Owner
		if owner == "" {
			owner = "root"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", o.ID, o.Pid, o.Status, o.Bundle, o.Created.Format(time.RFC3339Nano), owner)
	}
	return w.Flush()
}

func cmdUpdate(g *globals, args []string) error {
	f := newFlags(nil, []string{"resources", "memory", "pids-limit", "cpu-shares", "cpu-quota", "cpu-period", "cpuset-cpus", "cpuset-mems"}, map[string]string{"r": "resources"})
	if err := f.parse(args); err != nil {
		return err
	}
	if len(f.args) != 1 {
		return errors.New("exactly one container id is required")
	}
	var r specs.LinuxResources
	if src := f.str("resources"); src != "" {
		var b []byte
		var err error
		if src == "-" {
			b, err = io.ReadAll(bufio.NewReader(os.Stdin))
		} else {
			b, err = os.ReadFile(src)
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("resources: malformed: %v", err)
		}
	}
	num := func(name string) (*int64, error) {
		s := f.str(name)
		if s == "" {
			return nil, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid --%s %q", name, s)
		}
		return &n, nil
	}
	if v, err := num("memory"); err != nil {
		return err
	} else if v != nil {
		r.Memory = &specs.LinuxMemory{Limit: v}
	}
	if v, err := num("pids-limit"); err != nil {
		return err
	} else if v != nil {
		r.Pids = &specs.LinuxPids{Limit: v}
	}
	for _, name := range []string{"cpu-shares", "cpu-quota", "cpu-period"} {
		v, err := num(name)
		if err != nil {
			return err
		}
		if v == nil {
			continue
		}
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		u := uint64(*v)
		switch name {
		case "cpu-shares":
			r.CPU.Shares = &u
		case "cpu-quota":
			r.CPU.Quota = v
		case "cpu-period":
			r.CPU.Period = &u
		}
	}
	if c, m := f.str("cpuset-cpus"), f.str("cpuset-mems"); c != "" || m != "" {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		r.CPU.Cpus, r.CPU.Mems = c, m
	}
	return libct.Update(g.root, f.args[0], &r)
}

func cmdFeatures() error {
	t, fl := true, false
	ft := features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions: []string{"async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand", "noatime", "nodev",
			"nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "private", "rbind", "rdev", "relatime", "remount",
			"rexec", "rnoatime", "rnodev", "rnodiratime", "rnoexec", "rnosuid", "ro", "rprivate", "rro", "rrw", "rshared", "rslave",
			"rsuid", "runbindable", "rw", "shared", "slave", "strictatime", "suid", "sync", "unbindable"},
		Linux: &features.Linux{
			Namespaces:   []string{"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"},
			Capabilities: process.CapNames(),
			Cgroup:       &features.Cgroup{V1: &t, V2: &t, Systemd: &fl, SystemdUser: &fl},
			Seccomp: &features.Seccomp{
				Enabled:        &t,
				Actions:        []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"},
				Operators:      []string{"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"},
				Archs:          []string{"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"},
				KnownFlags:     []string{"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"},
				SupportedFlags: []string{"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"},
			},
			Apparmor:        &features.Apparmor{Enabled: &t},
			Selinux:         &features.Selinux{Enabled: &fl},
			MountExtensions: &features.MountExtensions{IDMap: &features.IDMap{Enabled: &fl}},
		},
		Annotations: map[string]string{"org.opencontainers.runtime-spec.features.runtime": "berth-runtime " + Version},
	}
	b, err := json.MarshalIndent(ft, "", "    ")
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	return nil
}
