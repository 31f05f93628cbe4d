// Package engine runs a pipeline: it creates the components, connects them
// with bounded queues, fans batches out, tracks acknowledgements per source
// batch, retries outputs, dead-letters what can never be delivered, commits
// checkpoints in order and shuts down gracefully.
//
// Delivery rule: a source batch is acknowledged when every output that
// received any of its events accepted them (events a transform drops count as
// accepted). Only then, and only when every earlier batch of that source is
// acknowledged too, is its checkpoint persisted.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/checkpoint"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/plugins"
)

// Options configure an Engine beyond pipeline.yaml.
type Options struct {
	Logger *slog.Logger
	// Metrics is where engine and component metrics are registered.
	Metrics prometheus.Registerer
	// Store overrides the checkpoint store (default: bbolt under data_dir).
	Store checkpoint.Store
	// Once makes Run return once every source is caught up and delivered.
	Once bool
	// MaxPendingBatches bounds the batches of one source that are emitted
	// but not yet acknowledged (default 8).
	MaxPendingBatches int
	// MaxPendingEvents bounds their events (default 16384), so memory stays
	// bounded whatever a source's batch size; a batch larger than the
	// bound is let through alone.
	MaxPendingEvents int
	// CommitInterval is the least time between two checkpoint saves of a
	// source (default 100ms; the last one is saved at shutdown whatever
	// it is). A crash re-delivers what was acknowledged since the last
	// save, so it adds to the duplicates, never to losses.
	CommitInterval time.Duration
	// TransformWorkers is how many batches a transform that implements
	// plugins.ParallelTransform processes at once (default GOMAXPROCS).
	TransformWorkers int
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Ownership, when set, runs the engine in cluster mode: only the
	// sources it assigns run here (see cluster.go). Store should then be
	// shared by the instances (a KafkaStore).
	Ownership Ownership
	// ClusterBrokers are cluster.kafka.brokers: an exactly_once Kafka
	// output must write to the same cluster (see eos.go).
	ClusterBrokers []string
}

// Engine is a running (or runnable) pipeline.
type Engine struct {
	cfg    *config.Config
	opts   Options
	log    *slog.Logger
	m      *metrics
	store  checkpoint.Store
	dead   *deadLetters
	health *Health

	sources    []*sourceNode
	transforms []*transformNode
	outputs    []*outputNode
	all        []plugins.Component

	cluster *clusterState // nil outside cluster mode
}

// target is something a batch can be sent to.
type target interface {
	enqueue(ctx context.Context, it item) error
	isTransform() bool
}

// item is a slice of events travelling through the graph and the ack group
// of the source batch it came from.
type item struct {
	events []*plugins.Event
	ack    *ackGroup
	start  time.Time
}

// ackGroup counts the deliveries a source batch still waits for.
type ackGroup struct {
	pending atomic.Int64
	// failed is set when some target never received the batch: it must
	// then never be acknowledged.
	failed atomic.Bool
	done   func()

	// Exactly-once (eos.go): the output that encodes this batch instead of
	// writing it, and the records it encoded.
	eosOut  *outputNode
	recMu   sync.Mutex
	records []plugins.KafkaRecord

	// releases are what transforms asked to run once the batch is done
	// (plugins.OnRelease).
	relMu    sync.Mutex
	releases []func()
}

// onRelease registers fn for when the batch is done.
func (g *ackGroup) onRelease(fn func()) {
	g.relMu.Lock()
	g.releases = append(g.releases, fn)
	g.relMu.Unlock()
}

// runReleases runs the registered releases, once the batch is done.
func (g *ackGroup) runReleases() {
	g.relMu.Lock()
	rels := g.releases
	g.releases = nil
	g.relMu.Unlock()
	for _, fn := range rels {
		fn()
	}
}

func (g *ackGroup) add(n int) { g.pending.Add(int64(n)) }

func (g *ackGroup) release() {
	if g.pending.Add(-1) == 0 {
		g.done()
	}
}

