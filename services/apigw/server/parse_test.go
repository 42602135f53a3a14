package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/docker/docker/api/types/filters"

	"berth/pkg/bus/dockermsg"
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

// The reference filter of GET /images/json matches digests as well as tags
// and keeps only what matches, as dockerd's FamiliarMatch over every
// reference.
func TestMatchImageReference(t *testing.T) {
	im := func() *dockermsg.Image {
		return &dockermsg.Image{
			RepoTags:    []string{"busybox:latest", "reg:5000/a/b:v1"},
			RepoDigests: []string{"busybox@sha256:aaaa", "reg:5000/c@sha256:bbbb"},
		}
	}
	for pat, want := range map[string]string{
		"busybox":         "[busybox:latest] [busybox@sha256:aaaa]",
		"reg:5000/c":      "[] [reg:5000/c@sha256:bbbb]",
		"reg:5000/*":      "[] [reg:5000/c@sha256:bbbb]",
		"reg:5000/a/b:v1": "[reg:5000/a/b:v1] []",
	} {
		i := im()
		ok := matchImage(filters.NewArgs(filters.Arg("reference", pat)), i)
		if got := fmt.Sprint(i.RepoTags, " ", i.RepoDigests); !ok || got != want {
			t.Errorf("%s: %v %s, want %s", pat, ok, got, want)
		}
	}
	if matchImage(filters.NewArgs(filters.Arg("reference", "nosuch")), im()) {
		t.Error("an image no reference matches was listed")
	}
}
