package engine

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/checkpoint"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/plugins"
)

// ---- scripted components ----

type scriptSource struct {
	batches, size int
	start         int // first batch to emit when no checkpoint
	emitted       atomic.Int64
	blockAfter    int // emit this many batches then wait for ctx (0 = never)
	prefix        string
	// release sets Batch.Release: it counts the call and poisons the
	// events, so a consumer still reading them shows up as a data race
	// (-race) or as a "released" id in an output.
	release  bool
	released atomic.Int64
	twice    atomic.Int64 // batches released more than once
}

func (s *scriptSource) Start(context.Context) error { return nil }
func (s *scriptSource) Close(context.Context) error { return nil }
func (s *scriptSource) Run(ctx context.Context, from plugins.Checkpoint, emit plugins.Emit) error {
	next := s.start
	if from != nil {
		n, _ := strconv.Atoi(string(from))
		next = n + 1
	}
	for b := next; b < s.batches; b++ {
		if s.blockAfter > 0 && b >= s.blockAfter {
			<-ctx.Done()
			return nil
		}
		evs := make([]*plugins.Event, s.size)
		for i := range evs {
			id := fmt.Sprintf("%sb%d-e%d", s.prefix, b, i)
			o := plugins.NewObject(4)
			o.SetKey("id", id)
			o.SetKey("batch", b)
			evs[i] = &plugins.Event{Fields: o, Meta: plugins.Meta{ID: id}}
		}
		batch := plugins.Batch{Events: evs, Checkpoint: plugins.Checkpoint(strconv.Itoa(b))}
		if s.release {
			var once atomic.Bool
			batch.Release = func() {
				if once.Swap(true) {
					s.twice.Add(1)
				}
				s.released.Add(1)
				for _, ev := range evs {
					ev.Meta.ID = "released"
					ev.Fields.Set("id", "released")
				}
			}
		}
		if err := emit(ctx, batch); err != nil {
			return nil
		}
		s.emitted.Add(1)
	}
	return nil
}

type scriptOutput struct {
	mu       sync.Mutex
	got      map[string]int
	calls    int
	failN    int                                        // fail the first failN calls (retriable)
	fn       func(call int, evs []*plugins.Event) error // optional per-call behaviour
	maxDelay time.Duration
}

func newScriptOutput() *scriptOutput { return &scriptOutput{got: map[string]int{}} }