// New creates every component of cfg; nothing runs until Run.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = prometheus.NewRegistry()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxPendingBatches <= 0 {
		opts.MaxPendingBatches = 8
	}
	if opts.MaxPendingEvents <= 0 {
		opts.MaxPendingEvents = 16384
	}
	if opts.CommitInterval <= 0 {
		opts.CommitInterval = 100 * time.Millisecond
	}
	if opts.TransformWorkers <= 0 {
		opts.TransformWorkers = runtime.GOMAXPROCS(0)
	}
	e := &Engine{cfg: cfg, opts: opts, log: opts.Logger, m: newMetrics(opts.Metrics),
		dead: newDeadLetters(cfg.DataDir), health: newHealth()}

	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	e.store = opts.Store
	if e.store == nil {
		st, err := checkpoint.OpenBolt(filepath.Join(cfg.DataDir, "checkpoints.db"))
		if err != nil {
			return nil, err
		}
		e.store = st
	}

	byName := map[string]*config.Component{}
	for _, c := range cfg.Components {
		byName[c.Name] = c
	}
	created := map[string]plugins.Component{}
	for _, c := range cfg.Components {
		comp, err := c.Factory.Create(ctx, e.settings(c), c.Config)
		if err != nil {
			e.closeAll(ctx)
			return nil, fmt.Errorf("%s: %w", c.Path(), err)
		}
		created[c.Name] = comp
		e.all = append(e.all, comp)
	}

	// Nodes, then edges.
	nodes := map[string]target{}
	for _, c := range cfg.Components {
		switch c.Kind {
		case plugins.KindOutput:
			out, ok := created[c.Name].(plugins.Output)
			if !ok {
				e.closeAll(ctx)
				return nil, fmt.Errorf("%s: type %q does not implement an output", c.Path(), c.Type)
			}
			n := &outputNode{e: e, id: c.Name, out: out, d: c.Delivery, queue: make(chan item, c.Delivery.QueueSize)}
			n.initMetrics()
			e.outputs = append(e.outputs, n)
			nodes[c.Name] = n
		case plugins.KindTransform:
			tr, ok := created[c.Name].(plugins.Transform)
			if !ok {
				e.closeAll(ctx)
				return nil, fmt.Errorf("%s: type %q does not implement a transform", c.Path(), c.Type)
			}
			n := &transformNode{e: e, id: c.Name, tr: tr, queue: make(chan item, 4)}
			n.initMetrics()
			e.transforms = append(e.transforms, n)
			nodes[c.Name] = n
		case plugins.KindSource:
			src, ok := created[c.Name].(plugins.Source)
			if !ok {
				e.closeAll(ctx)
				return nil, fmt.Errorf("%s: type %q does not implement a source", c.Path(), c.Type)
			}
			n := &sourceNode{e: e, id: c.Name, src: src, slots: make(chan struct{}, opts.MaxPendingBatches),
				events: semaphore.NewWeighted(int64(opts.MaxPendingEvents))}
			n.initMetrics()
			e.sources = append(e.sources, n)
		}
	}
	downstream := map[string][]target{}
	for _, c := range cfg.Components {
		for _, in := range c.Inputs {
			downstream[in] = append(downstream[in], nodes[c.Name])
		}
	}
	for _, s := range e.sources {
		s.down = downstream[s.id]
	}
	for _, t := range e.transforms {
		t.down = downstream[t.id]
	}
	if opts.Ownership != nil {
		if opts.Once {
			e.closeAll(ctx)
			return nil, errors.New("--once cannot be used in cluster mode: the instances share the sources and keep running")
		}
		e.cluster = newClusterState(e)
	}
	if err := e.setupExactlyOnce(downstream); err != nil {
		e.closeAll(ctx)
		return nil, err
	}
	return e, nil
}

