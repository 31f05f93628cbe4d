package engine

// Exactly-once into Kafka: for a source whose every event reaches one
// Kafka output with exactly_once: true (and no other output), the output
// does not produce; it encodes its records (plugins.ExactlyOnceOutput),
// the batch counts as delivered, and the records wait beside the source's
// checkpoint. When the checkpoint is persisted, the store writes the
// records of every batch it covers and the checkpoint record in one Kafka
// transaction (KafkaStore.SaveWith). A crash before the commit aborts both;
// the source re-reads from the previous checkpoint, so a read_committed
// consumer sees every event exactly once.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/checkpoint"
	"github.com/auditforwarder/forwarder/plugins"
)

// eosStore is a store that can write records in the transaction of a
// checkpoint (checkpoint.KafkaStore).
type eosStore interface {
	SaveWith(ctx context.Context, key string, cp []byte, records []plugins.KafkaRecord) error
}

// eosState is a source's exactly-once bookkeeping, guarded by its mu.
type eosState struct {
	out *outputNode
	// stash holds the records of acknowledged batches not yet covered by
	// a committable checkpoint, per tracker (assignment) and batch.
	stash map[*checkpoint.Tracker]map[uint64][]plugins.KafkaRecord
	// pending holds the records the next checkpoint save must carry.
	pending []plugins.KafkaRecord
}

// setupExactlyOnce decides which sources deliver exactly once. A Kafka
// output with exactly_once: true needs cluster mode and the cluster's
// brokers (else the pipeline does not start); a source that also feeds
// another output stays at-least-once, with a warning.
func (e *Engine) setupExactlyOnce(downstream map[string][]target) error {
	var eosOuts []*outputNode
	for _, o := range e.outputs {
		x, ok := o.out.(plugins.ExactlyOnceOutput)
		if !ok {
			continue
		}
		brokers := x.ExactlyOnceBrokers()
		if brokers == nil {
			continue
		}
		if e.cluster == nil {
			return fmt.Errorf("outputs.%s: exactly_once needs cluster mode: add a cluster: block (the checkpoints must live in the same Kafka as the events)", o.id)
		}
		if _, ok := e.store.(eosStore); !ok {
			return fmt.Errorf("outputs.%s: exactly_once needs the Kafka checkpoint store of cluster mode", o.id)
		}
		if !sameBrokers(brokers, e.opts.ClusterBrokers) {
			return fmt.Errorf("outputs.%s: exactly_once needs the output's brokers (%s) to be cluster.kafka.brokers (%s): one Kafka transaction holds the events and the checkpoint",
				o.id, strings.Join(brokers, ","), strings.Join(e.opts.ClusterBrokers, ","))
		}
		o.eos = x
		eosOuts = append(eosOuts, o)
	}
	if len(eosOuts) == 0 {
		return nil
	}
	for _, s := range e.sources {
		reach := map[*outputNode]bool{}
		var walk func(ts []target)
		walk = func(ts []target) {
			for _, t := range ts {
				switch n := t.(type) {
				case *outputNode:
					reach[n] = true
				case *transformNode:
					walk(n.down)
				}
			}
		}
		walk(downstream[s.id])
		for _, o := range eosOuts {
			if !reach[o] {
				continue
			}
			switch {
			case isShared(s.src):
				e.log.Warn("exactly_once does not apply to a source shared by every instance (its position is its consumer group's); it is delivered at-least-once",
					"output", o.id, "source", s.id)
			case len(reach) > 1:
				var others []string
				for r := range reach {
					if r != o {
						others = append(others, r.id)
					}
				}
				sort.Strings(others)
				e.log.Warn("exactly_once applies only to sources whose events go to this output alone; this source also feeds other outputs, so it is delivered at-least-once (consumers dedupe by event.id)",
					"output", o.id, "source", s.id, "other_outputs", others)
			default:
				s.eos = &eosState{out: o, stash: map[*checkpoint.Tracker]map[uint64][]plugins.KafkaRecord{}}
				e.log.Info("exactly-once delivery into Kafka", "source", s.id, "output", o.id)
			}
		}
	}
	return nil
}