func (o *scriptOutput) Start(context.Context) error { return nil }
func (o *scriptOutput) Close(context.Context) error { return nil }
func (o *scriptOutput) Write(ctx context.Context, evs []*plugins.Event) error {
	o.mu.Lock()
	o.calls++
	call := o.calls
	o.mu.Unlock()
	if o.maxDelay > 0 {
		select {
		case <-time.After(time.Duration(rand.Int64N(int64(o.maxDelay)))):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if call <= o.failN {
		return errors.New("injected failure")
	}
	var err error
	if o.fn != nil {
		err = o.fn(call, evs)
	}
	var be *plugins.BatchError
	failed := map[int]bool{}
	if errors.As(err, &be) {
		for _, f := range be.Failures {
			failed[f.Index] = true
		}
	} else if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, ev := range evs {
		if !failed[i] {
			o.got[ev.Meta.ID]++
		}
	}
	return err
}

func (o *scriptOutput) count() (distinct, total int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, n := range o.got {
		distinct++
		total += n
	}
	return
}

type touchTransform struct {
	drop func(*plugins.Event) bool
	// released, when set, counts the batches the engine released after
	// this transform asked (plugins.OnRelease); the release poisons the
	// events, as a transform recycling their memory would.
	released *atomic.Int64
}

func (t *touchTransform) Start(context.Context) error { return nil }
func (t *touchTransform) Close(context.Context) error { return nil }
func (t *touchTransform) Process(ctx context.Context, evs []*plugins.Event) ([]*plugins.Event, error) {
	if t.released != nil {
		batch := slices.Clone(evs)
		if !plugins.OnRelease(ctx, func() {
			t.released.Add(1)
			for _, ev := range batch {
				ev.Fields.Set("event.id", "released")
			}
		}) {
			return nil, errors.New("no release scope in Process")
		}
	}
	out := evs[:0]
	for _, ev := range evs {
		if t.drop != nil && t.drop(ev) {
			continue
		}
		ev.Fields.Set("event.kind", "event")
		ev.Fields.Set("observer.name", "forwarder")
		if v, ok := ev.Fields.GetString("id"); ok {
			ev.Fields.Set("event.id", v)
		}
		out = append(out, ev)
	}
	return out, nil
}

// ---- pipeline building ----

type node struct {
	name   string
	kind   plugins.Kind
	comp   plugins.Component
	inputs []string
	d      *config.Delivery
}

func factoryFor(n node) plugins.Factory {
	type empty struct{}
	switch n.kind {
	case plugins.KindSource:
		return plugins.NewSourceFactory("s", "", nil, func() *empty { return &empty{} },
			func(context.Context, plugins.Settings, *empty) (plugins.Source, error) {
				return n.comp.(plugins.Source), nil
			})
	case plugins.KindTransform:
		return plugins.NewTransformFactory("t", "", nil, func() *empty { return &empty{} },
			func(context.Context, plugins.Settings, *empty) (plugins.Transform, error) {
				return n.comp.(plugins.Transform), nil
			})
	default:
		return plugins.NewOutputFactory("o", "", nil, func() *empty { return &empty{} },
			func(context.Context, plugins.Settings, *empty) (plugins.Output, error) {
				return n.comp.(plugins.Output), nil
			})
	}
}

func pipeline(t testing.TB, dir string, nodes ...node) *config.Config {
	cfg := &config.Config{DataDir: dir, ShutdownTimeout: 5 * time.Second}
	for _, n := range nodes {
		f := factoryFor(n)
		d := config.DefaultDelivery()
		d.InitialBackoff, d.MaxBackoff = time.Millisecond, 5*time.Millisecond
		if n.d != nil {
			d = *n.d
		}
		cfg.Components = append(cfg.Components, &config.Component{
			Name: n.name, Kind: n.kind, Type: f.Type(), Inputs: n.inputs, Delivery: d,
			Factory: f, Config: f.CreateDefaultConfig(),
		})
	}
	return cfg
}

func runOnce(t testing.TB, cfg *config.Config, store checkpoint.Store) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := New(ctx, cfg, Options{Logger: slog.New(slog.DiscardHandler), Store: store, Once: true})
	if err != nil {
		t.Fatal(err)
	}
	return e.Run(ctx)
}

func savedCheckpoint(t testing.TB, st checkpoint.Store, key string) string {
	cp, err := st.Load(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return string(cp)
}

// ---- tests ----

func TestEveryEventReachesEverySubscribedOutput(t *testing.T) {
	src := &scriptSource{batches: 50, size: 100}
	src2 := &scriptSource{batches: 10, size: 7, prefix: "two-"}
	o1, o2, o3 := newScriptOutput(), newScriptOutput(), newScriptOutput()
	st := checkpoint.NewMemStore()
	cfg := pipeline(t, t.TempDir(),
		node{name: "src", kind: plugins.KindSource, comp: src},
		node{name: "src2", kind: plugins.KindSource, comp: src2},
		node{name: "tr", kind: plugins.KindTransform, comp: &touchTransform{}, inputs: []string{"src", "src2"}},
		node{name: "o1", kind: plugins.KindOutput, comp: o1, inputs: []string{"tr"}},
		node{name: "o2", kind: plugins.KindOutput, comp: o2, inputs: []string{"tr"}},
		node{name: "o3", kind: plugins.KindOutput, comp: o3, inputs: []string{"src"}}, // raw archive
	)
	if err := runOnce(t, cfg, st); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		o    *scriptOutput
		want int
	}{"o1": {o1, 5070}, "o2": {o2, 5070}, "o3": {o3, 5000}} {
		d, total := tc.o.count()
		if d != tc.want || total != tc.want {
			t.Errorf("%s: %d distinct / %d total, want %d", name, d, total, tc.want)
		}
	}
	if got := savedCheckpoint(t, st, "src"); got != "49" {
		t.Errorf("src checkpoint %q, want 49", got)
	}
	if got := savedCheckpoint(t, st, "src2"); got != "9" {
		t.Errorf("src2 checkpoint %q, want 9", got)
	}
}

func TestRawOutputDoesNotSeeTransformMutations(t *testing.T) {
	src := &scriptSource{batches: 5, size: 10}
	var raced atomic.Bool
	raw := newScriptOutput()
	raw.fn = func(_ int, evs []*plugins.Event) error {
		for _, ev := range evs {
			if _, ok := ev.Fields.Get("event.kind"); ok {
				raced.Store(true)
			}
		}
		return nil
	}
	cfg := pipeline(t, t.TempDir(),
		node{name: "src", kind: plugins.KindSource, comp: src},
		node{name: "tr", kind: plugins.KindTransform, comp: &touchTransform{}, inputs: []string{"src"}},
		node{name: "o1", kind: plugins.KindOutput, comp: newScriptOutput(), inputs: []string{"tr"}},
		node{name: "raw", kind: plugins.KindOutput, comp: raw, inputs: []string{"src"}},
	)
	if err := runOnce(t, cfg, checkpoint.NewMemStore()); err != nil {
		t.Fatal(err)
	}
	if raced.Load() {
		t.Fatal("an output saw fields added by a transform on another branch")
	}
}

func TestOutputFailingThenSucceedingLosesNothing(t *testing.T) {
	src := &scriptSource{batches: 20, size: 50}
	out := newScriptOutput()
	out.failN = 7
	st := checkpoint.NewMemStore()
	cfg := pipeline(t, t.TempDir(),
		node{name: "src", kind: plugins.KindSource, comp: src},
		node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"src"}},
	)
	if err := runOnce(t, cfg, st); err != nil {
		t.Fatal(err)
	}
	if d, _ := out.count(); d != 1000 {
		t.Fatalf("delivered %d distinct, want 1000", d)
	}
	if out.calls < 27 {
		t.Fatalf("expected retries, got %d calls", out.calls)
	}
	if got := savedCheckpoint(t, st, "src"); got != "19" {
		t.Fatalf("checkpoint %q", got)
	}
}

