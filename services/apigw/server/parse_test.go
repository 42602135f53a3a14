package server

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		"":                     {},
		"0":                    {},
		"1700000000":           time.Unix(1700000000, 0),
		"1700000000.5":         time.Unix(1700000000, 500000000),
		"2024-01-02T03:04:05Z": time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
	} {
		got, err := parseTime("since", in)
		if err != nil || !got.Equal(want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	if _, err := parseTime("since", "yesterday"); err == nil {
		t.Error("garbage accepted")
	}
	// relative durations, as `docker logs --since 10m` sends them once converted
	if got, err := parseTime("since", "10m"); err != nil || time.Since(got) < 9*time.Minute {
		t.Errorf("10m: %v %v", got, err)
	}
}

func TestSplitRepoTag(t *testing.T) {
	for _, c := range []struct{ repo, tag, wantRepo, wantTag string }{
		{"busybox", "", "busybox", "latest"},
		{"busybox:1", "", "busybox", "1"},
		{"busybox", "2", "busybox", "2"},
		{"localhost:5000/x/y", "", "localhost:5000/x/y", "latest"},
		{"localhost:5000/x/y:v1", "", "localhost:5000/x/y", "v1"},
	} {
		r, tg, err := splitRepoTag(c.repo, c.tag)
		if err != nil || r != c.wantRepo || tg != c.wantTag {
			t.Errorf("%q %q: %q %q %v", c.repo, c.tag, r, tg, err)
		}
	}
	for _, bad := range []string{"Busybox", "a@sha256:00", ""} {
		if _, _, err := splitRepoTag(bad, ""); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
