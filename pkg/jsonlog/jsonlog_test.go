package jsonlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"berth/pkg/bus"
)

var t0 = time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)

func readAll(t *testing.T, path string, opts ReadOptions) []bus.LogEntry {
	t.Helper()
	var out []bus.LogEntry
	err := Read(context.Background(), path, opts, func(e bus.LogEntry) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func logs(es []bus.LogEntry) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.Stream[3:] + ":" + e.Log)
	}
	return b.String()
}

func TestRecordFormat(t *testing.T) {
	got := string(AppendRecord(nil, "stdout", []byte("a <b> & \"c\"\x00\xff\n"), t0.In(time.FixedZone("x", 3600))))
	want := `{"log":"a \u003cb\u003e \u0026 \"c\"\u0000\ufffd\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}` + "\n"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	e, err := Decode([]byte(got))
	if err != nil || e.Log != "a <b> & \"c\"\x00\uFFFD\n" || e.Stream != "stdout" || !e.Time.Equal(t0) {
		t.Fatalf("decode: %+v %v", e, err)
	}
}

// TestRecordAttrs: attributes go where Docker's json-file driver puts them.
func TestRecordAttrs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := NewWriter(path, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.SetAttrs(map[string]string{"tag": "web", "env": "a<b"})
	w.Write("stdout", []byte("x\n"), t0)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	want := `{"log":"x\n","stream":"stdout","attrs":{"env":"a\u003cb","tag":"web"},"time":"2024-01-02T03:04:05.123456789Z"}` + "\n"
	if string(data) != want {
		t.Fatalf("got  %s\nwant %s", data, want)
	}
	if e, err := Decode(data); err != nil || e.Attrs["env"] != "a<b" || e.Attrs["tag"] != "web" {
		t.Fatalf("decode: %+v %v", e, err)
	}
}

func TestWriteSplitsLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, err := NewWriter(path, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write("stdout", []byte("one\ntw"), t0)
	w.Write("stderr", []byte("err1\nerr"), t0)
	w.Write("stdout", []byte("o\nthree\nfou"), t0)
	w.Write("stdout", []byte("r"), t0)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := logs(readAll(t, path, ReadOptions{Tail: -1}))
	want := "out:one\nerr:err1\nout:two\nout:three\nout:fourerr:err"
	if got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	// Every line of the file is a json object with the three fields.
	data, _ := os.ReadFile(path)
	for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil || len(m) != 3 {
			t.Fatalf("line %s: %v", l, err)
		}
	}
}

func TestLongLineIsCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, _ := NewWriter(path, 0, 1)
	long := bytes.Repeat([]byte("x"), MaxLineSize*2+10)
	w.Write("stdout", long[:100], t0)
	w.Write("stdout", long[100:], t0)
	w.Write("stdout", []byte("\n"), t0)
	w.Close()
	es := readAll(t, path, ReadOptions{Tail: -1})
	if len(es) != 3 || len(es[0].Log) != MaxLineSize || len(es[1].Log) != MaxLineSize || es[2].Log != "xxxxxxxxxx\n" {
		t.Fatalf("got %d records", len(es))
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c-json.log")
	w, err := NewWriter(path, 1000, 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := w.Write("stdout", fmt.Appendf(nil, "line %03d\n", i), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	for _, p := range []string{path, path + ".1", path + ".2"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > 1000 {
			t.Fatalf("%s is %d bytes", p, st.Size())
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Fatal("more files than max-file")
	}
	es := readAll(t, path, ReadOptions{Tail: -1})
	if len(es) < 20 || es[len(es)-1].Log != "line 099\n" {
		t.Fatalf("got %d records, last %+v", len(es), es[len(es)-1])
	}
	for i := 1; i < len(es); i++ {
		if !es[i].Time.After(es[i-1].Time) {
			t.Fatalf("out of order at %d", i)
		}
	}
	// max-file 1 truncates.
	p1 := filepath.Join(dir, "one.log")
	w1, _ := NewWriter(p1, 500, 1)
	for i := range 50 {
		w1.Write("stdout", fmt.Appendf(nil, "line %03d\n", i), t0)
	}
	w1.Close()
	if st, _ := os.Stat(p1); st.Size() > 500 {
		t.Fatalf("size %d", st.Size())
	}
	if es := readAll(t, p1, ReadOptions{Tail: -1}); len(es) == 0 || es[len(es)-1].Log != "line 049\n" {
		t.Fatalf("bad truncated log: %v", es)
	}
}

func TestReadSelection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, _ := NewWriter(path, 300, 5)
	for i := range 10 {
		s := "stdout"
		if i%2 == 1 {
			s = "stderr"
		}
		w.Write(s, fmt.Appendf(nil, "%d\n", i), t0.Add(time.Duration(i)*time.Second))
	}
	w.Close()
	os.WriteFile(path+".garbage", nil, 0o644)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("not json\n{\"log\":\"partial")
	f.Close()

	cases := []struct {
		opts ReadOptions
		want string
	}{
		{ReadOptions{Tail: -1}, "out:0\nerr:1\nout:2\nerr:3\nout:4\nerr:5\nout:6\nerr:7\nout:8\nerr:9\n"},
		{ReadOptions{Tail: 3}, "err:7\nout:8\nerr:9\n"},
		{ReadOptions{Tail: 0}, ""},
		{ReadOptions{Tail: 100, Stdout: true}, "out:0\nout:2\nout:4\nout:6\nout:8\n"},
		{ReadOptions{Tail: 2, Stderr: true}, "err:7\nerr:9\n"},
		{ReadOptions{Tail: -1, Since: t0.Add(7 * time.Second)}, "err:7\nout:8\nerr:9\n"},
		{ReadOptions{Tail: -1, Until: t0.Add(2 * time.Second)}, "out:0\nerr:1\nout:2\n"},
		{ReadOptions{Tail: 1, Since: t0.Add(2 * time.Second), Until: t0.Add(5 * time.Second)}, "err:5\n"},
		{ReadOptions{Tail: -1, Since: t0.Add(time.Hour)}, ""},
	}
	for i, c := range cases {
		if got := logs(readAll(t, path, c.opts)); got != c.want {
			t.Errorf("case %d: got %q want %q", i, got, c.want)
		}
	}
	// A missing log reads as empty.
	if es := readAll(t, path+".nope", ReadOptions{Tail: -1}); len(es) != 0 {
		t.Fatal(es)
	}
}

func TestFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	w, _ := NewWriter(path, 400, 3)
	w.Write("stdout", []byte("before\n"), t0)

	var stopped atomic.Bool
	got := make(chan bus.LogEntry, 1000)
	done := make(chan error, 1)
	go func() {
		done <- Read(context.Background(), path, ReadOptions{
			Tail: 1, Follow: true, Stopped: stopped.Load, PollInterval: 5 * time.Millisecond,
		}, func(e bus.LogEntry) error {
			got <- e
			return nil
		})
	}()
	if e := <-got; e.Log != "before\n" {
		t.Fatalf("first %q", e.Log)
	}
	// Each record is written once the previous one has been read: the
	// reader follows every rotation (the file it reads is renamed under it
	// and a new one appears) whatever the machine's load. A reader more
	// than max-file rotations behind loses records, as Docker's does.
	next := func(want string) {
		t.Helper()
		select {
		case e := <-got:
			if e.Log != want {
				t.Fatalf("followed %q, want %q", e.Log, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%q not followed", want)
		}
	}
	for i := range 40 {
		line := fmt.Sprintf("line %02d\n", i)
		w.Write("stdout", []byte(line), t0)
		next(line)
	}
	w.Write("stdout", []byte("last"), t0) // a partial line: written at Close
	w.Close()
	next("last")
	stopped.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(got)
	if e, ok := <-got; ok {
		t.Fatalf("a record more: %q", e.Log)
	}
}

func TestFollowStopsOnContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c-json.log")
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- Read(ctx, path, ReadOptions{Tail: -1, Follow: true, PollInterval: 5 * time.Millisecond},
			func(e bus.LogEntry) error { got <- e.Log; return nil })
	}()
	// The log does not exist yet: it is waited for.
	w, _ := NewWriter(path, 0, 1)
	w.Write("stderr", []byte("hi\n"), t0)
	if l := <-got; l != "hi\n" {
		t.Fatal(l)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.Close()
	// ErrStop ends a read early without error.
	n := 0
	if err := Read(context.Background(), path, ReadOptions{Tail: -1}, func(bus.LogEntry) error { n++; return ErrStop }); err != nil || n != 1 {
		t.Fatal(err, n)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"log":"hi\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`))
	f.Add([]byte(`{"log":1}`))
	f.Add([]byte("\xff\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Decode(data)
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		if e.Time.Year() < 0 || e.Time.Year() > 9999 {
			return
		}
		e2, err := Decode(AppendRecord(nil, e.Stream, []byte(e.Log), e.Time))
		if err != nil || e2.Stream != strings.ToValidUTF8(e.Stream, "\uFFFD") || e2.Log != strings.ToValidUTF8(e.Log, "\uFFFD") || !e2.Time.Equal(e.Time) {
			t.Fatalf("round trip: %+v -> %+v %v", e, e2, err)
		}
	})
}

func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"log":"hi\n","stream":"stdout","time":"2024-01-02T03:04:05Z"}`+"\n"+`{"log":"x","stream":"stderr","time":"2024-01-02T03:04:06Z"}`+"\n"), 1)
	f.Add([]byte("garbage\n\n\n{"), -1)
	f.Fuzz(func(t *testing.T, data []byte, tail int) {
		path := filepath.Join(t.TempDir(), "log")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		n := 0
		err := Read(context.Background(), path, ReadOptions{Tail: tail % 50}, func(bus.LogEntry) error { n++; return nil })
		if err != nil {
			t.Fatal(err)
		}
		if tail%50 >= 0 && n > tail%50 {
			t.Fatalf("tail %d gave %d", tail%50, n)
		}
	})
}
