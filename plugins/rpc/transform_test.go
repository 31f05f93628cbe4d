package rpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// transformCases are transforms whose remote result must equal their
// in-process result exactly: documents (including key order) and meta.
var transformCases = []struct {
	name string
	fn   func([]*plugins.Event) ([]*plugins.Event, error)
	// patched: every event should come back as patches, not whole.
	patched bool
}{
	{"identity", func(e []*plugins.Event) ([]*plugins.Event, error) { return e, nil }, true},
	{"set nested", func(e []*plugins.Event) ([]*plugins.Event, error) {
		for _, ev := range e {
			ev.Fields.Set("source.owner", "team-a")
			ev.Fields.Set("labels.env", "prod")
		}
		return e, nil
	}, true},
	{"delete and add", func(e []*plugins.Event) ([]*plugins.Event, error) {
		for _, ev := range e {
			ev.Fields.DeleteKey("tags")
			ev.Fields.SetKey("added", []any{1, "x", nil})
			ev.Fields.SetKey("source", "flattened")
		}
		return e, nil
	}, true},
	{"meta", func(e []*plugins.Event) ([]*plugins.Event, error) {
		for _, ev := range e {
			ev.Meta.Dataset = "changed"
			ev.Meta.Time = time.Time{}
		}
		return e, nil
	}, true},
	{"replace document", func(e []*plugins.Event) ([]*plugins.Event, error) {
		for _, ev := range e {
			o := plugins.NewObject(1)
			o.SetKey("only", true)
			ev.Fields = o
		}
		return e, nil
	}, false},
	{"reordered keys", func(e []*plugins.Event) ([]*plugins.Event, error) {
		for _, ev := range e {
			v, _ := ev.Fields.GetKey("@timestamp")
			ev.Fields.DeleteKey("@timestamp")
			ev.Fields.SetKey("@timestamp", v)
			ev.Fields.DeleteKey("n")
			o := plugins.NewObject(1)
			o.SetKey("z", 1)
			ev.Fields.SetKey("n", o)
		}
		return e, nil
	}, true},
	{"drop, reorder, duplicate and add", func(e []*plugins.Event) ([]*plugins.Event, error) {
		extra := plugins.NewEvent()
		extra.Fields.SetKey("new", "event")
		extra.Meta = plugins.Meta{Source: "t", ID: "new-1", Time: time.Unix(100, 0).UTC()}
		return []*plugins.Event{e[2], e[0], e[0], extra}, nil
	}, false},
	{"drop all", func(e []*plugins.Event) ([]*plugins.Event, error) { return nil, nil }, true},
}

func TestProcessMatchesInProcess(t *testing.T) {
	for _, tc := range transformCases {
		t.Run(tc.name, func(t *testing.T) {
			h := connect(t, tc.fn, nil, nil)
			ctx := ctxT(t)
			id, err := h.client.Create(ctx, plugins.KindTransform, "test_transform", nil, CreateSettings{ID: "t"})
			if err != nil {
				t.Fatal(err)
			}
			local := sampleEvents(3)
			remote := sampleEvents(3)
			want, err := tc.fn(local)
			if err != nil {
				t.Fatal(err)
			}
			got, err := h.client.Process(ctx, id, remote)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("got %d events, want %d", len(got), len(want))
			}
			for i := range want {
				g, w := string(got[i].AppendJSON(nil)), string(want[i].AppendJSON(nil))
				if g != w {
					t.Errorf("event %d:\n got %s\nwant %s", i, g, w)
				}
				if !sameMeta(&got[i].Meta, &want[i].Meta) || got[i].Meta.Time.IsZero() != want[i].Meta.Time.IsZero() {
					t.Errorf("event %d meta: got %+v, want %+v", i, got[i].Meta, want[i].Meta)
				}
			}
		})
	}
}

