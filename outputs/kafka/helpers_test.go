package kafka

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditforwarder/forwarder/plugins"
)

func init() {
	// Fast health checks so readiness tests finish quickly.
	healthInterval = 100 * time.Millisecond
	pingTimeout = 2 * time.Second
	topicRecheck = 50 * time.Millisecond
}

// statusRecorder captures Settings.Status reports.
type statusRecorder struct {
	mu      sync.Mutex
	last    error
	reports []string
}

func (s *statusRecorder) SetStatus(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = err
	if err == nil {
		s.reports = append(s.reports, "ready")
	} else {
		s.reports = append(s.reports, err.Error())
	}
}

func (s *statusRecorder) get() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// waitStatus waits until the status satisfies ok.
func (s *statusRecorder) waitStatus(t *testing.T, what string, timeout time.Duration, ok func(error) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok(s.get()) {
		if time.Now().After(deadline) {
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("status never became %s; reports: %q", what, s.reports)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type testEnv struct {
	set    plugins.Settings
	status *statusRecorder
	logs   *syncBuffer
	reg    *prometheus.Registry
}

func newTestEnv(id string) *testEnv {
	e := &testEnv{status: &statusRecorder{}, logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	e.set = plugins.Settings{
		ID:      id,
		Logger:  slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics: e.reg,
		Status:  e.status,
		Now:     time.Now,
	}
	return e
}

// startOutput creates and starts an output; it is closed at cleanup.
func startOutput(t *testing.T, env *testEnv, cfg *Config) *output {
	t.Helper()
	o := createOutput(t, env, cfg)
	if err := o.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return o
}

func createOutput(t *testing.T, env *testEnv, cfg *Config) *output {
	t.Helper()
	if err := plugins.ValidateConfig("outputs.kafka", cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	o, err := newOutput(env.set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = o.Close(ctx)
	})
	return o
}

var eventBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// makeEvent builds an ECS-like document of roughly size bytes.
func makeEvent(seq int, dataset, source string, size int) *plugins.Event {
	id := "ev-" + strconv.Itoa(seq)
	ts := eventBase.Add(time.Duration(seq) * time.Millisecond)
	o := plugins.NewObject(8)
	o.SetKey("@timestamp", ts.Format("2006-01-02T15:04:05.000Z"))
	ev := plugins.NewObject(6)
	ev.SetKey("id", id)
	ev.SetKey("dataset", dataset)
	ev.SetKey("kind", "event")
	ev.SetKey("action", "login")
	ev.SetKey("outcome", "success")
	o.SetKey("event", ev)
	src := plugins.NewObject(1)
	src.SetKey("ip", "203.0.113."+strconv.Itoa(seq%250+1))
	o.SetKey("source", src)
	user := plugins.NewObject(1)
	user.SetKey("name", "u***@example.com")
	o.SetKey("user", user)
	o.SetKey("message", strings.Repeat("x", max(0, size-230)))
	return &plugins.Event{Fields: o, Meta: plugins.Meta{Source: source, Dataset: dataset, ID: id, Time: ts}}
}

func makeEvents(from, n int, dataset, source string, size int) []*plugins.Event {
	out := make([]*plugins.Event, n)
	for i := range out {
		out[i] = makeEvent(from+i, dataset, source, size)
	}
	return out
}

// consume reads topic from the start until want records arrived (or the
// timeout passed) and returns them.
func consume(t *testing.T, brokers []string, topic string, want int, timeout time.Duration, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	opts = append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(topic string, p int32, err error) {
			if ctx.Err() == nil {
				t.Logf("fetch %s/%d: %v", topic, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// recordIDs returns the keys of records.
func recordIDs(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Key)
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return fmt.Sprintf("<no %s header>", key)
}
