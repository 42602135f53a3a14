package image

import (
	"reflect"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

func TestTakeHealthcheck(t *testing.T) {
	rest, h, err := takeHealthcheck([]string{"CMD sh", "HEALTHCHECK --interval=5s --timeout=2s --start-period=1m --start-interval=1s --retries=4 CMD curl -f x || exit 1", "ENV A=b"})
	want := &container.HealthConfig{Test: []string{"CMD-SHELL", "curl -f x || exit 1"}, Interval: 5 * time.Second, Timeout: 2 * time.Second,
		StartPeriod: time.Minute, StartInterval: time.Second, Retries: 4}
	if err != nil || !reflect.DeepEqual(rest, []string{"CMD sh", "ENV A=b"}) || !reflect.DeepEqual(h, want) {
		t.Fatalf("rest %v health %+v err %v", rest, h, err)
	}
	if _, h, err = takeHealthcheck([]string{`healthcheck CMD ["/bin/check", "-q"]`}); err != nil || !reflect.DeepEqual(h.Test, []string{"CMD", "/bin/check", "-q"}) {
		t.Fatalf("exec form: %+v %v", h, err)
	}
	if _, h, err = takeHealthcheck([]string{"HEALTHCHECK NONE"}); err != nil || !reflect.DeepEqual(h.Test, []string{"NONE"}) {
		t.Fatalf("NONE: %+v %v", h, err)
	}
	for _, bad := range []string{"HEALTHCHECK", "HEALTHCHECK CMD", "HEALTHCHECK --interval=x CMD true", "HEALTHCHECK --retries=-1 CMD true",
		"HEALTHCHECK --bogus=1 CMD true", "HEALTHCHECK --interval CMD true", "HEALTHCHECK NONE x", "HEALTHCHECK RUN true"} {
		if _, _, err := takeHealthcheck([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