func sameBrokers(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// deliverEOS encodes a batch of an exactly-once source instead of writing
// it; the records travel with the source's checkpoint. Events that can
// never be encoded go to the dead-letter file; a retriable error (the
// topic does not exist yet) is retried with backoff.
func (n *outputNode) deliverEOS(ctx context.Context, it item) bool {
	var recs []plugins.KafkaRecord
	var err error
	var be *plugins.BatchError
	for attempt := 0; ; attempt++ {
		recs, err = n.eos.EncodeRecords(ctx, it.events)
		if err == nil || errors.As(err, &be) || plugins.IsPermanent(err) {
			break
		}
		if ctx.Err() != nil {
			return false
		}
		n.retries.Inc()
		n.e.health.set(n.id, "engine", err)
		d := plugins.Backoff(attempt, n.d.InitialBackoff, n.d.MaxBackoff)
		n.e.log.Warn("encoding for exactly-once delivery failed; retrying", "component_id", n.id, "error", err, "retry_in", d.String())
		if !sleepCtx(ctx, d) {
			return false
		}
	}
	n.e.health.set(n.id, "engine", nil)
	switch {
	case errors.As(err, &be):
		var bad []*plugins.Event
		var reasons []error
		for _, f := range be.Failures {
			if f.Index >= 0 && f.Index < len(it.events) {
				bad = append(bad, it.events[f.Index])
				reasons = append(reasons, f.Err)
			}
		}
		n.failed.Add(float64(len(bad)))
		if len(bad) > 0 && !n.e.deadLetter(ctx, n.id, bad, reasons) {
			return false
		}
	case err != nil:
		n.failed.Add(float64(len(it.events)))
		return n.e.deadLetter(ctx, n.id, it.events, repeatErr(err, len(it.events)))
	}
	it.ack.addRecords(recs)
	n.accepted.Add(float64(len(recs)))
	return true
}

func (g *ackGroup) addRecords(recs []plugins.KafkaRecord) {
	g.recMu.Lock()
	g.records = append(g.records, recs...)
	g.recMu.Unlock()
}

func (g *ackGroup) takeRecords() []plugins.KafkaRecord {
	g.recMu.Lock()
	defer g.recMu.Unlock()
	r := g.records
	g.records = nil
	return r
}

// stashRecords keeps an acknowledged batch's records until a checkpoint
// covers it.
func (n *sourceNode) stashRecords(tr *checkpoint.Tracker, seq uint64, recs []plugins.KafkaRecord) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.managed && n.active != tr {
		return // an earlier assignment: never committed, its next owner re-reads it
	}
	m := n.eos.stash[tr]
	if m == nil {
		m = map[uint64][]plugins.KafkaRecord{}
		n.eos.stash[tr] = m
	}
	m[seq] = recs
}

// collectRecordsLocked moves the records of every batch tr committed to
// the pending records of the next save (n.mu held).
func (n *sourceNode) collectRecordsLocked(tr *checkpoint.Tracker) {
	m := n.eos.stash[tr]
	if len(m) == 0 {
		return
	}
	head := tr.Committed()
	var seqs []uint64
	for s := range m {
		if s < head {
			seqs = append(seqs, s)
		}
	}
	slices.Sort(seqs)
	for _, s := range seqs {
		n.eos.pending = append(n.eos.pending, m[s]...)
		delete(m, s)
	}
}

// resetEOSLocked forgets what an ended assignment left behind (n.mu held).
func (n *sourceNode) resetEOSLocked() {
	if n.eos != nil {
		n.eos.stash = map[*checkpoint.Tracker]map[uint64][]plugins.KafkaRecord{}
		n.eos.pending = nil
	}
}

// flushEOS writes the pending records and the checkpoint in one transaction.
func (n *sourceNode) flushEOS(ctx context.Context) error {
	n.saveMu.Lock()
	defer n.saveMu.Unlock()
	n.mu.Lock()
	cp, dirty, recs := n.toCommit, n.dirty, n.eos.pending
	n.dirty, n.eos.pending = false, nil
	n.mu.Unlock()
	if !dirty {
		return nil
	}
	st, ok := n.storeFor().(eosStore)
	if !ok {
		return fmt.Errorf("sources.%s: exactly-once needs the Kafka checkpoint store", n.id)
	}
	if err := st.SaveWith(ctx, n.id, cp, recs); err != nil {
		n.mu.Lock()
		if !n.dirty {
			n.toCommit, n.dirty = cp, true
		}
		n.eos.pending = append(recs, n.eos.pending...)
		n.mu.Unlock()
		return fmt.Errorf("sources.%s: %w", n.id, err)
	}
	n.e.health.set(n.id, "checkpoint", nil)
	n.lastCommit.Store(n.e.opts.Now().UnixNano())
	n.e.m.checkpoints.WithLabelValues(n.id).Inc()
	n.committed(ctx, cp)
	return nil
}