// verifyingStore fails the test if a checkpoint is saved while a batch at or
// before it has not been delivered yet.
type verifyingStore struct {
	*checkpoint.MemStore
	t         testing.TB
	delivered func(batch int) bool
	bad       atomic.Int64
	mu        sync.Mutex
	last      map[string]int
}

func (v *verifyingStore) Save(ctx context.Context, key string, cp []byte) error {
	n, _ := strconv.Atoi(string(cp))
	v.mu.Lock()
	if v.last == nil {
		v.last = map[string]int{}
	}
	if prev, ok := v.last[key]; ok && n < prev {
		v.bad.Add(1)
		v.t.Errorf("checkpoint of %s stepped back from %d to %d", key, prev, n)
	}
	v.last[key] = n
	v.mu.Unlock()
	for b := 0; b <= n; b++ {
		if !v.delivered(b) {
			v.bad.Add(1)
			v.t.Errorf("checkpoint %d saved while batch %d is not delivered", n, b)
			break
		}
	}
	return v.MemStore.Save(ctx, key, cp)
}

// TestCheckpointNeverStepsBack: batches acknowledged at once, by many
// concurrent writes, must not offer their checkpoints out of order.
func TestCheckpointNeverStepsBack(t *testing.T) {
	for round := 0; round < 5; round++ {
		src := &scriptSource{batches: 1000, size: 1}
		out := newScriptOutput()
		st := &verifyingStore{MemStore: checkpoint.NewMemStore(), t: t, delivered: func(int) bool { return true }}
		d := config.DefaultDelivery()
		d.MaxInFlight = 16
		cfg := pipeline(t, t.TempDir(),
			node{name: "src", kind: plugins.KindSource, comp: src},
			node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"src"}, d: &d},
		)
		e, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Store: st, Once: true,
			CommitInterval: time.Microsecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := savedCheckpoint(t, st, "src"); got != "999" {
			t.Fatalf("round %d: final checkpoint %q, want 999", round, got)
		}
	}
}

