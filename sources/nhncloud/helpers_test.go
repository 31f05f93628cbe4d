package nhncloud

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/sources/internal/httppoll"
)

// Distinctive credentials: a test greps logs and errors for them.
const (
	testAppKey = "tAPPKEYx9Q2w7Zr4"
	testKeyID  = "tKEYIDm3Vb8Lp1"
	testSecret = "tSECRETk5Hs0Yd6Jq"
)

func testSecrets() []string { return []string{testAppKey, testKeyID, testSecret} }

type testEnv struct {
	sim *Simulator
	srv *httptest.Server
}

func newTestEnv(t testing.TB, opts SimulatorOptions) *testEnv {
	t.Helper()
	if opts.AppKey == "" {
		opts.AppKey, opts.UserAccessKeyID, opts.SecretAccessKey = testAppKey, testKeyID, testSecret
	}
	opts.RecordRequests = true
	sim := NewSimulator(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &testEnv{sim: sim, srv: srv}
}

func (e *testEnv) config(version string) *Config {
	cfg := defaultConfig()
	cfg.Endpoint = e.srv.URL
	cfg.APIVersion = version
	cfg.AppKey, cfg.UserAccessKeyID, cfg.SecretAccessKey = testAppKey, testKeyID, testSecret
	cfg.RateLimit = 500
	cfg.Timeout = 5 * time.Second
	return cfg
}

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// statusRecorder keeps the reported statuses.
type statusRecorder struct {
	mu   sync.Mutex
	last error
	seen []string
}

func (s *statusRecorder) SetStatus(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = err
	if err != nil {
		s.seen = append(s.seen, err.Error())
	}
}

func (s *statusRecorder) Last() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// testSettings returns settings whose logs go to the returned buffer, with
// no secret scrubbing: what the source writes is what the test sees.
func testSettings(once bool) (plugins.Settings, *logBuffer, *statusRecorder) {
	set := plugins.NopSettings("nhn")
	lb := &logBuffer{}
	set.Logger = slog.New(slog.NewJSONHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st := &statusRecorder{}
	set.Status = st
	set.Once = once
	return set, lb, st
}

// collector gathers emitted batches.
type collector struct {
	mu      sync.Mutex
	events  []*plugins.Event
	batches int
	last    plugins.Checkpoint
}

func (c *collector) emit(_ context.Context, b plugins.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, b.Events...)
	c.batches++
	if b.Checkpoint != nil {
		c.last = b.Checkpoint
	}
	return nil
}

func (c *collector) ids() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]int{}
	for _, e := range c.events {
		m[e.Meta.ID]++
	}
	return m
}

func assertNoSecrets(t *testing.T, what, text string) {
	t.Helper()
	for _, s := range testSecrets() {
		if strings.Contains(text, s) {
			t.Errorf("%s contains the secret %q", what, s)
		}
	}
}

func runSource(t *testing.T, set plugins.Settings, cfg *Config, from plugins.Checkpoint, emit plugins.Emit) error {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	src, err := newSourceTuned(set, cfg, fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return src.Run(ctx, from, emit)
}

// fastRetries shortens the poller's backoffs so fault-heavy tests stay quick.
func fastRetries(c *httppoll.Config) {
	c.Retry.Initial, c.Retry.Max = 5*time.Millisecond, 50*time.Millisecond
	c.Retry.AuthInitial, c.Retry.AuthMax = 20*time.Millisecond, 100*time.Millisecond
}
