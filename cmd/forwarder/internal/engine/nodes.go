package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/checkpoint"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/internal/ordered"
	"github.com/auditforwarder/forwarder/plugins"
)

// ---- sources ----

type sourceNode struct {
	e    *Engine
	id   string
	src  plugins.Source
	down []target

	slots    chan struct{}       // bounds emitted-but-unacknowledged batches
	events   *semaphore.Weighted // and their events
	inflight atomic.Int64
	tracker  *checkpoint.Tracker
	failing  atomic.Bool
	// ackMu orders acknowledgements: two batches acknowledged at once
	// would otherwise offer their checkpoints in either order, and the
	// older could overwrite the newer (a step back, re-read after restart).
	ackMu sync.Mutex

	commit     chan struct{}
	mu         sync.Mutex
	toCommit   []byte
	dirty      bool
	saveMu     sync.Mutex
	lastCommit atomic.Int64 // unix nanos of the last persisted checkpoint

	// Cluster mode (cluster.go): store overrides the engine's store;
	// managed marks a source whose assignments come and go, active is the
	// tracker of its current assignment (both guarded by mu).
	store   checkpoint.Store
	managed bool
	active  *checkpoint.Tracker
	// eos is set for a source delivered exactly once into Kafka (eos.go).
	eos *eosState

	in prometheus.Counter
}

func (n *sourceNode) initMetrics() {
	n.in = n.e.m.eventsIn.WithLabelValues(n.id, "source")
	n.e.opts.Metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "forwarder_source_checkpoint_age_seconds",
		Help:        "Seconds since the source's checkpoint was last persisted.",
		ConstLabels: prometheus.Labels{"component_id": n.id},
	}, func() float64 {
		last := n.lastCommit.Load()
		if last == 0 {
			return 0
		}
		return n.e.opts.Now().Sub(time.Unix(0, last)).Seconds()
	}))
	n.e.opts.Metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "forwarder_source_pending_batches",
		Help:        "Batches emitted by the source and not yet acknowledged.",
		ConstLabels: prometheus.Labels{"component_id": n.id},
	}, func() float64 { return float64(n.inflight.Load()) }))
}

func (n *sourceNode) emit(ctx context.Context, b plugins.Batch) error {
	select {
	case n.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	weight := min(int64(len(b.Events)), int64(n.e.opts.MaxPendingEvents))
	if err := n.events.Acquire(ctx, weight); err != nil {
		<-n.slots
		return err
	}
	if n.failing.Load() {
		n.failing.Store(false)
		n.e.health.set(n.id, "engine", nil)
	}
	tr := n.tracker
	seq := tr.Add(b.Checkpoint)
	n.inflight.Add(1)
	g := &ackGroup{}
	if n.eos != nil {
		g.eosOut = n.eos.out
	}
	g.pending.Store(1)
	g.done = func() {
		if !g.failed.Load() {
			if n.eos != nil {
				n.stashRecords(tr, seq, g.takeRecords())
			}
			n.ackMu.Lock()
			if cp, ok := tr.Ack(seq); ok {
				n.offerFrom(tr, cp)
			}
			n.ackMu.Unlock()
		}
		n.inflight.Add(-1)
		// Every target is done with the events: nothing reads them now.
		g.runReleases()
		if b.Release != nil {
			b.Release()
		}
		n.events.Release(weight)
		<-n.slots
	}
	n.in.Add(float64(len(b.Events)))
	// On error not every target got the batch; fanOut marked it failed so
	// the checkpoint can never pass it.
	return fanOut(ctx, n.down, b.Events, g, time.Now())
}

func (n *sourceNode) runSource(ctx context.Context) error {
	log := n.e.log.With("component_id", n.id)
	for attempt := 0; ; attempt++ {
		err := n.src.Run(ctx, n.tracker.Last(), n.emit)
		if ctx.Err() != nil || err == nil {
			return nil
		}
		n.e.m.sourceErrors.WithLabelValues(n.id).Inc()
		n.failing.Store(true)
		n.e.health.set(n.id, "engine", err)
		if plugins.IsPermanent(err) {
			log.Error("source stopped", "error", err)
			return fmt.Errorf("sources.%s: %w: %w", n.id, ErrSourceFailed, err)
		}
		d := plugins.Backoff(attempt, time.Second, time.Minute)
		log.Warn("source failed; restarting from its last emitted batch", "error", err, "retry_in", d.String())
		if !sleepCtx(ctx, d) {
			return nil
		}
	}
}

// runCommitter persists the newest committable checkpoint, coalescing
// acknowledgements that arrive while a save is in progress, and saving at
// most once per CommitInterval: a fast source would otherwise sync the
// store once per batch, competing with the outputs for the disk.
func (n *sourceNode) runCommitter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.commit:
			start := time.Now()
			err := n.flushCommit(ctx)
			if err == nil {
				sleepCtx(ctx, n.e.opts.CommitInterval-time.Since(start))
				continue
			}
			if n.fencedStop(err) {
				return
			}
			n.e.log.Error("cannot persist checkpoint; it will be retried, and events re-read after a restart",
				"component_id", n.id, "error", err)
			n.e.health.set(n.id, "checkpoint", err)
			sleepCtx(ctx, time.Second)
			select {
			case n.commit <- struct{}{}:
			default:
			}
		}
	}
}

