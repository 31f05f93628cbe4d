package syslog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// fakeRELP is a scriptable RELP server. onSyslog decides, for the n-th
// syslog command (counting from 1 across connections), what to do.
type fakeRELP struct {
	ln       net.Listener
	offers   string
	onSyslog func(n int, msg string) relpAction

	mu       sync.Mutex
	n        int
	accepted []string
	conns    int
	maxOut   int // most commands read before a response was written
}

type relpAction int

const (
	ack relpAction = iota
	reject
	hangUp      // close the connection without answering
	serverClose // send the serverclose hint and close
	silence     // never answer
)

func newFakeRELP(t *testing.T) *fakeRELP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeRELP{ln: ln, offers: "relp_version=0\nrelp_software=fake\ncommands=syslog",
		onSyslog: func(int, string) relpAction { return ack }}
	t.Cleanup(func() { _ = ln.Close() })
	go s.serve()
	return s
}

func (s *fakeRELP) addr() string { return "relp://" + s.ln.Addr().String() }

func (s *fakeRELP) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		go s.handle(c)
	}
}

func (s *fakeRELP) handle(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 1<<20)
	w := bufio.NewWriter(c)
	for {
		f, err := readRELPFrame(r, 1<<20)
		if err != nil {
			return
		}
		switch f.cmd {
		case "open":
			_, _ = w.Write(appendRELPFrame(nil, f.txnr, "rsp", []byte("200 OK\n"+s.offers)))
		case "close":
			_, _ = w.Write(appendRELPFrame(nil, f.txnr, "rsp", nil))
			_ = w.Flush()
			return
		case "syslog":
			s.mu.Lock()
			s.n++
			n := s.n
			buffered, _ := r.Peek(r.Buffered())
			if out := bytes.Count(buffered, []byte{'\n'}) + 1; out > s.maxOut { // messages hold no LF
				s.maxOut = out
			}
			act := s.onSyslog(n, string(f.data))
			if act == ack {
				s.accepted = append(s.accepted, string(f.data))
			}
			s.mu.Unlock()
			switch act {
			case ack:
				_, _ = w.Write(appendRELPFrame(nil, f.txnr, "rsp", []byte("200 OK")))
			case reject:
				_, _ = w.Write(appendRELPFrame(nil, f.txnr, "rsp", []byte("500 message refused")))
			case hangUp:
				_ = w.Flush()
				closeGracefully(c, r)
				return
			case serverClose:
				_, _ = w.Write(appendRELPFrame(nil, 0, "serverclose", nil))
				_ = w.Flush()
				closeGracefully(c, r)
				return
			case silence:
				continue
			}
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// closeGracefully ends the server's side of c and reads what the client
// still sends until it closes too. Closing with unread data would make the
// kernel reset the connection, and a reset can discard acknowledgements
// the client has not read yet: the client would rightly retry events the
// server counted as accepted, and the test could not tell the two apart.
func closeGracefully(c net.Conn, r *bufio.Reader) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, r)
}

func (s *fakeRELP) acceptedIDs(t *testing.T, o *output) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := map[string]int{}
	for _, m := range s.accepted {
		ids[parse5424(t, m).sd[o.cfg.SDID]["id"]]++
	}
	return ids
}

func relpOutput(t *testing.T, s *fakeRELP, mutate func(*Config)) *output {
	return newTestOutput(t, func(c *Config) {
		c.Address = s.addr()
		c.Reconnect.InitialBackoff = 10 * time.Millisecond
		c.Reconnect.MaxBackoff = 20 * time.Millisecond
		if mutate != nil {
			mutate(c)
		}
	})
}

func events(run string, n int) []*plugins.Event {
	out := make([]*plugins.Event, n)
	for i := range out {
		out[i] = testEvent(run, i, 200)
	}
	return out
}

