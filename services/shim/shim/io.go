package shim

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"berth/pkg/bus"
	"berth/pkg/bus/natslite"
	"berth/pkg/errdefs"
)

// stdio is the shim's side of the container's stdio.
type stdio struct {
	// Given to `runtime create` as its fds 0, 1, 2 (closed in the shim once
	// the runtime has started).
	childIn, childOut, childErr *os.File
	// The shim's ends.
	out, err *os.File // stdout, stderr read ends (err nil with a tty)
	inMu     sync.Mutex
	in       *os.File // stdin write end or the pty master; nil when closed

	consoleSock string
	consoleTmp  string // a directory made for consoleSock (path too long), removed with it
	consoleL    *net.UnixListener
	consoleC    chan consoleResult
}

type consoleResult struct {
	f   *os.File
	err error
}

func openStdio(cfg *bus.ShimConfig) (*stdio, error) {
	s := &stdio{}
	var err error
	fail := func(e error) (*stdio, error) {
		s.closeChild()
		s.closeAll()
		return nil, e
	}
	if cfg.Tty {
		// The runtime's own output (before the console exists) is captured
		// through a pipe; the container's goes through the pty.
		if s.childIn, err = os.Open(os.DevNull); err != nil {
			return fail(err)
		}
		if s.out, s.childOut, err = os.Pipe(); err != nil {
			return fail(err)
		}
		s.childErr = s.childOut
		if err := s.listenConsole(filepath.Join(cfg.StateDir, "console.sock")); err != nil {
			return fail(err)
		}
		return s, nil
	}
	if cfg.OpenStdin {
		if s.childIn, s.in, err = os.Pipe(); err != nil {
			return fail(err)
		}
	} else if s.childIn, err = os.Open(os.DevNull); err != nil {
		return fail(err)
	}
	if s.out, s.childOut, err = os.Pipe(); err != nil {
		return fail(err)
	}
	if s.err, s.childErr, err = os.Pipe(); err != nil {
		return fail(err)
	}
	return s, nil
}

// closeChild closes the shim's copies of the container's ends, once the
// runtime has them, so that EOF arrives when the container's are closed.
func (s *stdio) closeChild() {
	for _, f := range []*os.File{s.childIn, s.childOut, s.childErr} {
		if f != nil {
			f.Close()
		}
	}
	s.childIn, s.childOut, s.childErr = nil, nil, nil
}

func (s *stdio) closeAll() {
	for _, f := range []*os.File{s.out, s.err} {
		if f != nil {
			f.Close()
		}
	}
	s.closeStdin()
	if s.consoleL != nil {
		s.consoleL.Close()
		os.Remove(s.consoleSock)
	}
	if s.consoleTmp != "" {
		os.RemoveAll(s.consoleTmp)
		s.consoleTmp = ""
	}
}

// stdin is where data for the container's stdin goes.
func (s *stdio) stdin() *os.File {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	return s.in
}

func (s *stdio) closeStdin() {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	if s.in != nil {
		s.in.Close()
		s.in = nil
	}
}

// listenConsole opens the unix socket p on which the runtime sends the pty
// master (runc's --console-socket protocol: one SCM_RIGHTS message).
func (s *stdio) listenConsole(p string) error {
	if len(p) > 100 { // sun_path is 108 bytes
		d, err := os.MkdirTemp("", "berth-shim-")
		if err != nil {
			return err
		}
		p = filepath.Join(d, filepath.Base(p))
		s.consoleTmp = d
	}
	os.Remove(p)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		return fmt.Errorf("console socket: %w", err)
	}
	l.SetUnlinkOnClose(true)
	s.consoleSock, s.consoleL = p, l
	s.consoleC = make(chan consoleResult, 1)
	go func() {
		f, err := recvConsole(l)
		s.consoleC <- consoleResult{f, err}
	}()
	return nil
}

func recvConsole(l *net.UnixListener) (*os.File, error) {
	conn, err := l.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("receive console: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("receive console: %w", err)
	}
	var fds []int
	for i := range msgs {
		if f, err := unix.ParseUnixRights(&msgs[i]); err == nil {
			fds = append(fds, f...)
		}
	}
	if len(fds) == 0 {
		return nil, errors.New("receive console: no file descriptor in the message")
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	// Non-blocking, so that the poller serves it and Close unblocks Read.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, err
	}
	return os.NewFile(uintptr(fds[0]), string(buf[:n])), nil
}

// waitConsole returns the pty master the runtime sent during create.
func (s *stdio) waitConsole(timeout time.Duration) (*os.File, error) {
	select {
	case r := <-s.consoleC:
		s.consoleL.Close()
		return r.f, r.err
	case <-time.After(timeout):
		s.consoleL.Close()
		return nil, errors.New("the runtime did not send the console")
	}
}

// pump copies one output stream to the log and the bus until EOF (or EIO:
// the pty's slave side is closed).
func (d *daemon) pump(f *os.File, stream string, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, 32*1024)
	subject := bus.IOOut(d.cfg.Node, d.cfg.ID)
	hdr := natslite.Header{bus.HeaderStream: []string{stream}}
	for {
		n, err := f.Read(buf)
		if n > 0 {
			d.metrics.out[streamIndex(stream)].Add(int64(n))
			if !d.isCreated() {
				d.keepEarly(buf[:n])
				continue
			}
			if werr := d.logw.Write(stream, buf[:n], time.Now()); werr != nil {
				d.logWriteError(werr)
			}
			// Nobody is attached while the bus is away: do not let the
			// client buffer output for a reconnect (memory). The bus is
			// dialled while the runtime creates the container.
			<-d.dialed
			if d.nc != nil && d.nc.IsConnected() {
				d.nc.Publish(subject, hdr, buf[:n])
			}
		}
		if err != nil {
			return
		}
	}
}

func streamIndex(s string) int {
	if s == "stderr" {
		return 1
	}
	return 0
}

// onStdin handles a message on the container's IOIn subject.
func (d *daemon) onStdin(m *natslite.Msg) {
	d.feedStdin(m, d.io, !d.cfg.Tty && d.cfg.StdinOnce, "the container's")
}

// feedStdin writes one stdin message to the process whose stdio is s
// (whose names it in errors); an EOF message closes its stdin when
// closeOnEOF.
func (d *daemon) feedStdin(m *natslite.Msg, s *stdio, closeOnEOF bool, whose string) {
	if m.Header.Get(bus.HeaderEOF) == "1" {
		if closeOnEOF {
			s.closeStdin()
		}
		m.Respond(bus.EncodeReply(nil, nil))
		return
	}
	w := s.stdin()
	if w == nil {
		m.Respond(bus.EncodeReply(nil, errdefs.New(errdefs.Conflict, "%s stdin is closed", whose)))
		return
	}
	if _, err := w.Write(m.Data); err != nil {
		m.Respond(bus.EncodeReply(nil, errdefs.New(errdefs.Conflict, "write to %s stdin: %v", whose, err)))
		return
	}
	d.metrics.in.Add(int64(len(m.Data)))
	m.Respond(bus.EncodeReply(nil, nil))
}
