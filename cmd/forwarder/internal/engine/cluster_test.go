package engine

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/checkpoint"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/plugins"
)

// fakeOwnership lets a test assign and revoke sources by hand.
type fakeOwnership struct {
	ready   chan struct{}
	h       OwnershipHandler
	sources []string

	mu    sync.Mutex
	owned map[string]bool
	gen   int32
}

func newFakeOwnership() *fakeOwnership {
	return &fakeOwnership{ready: make(chan struct{}), owned: map[string]bool{}}
}

func (f *fakeOwnership) Run(ctx context.Context, sources []string, h OwnershipHandler) error {
	f.h, f.sources = h, sources
	h.SetReady(nil)
	close(f.ready)
	<-ctx.Done()
	f.mu.Lock()
	var rest []string
	for s := range f.owned {
		rest = append(rest, s)
	}
	f.owned = map[string]bool{}
	f.mu.Unlock()
	h.Revoke(context.Background(), rest, false)
	return nil
}

func (f *fakeOwnership) Status() MemberStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return MemberStatus{InstanceID: "test-1", Group: "g", MemberID: "m-1", Generation: f.gen, Rebalances: int64(f.gen)}
}

func (f *fakeOwnership) assign(names ...string) {
	<-f.ready
	f.mu.Lock()
	for _, n := range names {
		f.owned[n] = true
	}
	f.gen++
	f.mu.Unlock()
	f.h.Assign(context.Background(), names)
}

func (f *fakeOwnership) revoke(lost bool, names ...string) {
	<-f.ready
	f.mu.Lock()
	for _, n := range names {
		delete(f.owned, n)
	}
	f.gen++
	f.mu.Unlock()
	f.h.Revoke(context.Background(), names, lost)
}

// clusterStore records what the engine does with a shared store.
type clusterStore struct {
	*checkpoint.MemStore
	mu       sync.Mutex
	released []string
	loads    []string
	fenced   map[string]bool
	saves    map[string][]string
}

func newClusterStore() *clusterStore {
	return &clusterStore{MemStore: checkpoint.NewMemStore(), fenced: map[string]bool{}, saves: map[string][]string{}}
}

func (s *clusterStore) Load(ctx context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	s.loads = append(s.loads, key)
	s.mu.Unlock()
	return s.MemStore.Load(ctx, key)
}

func (s *clusterStore) Save(ctx context.Context, key string, cp []byte) error {
	s.mu.Lock()
	if s.fenced[key] {
		s.mu.Unlock()
		return fmt.Errorf("save %q: %w", key, checkpoint.ErrFenced)
	}
	s.saves[key] = append(s.saves[key], string(cp))
	s.mu.Unlock()
	return s.MemStore.Save(ctx, key, cp)
}

func (s *clusterStore) Release(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.released = append(s.released, key)
	return nil
}

// endlessSource emits numbered batches until stopped and records every Run.
type endlessSource struct {
	size    int
	runs    atomic.Int64
	running atomic.Int64
	froms   chan string
	next    atomic.Int64 // next batch number emitted
	pause   atomic.Bool  // Run emits nothing while set
}

func newEndlessSource() *endlessSource { return &endlessSource{size: 5, froms: make(chan string, 64)} }

func (s *endlessSource) Start(context.Context) error { return nil }
func (s *endlessSource) Close(context.Context) error { return nil }
func (s *endlessSource) Run(ctx context.Context, from plugins.Checkpoint, emit plugins.Emit) error {
	s.runs.Add(1)
	s.running.Add(1)
	defer s.running.Add(-1)
	s.froms <- string(from)
	b := 0
	if from != nil {
		n, _ := strconv.Atoi(string(from))
		b = n + 1
	}
	for ; ctx.Err() == nil; b++ {
		if s.pause.Load() {
			<-ctx.Done()
			return nil
		}
		evs := make([]*plugins.Event, s.size)
		for i := range evs {
			id := fmt.Sprintf("b%d-e%d", b, i)
			evs[i] = &plugins.Event{Fields: plugins.NewObject(1), Meta: plugins.Meta{ID: id}}
		}
		if err := emit(ctx, plugins.Batch{Events: evs, Checkpoint: plugins.Checkpoint(strconv.Itoa(b))}); err != nil {
			return nil
		}
		s.next.Store(int64(b + 1))
		time.Sleep(time.Millisecond)
	}
	return nil
}