func TestProcessSendsPatches(t *testing.T) {
	for _, tc := range transformCases {
		if !tc.patched {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			c := &created{}
			srv, err := NewServer(testFactories(c, tc.fn, nil, nil), ServerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			cr, _ := srv.Create(context.Background(), &CreateRequest{Kind: Kind_KIND_TRANSFORM, Type: "test_transform"})
			evs := encodeEvents(sampleEvents(3), &buffers{})
			resp, err := srv.Process(context.Background(), &ProcessRequest{Instance: cr.Instance, Events: evs})
			if err != nil || resp.Error != nil {
				t.Fatal(err, resp.Error)
			}
			for i, oe := range resp.Events {
				if oe.Replace || oe.Origin == 0 {
					t.Errorf("event %d sent whole", i)
				}
			}
		})
	}
}

func TestProcessErrorsAndChunks(t *testing.T) {
	old := chunkBytes
	chunkBytes = 1 << 10
	t.Cleanup(func() { chunkBytes = old })
	var calls atomic.Int64
	fn := func(e []*plugins.Event) ([]*plugins.Event, error) {
		calls.Add(1)
		for _, ev := range e {
			if v, _ := ev.Fields.GetKey("bad"); v == true {
				return nil, plugins.Permanent(errors.New("cannot map"))
			}
			ev.Fields.SetKey("seen", true)
		}
		return e, nil
	}
	h := connect(t, fn, nil, nil)
	ctx := ctxT(t)
	id, err := h.client.Create(ctx, plugins.KindTransform, "test_transform", nil, CreateSettings{ID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	events := sampleEvents(20)
	got, err := h.client.Process(ctx, id, events)
	if err != nil || len(got) != 20 || calls.Load() < 2 {
		t.Fatalf("Process: %d events, %v, %d requests", len(got), err, calls.Load())
	}
	for i, ev := range got {
		if ev != events[i] {
			t.Fatalf("event %d is not the host's own event modified in place", i)
		}
		if v, _ := ev.Fields.GetKey("seen"); v != true {
			t.Fatalf("event %d not transformed: %s", i, ev.AppendJSON(nil))
		}
	}
	events[5].Fields.SetKey("bad", true)
	if _, err := h.client.Process(ctx, id, events); !plugins.IsPermanent(err) || err.Error() != "cannot map" {
		t.Fatalf("Process error = %v", err)
	}
	if got, err := h.client.Process(ctx, id, nil); err != nil || len(got) != 0 {
		t.Fatalf("empty Process = %v, %v", got, err)
	}
}

func TestSourceRunBackpressureAndCheckpoints(t *testing.T) {
	var emitted atomic.Int64
	h := connect(t, nil, nil, &emitted)
	ctx := ctxT(t)
	id, err := h.client.Create(ctx, plugins.KindSource, "test_source", []byte(`{"count": 5}`), CreateSettings{ID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var got []string
	var cps []string
	emit := func(_ context.Context, b plugins.Batch) error {
		<-release
		for _, ev := range b.Events {
			id, _ := ev.Fields.GetString("event.id")
			got = append(got, id)
			if ev.Meta.Time.Nanosecond() != 6000 || ev.Meta.Dataset != "test" || !ev.Meta.Received.IsZero() {
				t.Errorf("meta lost: %+v", ev.Meta)
			}
		}
		cps = append(cps, string(b.Checkpoint))
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- h.client.Run(ctx, id, plugins.Checkpoint("2"), emit) }()
	time.Sleep(100 * time.Millisecond)
	if n := emitted.Load(); n != 0 {
		t.Fatalf("the plugin's Emit returned %d times before the host accepted a batch", n)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "ev-2,ev-3,ev-4" || strings.Join(cps, ",") != "3,4,5" {
		t.Fatalf("events %v checkpoints %v", got, cps)
	}
}

func TestSourceRunErrors(t *testing.T) {
	h := connect(t, nil, nil, nil)
	ctx := ctxT(t)
	noop := func(context.Context, plugins.Batch) error { return nil }
	tests := []struct {
		config string
		from   plugins.Checkpoint
		check  func(error) bool
	}{
		{`{"mode":"fail"}`, nil, func(err error) bool { return err != nil && !plugins.IsPermanent(err) && err.Error() == "source failed" }},
		{`{"mode":"permanent"}`, nil, func(err error) bool { return plugins.IsPermanent(err) }},
		{`{}`, plugins.Checkpoint("garbage"), func(err error) bool {
			return plugins.IsPermanent(err) && strings.Contains(err.Error(), `bad checkpoint "garbage"`)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.config+string(tt.from), func(t *testing.T) {
			id, err := h.client.Create(ctx, plugins.KindSource, "test_source", []byte(tt.config), CreateSettings{ID: "s"})
			if err != nil {
				t.Fatal(err)
			}
			if err := h.client.Run(ctx, id, tt.from, noop); !tt.check(err) {
				t.Fatalf("Run = %v", err)
			}
		})
	}

	// Cancelling the host's context ends Run with nil, and an emit error
	// (the pipeline shutting down) reaches the plugin's Emit.
	id, err := h.client.Create(ctx, plugins.KindSource, "test_source", []byte(`{"mode":"wait","count":1}`), CreateSettings{ID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- h.client.Run(rctx, id, nil, func(context.Context, plugins.Batch) error { cancel(); return fmt.Errorf("shutting down") })
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// blockingTransform returns a transform function that waits for block,
// and a function that makes a Process call on h, stops the server while
// the plugin is inside it, and returns the call's error.
func blockingTransform() (fn func([]*plugins.Event) ([]*plugins.Event, error), dieDuringProcess func(t *testing.T, h *harness) error) {
	block := make(chan struct{})
	fn = func(e []*plugins.Event) ([]*plugins.Event, error) { <-block; return e, nil }
	return fn, func(t *testing.T, h *harness) error {
		t.Helper()
		ctx := ctxT(t)
		id, err := h.client.Create(ctx, plugins.KindTransform, "test_transform", nil, CreateSettings{ID: "t"})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := h.client.Process(ctx, id, sampleEvents(1))
			done <- err
		}()
		time.Sleep(100 * time.Millisecond)
		h.server.Stop()
		close(block)
		return <-done
	}
}

func TestCrashIsReported(t *testing.T) {
	fn, dieDuringProcess := blockingTransform()
	h := connect(t, fn, nil, nil)
	if err := dieDuringProcess(t, h); !errors.Is(err, ErrCrashed) {
		t.Fatalf("Process after the server died = %v, want ErrCrashed", err)
	}
	ctx := ctxT(t)
	if _, err := h.client.Describe(ctx); !errors.Is(err, ErrCrashed) {
		t.Fatalf("Describe after the server died = %v, want ErrCrashed", err)
	}
}

func TestWatchStatus(t *testing.T) {
	h := connect(t, nil, nil, nil)
	ctx := ctxT(t)
	id, err := h.client.Create(ctx, plugins.KindOutput, "test_output", nil, CreateSettings{ID: "o"})
	if err != nil {
		t.Fatal(err)
	}
	reports := make(chan error, 10)
	done := make(chan error, 1)
	go func() { done <- h.client.WatchStatus(ctx, id, func(err error) { reports <- err }) }()
	if err := <-reports; err != nil {
		t.Fatalf("first report = %v, want ready", err)
	}
	status := h.created.output(0).set.Status
	status.SetStatus(errors.New("backend down"))
	if err := <-reports; err == nil || err.Error() != "backend down" {
		t.Fatalf("report = %v, want backend down", err)
	}
	status.SetStatus(nil)
	if err := <-reports; err != nil {
		t.Fatalf("report = %v, want ready", err)
	}
	if err := h.client.Close(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("WatchStatus ended with %v after Close", err)
	}
}

// TestMessageLimitIsPermanent: a request the plugin's gRPC server refuses
// as too large (go-plugin's test server keeps gRPC's 4 MiB default) is a
// permanent error, not a crash.
func TestMessageLimitIsPermanent(t *testing.T) {
	h := connect(t, nil, nil, nil)
	ctx := ctxT(t)
	id, err := h.client.Create(ctx, plugins.KindOutput, "test_output", nil, CreateSettings{ID: "o"})
	if err != nil {
		t.Fatal(err)
	}
	ev := plugins.NewEvent()
	ev.Fields.SetKey("big", strings.Repeat("x", 5<<20))
	err = h.client.Write(ctx, id, []*plugins.Event{ev})
	if !plugins.IsPermanent(err) || errors.Is(err, ErrCrashed) || !strings.Contains(err.Error(), "message above the 64 MiB limit") {
		t.Fatalf("Write of a 5 MiB event = %v", err)
	}
}

// gatedTransform holds each Process call until `want` calls are in flight
// at once (or a second has passed), recording the most it saw and which
// fork ran each call.
type gatedTransform struct {
	lifecycle
	want         int
	mu           sync.Mutex
	active, most int
	arrived      chan struct{}
	forks        atomic.Int64
}

func (g *gatedTransform) run(fork int64, events []*plugins.Event) ([]*plugins.Event, error) {
	g.mu.Lock()
	g.active++
	g.most = max(g.most, g.active)
	g.mu.Unlock()
	deadline := time.After(time.Second)
	for done := false; !done; {
		g.mu.Lock()
		done = g.active >= g.want
		g.mu.Unlock()
		select {
		case <-deadline:
			done = true
		case <-time.After(time.Millisecond):
		}
	}
	for _, ev := range events {
		ev.Fields.SetKey("fork", fork)
	}
	g.mu.Lock()
	g.active--
	g.mu.Unlock()
	return events, nil
}

func (g *gatedTransform) Process(_ context.Context, events []*plugins.Event) ([]*plugins.Event, error) {
	return g.run(0, events)
}

type parallelGated struct{ *gatedTransform }

func (p parallelGated) Fork() plugins.ProcessFunc {
	id := p.forks.Add(1)
	return func(_ context.Context, events []*plugins.Event) ([]*plugins.Event, error) { return p.run(id, events) }
}

// A plugin transform that is a plugins.ParallelTransform says so in
// Create, and the plugin runs concurrent Process calls at once, each on a
// fork; any other transform runs one call at a time, as in process.
func TestParallelTransformRunsForksAtOnce(t *testing.T) {
	for _, parallel := range []bool{true, false} {
		t.Run(fmt.Sprintf("parallel=%v", parallel), func(t *testing.T) {
			g := &gatedTransform{want: 2}
			f := plugins.NewTransformFactory("gated", "", nil, defaultTestConfig,
				func(context.Context, plugins.Settings, *testConfig) (plugins.Transform, error) {
					if parallel {
						return parallelGated{g}, nil
					}
					return g, nil
				})
			h := connectFactories(t, supportedFeatures, supportedFeatures, []plugins.Factory{f}, ServerConfig{})
			ctx := ctxT(t)
			id, err := h.client.Create(ctx, plugins.KindTransform, "gated", nil, CreateSettings{ID: "g"})
			if err != nil {
				t.Fatal(err)
			}
			if h.client.Parallel(id) != parallel {
				t.Fatalf("Parallel(%d) = %v, want %v", id, !parallel, parallel)
			}
			if err := h.client.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			results := make(chan []*plugins.Event, 2)
			for b := range 2 {
				go func() {
					out, err := h.client.Process(ctx, id, sampleEvents(b+1))
					if err != nil {
						t.Error(err)
					}
					results <- out
				}()
			}
			forks := map[any]bool{}
			for range 2 {
				out := <-results
				if len(out) == 0 {
					t.Fatalf("got %d events", len(out))
				}
				v, _ := out[0].Fields.GetKey("fork")
				forks[fmt.Sprint(v)] = true
			}
			want := 1
			if parallel {
				want = 2
			}
			g.mu.Lock()
			most := g.most
			g.mu.Unlock()
			if most != want || len(forks) != want {
				t.Fatalf("calls in flight at once: %d, forks used: %v; want %d", most, forks, want)
			}
		})
	}
}
