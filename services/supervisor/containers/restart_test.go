package containers

import (
	"testing"

	"github.com/docker/docker/api/types/container"
)

func TestShouldRestart(t *testing.T) {
	hc := func(name string, max int) *container.HostConfig {
		return &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(name), MaximumRetryCount: max}}
	}
	for _, c := range []struct {
		hc     *container.HostConfig
		code   int
		count  int
		manual bool
		want   bool
	}{
		{nil, 1, 0, false, false},
		{hc("", 0), 1, 0, false, false},
		{hc("no", 0), 1, 0, false, false},
		{hc("always", 0), 0, 100, false, true},
		{hc("always", 0), 0, 0, true, false},
		{hc("unless-stopped", 0), 3, 0, false, true},
		{hc("unless-stopped", 0), 3, 0, true, false},
		{hc("on-failure", 0), 0, 0, false, false},
		{hc("on-failure", 0), 1, 50, false, true},
		{hc("on-failure", 2), 1, 1, false, true},
		{hc("on-failure", 2), 1, 2, false, false},
	} {
		if got := shouldRestart(c.hc, c.code, c.count, c.manual); got != c.want {
			t.Errorf("%+v code %d count %d manual %v: %v, want %v", c.hc, c.code, c.count, c.manual, got, c.want)
		}
	}
}
