package signame

import "testing"

func TestNumber(t *testing.T) {
	for name, want := range map[string]int{
		"KILL": 9, "sigterm": 15, "SIGUSR1": 10, "SIGRTMIN": 34, "RTMIN+3": 37, "sigrtmin+15": 49,
		"SIGRTMAX": 64, "RTMAX-1": 63, "RTMAX-14": 50, "RTMIN+16": 0, "RTMAX-15": 0, "NOPE": 0, "": 0, "RTMIN+x": 0,
	} {
		if got := Number(name); got != want {
			t.Errorf("Number(%q) = %d, want %d", name, got, want)
		}
	}
}