func (n *sourceNode) flushCommit(ctx context.Context) error {
	if n.eos != nil {
		return n.flushEOS(ctx)
	}
	n.saveMu.Lock()
	defer n.saveMu.Unlock()
	n.mu.Lock()
	cp, dirty := n.toCommit, n.dirty
	n.dirty = false
	n.mu.Unlock()
	if !dirty {
		return nil
	}
	if err := n.storeFor().Save(ctx, n.id, cp); err != nil {
		n.mu.Lock()
		if !n.dirty {
			n.toCommit, n.dirty = cp, true
		}
		n.mu.Unlock()
		return fmt.Errorf("sources.%s: %w", n.id, err)
	}
	n.e.health.set(n.id, "checkpoint", nil)
	n.lastCommit.Store(n.e.opts.Now().UnixNano())
	n.e.log.Debug("checkpoint saved", "component_id", n.id, "bytes", len(cp))
	n.e.m.checkpoints.WithLabelValues(n.id).Inc()
	n.committed(ctx, cp)
	return nil
}

// ---- transforms ----

type transformNode struct {
	e     *Engine
	id    string
	tr    plugins.Transform
	down  []target
	queue chan item

	in, out, dropped, failed prometheus.Counter
}

func (n *transformNode) isTransform() bool { return true }

func (n *transformNode) initMetrics() {
	n.in = n.e.m.eventsIn.WithLabelValues(n.id, "transform")
	n.out = n.e.m.eventsOut.WithLabelValues(n.id, "transform")
	n.dropped = n.e.m.eventsDropped.WithLabelValues(n.id, "transform")
	n.failed = n.e.m.eventsFailed.WithLabelValues(n.id, "transform")
	registerQueueGauge(n.e, n.id, n.queue)
}

func registerQueueGauge(e *Engine, id string, q chan item) {
	e.opts.Metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "forwarder_component_queue_depth",
		Help:        "Batches waiting in the component's input queue.",
		ConstLabels: prometheus.Labels{"component_id": id},
	}, func() float64 { return float64(len(q)) }))
}

func (n *transformNode) enqueue(ctx context.Context, it item) error {
	select {
	case n.queue <- it:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *transformNode) run(ctx context.Context) {
	if pt, ok := n.tr.(plugins.ParallelTransform); ok && n.e.opts.TransformWorkers > 1 {
		n.runParallel(ctx, pt)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-n.queue:
			n.in.Add(float64(len(it.events)))
			out, err := n.tr.Process(plugins.WithRelease(ctx, it.ack.onRelease), it.events)
			n.finish(ctx, it, out, err)
		}
	}
}

// runParallel processes up to TransformWorkers batches at once, each on a
// fork of the transform, and passes them on in arrival order: a stage that
// would otherwise hold one core keeps every core busy when it is the
// pipeline's slowest.
func (n *transformNode) runParallel(ctx context.Context, pt plugins.ParallelTransform) {
	type job struct {
		it  item
		out []*plugins.Event
		err error
	}
	pipe := ordered.New(ctx, n.e.opts.TransformWorkers, func() func(*job) {
		process := pt.Fork()
		return func(j *job) {
			j.out, j.err = process(plugins.WithRelease(ctx, j.it.ack.onRelease), j.it.events)
		}
	}, func(j *job) { n.finish(ctx, j.it, j.out, j.err) })
	defer pipe.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-n.queue:
			n.in.Add(float64(len(it.events)))
			if pipe.Submit(ctx, &job{it: it}) != nil {
				return
			}
		}
	}
}

// finish passes a processed batch on, or dead-letters it when Process failed.
func (n *transformNode) finish(ctx context.Context, it item, out []*plugins.Event, err error) {
	if err != nil {
		reasons := make([]error, len(it.events))
		for i := range reasons {
			reasons[i] = err
		}
		n.failed.Add(float64(len(it.events)))
		if n.e.deadLetter(ctx, n.id, it.events, reasons) {
			it.ack.release()
		}
		return
	}
	if d := len(it.events) - len(out); d > 0 {
		n.dropped.Add(float64(d))
	}
	n.out.Add(float64(len(out)))
	_ = fanOut(ctx, n.down, out, it.ack, it.start)
}

// ---- outputs ----

type outputNode struct {
	e     *Engine
	id    string
	out   plugins.Output
	d     config.Delivery
	queue chan item

	accepted, failed, retries prometheus.Counter
	latency                   prometheus.Observer

	// eos is set when the output delivers exactly once (eos.go).
	eos plugins.ExactlyOnceOutput
}

func (n *outputNode) isTransform() bool { return false }

