package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/rpc"
)

// Supervision tuning.
const (
	// notReadyAfter consecutive crashes (without a successful call in
	// between) make the component not ready.
	notReadyAfter = 3
	// poisonCrashes crashes while processing one transform batch make it
	// a permanent failure (dead letter) rather than a crash loop.
	poisonCrashes = 5
	// Restart delays grow from firstRestart, doubling, up to maxRestart.
	firstRestart = 100 * time.Millisecond
	maxRestart   = 30 * time.Second
)

// errClosed is returned by calls on a component after Close.
var errClosed = errors.New("plugin component is closed")

// spec is everything needed to (re)create one remote component.
type spec struct {
	launch launchConfig
	kind   plugins.Kind
	typ    string
	config []byte
	set    plugins.Settings
}

// handle is one live instance in one plugin process.
type handle struct {
	proc   *process
	id     uint64
	ctx    context.Context
	cancel context.CancelFunc
	// failed makes whoever notices the crash first handle it, and the
	// others wait until it is handled.
	failed sync.Once
}

// supervisor keeps one remote component alive: it restarts a crashed
// plugin process with backoff, re-creates (and re-starts) the instance in
// it, and reports health. Calls wait for a live instance.
type supervisor struct {
	spec   spec
	log    *slog.Logger
	status plugins.StatusReporter

	failing atomic.Bool // fast path of ok()

	mu        sync.Mutex
	cur       *handle
	ready     chan struct{} // closed while cur != nil or closed
	stop      chan struct{}
	started   bool
	closed    bool
	crashes   int // consecutive, without a successful call in between
	restarts  int
	lastPanic string
	notReady  error
	pluginErr error
}

// newSupervisor starts the plugin and creates the instance.
func newSupervisor(ctx context.Context, sp spec) (*supervisor, error) {
	s := &supervisor{spec: sp, log: sp.set.Logger, status: sp.set.Status, ready: make(chan struct{}), stop: make(chan struct{})}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.status == nil {
		s.status = plugins.StatusFunc(func(error) {})
	}
	h, err := s.spawn(ctx, false)
	if err != nil {
		return nil, err
	}
	s.cur = h
	close(s.ready)
	go s.watch(h)
	return s, nil
}

// spawn starts a process and creates (and, when start, starts) the instance.
func (s *supervisor) spawn(ctx context.Context, start bool) (*handle, error) {
	lc := s.spec.launch
	lc.logger = s.log
	p, err := launch(lc)
	if err != nil {
		return nil, err
	}
	id, err := p.rpc.Create(ctx, s.spec.kind, s.spec.typ, s.spec.config,
		rpc.CreateSettings{ID: s.spec.set.ID, DataDir: s.spec.set.DataDir, Once: s.spec.set.Once})
	if err != nil {
		p.kill()
		return nil, err
	}
	if start {
		if err := p.rpc.Start(ctx, id); err != nil {
			_ = p.rpc.Close(ctx, id)
			p.kill()
			return nil, fmt.Errorf("start: %w", err)
		}
	}
	s.log.Debug("plugin instance created", "pid", p.pid, "shared_memory", p.rpc.SharedMemory(),
		"parallel", p.rpc.Parallel(id))
	hctx, cancel := context.WithCancel(context.Background())
	return &handle{proc: p, id: id, ctx: hctx, cancel: cancel}, nil
}

// watch notices the process exiting even when no call is in flight, and
// forwards the plugin's own status reports.
func (s *supervisor) watch(h *handle) {
	go func() {
		_ = h.proc.rpc.WatchStatus(h.ctx, h.id, func(err error) {
			s.mu.Lock()
			if s.cur != h {
				s.mu.Unlock()
				return
			}
			s.pluginErr = err
			s.mu.Unlock()
			s.report()
		})
	}()
	select {
	case <-h.proc.rpc.Done():
		s.fail(h, fmt.Errorf("%w: the process exited", rpc.ErrCrashed))
	case <-h.ctx.Done():
	}
}

// get returns the live instance, waiting while the plugin restarts.
func (s *supervisor) get(ctx context.Context) (*handle, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, errClosed
		}
		if h := s.cur; h != nil {
			s.mu.Unlock()
			return h, nil
		}
		ch := s.ready
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for the plugin to restart: %w", ctx.Err())
		}
	}
}

// ok records that h answered: the crash streak is over.
func (s *supervisor) ok(h *handle) {
	if !s.failing.Load() {
		return
	}
	s.mu.Lock()
	if s.cur != h {
		s.mu.Unlock()
		return
	}
	s.crashes = 0
	s.failing.Store(false)
	was := s.notReady
	s.notReady = nil
	s.mu.Unlock()
	if was != nil {
		s.log.Info("plugin is running again")
	}
	s.report()
}