func (e *Engine) settings(c *config.Component) plugins.Settings {
	id := c.Name
	return plugins.Settings{
		ID:      id,
		Logger:  e.log.With("component_id", id, "component_kind", c.Kind.String(), "component_type", c.Type),
		Metrics: prometheus.WrapRegistererWith(prometheus.Labels{"component_id": id}, e.opts.Metrics),
		Status:  plugins.StatusFunc(func(err error) { e.health.set(id, "component", err) }),
		DataDir: filepath.Join(e.cfg.DataDir, "components", id),
		Once:    e.opts.Once,
		Now:     e.opts.Now,
	}
}

// Health returns the readiness aggregate, for /readyz.
func (e *Engine) Health() *Health { return e.health }

// DeadLetterPath returns the dead-letter file of an output.
func (e *Engine) DeadLetterPath(component string) string { return e.dead.Path(component) }

// ErrSourceFailed is returned by Run (wrapped) when a source stopped with a
// permanent error.
var ErrSourceFailed = errors.New("source failed")

// Run starts the components and runs until ctx is cancelled (or, in once
// mode, until every source is caught up and everything it emitted is
// acknowledged), then shuts down: sources stop, in-flight batches drain for
// up to shutdown_timeout, checkpoints of acknowledged batches are committed
// and the components are closed, outputs last.
func (e *Engine) Run(ctx context.Context) (err error) {
	// Outputs and transforms keep running during the drain, so they get a
	// context that outlives ctx.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	srcCtx, cancelSrc := context.WithCancel(ctx)
	defer cancelSrc()

	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.ShutdownTimeout)
		defer cancel()
		e.closeAll(closeCtx)
	}()

	// Start outputs, then transforms, then sources.
	for _, n := range e.outputs {
		if err := n.out.Start(ctx); err != nil {
			return fmt.Errorf("outputs.%s: start: %w", n.id, err)
		}
	}
	for _, n := range e.transforms {
		if err := n.tr.Start(ctx); err != nil {
			return fmt.Errorf("transforms.%s: start: %w", n.id, err)
		}
	}
	for _, n := range e.sources {
		if err := n.src.Start(ctx); err != nil {
			return fmt.Errorf("sources.%s: start: %w", n.id, err)
		}
	}

	var workers sync.WaitGroup
	for _, n := range e.outputs {
		for i := 0; i < n.d.MaxInFlight; i++ {
			workers.Add(1)
			go func() { defer workers.Done(); n.run(runCtx) }()
		}
	}
	for _, n := range e.transforms {
		workers.Add(1)
		go func() { defer workers.Done(); n.run(runCtx) }()
	}

	var committers sync.WaitGroup
	var srcWG sync.WaitGroup
	srcErrs := make(chan error, len(e.sources)+1)
	if e.cluster != nil {
		srcWG.Add(1)
		go func() {
			defer srcWG.Done()
			if err := e.runCluster(srcCtx, runCtx); err != nil {
				srcErrs <- err
			}
		}()
	}
	for _, n := range e.sources {
		if e.cluster != nil {
			break // cluster.go starts the sources this instance owns
		}
		cp, err := e.store.Load(ctx, n.id)
		if err != nil {
			return fmt.Errorf("sources.%s: %w", n.id, err)
		}
		if len(cp) == 0 {
			cp = nil
		}
		n.tracker = checkpoint.NewTracker(cp)
		n.commit = make(chan struct{}, 1)
		n.lastCommit.Store(e.opts.Now().UnixNano())
		committers.Add(1)
		go func() { defer committers.Done(); n.runCommitter(runCtx) }()
		srcWG.Add(1)
		go func() {
			defer srcWG.Done()
			if err := n.runSource(srcCtx); err != nil {
				srcErrs <- err
			}
		}()
	}
	e.health.setStarted(true)
	e.log.Info("pipeline started", "sources", len(e.sources), "transforms", len(e.transforms), "outputs", len(e.outputs), "once", e.opts.Once)

	sourcesDone := make(chan struct{})
	go func() { srcWG.Wait(); close(sourcesDone) }()

	var runErr error
	select {
	case <-ctx.Done():
		e.log.Info("shutting down: stopping sources")
	case <-sourcesDone:
		if !e.opts.Once {
			e.log.Warn("every source stopped")
		}
	}
	cancelSrc()
	<-sourcesDone
	close(srcErrs)
	for err := range srcErrs {
		runErr = errors.Join(runErr, err)
	}
	e.health.setStarted(false)

	// Drain: wait for in-flight batches to be acknowledged. In once mode
	// there is no deadline unless ctx was cancelled: the point is to deliver.
	drainTimeout := e.cfg.ShutdownTimeout
	if e.opts.Once && ctx.Err() == nil {
		drainTimeout = 100 * 365 * 24 * time.Hour
	}
	if !e.drain(ctx, drainTimeout) {
		e.log.Warn("shutdown_timeout reached with batches in flight; they are not acknowledged and will be re-read after restart",
			"shutdown_timeout", e.cfg.ShutdownTimeout.String(), "pending_batches", e.pendingBatches())
	}
	cancelRun()
	workers.Wait()
	committers.Wait()
	for _, n := range e.sources {
		if err := n.flushCommit(context.WithoutCancel(ctx)); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	e.log.Info("pipeline stopped")
	return runErr
}

