package engine

// Cluster mode: which sources this instance runs is decided by an
// Ownership (Kafka group membership, see internal/cluster), not by the
// pipeline alone. The engine starts an owned source from the checkpoint
// its store holds, and on revocation stops it, drains its in-flight
// batches (bounded by shutdown_timeout), flushes its checkpoint and
// releases it in the store before the revocation is acknowledged, so the
// next owner resumes exactly where delivery got to.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/checkpoint"
	"github.com/auditforwarder/forwarder/plugins"
)

// Ownership decides which sources this instance runs, in cluster mode.
type Ownership interface {
	// Run joins the cluster and calls h.Assign and h.Revoke as this
	// instance gains and loses sources, until ctx is done; it then revokes
	// every source it still owns (each h.Revoke returns once the sources
	// are drained and their checkpoints flushed), leaves the cluster and
	// returns nil. sources are the names to share, sorted. An error means
	// the instance could not take part at all.
	Run(ctx context.Context, sources []string, h OwnershipHandler) error
	// Status describes this instance's membership, for /readyz and metrics.
	Status() MemberStatus
}

// MemberStatus is a snapshot of this instance's cluster membership.
type MemberStatus struct {
	InstanceID string `json:"instance_id"`
	Group      string `json:"group"`
	MemberID   string `json:"member_id"`
	// Generation is the group generation of the last completed rebalance.
	Generation int32 `json:"generation"`
	// Rebalances counts the rebalances this instance took part in.
	Rebalances int64 `json:"rebalances"`
}

// OwnershipHandler is what an Ownership drives; the engine implements it.
// Its methods are never called concurrently with each other.
type OwnershipHandler interface {
	// Assign starts the named sources; each resumes from the checkpoint
	// the store holds (loading it acquires the source in the store, which
	// fences a former owner). It returns without waiting for the loads.
	Assign(ctx context.Context, sources []string)
	// Revoke stops the named sources. Unless lost, it waits up to
	// shutdown_timeout for their in-flight batches, then flushes their
	// checkpoints and releases them in the store; it returns when done.
	// lost means ownership is already gone (another instance may run
	// them): their writes would be fenced, so nothing is waited for.
	Revoke(ctx context.Context, sources []string, lost bool)
	// SetReady reports membership health: nil once in the group, an error
	// while this instance is out of it.
	SetReady(err error)
}

// storeAcquirer is implemented by stores whose keys must be taken over
// before use (KafkaStore); acquiring all at once avoids one owner's open
// transaction stalling another key's read.
type storeAcquirer interface {
	Acquire(ctx context.Context, keys ...string) error
}

// storeReleaser is implemented by stores that hold per-key resources.
type storeReleaser interface {
	Release(key string) error
}

// sourceRun is one assignment of a source to this instance.
type sourceRun struct {
	cancel       context.CancelFunc // stops loading and Run
	cancelCommit context.CancelFunc
	done         chan struct{} // closed when loading and Run returned
	commitDone   chan struct{} // closed when the committer returned
	started      atomic.Bool   // the committer was started
}

// clusterState is the engine's side of cluster mode.
type clusterState struct {
	e      *Engine
	srcCtx context.Context // cancelled at shutdown: stops every source
	runCtx context.Context // lives through the drain: committers

	mu   sync.Mutex
	runs map[string]*sourceRun
	wg   sync.WaitGroup

	owned       prometheus.Gauge
	assignments prometheus.Counter
	revocations *prometheus.CounterVec
	handoff     prometheus.Histogram
}

// nopStore keeps no checkpoints: shared sources resume from the position
// their origin keeps.
type nopStore struct{}

func (nopStore) Load(context.Context, string) ([]byte, error) { return nil, nil }
func (nopStore) Save(context.Context, string, []byte) error   { return nil }
func (nopStore) Close() error                                 { return nil }

