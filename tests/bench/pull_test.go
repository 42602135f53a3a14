package bench

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"berth/pkg/busyboxfs"
	"berth/tests/regtest"
	"berth/tests/stack"
)

const pullRuns = 7

// content is n bytes, about half of them compressible text, half noise,
// as a real image's mix of text files and binaries.
func content(r *rand.Rand, n int) string {
	var b strings.Builder
	words := []string{"berth", "layer", "overlay", "registry", "container", "manifest", "digest", "config", "\n"}
	for b.Len() < n/2 {
		b.WriteString(words[r.Intn(len(words))])
		b.WriteByte(' ')
	}
	noise := make([]byte, n-b.Len())
	r.Read(noise)
	b.Write(noise)
	return b.String()
}

// files makes a layer of count files of size bytes each under dir.
func files(b *testing.B, r *rand.Rand, dir string, count, size int) []byte {
	ents := []regtest.TarEntry{{Name: dir + "/", Type: '5'}}
	for i := 0; i < count; i++ {
		ents = append(ents, regtest.TarEntry{Name: fmt.Sprintf("%s/d%02d/f%04d", dir, i%50, i), Body: content(r, size)})
	}
	for i := 0; i < 50; i++ {
		ents = append(ents, regtest.TarEntry{Name: fmt.Sprintf("%s/d%02d/", dir, i), Type: '5'})
	}
	return regtest.Tar(b, ents...)
}

// pullImages builds the benchmark's images: a 3-layer image of about 50 MB
// (busybox, 2000 small files, 100 large ones) and a second one sharing its
// first two layers.
func pullImages(b *testing.B) (a, second *regtest.Image) {
	if _, err := os.Stat(busyboxfs.Binary); err != nil {
		b.Skip("needs busybox-static")
	}
	var bb bytes.Buffer
	if err := busyboxfs.WriteTar(&bb); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewSource(1))
	small := files(b, r, "usr/share/small", 2000, 12<<10)
	large := files(b, r, "opt/large", 100, 240<<10)
	other := files(b, r, "opt/other", 10, 100<<10)
	return regtest.Build(b, [][]byte{bb.Bytes(), small, large}, regtest.BuildOptions{}),
		regtest.Build(b, [][]byte{bb.Bytes(), small, other}, regtest.BuildOptions{})
}

func timed(b *testing.B, host string, args ...string) time.Duration {
	start := time.Now()
	if err := dockerCLI(host, args...); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// BenchmarkPull: docker pull of the 3-layer image from a loopback
// docker-registry into berth and, when installed, Docker (dockerd on a
// temporary root), alternating, pullRuns times each with the image removed
// in between; then the second image, which shares two layers.
func BenchmarkPull(b *testing.B) {
	stack.RequireRoot(b)
	reg := regtest.Start(b, regtest.Options{})
	proxy := reg.Proxy(b)
	a, second := pullImages(b)
	reg.Push(b, "bench/a", "v1", a)
	reg.Push(b, "bench/b", "v1", second)
	var size int64
	for _, d := range a.Layers {
		size += int64(len(a.Blobs[d]))
	}
	refA, refB := proxy.Addr+"/bench/a:v1", proxy.Addr+"/bench/b:v1"

	engines := []engine{berthEngine(b)}
	if os.Getenv("BERTH_BENCH_SKIP_DOCKER") == "" {
		if d, ok := dockerEngine(b); ok {
			engines = append(engines, d)
		}
	}
	times := map[string][]time.Duration{}
	for i := 0; i < pullRuns; i++ {
		for _, e := range engines {
			times[e.name] = append(times[e.name], timed(b, e.host, "pull", "-q", refA))
			if err := dockerCLI(e.host, "rmi", refA); err != nil {
				b.Fatal(err)
			}
		}
	}
	fmt.Printf("\npull of a 3-layer image (%.1f MB compressed) from a loopback docker-registry, median of %d\n", float64(size)/1e6, pullRuns)
	fmt.Printf("%-8s %12s %22s %18s\n", "engine", "pull", "+ image sharing 2", "blobs fetched")
	res := map[string]time.Duration{}
	for _, e := range engines {
		timed(b, e.host, "pull", "-q", refA)
		before := proxy.TotalGets()
		shared := timed(b, e.host, "pull", "-q", refB)
		fetched := proxy.TotalGets() - before
		fmt.Fprintf(os.Stderr, "%s pulls: %v\n", e.name, times[e.name])
		res[e.name] = median(times[e.name])
		fmt.Printf("%-8s %12s %22s %18d\n", e.name, res[e.name].Round(time.Millisecond), shared.Round(time.Millisecond), fetched)
		if e.name == "berth" && fetched != 2 {
			b.Errorf("berth fetched %d blobs for the second image; want its third layer and its config", fetched)
		}
		cmd := exec.Command("docker", "rmi", refA, refB)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+e.host)
		cmd.Run()
	}
	if d, ok := res["docker"]; ok {
		fmt.Printf("ratio berth/docker: pull %.2f\n", float64(res["berth"])/float64(d))
	}
	b.ReportMetric(float64(res["berth"].Milliseconds()), "berth-pull-ms")
}
