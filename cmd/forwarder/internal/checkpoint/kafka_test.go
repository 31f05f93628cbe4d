package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditforwarder/forwarder/plugins/kafkaconfig/kafkatest"
)

func testBrokers(t testing.TB) []string { return kafkatest.Brokers(t) }

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano(), rand.IntN(1e6))
}

func openTestStore(t *testing.T, brokers []string, group, topic string) *KafkaStore {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := OpenKafka(ctx, KafkaOptions{Client: []kgo.Opt{kgo.SeedBrokers(brokers...)}, Group: group, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// ownerWith opens a store that takes key over and saves cp as its
// checkpoint.
func ownerWith(t *testing.T, brokers []string, group, topic, key, cp string) *KafkaStore {
	t.Helper()
	s := openTestStore(t, brokers, group, topic)
	if _, err := s.Load(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(context.Background(), key, []byte(cp)); err != nil {
		t.Fatal(err)
	}
	return s
}

// stateTopic names a fresh state topic and group on the test broker; the
// topic is deleted after the test.
func stateTopic(t *testing.T) (brokers []string, topic, group string) {
	brokers = testBrokers(t)
	topic, group = uniqueName("cp-state"), uniqueName("g")
	deleteTopic(t, brokers, topic)
	return brokers, topic, group
}

func deleteTopic(t *testing.T, brokers []string, topic string) {
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = kadm.NewClient(cl).DeleteTopics(ctx, topic)
	})
}

func TestKafkaStoreRoundTripAndCompactedTopic(t *testing.T) {
	brokers, topic, group := stateTopic(t)
	ctx := context.Background()

	a := openTestStore(t, brokers, group, topic)
	if cp, err := a.Load(ctx, "ncp"); err != nil || cp != nil {
		t.Fatalf("empty load: %q %v", cp, err)
	}
	for i := 1; i <= 5; i++ {
		if err := a.Save(ctx, "ncp", []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Load(ctx, "nhn"); err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, "nhn", []byte("n1")); err != nil {
		t.Fatal(err)
	}
	// Another instance sees the newest committed value of each key.
	b := openTestStore(t, brokers, group, topic)
	if cp, err := b.Load(ctx, "ncp"); err != nil || string(cp) != "v5" {
		t.Fatalf("other instance: %q %v", cp, err)
	}
	if cp, err := b.Load(ctx, "nhn"); err != nil || string(cp) != "n1" {
		t.Fatalf("other instance: %q %v", cp, err)
	}

	// The topic was created compacted.
	cl, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
	defer cl.Close()
	cfgs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := cfgs.On(topic, nil)
	policy := ""
	for _, c := range rc.Configs {
		if c.Key == "cleanup.policy" {
			policy = c.MaybeValue()
		}
	}
	if policy != "compact" {
		t.Fatalf("cleanup.policy = %q, want compact", policy)
	}
}

// A busy broker makes the client return transient errors at once (a
// timed-out metadata or offset request). They must not be taken for "read
// to the end": a new owner would load nothing and resume from scratch.
func TestKafkaStoreLoadRidesOutTransientReadErrors(t *testing.T) {
	brokers, topic, group := stateTopic(t)
	ctx := context.Background()

	ownerWith(t, brokers, group, topic, "ncp", "v1")

	for _, fault := range []error{context.DeadlineExceeded, kerr.RequestTimedOut, kerr.NotLeaderForPartition} {
		b := openTestStore(t, brokers, group+"-b", topic)
		injected := 0
		poll := b.poll
		b.poll = func(ctx context.Context) kgo.Fetches {
			if injected < 6 {
				injected++
				return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: topic,
					Partitions: []kgo.FetchPartition{{Partition: 0, Err: fmt.Errorf("metadata refresh: %w", fault)}}}}}}
			}
			return poll(ctx)
		}
		if cp, err := b.Load(ctx, "ncp"); err != nil || string(cp) != "v1" {
			t.Fatalf("%v: load after %d transient errors: %q %v", fault, injected, cp, err)
		}
	}

	// A real failure still ends the load, with the topic and the cause.
	c := openTestStore(t, brokers, group+"-c", topic)
	c.poll = func(context.Context) kgo.Fetches {
		return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: topic,
			Partitions: []kgo.FetchPartition{{Partition: 0, Err: kerr.TopicAuthorizationFailed}}}}}}
	}
	_, err := c.Load(ctx, "ncp")
	if !errors.Is(err, kerr.TopicAuthorizationFailed) || !strings.Contains(err.Error(), topic) {
		t.Fatalf("load with a fatal read error: %v", err)
	}
}