// storeFor returns the store that keeps n's checkpoints.
func (n *sourceNode) storeFor() checkpoint.Store {
	if n.store != nil {
		return n.store
	}
	return n.e.store
}

// offerFrom offers cp, committable in tr, for persisting. In cluster mode
// it is ignored unless tr belongs to the current assignment: a batch from
// an earlier assignment acknowledged late must not move the new one.
func (n *sourceNode) offerFrom(tr *checkpoint.Tracker, cp []byte) {
	n.mu.Lock()
	if n.managed && n.active != tr {
		n.mu.Unlock()
		return
	}
	n.toCommit, n.dirty = cp, true
	if n.eos != nil {
		n.collectRecordsLocked(tr)
	}
	n.mu.Unlock()
	select {
	case n.commit <- struct{}{}:
	default:
	}
}

// committed tells a CheckpointCommitter source that cp is persisted.
func (n *sourceNode) committed(ctx context.Context, cp []byte) {
	c, ok := n.src.(plugins.CheckpointCommitter)
	if !ok {
		return
	}
	if err := c.Committed(ctx, cp); err != nil {
		n.e.log.Warn("source could not commit its delivered position; a newer checkpoint will commit it",
			"component_id", n.id, "error", err)
		n.e.health.set(n.id, "commit", err)
		return
	}
	n.e.health.set(n.id, "commit", nil)
}

// Details returns what /readyz shows besides readiness (cluster
// membership), or nil outside cluster mode.
func (h *Health) Details() map[string]any {
	if h.details == nil {
		return nil
	}
	return h.details()
}

// fencedStop stops n after its store rejected a checkpoint because another
// instance owns the source now. It reports whether err was such a rejection.
func (n *sourceNode) fencedStop(err error) bool {
	if !errors.Is(err, checkpoint.ErrFenced) {
		return false
	}
	n.mu.Lock()
	managed := n.managed
	n.mu.Unlock()
	if !managed || n.e.cluster == nil {
		return false
	}
	n.e.log.Warn("another instance owns this source now; stopping it here", "component_id", n.id, "error", err)
	n.e.cluster.stopFenced(n)
	return true
}

func isShared(src plugins.Source) bool {
	s, ok := src.(plugins.SharedSource)
	return ok && s.Shared()
}

// runCluster runs the sources under e.opts.Ownership until srcCtx ends,
// then returns once every source was revoked (drained and flushed).
func (e *Engine) runCluster(srcCtx, runCtx context.Context) error {
	c := e.cluster
	c.srcCtx, c.runCtx = srcCtx, runCtx
	var owned []string
	for _, n := range e.sources {
		n.commit = make(chan struct{}, 1)
		n.mu.Lock()
		n.managed = true
		n.mu.Unlock()
		if isShared(n.src) {
			n.store = nopStore{}
			c.assign(n)
			continue
		}
		owned = append(owned, n.id)
	}
	sort.Strings(owned)
	e.log.Info("cluster mode: sources are shared with the other instances", "owned_by_group", len(owned), "on_every_instance", len(e.sources)-len(owned))
	err := e.opts.Ownership.Run(srcCtx, owned, c)
	// Ownership revoked its sources; stop the shared ones and anything left.
	c.mu.Lock()
	var rest []string
	for name := range c.runs {
		rest = append(rest, name)
	}
	c.mu.Unlock()
	if len(rest) > 0 {
		c.Revoke(context.WithoutCancel(srcCtx), rest, false)
	}
	c.wg.Wait()
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

func newClusterState(e *Engine) *clusterState {
	c := &clusterState{e: e, runs: map[string]*sourceRun{},
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "forwarder_cluster_owned_sources", Help: "Sources this instance runs in cluster mode (owned ones and shared ones).",
		}),
		assignments: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "forwarder_cluster_source_assignments_total", Help: "Sources assigned to this instance.",
		}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "forwarder_cluster_source_revocations_total", Help: "Sources taken from this instance; lost=true when ownership was lost before the hand-off.",
		}, []string{"lost"}),
		handoff: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "forwarder_cluster_revoke_seconds",
			Help:    "Time to hand a revoked source over: stop, drain in-flight batches, flush the checkpoint.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 9),
		}),
	}
	reg := e.opts.Metrics
	reg.MustRegister(c.owned, c.assignments, c.revocations, c.handoff)
	own := e.opts.Ownership
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "forwarder_cluster_generation", Help: "Group generation of the last rebalance this instance completed.",
	}, func() float64 { return float64(own.Status().Generation) }))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "forwarder_cluster_rebalances_total", Help: "Rebalances of the cluster group this instance took part in.",
	}, func() float64 { return float64(own.Status().Rebalances) }))
	for _, n := range e.sources {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "forwarder_cluster_source_owned",
			Help:        "1 while this instance runs the source in cluster mode, else 0.",
			ConstLabels: prometheus.Labels{"component_id": n.id},
		}, func() float64 {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.runs[n.id] != nil {
				return 1
			}
			return 0
		}))
	}
	e.health.details = c.details
	e.health.set("cluster", "membership", errors.New("joining the cluster group"))
	return c
}

