package specconv

import (
	"testing"

	"github.com/docker/docker/api/types/container"

	"berth/services/runtime/seccomp"
)

// FuzzSecurityOptions feeds --security-opt values (a seccomp profile
// among them) and cpuset lists through what create does with them: an
// error or a compilable filter, never a panic.
func FuzzSecurityOptions(f *testing.F) {
	f.Add("seccomp="+`{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_EQ"}],"includes":{"caps":["CAP_SYS_ADMIN"],"minKernel":"4.8"}}]}`, "0-3,5")
	f.Add("no-new-privileges:true", "abc")
	f.Add("systempaths=unconfined", "0-2000000000")
	f.Fuzz(func(t *testing.T, opt, cpus string) {
		_, _ = ParseCPUList(cpus)
		so, err := ParseSecurityOpt([]string{opt})
		if err != nil {
			return
		}
		sc, err := seccompFor(so, false, DefaultCapabilities())
		if err != nil || sc == nil {
			return
		}
		_, _ = seccomp.Compile(sc)
		_ = ValidateResources(&container.Resources{CpusetCpus: cpus}, false)
	})
}