func (n *outputNode) initMetrics() {
	n.accepted = n.e.m.eventsOut.WithLabelValues(n.id, "output")
	n.failed = n.e.m.eventsFailed.WithLabelValues(n.id, "output")
	n.retries = n.e.m.retries.WithLabelValues(n.id)
	n.latency = n.e.m.batchLatency.WithLabelValues(n.id)
	n.e.m.eventsIn.WithLabelValues(n.id, "output")
	registerQueueGauge(n.e, n.id, n.queue)
}

func (n *outputNode) enqueue(ctx context.Context, it item) error {
	select {
	case n.queue <- it:
		n.e.m.eventsIn.WithLabelValues(n.id, "output").Add(float64(len(it.events)))
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (n *outputNode) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-n.queue:
			if n.deliver(ctx, it) {
				n.latency.Observe(time.Since(it.start).Seconds())
				it.ack.release()
			}
		}
	}
}

// deliver writes a batch until it is accepted or dead-lettered. It returns
// false only when ctx ended first: the batch then stays unacknowledged.
func (n *outputNode) deliver(ctx context.Context, it item) bool {
	if n.eos != nil && it.ack.eosOut == n {
		return n.deliverEOS(ctx, it)
	}
	log := n.e.log.With("component_id", n.id)
	events := it.events
	for attempt := 0; ; attempt++ {
		wctx, cancel := context.WithTimeout(ctx, n.d.Timeout)
		began := time.Now()
		err := n.out.Write(wctx, events)
		cancel()
		if err == nil {
			if log.Enabled(ctx, slog.LevelDebug) {
				log.Debug("batch written", "events", len(events), "took", time.Since(began).String(), "attempt", attempt+1)
			}
			n.accepted.Add(float64(len(events)))
			n.e.health.set(n.id, "engine", nil)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var be *plugins.BatchError
		switch {
		case errors.As(err, &be):
			var perm, retry []*plugins.Event
			var permErr []error
			seen := make(map[int]bool, len(be.Failures))
			var firstRetryErr error
			for _, f := range be.Failures {
				if f.Index < 0 || f.Index >= len(events) || seen[f.Index] {
					continue
				}
				seen[f.Index] = true
				if plugins.IsPermanent(f.Err) {
					perm = append(perm, events[f.Index])
					permErr = append(permErr, f.Err)
				} else {
					retry = append(retry, events[f.Index])
					if firstRetryErr == nil {
						firstRetryErr = f.Err
					}
				}
			}
			n.accepted.Add(float64(len(events) - len(seen)))
			if len(perm) > 0 {
				n.failed.Add(float64(len(perm)))
				log.Warn("events failed permanently; written to the dead-letter file",
					"count", len(perm), "error", permErr[0], "dead_letter_file", n.e.dead.Path(n.id))
				if !n.e.deadLetter(ctx, n.id, perm, permErr) {
					return false
				}
			}
			if len(retry) == 0 {
				n.e.health.set(n.id, "engine", nil)
				return true
			}
			events, err = retry, firstRetryErr
		case plugins.IsPermanent(err):
			n.failed.Add(float64(len(events)))
			log.Warn("batch failed permanently; written to the dead-letter file",
				"count", len(events), "error", err, "dead_letter_file", n.e.dead.Path(n.id))
			return n.e.deadLetter(ctx, n.id, events, repeatErr(err, len(events)))
		}
		if n.d.MaxRetries >= 0 && attempt >= n.d.MaxRetries {
			err = fmt.Errorf("gave up after %d retries: %w", n.d.MaxRetries, err)
			n.failed.Add(float64(len(events)))
			log.Error("delivery failed; written to the dead-letter file", "count", len(events), "error", err)
			return n.e.deadLetter(ctx, n.id, events, repeatErr(err, len(events)))
		}
		n.retries.Inc()
		n.e.health.set(n.id, "engine", err)
		d := plugins.Backoff(attempt, n.d.InitialBackoff, n.d.MaxBackoff)
		log.Warn("write failed; retrying", "error", err, "attempt", attempt+1, "retry_in", d.String(), "events", len(events))
		if !sleepCtx(ctx, d) {
			return false
		}
	}
}

func repeatErr(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

// deadLetter writes events to the component's dead-letter file, retrying
// until it succeeds or ctx ends: an event is acknowledged only once it is
// either delivered or recorded there, never silently dropped.
func (e *Engine) deadLetter(ctx context.Context, component string, events []*plugins.Event, reasons []error) bool {
	for attempt := 0; ; attempt++ {
		err := e.dead.write(component, events, reasons, e.opts.Now())
		if err == nil {
			e.m.deadLetters.WithLabelValues(component).Add(float64(len(events)))
			e.health.set(component, "dead_letter", nil)
			return true
		}
		e.health.set(component, "dead_letter", err)
		e.log.Error("cannot write dead letters; the batch stays unacknowledged and is retried", "component_id", component, "error", err)
		if !sleepCtx(ctx, plugins.Backoff(attempt, time.Second, time.Minute)) {
			return false
		}
	}
}