// report sends the combined status: not ready while crash-looping,
// otherwise what the plugin itself reports.
func (s *supervisor) report() {
	s.mu.Lock()
	err := s.notReady
	if err == nil {
		err = s.pluginErr
	}
	s.mu.Unlock()
	s.status.SetStatus(err)
}

// fail handles the crash of h (once, whoever notices first; the others
// return when it is handled): it reaps the process, logs the crash with the
// plugin's panic, and schedules a restart.
func (s *supervisor) fail(h *handle, cause error) {
	h.failed.Do(func() { s.handleCrash(h, cause) })
}

func (s *supervisor) handleCrash(h *handle, cause error) {
	s.mu.Lock()
	if s.cur != h || s.closed {
		s.mu.Unlock()
		return
	}
	s.cur = nil
	s.ready = make(chan struct{})
	s.mu.Unlock()

	h.cancel()
	h.proc.kill() // waits until its stderr is drained, so the panic is complete
	panicText := h.proc.logs.LastPanic()
	delay, n := s.crashed(panicText)
	s.log.Error("plugin crashed; restarting it", "error", cause, "panic", firstLine(panicText),
		"pid", h.proc.pid, "crashes_in_a_row", n, "restart_in", delay.String())
	go s.restart(delay)
}

// crashed counts one more crash and returns the delay before the next start.
func (s *supervisor) crashed(panicText string) (time.Duration, int) {
	s.mu.Lock()
	s.crashes++
	n := s.crashes
	s.failing.Store(true)
	if panicText != "" {
		s.lastPanic = panicText
	}
	last := s.lastPanic
	becameNotReady := false
	if n >= notReadyAfter {
		becameNotReady = s.notReady == nil
		msg := fmt.Sprintf("plugin %s crashed %d times in a row", s.spec.launch.path, n)
		if last != "" {
			msg += "; last panic: " + firstLine(last)
		}
		s.notReady = errors.New(msg)
	}
	s.mu.Unlock()
	if becameNotReady {
		s.log.Error("plugin keeps crashing; the component is not ready until it runs again",
			"crashes_in_a_row", n, "last_panic", last)
	}
	s.report()
	return restartDelay(n), n
}

func restartDelay(n int) time.Duration {
	d := firstRestart
	for i := 1; i < n && d < maxRestart; i++ {
		d *= 2
	}
	d = min(d, maxRestart)
	return d/2 + rand.N(d/2+1)
}

// restart starts a new process after delay, retrying with backoff.
func (s *supervisor) restart(delay time.Duration) {
	for {
		select {
		case <-time.After(delay):
		case <-s.stop:
			return
		}
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		timeout := s.spec.launch.startTimeout
		if timeout <= 0 {
			timeout = DefaultStartTimeout
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
		h, err := s.spawn(ctx, started)
		cancel()
		if err != nil {
			var n int
			delay, n = s.crashed("")
			s.log.Error("plugin restart failed", "error", err, "crashes_in_a_row", n, "retry_in", delay.String())
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			s.discard(h)
			return
		}
		s.restarts++
		// Logged before callers can use the new process, so the record
		// precedes anything they log about it.
		s.log.Info("plugin restarted", "pid", h.proc.pid, "restarts", s.restarts)
		s.cur = h
		s.pluginErr = nil
		close(s.ready)
		s.mu.Unlock()
		go s.watch(h)
		return
	}
}

func (s *supervisor) discard(h *handle) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = h.proc.rpc.Close(ctx, h.id)
	h.cancel()
	h.proc.kill()
}

// Start starts the instance.
func (s *supervisor) Start(ctx context.Context) error {
	h, err := s.get(ctx)
	if err != nil {
		return err
	}
	if err := h.proc.rpc.Start(ctx, h.id); err != nil {
		if errors.Is(err, rpc.ErrCrashed) {
			s.fail(h, err)
		}
		return err
	}
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	return nil
}

// Close closes the instance and stops the process; later calls are no-ops.
func (s *supervisor) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	h := s.cur
	s.cur = nil
	if h == nil {
		close(s.ready) // wake callers waiting for a restart
	}
	close(s.stop)
	s.mu.Unlock()
	if h == nil {
		return nil
	}
	err := h.proc.rpc.Close(ctx, h.id)
	h.cancel()
	h.proc.kill()
	return err
}

// lastPanicText returns the last panic seen, for error messages.
func (s *supervisor) lastPanicText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastPanic
}

// pid returns the live process id, or 0 (for tests and diagnostics).
func (s *supervisor) pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return 0
	}
	return s.cur.proc.pid
}