func TestKafkaStoreNewerOwnerFencesOlder(t *testing.T) {
	brokers, topic, group := stateTopic(t)
	ctx := context.Background()

	old := ownerWith(t, brokers, group, topic, "src", "old-1")
	// A new owner takes the source over: it reads the old owner's last
	// checkpoint, and its producer fences the old one.
	newer := openTestStore(t, brokers, group, topic)
	if cp, err := newer.Load(ctx, "src"); err != nil || string(cp) != "old-1" {
		t.Fatalf("new owner load: %q %v", cp, err)
	}
	err := old.Save(ctx, "src", []byte("stale"))
	t.Logf("stale save: %v", err)
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("stale owner's save: %v, want ErrFenced", err)
	}
	// And it stays fenced: no silent re-acquisition.
	if err := old.Save(ctx, "src", []byte("stale-2")); !errors.Is(err, ErrFenced) {
		t.Fatalf("second stale save: %v", err)
	}
	if err := newer.Save(ctx, "src", []byte("new-1")); err != nil {
		t.Fatal(err)
	}
	third := openTestStore(t, brokers, group, topic)
	if cp, err := third.Load(ctx, "src"); err != nil || string(cp) != "new-1" {
		t.Fatalf("after fencing: %q %v (a stale write must never win)", cp, err)
	}
	// Another group's keys are independent: the same source name in
	// another cluster does not fence this one.
	other := openTestStore(t, brokers, group+"-other", topic+"-other")
	deleteTopic(t, brokers, topic+"-other")
	if _, err := other.Load(ctx, "src"); err != nil {
		t.Fatal(err)
	}
	if err := third.Save(ctx, "src", []byte("new-2")); err != nil {
		t.Fatalf("a different group fenced this one: %v", err)
	}
}

// A crashed owner leaves a transaction open; the new owner's Load fences
// it (aborting it), so neither the load blocks until the transaction
// timeout nor does the uncommitted checkpoint ever become visible.
func TestKafkaStoreCrashedOwnersOpenTransactionIsAborted(t *testing.T) {
	brokers, topic, group := stateTopic(t)
	ctx := context.Background()

	a := ownerWith(t, brokers, group, topic, "src", "committed")
	_ = a.Release("src")

	zombie, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(a.TransactionalID("src")),
		kgo.TransactionTimeout(time.Minute), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer zombie.Close()
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Key: []byte("src"), Value: []byte("uncommitted")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The zombie never ends its transaction (as if killed).

	b := openTestStore(t, brokers, group, topic)
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cp, err := b.Load(lctx, "src")
	if err != nil {
		t.Fatal(err)
	}
	if string(cp) != "committed" {
		t.Fatalf("load = %q, want the committed checkpoint", cp)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("load took %s: the open transaction was waited out, not fenced", d)
	}
	if err := b.Save(ctx, "src", []byte("after")); err != nil {
		t.Fatal(err)
	}
	if err := zombie.EndTransaction(ctx, kgo.TryCommit); err == nil {
		c := openTestStore(t, brokers, group, topic)
		if cp, _ := c.Load(ctx, "src"); string(cp) == "uncommitted" {
			t.Fatal("the fenced zombie's transaction committed")
		}
	}
}

func TestKafkaStoreReleaseAndConcurrentKeys(t *testing.T) {
	brokers, topic, group := stateTopic(t)
	ctx := context.Background()
	s := openTestStore(t, brokers, group, topic)
	keys := []string{"a", "b", "c", "d"}
	if err := s.Acquire(ctx, keys...); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				if err := s.Save(ctx, k, []byte(fmt.Sprintf("%s%d", k, i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := s.Release("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, "a", []byte("x")); !errors.Is(err, ErrFenced) {
		t.Fatalf("save after release: %v", err)
	}
	r := openTestStore(t, brokers, group, topic)
	for _, k := range keys {
		if cp, err := r.Load(ctx, k); err != nil || string(cp) != k+"4" {
			t.Fatalf("%s: %q %v", k, cp, err)
		}
	}
}

func TestKafkaStoreRefusesDeletePolicyTopic(t *testing.T) {
	brokers := testBrokers(t)
	topic := uniqueName("cp-delete")
	deleteTopic(t, brokers, topic)
	cl, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
	defer cl.Close()
	ctx := context.Background()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": kadm.StringPtr("delete")}, topic); err != nil {
		t.Fatal(err)
	}
	_, err := OpenKafka(ctx, KafkaOptions{Client: []kgo.Opt{kgo.SeedBrokers(brokers...)}, Group: "g", Topic: topic})
	if err == nil || !strings.Contains(err.Error(), "cleanup.policy=delete") || !strings.Contains(err.Error(), topic) {
		t.Fatalf("got %v", err)
	}
}

func BenchmarkKafkaStoreSave(b *testing.B) {
	brokers := testBrokers(b)
	topic := uniqueName("cp-bench")
	ctx := context.Background()
	s, err := OpenKafka(ctx, KafkaOptions{Client: []kgo.Opt{kgo.SeedBrokers(brokers...)}, Group: "bench", Topic: topic})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = s.Close()
		cl, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
		_, _ = kadm.NewClient(cl).DeleteTopics(ctx, topic)
		cl.Close()
	}()
	if _, err := s.Load(ctx, "src"); err != nil {
		b.Fatal(err)
	}
	cp := []byte(`{"end":1735689600000,"ids":["a","b","c"]}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Save(ctx, "src", cp); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
}