func TestRELPPipelinesAWindow(t *testing.T) {
	s := newFakeRELP(t)
	o := relpOutput(t, s, func(c *Config) { c.RELP.WindowSize = 64 })
	evs := events("win", 1000)
	if err := o.Write(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	if got := len(s.acceptedIDs(t, o)); got != 1000 {
		t.Fatalf("server accepted %d distinct, want 1000", got)
	}
	s.mu.Lock()
	maxOut := s.maxOut
	s.mu.Unlock()
	if maxOut < 2 || maxOut > 64 {
		t.Errorf("most outstanding commands seen = %d, want 2..64 (pipelined within the window)", maxOut)
	}
	if counterValue(t, o.m.sent) != 1000 {
		t.Errorf("sent metric = %v", counterValue(t, o.m.sent))
	}
}

func TestRELPRejectedMessagesFailAlone(t *testing.T) {
	s := newFakeRELP(t)
	s.onSyslog = func(n int, _ string) relpAction {
		if n == 3 || n == 7 {
			return reject
		}
		return ack
	}
	o := relpOutput(t, s, nil)
	evs := events("rej", 10)
	err := o.Write(t.Context(), evs)
	var be *plugins.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("Write = %v, want a BatchError", err)
	}
	idx := map[int]bool{}
	for _, f := range be.Failures {
		if plugins.IsPermanent(f.Err) {
			t.Errorf("a refused message is retried, not dead-lettered: %v", f.Err)
		}
		if !strings.Contains(f.Err.Error(), "500 message refused") {
			t.Errorf("error = %v", f.Err)
		}
		idx[f.Index] = true
	}
	if len(idx) != 2 || !idx[2] || !idx[6] {
		t.Errorf("failed indexes = %v, want 2 and 6", idx)
	}
	// The connection is still good: the retry goes through on it.
	if err := o.Write(t.Context(), []*plugins.Event{evs[2], evs[6]}); err != nil {
		t.Fatal(err)
	}
	if got := len(s.acceptedIDs(t, o)); got != 10 {
		t.Errorf("accepted %d distinct, want 10", got)
	}
	if s.conns != 1 {
		t.Errorf("%d connections, want 1", s.conns)
	}
}

func TestRELPConnectionLossFailsOnlyUnacked(t *testing.T) {
	for _, act := range []relpAction{hangUp, serverClose} {
		name := map[relpAction]string{hangUp: "hang-up", serverClose: "serverclose"}[act]
		t.Run(name, func(t *testing.T) {
			s := newFakeRELP(t)
			s.onSyslog = func(n int, _ string) relpAction {
				if n == 150 {
					return act
				}
				return ack
			}
			o := relpOutput(t, s, func(c *Config) { c.RELP.WindowSize = 32 })
			evs := events("loss", 400)
			err := o.Write(t.Context(), evs)
			var be *plugins.BatchError
			if !errors.As(err, &be) {
				t.Fatalf("Write = %v, want a BatchError naming the unacknowledged events", err)
			}
			retry := make([]*plugins.Event, 0, len(be.Failures))
			for _, f := range be.Failures {
				if plugins.IsPermanent(f.Err) {
					t.Fatalf("permanent: %v", f.Err)
				}
				retry = append(retry, evs[f.Index])
			}
			acked := len(s.acceptedIDs(t, o))
			if acked < 100 || acked+len(retry) != len(evs) {
				t.Errorf("acked %d + failed %d != %d", acked, len(retry), len(evs))
			}
			if err := o.Write(t.Context(), retry); err != nil {
				t.Fatalf("retry after reconnect: %v", err)
			}
			ids := s.acceptedIDs(t, o)
			if len(ids) != len(evs) {
				t.Errorf("accepted %d distinct events, want %d", len(ids), len(evs))
			}
			for id, c := range ids {
				if c != 1 {
					t.Errorf("%s accepted %d times: acknowledged events must not be resent", id, c)
				}
			}
			if counterValue(t, o.m.reconnects) != 1 {
				t.Errorf("reconnects = %v, want 1", counterValue(t, o.m.reconnects))
			}
		})
	}
}

