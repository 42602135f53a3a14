package bench

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"berth/tests/stack"
)

// BenchmarkCopy times docker cp of a 200 MiB file into and out of a running
// container, and docker export, on berth and (when installed) Docker:
// medians of 5.
func BenchmarkCopy(b *testing.B) {
	stack.RequireRoot(b)
	engines := []engine{berthEngine(b)}
	if os.Getenv("BERTH_BENCH_SKIP_DOCKER") == "" {
		if d, ok := dockerEngine(b); ok {
			engines = append(engines, d)
		}
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "big")
	data := make([]byte, 200<<20)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		b.Fatal(err)
	}
	timed := func(host string, args ...string) time.Duration {
		t0 := time.Now()
		if err := dockerCLI(host, args...); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	type row struct{ in, out, export time.Duration }
	rows := map[string]row{}
	for _, e := range engines {
		name := "bench-cp"
		if err := dockerCLI(e.host, "run", "-d", "--name", name, "busybox", "sleep", "600"); err != nil {
			b.Fatal(err)
		}
		var in, out, export []time.Duration
		for i := 0; i < 5; i++ {
			in = append(in, timed(e.host, "cp", src, name+":/tmp/big"))
			out = append(out, timed(e.host, "cp", name+":/tmp/big", filepath.Join(dir, "back")))
			export = append(export, timed(e.host, "export", "-o", filepath.Join(dir, "export.tar"), name))
		}
		if got, err := os.ReadFile(filepath.Join(dir, "back")); err != nil || len(got) != len(data) {
			b.Fatalf("%s: copied back %d bytes: %v", e.name, len(got), err)
		}
		dockerCLI(e.host, "rm", "-f", name)
		rows[e.name] = row{median(in), median(out), median(export)}
	}
	fmt.Printf("\n%-8s %18s %18s %22s\n", "engine", "cp 200 MiB in", "cp 200 MiB out", "export (200 MiB more)")
	for _, e := range engines {
		r := rows[e.name]
		fmt.Printf("%-8s %18s %18s %22s\n", e.name, r.in.Round(time.Millisecond), r.out.Round(time.Millisecond), r.export.Round(time.Millisecond))
	}
	if d, ok := rows["docker"]; ok {
		br := rows["berth"]
		fmt.Printf("ratios berth/docker: cp in %.2f  cp out %.2f  export %.2f\n",
			float64(br.in)/float64(d.in), float64(br.out)/float64(d.out), float64(br.export)/float64(d.export))
	}
	b.ReportMetric(float64(rows["berth"].in.Milliseconds()), "berth-cp-in-ms")
}