func (e *Engine) pendingBatches() int {
	total := 0
	for _, n := range e.sources {
		total += int(n.inflight.Load())
	}
	return total
}

// drain waits until no batch is pending or the timeout passes. In once mode
// a second cancellation of ctx is not awaited: timeout bounds it.
func (e *Engine) drain(ctx context.Context, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for e.pendingBatches() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		if e.opts.Once && ctx.Err() != nil && timeout > e.cfg.ShutdownTimeout {
			// Interrupted during a once run: fall back to shutdown_timeout.
			deadline = time.Now().Add(e.cfg.ShutdownTimeout)
			timeout = e.cfg.ShutdownTimeout
		}
		<-tick.C
	}
	return true
}

func (e *Engine) closeAll(ctx context.Context) {
	// Sources first, outputs last, as created in reverse-dependency order.
	order := make([]plugins.Component, 0, len(e.all))
	for _, n := range e.sources {
		order = append(order, n.src)
	}
	for _, n := range e.transforms {
		order = append(order, n.tr)
	}
	for _, n := range e.outputs {
		order = append(order, n.out)
	}
	if len(order) == 0 {
		order = e.all
	}
	for _, c := range order {
		if err := c.Close(ctx); err != nil {
			e.log.Warn("close failed", "error", err)
		}
	}
	e.dead.close()
	if e.store != nil {
		if err := e.store.Close(); err != nil {
			e.log.Warn("closing checkpoint store", "error", err)
		}
		e.store = nil
	}
}

// fanOut sends events to every target. Outputs must not modify events, so
// when only outputs read a batch they share it; when a transform (which may
// modify events) is among the targets, it gets the original and every other
// target a deep copy.
func fanOut(ctx context.Context, down []target, events []*plugins.Event, g *ackGroup, start time.Time) error {
	if len(down) == 0 || len(events) == 0 {
		g.release()
		return nil
	}
	g.add(len(down) - 1)
	owner := -1
	for i, t := range down {
		if t.isTransform() {
			owner = i
			break
		}
	}
	// Make every copy before any target can start modifying the original.
	copies := make([][]*plugins.Event, len(down))
	for i := range down {
		copies[i] = events
		if owner >= 0 && i != owner {
			c := make([]*plugins.Event, len(events))
			for j, ev := range events {
				c[j] = ev.Clone()
			}
			copies[i] = c
		}
	}
	for i, t := range down {
		if err := t.enqueue(ctx, item{events: copies[i], ack: g, start: start}); err != nil {
			// Targets after this one never get the batch; release their
			// shares so in-flight accounting ends, but mark the batch
			// failed so its checkpoint is never committed.
			g.failed.Store(true)
			for k := i; k < len(down); k++ {
				g.release()
			}
			return err
		}
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
