package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditforwarder/forwarder/plugins"
)

// eosOutput is a Kafka-like output that can deliver exactly once.
type eosOutput struct {
	scriptOutput
	brokers []string
	encoded atomic.Int64
	badID   string // an event that can never be encoded
}

func (o *eosOutput) ExactlyOnceBrokers() []string { return o.brokers }

func (o *eosOutput) EncodeRecords(_ context.Context, evs []*plugins.Event) ([]plugins.KafkaRecord, error) {
	var be plugins.BatchError
	out := make([]plugins.KafkaRecord, 0, len(evs))
	for i, ev := range evs {
		if ev.Meta.ID == o.badID {
			be.Add(i, plugins.Permanent(errors.New("message too large")))
			continue
		}
		out = append(out, plugins.KafkaRecord{Topic: "events", Key: []byte(ev.Meta.ID), Value: ev.Fields.AppendJSON(nil)})
	}
	o.encoded.Add(int64(len(out)))
	return out, be.Err()
}

// txnStore records each transaction: the checkpoint and the records.
type txnStore struct {
	*clusterStore
	tmu    sync.Mutex
	txns   []txn
	failN  atomic.Int64 // fail the next N SaveWith calls
	plainN atomic.Int64 // Save calls (the at-least-once path)
}

type txn struct {
	key, cp string
	ids     []string
}

func (s *txnStore) Save(ctx context.Context, key string, cp []byte) error {
	s.plainN.Add(1)
	return s.clusterStore.Save(ctx, key, cp)
}

func (s *txnStore) SaveWith(ctx context.Context, key string, cp []byte, recs []plugins.KafkaRecord) error {
	if s.failN.Load() > 0 {
		s.failN.Add(-1)
		return errors.New("transaction aborted: broker unavailable")
	}
	t := txn{key: key, cp: string(cp)}
	for _, r := range recs {
		t.ids = append(t.ids, string(r.Key))
	}
	s.tmu.Lock()
	s.txns = append(s.txns, t)
	s.tmu.Unlock()
	return s.clusterStore.MemStore.Save(ctx, key, cp)
}

func startEOS(t *testing.T, store *txnStore, clusterBrokers []string, nodes ...node) (*clusterRig, error) {
	t.Helper()
	cfg := pipeline(t, t.TempDir(), nodes...)
	own := newFakeOwnership()
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := New(ctx, cfg, Options{Logger: slog.New(slog.DiscardHandler), Store: store, Ownership: own, Metrics: reg, ClusterBrokers: clusterBrokers})
	if err != nil {
		cancel()
		return nil, err
	}
	r := &clusterRig{e: e, own: own, store: store.clusterStore, reg: reg, errc: make(chan error, 1), stop: cancel}
	go func() { r.errc <- e.Run(ctx) }()
	<-own.ready
	t.Cleanup(func() { r.shutdown(t) })
	return r, nil
}

