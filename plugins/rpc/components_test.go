package rpc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// Test components served in process through go-plugin's test connection.

type testConfig struct {
	Count    int            `koanf:"count"`
	Token    plugins.Secret `koanf:"token"`
	Mode     string         `koanf:"mode"`
	Interval time.Duration  `koanf:"interval"`
	Nested   struct {
		Limit int `koanf:"limit"`
	} `koanf:"nested"`
}

func (c *testConfig) Validate() error {
	var errs []error
	if c.Count < 0 || c.Count > 100 {
		errs = append(errs, plugins.FieldErrorf("count", "must be between 0 and 100, got %d", c.Count))
	}
	if c.Nested.Limit < 0 {
		errs = append(errs, plugins.FieldErrorf("nested.limit", "must not be negative"))
	}
	return errors.Join(errs...)
}

func defaultTestConfig() *testConfig { return &testConfig{Count: 3, Mode: "ok"} }

// lifecycle records calls for assertions.
type lifecycle struct {
	mu      sync.Mutex
	calls   []string
	started atomic.Bool
}

func (l *lifecycle) record(s string) {
	l.mu.Lock()
	l.calls = append(l.calls, s)
	l.mu.Unlock()
}

func (l *lifecycle) Start(ctx context.Context) error {
	l.record("start")
	l.started.Store(true)
	return nil
}

func (l *lifecycle) Close(context.Context) error {
	l.record("close")
	return nil
}

// ---- source ----

type testSource struct {
	lifecycle
	cfg     *testConfig
	emitted *atomic.Int64
}

func (s *testSource) Run(ctx context.Context, from plugins.Checkpoint, emit plugins.Emit) error {
	next := 0
	if from != nil {
		n, err := strconv.Atoi(string(from))
		if err != nil {
			return plugins.Permanent(fmt.Errorf("bad checkpoint %q", from))
		}
		next = n
	}
	for ; next < s.cfg.Count; next++ {
		ev := plugins.NewEvent()
		ev.Fields.Set("event.id", "ev-"+strconv.Itoa(next))
		ev.Fields.Set("n", next)
		ev.Meta = plugins.Meta{Source: "src", Dataset: "test", ID: "ev-" + strconv.Itoa(next),
			Time: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)}
		if err := emit(ctx, plugins.Batch{Events: []*plugins.Event{ev}, Checkpoint: plugins.Checkpoint(strconv.Itoa(next + 1))}); err != nil {
			return nil
		}
		if s.emitted != nil {
			s.emitted.Add(1)
		}
	}
	switch s.cfg.Mode {
	case "fail":
		return errors.New("source failed")
	case "permanent":
		return plugins.Permanent(errors.New("source is broken"))
	case "wait":
		<-ctx.Done()
	}
	return nil
}

// ---- transform ----

type testTransform struct {
	lifecycle
	fn func([]*plugins.Event) ([]*plugins.Event, error)
}

func (t *testTransform) Process(_ context.Context, events []*plugins.Event) ([]*plugins.Event, error) {
	return t.fn(events)
}

// ---- output ----

type testOutput struct {
	lifecycle
	cfg *testConfig
	set plugins.Settings
	mu  sync.Mutex
	got []*plugins.Event
	err func([]*plugins.Event) error
}

func (o *testOutput) Write(_ context.Context, events []*plugins.Event) error {
	o.mu.Lock()
	// The events are the output's only until Write returns (their memory
	// serves the next request): keep copies.
	for _, ev := range events {
		o.got = append(o.got, ev.Detached())
	}
	o.mu.Unlock()
	if o.err != nil {
		return o.err(events)
	}
	return nil
}

// registry of instances created, so tests can reach into them.
type created struct {
	mu   sync.Mutex
	srcs []*testSource
	trs  []*testTransform
	outs []*testOutput
}

func testFactories(c *created, trFn func([]*plugins.Event) ([]*plugins.Event, error), outErr func([]*plugins.Event) error, emitted *atomic.Int64) []plugins.Factory {
	sample := []byte("sources:\n  s:\n    type: test_source\n    count: 3\n")
	return []plugins.Factory{
		plugins.NewSourceFactory("test_source", "a test source", sample, defaultTestConfig,
			func(_ context.Context, _ plugins.Settings, cfg *testConfig) (plugins.Source, error) {
				if cfg.Mode == "fail_create" {
					return nil, errors.New("cannot create: resource missing")
				}
				s := &testSource{cfg: cfg, emitted: emitted}
				c.mu.Lock()
				c.srcs = append(c.srcs, s)
				c.mu.Unlock()
				return s, nil
			}),
		plugins.NewTransformFactory("test_transform", "a test transform", nil, defaultTestConfig,
			func(_ context.Context, _ plugins.Settings, _ *testConfig) (plugins.Transform, error) {
				t := &testTransform{fn: trFn}
				c.mu.Lock()
				c.trs = append(c.trs, t)
				c.mu.Unlock()
				return t, nil
			}),
		plugins.NewOutputFactory("test_output", "a test output", nil, defaultTestConfig,
			func(_ context.Context, set plugins.Settings, cfg *testConfig) (plugins.Output, error) {
				o := &testOutput{cfg: cfg, set: set, err: outErr}
				c.mu.Lock()
				c.outs = append(c.outs, o)
				c.mu.Unlock()
				return o, nil
			}),
	}
}

func (o *testOutput) events() []*plugins.Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*plugins.Event(nil), o.got...)
}

func (l *lifecycle) callList() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.calls, ",")
}

func (c *created) output(i int) *testOutput {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outs[i]
}
