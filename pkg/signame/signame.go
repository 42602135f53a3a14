// Package signame reads signal names as dockerd does (moby's SignalMap):
// "KILL", "SIGKILL", "kill", and the real-time ones "RTMIN", "RTMIN+3",
// "RTMAX-2" (34 to 64, glibc's numbering), which systemd images use as
// their stop signal.
package signame

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	rtMin = 34
	rtMax = 64
)

// Number returns the signal called name, or 0 when there is none.
func Number(name string) int {
	n := strings.TrimPrefix(strings.ToUpper(name), "SIG")
	switch {
	case n == "RTMIN":
		return rtMin
	case n == "RTMAX":
		return rtMax
	case strings.HasPrefix(n, "RTMIN+"):
		if i, err := strconv.Atoi(n[len("RTMIN+"):]); err == nil && i >= 1 && i <= 15 {
			return rtMin + i
		}
		return 0
	case strings.HasPrefix(n, "RTMAX-"):
		if i, err := strconv.Atoi(n[len("RTMAX-"):]); err == nil && i >= 1 && i <= 14 {
			return rtMax - i
		}
		return 0
	}
	return int(unix.SignalNum("SIG" + n))
}
