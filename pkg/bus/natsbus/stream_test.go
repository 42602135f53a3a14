package natsbus

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"berth/pkg/errdefs"
	"berth/services/supervisor/natsd"
)

func testConn(t *testing.T) *nats.Conn {
	t.Helper()
	srv, err := natsd.Start(natsd.Options{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Name: "stream-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

type closeRecorder struct {
	io.Reader
	closed chan struct{}
}

func (c *closeRecorder) Close() error { close(c.closed); return nil }

func TestDownload(t *testing.T) {
	nc := testConn(t)
	data := bytes.Repeat([]byte("0123456789"), ChunkSize/4) // 2.5 chunks
	src := &closeRecorder{Reader: bytes.NewReader(data), closed: make(chan struct{})}
	subj, err := ServeDownload(nc, src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(Download(context.Background(), nc, subj))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes (want %d): %v", len(got), len(data), err)
	}
	select {
	case <-src.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the source was not closed at the end")
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) {
	return 0, errdefs.New(errdefs.InvalidParameter, "no such thing")
}

func TestDownloadErrorAndCancel(t *testing.T) {
	nc := testConn(t)
	subj, err := ServeDownload(nc, io.NopCloser(failingReader{}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(Download(context.Background(), nc, subj))
	if !errdefs.Is(err, errdefs.InvalidParameter) || !strings.Contains(err.Error(), "no such thing") {
		t.Fatalf("the source's error came out as %v", err)
	}
	// closing early cancels: the source is closed
	src := &closeRecorder{Reader: bytes.NewReader(make([]byte, 3*ChunkSize)), closed: make(chan struct{})}
	subj, _ = ServeDownload(nc, src)
	d := Download(context.Background(), nc, subj)
	if _, err := d.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	d.Close()
	select {
	case <-src.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled download left its source open")
	}
}

func TestDownloadAbandoned(t *testing.T) {
	nc := testConn(t)
	old := Idle
	Idle = 100 * time.Millisecond
	defer func() { Idle = old }()
	src := &closeRecorder{Reader: strings.NewReader("x"), closed: make(chan struct{})}
	if _, err := ServeDownload(nc, src); err != nil {
		t.Fatal(err)
	}
	select {
	case <-src.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("an abandoned download kept its source open")
	}
}

func TestUpload(t *testing.T) {
	nc := testConn(t)
	data := bytes.Repeat([]byte("abc"), ChunkSize) // 3 chunks
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	var got []byte
	go func() {
		var err error
		got, err = io.ReadAll(pr)
		done <- err
	}()
	subj, err := ServeUpload(nc, pw, done)
	if err != nil {
		t.Fatal(err)
	}
	if err := Upload(context.Background(), nc, subj, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("uploaded %d bytes, want %d", len(got), len(data))
	}
	// the consumer's error is the upload's
	pr, pw = io.Pipe()
	done = make(chan error, 1)
	go func() {
		pr.Read(make([]byte, 10))
		err := errdefs.New(errdefs.InvalidParameter, "bad archive")
		pr.CloseWithError(err)
		done <- err
	}()
	subj, _ = ServeUpload(nc, pw, done)
	err = Upload(context.Background(), nc, subj, bytes.NewReader(data))
	if !errdefs.Is(err, errdefs.InvalidParameter) || err.Error() != "bad archive" {
		t.Fatalf("upload into a failing consumer: %v", err)
	}
	// an abandoned upload closes the pipe with an error
	old := Idle
	Idle = 100 * time.Millisecond
	defer func() { Idle = old }()
	pr, pw = io.Pipe()
	if _, err := ServeUpload(nc, pw, make(chan error, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(pr); err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("an abandoned upload ended with %v", err)
	}
}
