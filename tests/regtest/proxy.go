package regtest

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// Proxy stands between clients and an HTTP registry: it counts blob
// downloads and can break or corrupt them.
type Proxy struct {
	Addr string

	mu       sync.Mutex
	gets     map[digest.Digest]int
	ranges   []string
	cutAfter map[digest.Digest]int64 // next download of the blob stops after so many bytes
	corrupt  map[digest.Digest]bool  // downloads of the blob have one byte flipped
	down     bool                    // every blob download drops at once (a dead registry)
	dieOnCut bool                    // the registry dies when the next cut happens
	rp       *httputil.ReverseProxy
	upstream *url.URL
}

// Proxy starts a proxy in front of r (an HTTP registry).
func (r *Registry) Proxy(t testing.TB) *Proxy {
	u, _ := url.Parse(r.URL(""))
	p := &Proxy{gets: map[digest.Digest]int{}, cutAfter: map[digest.Digest]int64{}, corrupt: map[digest.Digest]bool{}, upstream: u}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Addr = l.Addr().String()
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return p
}

func blobOf(path string) (digest.Digest, bool) {
	i := strings.Index(path, "/blobs/sha256:")
	if !strings.HasPrefix(path, "/v2/") || i < 0 || strings.Contains(path, "/uploads/") {
		return "", false
	}
	d := digest.Digest(path[i+len("/blobs/"):])
	return d, d.Validate() == nil
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d, isBlob := blobOf(r.URL.Path)
	if !isBlob || r.Method != http.MethodGet {
		p.rp.ServeHTTP(w, r)
		return
	}
	p.mu.Lock()
	p.gets[d]++
	if rg := r.Header.Get("Range"); rg != "" {
		p.ranges = append(p.ranges, string(d)+" "+rg)
	}
	cut, hasCut := p.cutAfter[d]
	delete(p.cutAfter, d)
	corrupt := p.corrupt[d]
	down := p.down
	p.mu.Unlock()
	if down {
		panic(http.ErrAbortHandler)
	}
	if !hasCut && !corrupt {
		p.rp.ServeHTTP(w, r)
		return
	}
	// fetch it ourselves (the registry redirects nothing for the filesystem driver)
	req, _ := http.NewRequest(http.MethodGet, p.upstream.String()+r.URL.RequestURI(), nil)
	for k, v := range r.Header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	body, _ := io.ReadAll(resp.Body)
	if corrupt && len(body) > 0 {
		body[len(body)/2] ^= 0xff
	}
	if hasCut && cut < int64(len(body)) {
		p.mu.Lock()
		if p.dieOnCut {
			p.down, p.dieOnCut = true, false
		}
		p.mu.Unlock()
		w.Write(body[:cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the connection drops mid-transfer
	}
	w.Write(body)
}

// Gets is how many times blob d was downloaded.
func (p *Proxy) Gets(d digest.Digest) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gets[d]
}

// TotalGets is the number of blob downloads.
func (p *Proxy) TotalGets() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.gets {
		n += c
	}
	return n
}

// Ranges lists the ranged downloads ("digest bytes=N-").
func (p *Proxy) Ranges() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges...)
}

// CutAfter makes the next download of d stop after n bytes.
func (p *Proxy) CutAfter(d digest.Digest, n int64) {
	p.mu.Lock()
	p.cutAfter[d] = n
	p.mu.Unlock()
}

// Corrupt flips a byte in every download of d (on or off).
func (p *Proxy) Corrupt(d digest.Digest, on bool) {
	p.mu.Lock()
	p.corrupt[d] = on
	p.mu.Unlock()
}

// Down makes every blob download fail (on) or work again (off).
func (p *Proxy) Down(on bool) {
	p.mu.Lock()
	p.down = on
	p.mu.Unlock()
}

// DieOnCut makes the registry go down (Down) when the next cut happens.
func (p *Proxy) DieOnCut() {
	p.mu.Lock()
	p.dieOnCut = true
	p.mu.Unlock()
}