// Every committed transaction holds exactly the events of the batches
// after the previous checkpoint up to its own, so the records of the
// committed transactions are every delivered event exactly once.
func TestExactlyOnceRecordsTravelWithTheirCheckpoint(t *testing.T) {
	src := newEndlessSource()
	out := &eosOutput{scriptOutput: *newScriptOutput(), brokers: []string{"k2:9092", "k1:9092"}, badID: "b3-e2"}
	store := &txnStore{clusterStore: newClusterStore()}
	store.failN.Store(2) // the first transactions fail: records must be kept and retried
	rig, err := startEOS(t, store, []string{"k1:9092", "k2:9092"},
		node{name: "a", kind: plugins.KindSource, comp: src},
		node{name: "t", kind: plugins.KindTransform, comp: &touchTransform{}, inputs: []string{"a"}},
		node{name: "kafka", kind: plugins.KindOutput, comp: out, inputs: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	rig.own.assign("a")
	<-src.froms
	waitUntil(t, "transactions", func() bool {
		store.tmu.Lock()
		defer store.tmu.Unlock()
		return len(store.txns) > 2 && src.next.Load() > 40
	})
	rig.own.revoke(false, "a")
	rig.shutdown(t)

	if calls, _ := out.count(); calls != 0 {
		t.Fatalf("Write delivered %d events: an exactly-once source must not be written outside its transaction", calls)
	}
	if store.plainN.Load() != 0 {
		t.Fatal("a checkpoint was saved without its records")
	}
	store.tmu.Lock()
	defer store.tmu.Unlock()
	seen := map[string]int{}
	prev := -1
	for _, tx := range store.txns {
		last, _ := strconv.Atoi(tx.cp)
		for _, id := range tx.ids {
			seen[id]++
			var b, e int
			fmt.Sscanf(id, "b%d-e%d", &b, &e)
			if b <= prev || b > last {
				t.Fatalf("transaction with checkpoint %d holds %s (batch %d), previous checkpoint %d", last, id, b, prev)
			}
		}
		prev = last
	}
	final, _ := strconv.Atoi(savedCheckpoint(t, store, "a"))
	if final != prev || final < 40 {
		t.Fatalf("final checkpoint %d, last transaction %d", final, prev)
	}
	for b := 0; b <= final; b++ {
		for e := 0; e < src.size; e++ {
			id := fmt.Sprintf("b%d-e%d", b, e)
			want := 1
			if id == out.badID {
				want = 0
			}
			if seen[id] != want {
				t.Fatalf("%s is in %d committed transactions, want %d", id, seen[id], want)
			}
		}
	}
	if dl := readDeadLetters(t, rig.e.DeadLetterPath("kafka")); len(dl) != 1 || !strings.Contains(dl[0], "message too large") {
		t.Fatalf("dead letters: %v", dl)
	}
}

// A source that also feeds another output is delivered at-least-once:
// Write on both outputs, a plain checkpoint save.
func TestExactlyOnceMixedFanOutIsAtLeastOnce(t *testing.T) {
	src := newEndlessSource()
	out := &eosOutput{scriptOutput: *newScriptOutput(), brokers: []string{"k1:9092"}}
	other := newScriptOutput()
	store := &txnStore{clusterStore: newClusterStore()}
	rig, err := startEOS(t, store, []string{"k1:9092"},
		node{name: "a", kind: plugins.KindSource, comp: src},
		node{name: "kafka", kind: plugins.KindOutput, comp: out, inputs: []string{"a"}},
		node{name: "es", kind: plugins.KindOutput, comp: other, inputs: []string{"a"}})
	if err != nil {
		t.Fatal(err)
	}
	rig.own.assign("a")
	<-src.froms
	waitUntil(t, "batches", func() bool { return src.next.Load() > 10 })
	rig.shutdown(t)
	if out.encoded.Load() != 0 || len(store.txns) != 0 {
		t.Fatal("mixed fan-out used the exactly-once path")
	}
	if d, _ := out.count(); d == 0 || store.plainN.Load() == 0 {
		t.Fatal("mixed fan-out did not deliver through Write and plain checkpoints")
	}
}

func TestExactlyOnceConfigurationErrors(t *testing.T) {
	mk := func() []node {
		return []node{
			{name: "a", kind: plugins.KindSource, comp: newEndlessSource()},
			{name: "kafka", kind: plugins.KindOutput, comp: &eosOutput{scriptOutput: *newScriptOutput(), brokers: []string{"k1:9092"}}, inputs: []string{"a"}},
		}
	}
	_, err := startEOS(t, &txnStore{clusterStore: newClusterStore()}, []string{"other:9092"}, mk()...)
	if err == nil || !strings.Contains(err.Error(), "outputs.kafka: exactly_once needs the output's brokers (k1:9092) to be cluster.kafka.brokers (other:9092)") {
		t.Fatalf("brokers mismatch: %v", err)
	}
	cfg := pipeline(t, t.TempDir(), mk()...)
	_, err = New(context.Background(), cfg, Options{Logger: slog.New(slog.DiscardHandler), Store: newClusterStore()})
	if err == nil || !strings.Contains(err.Error(), "outputs.kafka: exactly_once needs cluster mode") {
		t.Fatalf("no cluster: %v", err)
	}
}