func TestOutOfOrderAcksNeverCommitPastAHole(t *testing.T) {
	src := &scriptSource{batches: 200, size: 5}
	out := newScriptOutput()
	out.maxDelay = 3 * time.Millisecond
	var mu sync.Mutex
	delivered := map[int]int{}
	out.fn = func(_ int, evs []*plugins.Event) error {
		if rand.IntN(10) == 0 {
			return errors.New("flaky")
		}
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range evs {
			b, _ := ev.Fields.Get("batch")
			delivered[b.(int)]++
		}
		return nil
	}
	st := &verifyingStore{MemStore: checkpoint.NewMemStore(), t: t}
	st.delivered = func(b int) bool {
		mu.Lock()
		defer mu.Unlock()
		return delivered[b] >= 5
	}
	d := config.DefaultDelivery()
	d.MaxInFlight, d.InitialBackoff, d.MaxBackoff = 8, time.Millisecond, 2*time.Millisecond
	cfg := pipeline(t, t.TempDir(),
		node{name: "src", kind: plugins.KindSource, comp: src},
		node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"src"}, d: &d},
	)
	if err := runOnce(t, cfg, st); err != nil {
		t.Fatal(err)
	}
	if st.Saves == 0 || savedCheckpoint(t, st, "src") != "199" {
		t.Fatalf("final checkpoint %q after %d saves", savedCheckpoint(t, st, "src"), st.Saves)
	}
}

func readDeadLetters(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func TestPermanentFailuresGoToDeadLetterFile(t *testing.T) {
	src := &scriptSource{batches: 10, size: 10}
	out := newScriptOutput()
	out.fn = func(_ int, evs []*plugins.Event) error {
		var be plugins.BatchError
		for i, ev := range evs {
			switch {
			case strings.HasSuffix(ev.Meta.ID, "-e3"):
				be.Add(i, plugins.Permanent(errors.New("mapper_parsing_exception: failed to parse field [source.ip]")))
			case strings.HasSuffix(ev.Meta.ID, "-e5") && rand.IntN(2) == 0:
				be.Add(i, errors.New("es_rejected_execution_exception"))
			}
		}
		return be.Err()
	}
	whole := newScriptOutput()
	whole.fn = func(_ int, evs []*plugins.Event) error {
		if evs[0].Meta.ID == "b4-e0" {
			return plugins.Permanent(errors.New("message too large"))
		}
		return nil
	}
	dir := t.TempDir()
	st := checkpoint.NewMemStore()
	cfg := pipeline(t, dir,
		node{name: "src", kind: plugins.KindSource, comp: src},
		node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"src"}},
		node{name: "whole", kind: plugins.KindOutput, comp: whole, inputs: []string{"src"}},
	)
	if err := runOnce(t, cfg, st); err != nil {
		t.Fatal(err)
	}
	if d, _ := out.count(); d != 90 {
		t.Fatalf("out accepted %d distinct, want 90 (10 permanent failures)", d)
	}
	lines := readDeadLetters(t, filepath.Join(dir, "dead_letter", "out.ndjson"))
	if len(lines) != 10 {
		t.Fatalf("dead letters: %d lines, want 10", len(lines))
	}
	for _, l := range lines {
		if !strings.Contains(l, `"reason":"mapper_parsing_exception`) || !strings.Contains(l, `"event":{"id":"b`) {
			t.Fatalf("dead letter lacks reason or event: %s", l)
		}
	}
	if n := len(readDeadLetters(t, filepath.Join(dir, "dead_letter", "whole.ndjson"))); n != 10 {
		t.Fatalf("whole-batch dead letters: %d, want 10", n)
	}
	if got := savedCheckpoint(t, st, "src"); got != "9" {
		t.Fatalf("checkpoint %q: dead-lettered events count as handled", got)
	}
}

func TestDroppedEventsCountAsAcknowledged(t *testing.T) {
	src := &scriptSource{batches: 10, size: 10}
	out := newScriptOutput()
	st := checkpoint.NewMemStore()
	cfg := pipeline(t, t.TempDir(),
		node{name: "src", kind: plugins.KindSource, comp: src},
		node{name: "tr", kind: plugins.KindTransform, inputs: []string{"src"}, comp: &touchTransform{drop: func(ev *plugins.Event) bool {
			b, _ := ev.Fields.Get("batch")
			return b.(int)%2 == 0 // drop whole even batches
		}}},
		node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"tr"}},
	)
	if err := runOnce(t, cfg, st); err != nil {
		t.Fatal(err)
	}
	if d, _ := out.count(); d != 50 {
		t.Fatalf("got %d", d)
	}
	if got := savedCheckpoint(t, st, "src"); got != "9" {
		t.Fatalf("checkpoint %q", got)
	}
}