func TestRELPAckTimeout(t *testing.T) {
	s := newFakeRELP(t)
	s.onSyslog = func(n int, _ string) relpAction {
		if n == 5 {
			return silence
		}
		return ack
	}
	o := relpOutput(t, s, func(c *Config) { c.WriteTimeout = 200 * time.Millisecond; c.RELP.WindowSize = 4 })
	start := time.Now()
	err := o.Write(t.Context(), events("slow", 10))
	if err == nil || !strings.Contains(err.Error(), "no relp acknowledgement within 200ms") {
		t.Fatalf("Write = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestRELPOpenNeedsSyslogCommand(t *testing.T) {
	s := newFakeRELP(t)
	s.offers = "relp_version=0\ncommands=eventlog"
	o := relpOutput(t, s, nil)
	err := o.Write(t.Context(), events("open", 1))
	if err == nil || !strings.Contains(err.Error(), "does not offer the syslog command") {
		t.Fatalf("Write = %v", err)
	}
	if counterValue(t, o.m.errors.WithLabelValues("connect")) != 1 {
		t.Error("connect error not counted")
	}
}

func TestContextCancelInterruptsWrite(t *testing.T) {
	s := newFakeRELP(t)
	s.onSyslog = func(int, string) relpAction { return silence }
	o := relpOutput(t, s, func(c *Config) { c.WriteTimeout = time.Minute })
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := o.Write(ctx, events("ctx", 3)); err == nil {
		t.Fatal("Write succeeded without acks")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancel took %v", d)
	}
}

func TestReconnectBackoff(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens: every dial is refused
	o := newTestOutput(t, func(c *Config) {
		c.Address = "tcp://" + addr
		c.Reconnect.InitialBackoff = 100 * time.Millisecond
		c.Reconnect.MaxBackoff = 400 * time.Millisecond
	})
	start := time.Now()
	for i := 0; i < 4; i++ {
		if err := o.Write(t.Context(), events("bo", 1)); err == nil {
			t.Fatal("Write to a closed port succeeded")
		}
	}
	// Waits before attempts 2..4: ≥ 50, 100, 200 ms (jitter keeps at least half).
	if d := time.Since(start); d < 350*time.Millisecond {
		t.Errorf("4 attempts took %v: no backoff between connection attempts", d)
	}
	if got := counterValue(t, o.m.errors.WithLabelValues("connect")); got != 4 {
		t.Errorf("connect errors = %v, want 4", got)
	}
}

func TestConcurrentWrites(t *testing.T) {
	s := newFakeRELP(t)
	o := relpOutput(t, s, func(c *Config) { c.RELP.WindowSize = 16 })
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs := events("conc"+string(rune('a'+g)), 250)
			for i := 0; i < len(evs); i += 50 {
				if err := o.Write(t.Context(), evs[i:i+50]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ids := s.acceptedIDs(t, o)
	if len(ids) != 1000 {
		t.Fatalf("accepted %d distinct, want 1000", len(ids))
	}
	for id, c := range ids {
		if c != 1 {
			t.Fatalf("%s accepted %d times", id, c)
		}
	}
}

func TestStartWarnsAboutUDP(t *testing.T) {
	var logs bytes.Buffer
	set := plugins.NopSettings("siem")
	set.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	cfg := defaultConfig()
	cfg.Address = "udp://127.0.0.1:15514"
	o, err := newOutput(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(t.Context())
	if err := o.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "UDP can lose events") {
		t.Errorf("no UDP warning at start: %s", logs.String())
	}
}

func TestStartWithUnreachableReceiverIsNotFatal(t *testing.T) {
	var status []error
	set := plugins.NopSettings("siem")
	set.Status = plugins.StatusFunc(func(err error) { status = append(status, err) })
	cfg := defaultConfig()
	cfg.Address = "relp://127.0.0.1:1"
	o, err := newOutput(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(t.Context())
	if err := o.Start(t.Context()); err != nil {
		t.Fatalf("Start = %v, want nil (retried on Write)", err)
	}
	if len(status) == 0 || status[len(status)-1] == nil {
		t.Errorf("status after a failed first connection = %v, want not ready", status)
	}
}