// details is the cluster part of /readyz.
func (c *clusterState) details() map[string]any {
	st := c.e.opts.Ownership.Status()
	return map[string]any{"cluster": map[string]any{
		"instance_id": st.InstanceID, "group": st.Group, "member_id": st.MemberID,
		"generation": st.Generation, "rebalances": st.Rebalances, "sources": c.ownedNames(),
	}}
}

func (c *clusterState) ownedNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.runs))
	for name := range c.runs {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func (c *clusterState) node(name string) *sourceNode {
	for _, n := range c.e.sources {
		if n.id == name {
			return n
		}
	}
	return nil
}

// SetReady implements OwnershipHandler.
func (c *clusterState) SetReady(err error) { c.e.health.set("cluster", "membership", err) }

// Assign implements OwnershipHandler.
func (c *clusterState) Assign(ctx context.Context, names []string) {
	var fresh []*sourceNode
	c.mu.Lock()
	for _, name := range names {
		if n := c.node(name); n != nil && c.runs[name] == nil {
			fresh = append(fresh, n)
		}
	}
	c.mu.Unlock()
	if len(fresh) == 0 {
		return
	}
	if a, ok := c.e.store.(storeAcquirer); ok {
		keys := make([]string, len(fresh))
		for i, n := range fresh {
			keys[i] = n.id
		}
		actx, cancel := context.WithTimeout(ctx, c.e.cfg.ShutdownTimeout)
		if err := a.Acquire(actx, keys...); err != nil {
			// Each source retries when it loads its checkpoint.
			c.e.log.Warn("cannot take the assigned sources over in the checkpoint store yet; retrying per source", "error", err)
		}
		cancel()
	}
	for _, n := range fresh {
		c.assign(n)
	}
	c.e.log.Info("sources assigned to this instance", "sources", names, "owned", c.ownedNames())
}

// assign starts one source: load its checkpoint (retrying), then run it
// with a committer of its own.
func (c *clusterState) assign(n *sourceNode) {
	e := c.e
	ctx, cancel := context.WithCancel(c.srcCtx)
	cctx, cancelCommit := context.WithCancel(c.runCtx)
	r := &sourceRun{cancel: cancel, cancelCommit: cancelCommit, done: make(chan struct{}), commitDone: make(chan struct{})}
	c.mu.Lock()
	c.runs[n.id] = r
	c.owned.Set(float64(len(c.runs)))
	c.mu.Unlock()
	c.assignments.Inc()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(r.done)
		var cp []byte
		for attempt := 0; ; attempt++ {
			var err error
			cp, err = n.storeFor().Load(ctx, n.id)
			if err == nil {
				e.health.set(n.id, "checkpoint", nil)
				break
			}
			if ctx.Err() != nil {
				return
			}
			e.health.set(n.id, "checkpoint", err)
			d := plugins.Backoff(attempt, 500*time.Millisecond, 15*time.Second)
			e.log.Warn("cannot load the source's checkpoint; retrying", "component_id", n.id, "error", err, "retry_in", d.String())
			if !sleepCtx(ctx, d) {
				return
			}
		}
		if len(cp) == 0 {
			cp = nil
		}
		tr := checkpoint.NewTracker(cp)
		n.mu.Lock()
		n.tracker, n.active = tr, tr
		n.toCommit, n.dirty = nil, false
		n.resetEOSLocked()
		n.mu.Unlock()
		n.lastCommit.Store(e.opts.Now().UnixNano())
		r.started.Store(true)
		go func() { defer close(r.commitDone); n.runCommitter(cctx) }()
		e.log.Info("source started on this instance", "component_id", n.id, "from_checkpoint", cp != nil)
		if err := n.runSource(ctx); err != nil {
			e.log.Error("source stopped; this instance keeps it until it is revoked", "component_id", n.id, "error", err)
		}
	}()
}