type clusterRig struct {
	e     *Engine
	own   *fakeOwnership
	store *clusterStore
	reg   *prometheus.Registry
	errc  chan error
	stop  context.CancelFunc
}

func startCluster(t *testing.T, store *clusterStore, nodes ...node) *clusterRig {
	t.Helper()
	cfg := pipeline(t, t.TempDir(), nodes...)
	own := newFakeOwnership()
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := New(ctx, cfg, Options{Logger: slog.New(slog.DiscardHandler), Store: store, Ownership: own, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	r := &clusterRig{e: e, own: own, store: store, reg: reg, errc: make(chan error, 1), stop: cancel}
	go func() { r.errc <- e.Run(ctx) }()
	<-own.ready
	t.Cleanup(func() { r.shutdown(t) })
	return r
}

func (r *clusterRig) shutdown(t *testing.T) {
	t.Helper()
	if r.stop == nil {
		return
	}
	r.stop()
	r.stop = nil
	select {
	case err := <-r.errc:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClusterRunsOnlyAssignedSources(t *testing.T) {
	a, b, c := newEndlessSource(), newEndlessSource(), newEndlessSource()
	out := newScriptOutput()
	rig := startCluster(t, newClusterStore(),
		node{name: "c", kind: plugins.KindSource, comp: c},
		node{name: "a", kind: plugins.KindSource, comp: a},
		node{name: "b", kind: plugins.KindSource, comp: b},
		node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"a", "b", "c"}})
	if !slices.Equal(rig.own.sources, []string{"a", "b", "c"}) {
		t.Fatalf("ownership got sources %v, want sorted [a b c]", rig.own.sources)
	}
	time.Sleep(50 * time.Millisecond)
	if a.runs.Load()+b.runs.Load()+c.runs.Load() != 0 {
		t.Fatal("a source ran before it was assigned")
	}
	if ok, _ := rig.e.Health().Ready(); !ok {
		_, p := rig.e.Health().Ready()
		t.Fatalf("not ready after joining: %v", p)
	}
	rig.own.assign("a", "c")
	waitUntil(t, "a and c to emit", func() bool { return a.next.Load() > 3 && c.next.Load() > 3 })
	if b.runs.Load() != 0 {
		t.Fatal("b runs but was never assigned")
	}
	det := rig.e.Health().Details()["cluster"].(map[string]any)
	if got := det["sources"].([]string); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("/readyz sources = %v", got)
	}
	if det["instance_id"] != "test-1" || det["generation"] != int32(1) {
		t.Fatalf("/readyz details = %v", det)
	}
	if v := testutil.ToFloat64(rig.e.cluster.owned); v != 2 {
		t.Fatalf("forwarder_cluster_owned_sources = %v", v)
	}
	n, err := testutil.GatherAndCount(rig.reg, "forwarder_cluster_source_owned", "forwarder_cluster_generation", "forwarder_cluster_rebalances_total")
	if err != nil || n != 5 {
		t.Fatalf("cluster metrics: %d series, %v", n, err)
	}
}

// A revoked source is stopped, its in-flight batches drain, its checkpoint
// is flushed and released, all before Revoke returns; the next owner (here
// the same engine, reassigned) resumes exactly after the last delivered batch.
func TestClusterRevokeDrainsFlushesThenReleases(t *testing.T) {
	src := newEndlessSource()
	out := newScriptOutput()
	out.maxDelay = 20 * time.Millisecond
	store := newClusterStore()
	rig := startCluster(t, store,
		node{name: "a", kind: plugins.KindSource, comp: src},
		node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"a"}})
	rig.own.assign("a")
	if from := <-src.froms; from != "" {
		t.Fatalf("first run from %q, want no checkpoint", from)
	}
	waitUntil(t, "batches", func() bool { return src.next.Load() > 20 })
	rig.own.revoke(false, "a")

	// Revoke has returned: the source is stopped, nothing is in flight and
	// the checkpoint of the last emitted batch is stored and released.
	if src.running.Load() != 0 {
		t.Fatal("source still running after Revoke returned")
	}
	node := rig.e.cluster.node("a")
	if p := node.inflight.Load(); p != 0 {
		t.Fatalf("%d batches in flight after Revoke returned", p)
	}
	last := src.next.Load() - 1
	if got := savedCheckpoint(t, store, "a"); got != strconv.FormatInt(last, 10) {
		t.Fatalf("checkpoint after revoke = %q, want the last emitted batch %d", got, last)
	}
	store.mu.Lock()
	released := slices.Clone(store.released)
	store.mu.Unlock()
	if !slices.Equal(released, []string{"a"}) {
		t.Fatalf("released = %v", released)
	}
	distinct, _ := out.count()
	if distinct != int(last+1)*src.size {
		t.Fatalf("delivered %d distinct events, want %d", distinct, (last+1)*int64(src.size))
	}
	if ok, _ := rig.e.Health().Ready(); !ok {
		t.Fatal("an instance that owns nothing is still ready")
	}

	// Reassigned: resumes after the stored checkpoint.
	rig.own.assign("a")
	if from := <-src.froms; from != strconv.FormatInt(last, 10) {
		t.Fatalf("second run from %q, want %d", from, last)
	}
	waitUntil(t, "more batches", func() bool { return src.next.Load() > last+5 })
	rig.shutdown(t)
	_, total := out.count()
	distinct, _ = out.count()
	if distinct != total {
		t.Fatalf("a hand-off without a crash duplicated events: %d delivered, %d distinct", total, distinct)
	}
	if got := savedCheckpoint(t, store, "a"); got != strconv.FormatInt(src.next.Load()-1, 10) {
		t.Fatalf("checkpoint at shutdown %q, last batch %d", got, src.next.Load()-1)
	}
}