// TestReleaseFollowsEveryConsumer: a batch is released once, and only
// after every consumer is done with it: slow, failing and retried outputs,
// a dead-letter file, a transform that drops events, a raw copy.
func TestReleaseFollowsEveryConsumer(t *testing.T) {
	src := &scriptSource{batches: 40, size: 20, release: true}
	var trReleased atomic.Int64
	slow := newScriptOutput()
	slow.maxDelay = 3 * time.Millisecond
	slow.fn = func(_ int, evs []*plugins.Event) error {
		for _, ev := range evs {
			if v, _ := ev.Fields.GetString("event.id"); v == "released" {
				t.Errorf("slow output got %s after the transform's release", ev.Meta.ID)
			}
		}
		return nil
	}
	flaky := newScriptOutput()
	flaky.failN = 5
	partial := newScriptOutput()
	partial.fn = func(_ int, evs []*plugins.Event) error {
		var be plugins.BatchError
		for i, ev := range evs {
			if strings.HasSuffix(ev.Meta.ID, "-e3") {
				be.Add(i, plugins.Permanent(errors.New("rejected")))
			}
		}
		return be.Err()
	}
	raw := newScriptOutput()
	dir := t.TempDir()
	cfg := pipeline(t, dir,
		node{name: "src", kind: plugins.KindSource, comp: src},
		node{name: "tr", kind: plugins.KindTransform, inputs: []string{"src"}, comp: &touchTransform{released: &trReleased, drop: func(ev *plugins.Event) bool {
			b, _ := ev.Fields.Get("batch")
			return b.(int)%4 == 0 // some batches dropped whole
		}}},
		node{name: "slow", kind: plugins.KindOutput, comp: slow, inputs: []string{"tr"}},
		node{name: "flaky", kind: plugins.KindOutput, comp: flaky, inputs: []string{"tr"}},
		node{name: "partial", kind: plugins.KindOutput, comp: partial, inputs: []string{"tr"}},
		node{name: "raw", kind: plugins.KindOutput, comp: raw, inputs: []string{"src"}},
	)
	if err := runOnce(t, cfg, checkpoint.NewMemStore()); err != nil {
		t.Fatal(err)
	}
	if n := src.released.Load(); n != 40 {
		t.Errorf("%d releases, want one per batch (40)", n)
	}
	if n := src.twice.Load(); n != 0 {
		t.Errorf("%d batches released twice", n)
	}
	if n := trReleased.Load(); n != 40 {
		t.Errorf("transform's releases ran %d times, want 40", n)
	}
	for name, tc := range map[string]struct {
		o    *scriptOutput
		want int
	}{"slow": {slow, 600}, "flaky": {flaky, 600}, "partial": {partial, 570}, "raw": {raw, 800}} {
		d, total := tc.o.count()
		if d != tc.want || total != tc.want {
			t.Errorf("%s: %d distinct / %d total, want %d", name, d, total, tc.want)
		}
		tc.o.mu.Lock()
		if tc.o.got["released"] > 0 {
			t.Errorf("%s wrote %d events after their batch was released", name, tc.o.got["released"])
		}
		tc.o.mu.Unlock()
	}
	if n := len(readDeadLetters(t, filepath.Join(dir, "dead_letter", "partial.ndjson"))); n != 30 {
		t.Errorf("dead letters: %d, want 30", n)
	}
}

func TestShutdownCommitsOnlyWhatWasAcknowledged(t *testing.T) {
	src := &scriptSource{batches: 1000, size: 10}
	out := newScriptOutput()
	out.fn = func(_ int, evs []*plugins.Event) error {
		b, _ := evs[0].Fields.Get("batch")
		if b.(int) >= 5 {
			return errors.New("destination down")
		}
		return nil
	}
	st := checkpoint.NewMemStore()
	cfg := pipeline(t, t.TempDir(),
		node{name: "src", kind: plugins.KindSource, comp: src},
		node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"src"}},
	)
	cfg.ShutdownTimeout = 300 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	e, err := New(ctx, cfg, Options{Logger: slog.New(slog.DiscardHandler), Store: st, MaxPendingBatches: 8})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)
	// Backpressure: the source is paused at the pending bound, not buffering.
	// 5 delivered batches + at most 8 pending ones.
	if n := src.emitted.Load(); n > 5+8 {
		t.Fatalf("source emitted %d batches past a dead output; bound is 5+8", n)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown did not finish")
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("shutdown took %s with shutdown_timeout 300ms", el)
	}
	if got := savedCheckpoint(t, st, "src"); got != "4" {
		t.Fatalf("checkpoint %q, want 4 (batches 0-4 delivered, 5+ not)", got)
	}
	// Restart with a healthy output: resumes at batch 5, loses nothing.
	out2 := newScriptOutput()
	cfg2 := pipeline(t, t.TempDir(),
		node{name: "src", kind: plugins.KindSource, comp: &scriptSource{batches: 20, size: 10}},
		node{name: "out", kind: plugins.KindOutput, comp: out2, inputs: []string{"src"}},
	)
	if err := runOnce(t, cfg2, st); err != nil {
		t.Fatal(err)
	}
	if d, _ := out2.count(); d != 150 {
		t.Fatalf("after restart delivered %d, want 150 (batches 5..19)", d)
	}
}