// Revoke implements OwnershipHandler: the sources are handed over in
// parallel, each bounded by shutdown_timeout.
func (c *clusterState) Revoke(_ context.Context, names []string, lost bool) {
	var wg sync.WaitGroup
	for _, name := range names {
		c.mu.Lock()
		r := c.runs[name]
		c.mu.Unlock()
		n := c.node(name)
		if r == nil || n == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); c.revoke(n, r, lost) }()
	}
	wg.Wait()
	if len(names) > 0 {
		c.e.log.Info("sources revoked from this instance", "sources", names, "lost", lost, "owned", c.ownedNames())
	}
}

func (c *clusterState) revoke(n *sourceNode, r *sourceRun, lost bool) {
	e := c.e
	start := time.Now()
	deadline := start.Add(e.cfg.ShutdownTimeout)
	r.cancel()
	select {
	case <-r.done:
	case <-time.After(time.Until(deadline)):
		e.log.Warn("source did not stop within shutdown_timeout after its revocation", "component_id", n.id)
	}
	if !lost {
		for n.inflight.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if p := n.inflight.Load(); p > 0 {
			e.log.Warn("shutdown_timeout reached with batches of a revoked source in flight; the next owner re-reads them",
				"component_id", n.id, "pending_batches", p)
		}
	}
	if r.started.Load() {
		r.cancelCommit()
		<-r.commitDone
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(c.runCtx), e.cfg.ShutdownTimeout)
	if err := n.flushCommit(fctx); err != nil && !lost {
		e.log.Warn("cannot flush the revoked source's checkpoint; the next owner re-reads its last batches", "component_id", n.id, "error", err)
	}
	cancel()
	n.mu.Lock()
	n.active, n.toCommit, n.dirty = nil, nil, false
	n.resetEOSLocked()
	n.mu.Unlock()
	if rel, ok := n.storeFor().(storeReleaser); ok {
		_ = rel.Release(n.id)
	}
	for _, rep := range []string{"engine", "checkpoint", "commit"} {
		e.health.set(n.id, rep, nil)
	}
	c.mu.Lock()
	if c.runs[n.id] == r {
		delete(c.runs, n.id)
	}
	c.owned.Set(float64(len(c.runs)))
	c.mu.Unlock()
	c.revocations.WithLabelValues(fmt.Sprint(lost)).Inc()
	c.handoff.Observe(time.Since(start).Seconds())
}

// stopFenced stops a source whose checkpoint writes are fenced; it stays
// registered as owned until the Ownership revokes it.
func (c *clusterState) stopFenced(n *sourceNode) {
	c.mu.Lock()
	r := c.runs[n.id]
	c.mu.Unlock()
	if r != nil {
		r.cancel()
	}
	e := c.e
	e.health.set(n.id, "checkpoint", fmt.Errorf("%w; waiting for the group to revoke it", checkpoint.ErrFenced))
}