// Acknowledgements that arrive after a source was revoked (the output was
// slower than shutdown_timeout) must not move the checkpoint of a later
// assignment.
func TestClusterLateAckOfEarlierAssignmentIsIgnored(t *testing.T) {
	src := newEndlessSource()
	release := make(chan struct{})
	var blocked atomic.Bool
	out := newScriptOutput()
	out.fn = func(call int, evs []*plugins.Event) error {
		if call == 1 {
			blocked.Store(true)
			<-release
		}
		return nil
	}
	store := newClusterStore()
	rig := startCluster(t, store,
		node{name: "a", kind: plugins.KindSource, comp: src},
		node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"a"}, d: deliveryWith(1)})
	rig.e.cfg.ShutdownTimeout = 200 * time.Millisecond
	rig.own.assign("a")
	<-src.froms
	waitUntil(t, "the first write to block", blocked.Load)
	rig.own.revoke(false, "a") // times out draining: batch 0 is still in flight
	if got := savedCheckpoint(t, store, "a"); got != "" {
		t.Fatalf("checkpoint %q stored while batch 0 was never delivered", got)
	}
	_ = store.Save(context.Background(), "a", []byte("100")) // another owner moved on
	src.pause.Store(true)                                    // the new assignment emits nothing
	rig.own.assign("a")
	if from := <-src.froms; from != "100" {
		t.Fatalf("reassigned from %q", from)
	}
	close(release) // the first assignment's batches are acknowledged now
	node := rig.e.cluster.node("a")
	waitUntil(t, "the late acks", func() bool { return node.inflight.Load() == 0 })
	time.Sleep(50 * time.Millisecond) // give a wrong commit time to happen
	rig.shutdown(t)
	store.mu.Lock()
	defer store.mu.Unlock()
	for _, cp := range store.saves["a"] {
		if n, _ := strconv.Atoi(cp); n < 100 {
			t.Fatalf("a late ack of the earlier assignment saved checkpoint %s over 100 (saves %v)", cp, store.saves["a"])
		}
	}
}

func TestClusterFencedSourceStops(t *testing.T) {
	src := newEndlessSource()
	store := newClusterStore()
	rig := startCluster(t, store,
		node{name: "a", kind: plugins.KindSource, comp: src},
		node{name: "out", kind: plugins.KindOutput, comp: newScriptOutput(), inputs: []string{"a"}})
	rig.own.assign("a")
	<-src.froms
	waitUntil(t, "batches", func() bool { return src.next.Load() > 3 })
	store.mu.Lock()
	store.fenced["a"] = true
	store.mu.Unlock()
	waitUntil(t, "the fenced source to stop", func() bool { return src.running.Load() == 0 })
	if ok, p := rig.e.Health().Ready(); ok || p["a"] == "" {
		t.Fatalf("fenced source not reported on /readyz: %v", p)
	}
	rig.own.revoke(true, "a")
	if ok, p := rig.e.Health().Ready(); !ok {
		t.Fatalf("still not ready after the revocation: %v", p)
	}
}