func TestMaxRetriesDeadLetters(t *testing.T) {
	src := &scriptSource{batches: 3, size: 4}
	out := newScriptOutput()
	out.fn = func(int, []*plugins.Event) error { return errors.New("always down") }
	d := config.DefaultDelivery()
	d.MaxRetries, d.InitialBackoff, d.MaxBackoff = 2, time.Millisecond, time.Millisecond
	dir := t.TempDir()
	cfg := pipeline(t, dir,
		node{name: "src", kind: plugins.KindSource, comp: src},
		node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"src"}, d: &d},
	)
	if err := runOnce(t, cfg, checkpoint.NewMemStore()); err != nil {
		t.Fatal(err)
	}
	lines := readDeadLetters(t, filepath.Join(dir, "dead_letter", "out.ndjson"))
	if len(lines) != 12 || !strings.Contains(lines[0], "gave up after 2 retries: always down") {
		t.Fatalf("got %d lines: %v", len(lines), lines)
	}
	if out.calls != 9 {
		t.Fatalf("calls = %d, want 3 batches × 3 attempts", out.calls)
	}
}

func TestUnwritableDeadLetterKeepsBatchUnacknowledged(t *testing.T) {
	dir := t.TempDir()
	// A file where the dead_letter directory should be.
	if err := os.WriteFile(filepath.Join(dir, "dead_letter"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	src := &scriptSource{batches: 3, size: 2}
	out := newScriptOutput()
	out.fn = func(int, []*plugins.Event) error { return plugins.Permanent(errors.New("rejected")) }
	st := checkpoint.NewMemStore()
	cfg := pipeline(t, dir,
		node{name: "src", kind: plugins.KindSource, comp: src},
		node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"src"}},
	)
	cfg.ShutdownTimeout = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	e, err := New(ctx, cfg, Options{Logger: slog.New(slog.DiscardHandler), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(150*time.Millisecond, func() {
		ok, problems := e.Health().Ready()
		if ok || !strings.Contains(problems["out"], "dead_letter") {
			t.Errorf("readiness should report the dead-letter problem naming the path: %v %v", ok, problems)
		}
	})
	_ = e.Run(ctx)
	if got := savedCheckpoint(t, st, "src"); got != "" {
		t.Fatalf("checkpoint %q committed although the events were neither delivered nor dead-lettered", got)
	}
}

type failingSource struct {
	calls atomic.Int64
	perm  bool
}

func (f *failingSource) Start(context.Context) error { return nil }
func (f *failingSource) Close(context.Context) error { return nil }
func (f *failingSource) Run(ctx context.Context, _ plugins.Checkpoint, emit plugins.Emit) error {
	n := f.calls.Add(1)
	if f.perm {
		return plugins.Permanent(errors.New("authentication failed: HTTP 401"))
	}
	if n < 3 {
		return errors.New("temporary")
	}
	ev := &plugins.Event{Fields: plugins.NewObject(1), Meta: plugins.Meta{ID: "x"}}
	return emit(ctx, plugins.Batch{Events: []*plugins.Event{ev}, Checkpoint: plugins.Checkpoint("1")})
}

func TestSourceErrors(t *testing.T) {
	perm := &failingSource{perm: true}
	cfg := pipeline(t, t.TempDir(),
		node{name: "src", kind: plugins.KindSource, comp: perm},
		node{name: "out", kind: plugins.KindOutput, comp: newScriptOutput(), inputs: []string{"src"}},
	)
	err := runOnce(t, cfg, checkpoint.NewMemStore())
	if !errors.Is(err, ErrSourceFailed) || !strings.Contains(err.Error(), "sources.src") || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("permanent source error: %v", err)
	}
	if perm.calls.Load() != 1 {
		t.Fatal("permanent error must not be retried")
	}
}

// ---- benchmarks ----

// benchSource emits pre-sized ~1 KB events as fast as the engine takes them.
type benchSource struct {
	total, size int
	padding     string
}

func (s *benchSource) Start(context.Context) error { return nil }
func (s *benchSource) Close(context.Context) error { return nil }
func (s *benchSource) Run(ctx context.Context, _ plugins.Checkpoint, emit plugins.Emit) error {
	for sent := 0; sent < s.total; sent += s.size {
		evs := make([]*plugins.Event, s.size)
		for i := range evs {
			o := plugins.NewObject(8)
			o.SetKey("id", "evt")
			o.SetKey("message", s.padding)
			o.SetKey("seq", sent+i)
			evs[i] = &plugins.Event{Fields: o}
		}
		if err := emit(ctx, plugins.Batch{Events: evs, Checkpoint: plugins.Checkpoint("x")}); err != nil {
			return nil
		}
	}
	return nil
}

type discard struct{}

func (discard) Start(context.Context) error                   { return nil }
func (discard) Close(context.Context) error                   { return nil }
func (discard) Write(context.Context, []*plugins.Event) error { return nil }

// BenchmarkEngineOverhead: synthetic source → 1 transform touching 3 fields →
// discarding output, ~1 KB events, batches of 500. Reports events/s.
func BenchmarkEngineOverhead(b *testing.B) {
	const batch = 500
	total := ((b.N + batch - 1) / batch) * batch
	cfg := pipeline(b, b.TempDir(),
		node{name: "src", kind: plugins.KindSource, comp: &benchSource{total: total, size: batch, padding: strings.Repeat("x", 1000)}},
		node{name: "tr", kind: plugins.KindTransform, comp: &touchTransform{}, inputs: []string{"src"}},
		node{name: "out", kind: plugins.KindOutput, comp: discard{}, inputs: []string{"tr"}},
	)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := runOnce(b, cfg, checkpoint.NewMemStore()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(total)/time.Since(start).Seconds(), "events/s")
}

func TestReadinessFollowsOutputHealth(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	out := newScriptOutput()
	out.fn = func(int, []*plugins.Event) error {
		if down.Load() {
			return errors.New("connection refused")
		}
		return nil
	}
	cfg := pipeline(t, t.TempDir(),
		node{name: "src", kind: plugins.KindSource, comp: &scriptSource{batches: 100, size: 2, blockAfter: 3}},
		node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"src"}},
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := New(ctx, cfg, Options{Logger: slog.New(slog.DiscardHandler), Store: checkpoint.NewMemStore()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	waitFor(t, func() bool {
		ok, p := e.Health().Ready()
		return !ok && strings.Contains(p["out"], "connection refused")
	})
	down.Store(false)
	waitFor(t, func() bool { ok, _ := e.Health().Ready(); return ok })
	cancel()
	<-done
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockedBuffer is an io.Writer for a logger written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDebugLogsFollowBatches: at debug level an operator sees every
// written batch (with its output, size and time) and every saved
// checkpoint; at info level, neither.
func TestDebugLogsFollowBatches(t *testing.T) {
	for _, tc := range []struct {
		level slog.Level
		want  bool
	}{{slog.LevelDebug, true}, {slog.LevelInfo, false}} {
		var logs lockedBuffer
		cfg := pipeline(t, t.TempDir(),
			node{name: "src", kind: plugins.KindSource, comp: &scriptSource{batches: 3, size: 4}},
			node{name: "out", kind: plugins.KindOutput, comp: newScriptOutput(), inputs: []string{"src"}},
		)
		logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: tc.level}))
		e, err := New(context.Background(), cfg, Options{Logger: logger, Store: checkpoint.NewMemStore(), Once: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		out := logs.String()
		written := strings.Count(out, `msg="batch written" component_id=out events=4`)
		saved := strings.Contains(out, `msg="checkpoint saved" component_id=src`)
		if tc.want && (written != 3 || !saved) {
			t.Errorf("debug: %d \"batch written\" lines (want 3), checkpoint saved logged: %v\n%s", written, saved, out)
		}
		if !tc.want && (written != 0 || saved) {
			t.Errorf("info level shows debug lines:\n%s", out)
		}
	}
}