// committerSource records Committed calls and checks them against the store.
type committerSource struct {
	endlessSource
	store     checkpoint.Store
	mu        sync.Mutex
	committed []string
	bad       string
	shared    bool
}

func (s *committerSource) Committed(ctx context.Context, cp plugins.Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store != nil {
		if got, _ := s.store.Load(ctx, "k"); string(got) != string(cp) && s.bad == "" {
			s.bad = fmt.Sprintf("Committed(%s) before the store held it (store: %s)", cp, got)
		}
	}
	if n := len(s.committed); n > 0 {
		prev, _ := strconv.Atoi(s.committed[n-1])
		if cur, _ := strconv.Atoi(string(cp)); cur <= prev && s.bad == "" {
			s.bad = fmt.Sprintf("Committed went backwards: %d after %d", cur, prev)
		}
	}
	s.committed = append(s.committed, string(cp))
	return nil
}

func (s *committerSource) Shared() bool { return s.shared }

func TestCheckpointCommitterCalledOnlyAfterPersist(t *testing.T) {
	store := checkpoint.NewMemStore()
	src := &committerSource{endlessSource: *newEndlessSource(), store: store}
	out := newScriptOutput()
	out.maxDelay = 3 * time.Millisecond
	cfg := pipeline(t, t.TempDir(),
		node{name: "k", kind: plugins.KindSource, comp: src},
		node{name: "out", kind: plugins.KindOutput, comp: out, inputs: []string{"k"}})
	ctx, cancel := context.WithCancel(context.Background())
	e, err := New(ctx, cfg, Options{Logger: slog.New(slog.DiscardHandler), Store: store})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	waitUntil(t, "commits", func() bool { src.mu.Lock(); defer src.mu.Unlock(); return len(src.committed) > 5 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if src.bad != "" {
		t.Fatal(src.bad)
	}
	last := src.committed[len(src.committed)-1]
	if got := savedCheckpoint(t, store, "k"); got != last {
		t.Fatalf("last Committed %s, store %s", last, got)
	}
}

// A shared source runs on every instance without being assigned, always
// from a nil checkpoint, and nothing of it goes to the cluster's store;
// Committed still tells it what was delivered.
func TestClusterSharedSourceRunsEverywhere(t *testing.T) {
	shared := &committerSource{endlessSource: *newEndlessSource(), shared: true}
	owned := newEndlessSource()
	store := newClusterStore()
	rig := startCluster(t, store,
		node{name: "k", kind: plugins.KindSource, comp: shared},
		node{name: "a", kind: plugins.KindSource, comp: owned},
		node{name: "out", kind: plugins.KindOutput, comp: newScriptOutput(), inputs: []string{"k", "a"}})
	if !slices.Equal(rig.own.sources, []string{"a"}) {
		t.Fatalf("ownership got %v; a shared source must not be distributed", rig.own.sources)
	}
	if from := <-shared.froms; from != "" {
		t.Fatalf("shared source from %q", from)
	}
	waitUntil(t, "commits", func() bool { shared.mu.Lock(); defer shared.mu.Unlock(); return len(shared.committed) > 3 })
	rig.shutdown(t)
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.saves["k"]) != 0 || slices.Contains(store.loads, "k") {
		t.Fatalf("the shared source used the cluster store: saves %v loads %v", store.saves["k"], store.loads)
	}
	if owned.runs.Load() != 0 {
		t.Fatal("unassigned source ran")
	}
}

func TestClusterRejectsOnce(t *testing.T) {
	cfg := pipeline(t, t.TempDir(),
		node{name: "a", kind: plugins.KindSource, comp: newEndlessSource()},
		node{name: "out", kind: plugins.KindOutput, comp: newScriptOutput(), inputs: []string{"a"}})
	_, err := New(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Store: checkpoint.NewMemStore(),
		Ownership: newFakeOwnership(), Once: true})
	if err == nil || !strings.Contains(err.Error(), "--once cannot be used in cluster mode") {
		t.Fatalf("got %v", err)
	}
}

func deliveryWith(maxInFlight int) *config.Delivery {
	d := config.DefaultDelivery()
	d.InitialBackoff, d.MaxBackoff = time.Millisecond, 5*time.Millisecond
	d.MaxInFlight = maxInFlight
	return &d
}
