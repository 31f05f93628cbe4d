package kafka

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/kafkaconfig/kafkatest"
)

func testBrokers(t testing.TB) []string { return kafkatest.Brokers(t) }

// testTopic creates a topic with n partitions holding count ECS documents
// and returns its name and the id at each (partition, offset).
func testTopic(t testing.TB, brokers []string, partitions, count int) (string, map[[2]int64]string) {
	t.Helper()
	topic := fmt.Sprintf("src-%d-%d", time.Now().UnixNano(), rand.IntN(1e6))
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, int32(partitions), -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
		defer c.Close()
		_, _ = kadm.NewClient(c).DeleteTopics(context.Background(), topic)
	})
	at := map[[2]int64]string{}
	recs := make([]*kgo.Record, count)
	for i := range recs {
		id := fmt.Sprintf("ev-%05d", i)
		recs[i] = &kgo.Record{Key: []byte(id), Value: []byte(fmt.Sprintf(`{"@timestamp":"2026-01-02T03:04:05.000Z","event":{"id":%q,"dataset":"ncloud.activity_tracer"},"message":"m%d"}`, id, i))}
	}
	var res kgo.ProduceResults
	for attempt := 0; ; attempt++ {
		res = cl.ProduceSync(ctx, recs...)
		if res.FirstErr() == nil || attempt > 20 {
			break
		}
		time.Sleep(200 * time.Millisecond) // a just-created topic's metadata spreading
	}
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		at[[2]int64{int64(r.Record.Partition), r.Record.Offset}] = string(r.Record.Key)
	}
	return topic, at
}

func testSource(t testing.TB, brokers []string, topic, group string, reg prometheus.Registerer) *source {
	t.Helper()
	cfg := defaultConfig()
	cfg.Brokers, cfg.Topics, cfg.Group = brokers, []string{topic}, group
	cfg.MaxBatchRecords = 25
	cfg.SessionTimeout, cfg.RevokeTimeout = 6*time.Second, 5*time.Second
	if err := plugins.ValidateConfig("", cfg); err != nil {
		t.Fatal(err)
	}
	set := plugins.NopSettings("k")
	if reg != nil {
		set.Metrics = reg
	}
	s, err := newSource(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
	})
	return s
}

type batchLog struct {
	mu      sync.Mutex
	batches []plugins.Batch
	ids     map[string]int
}

func (b *batchLog) emit(_ context.Context, batch plugins.Batch) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batches = append(b.batches, batch)
	for _, ev := range batch.Events {
		b.ids[ev.Meta.ID]++
	}
	return nil
}

func (b *batchLog) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.ids)
}

func (b *batchLog) batch(i int) plugins.Batch {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.batches[i]
}

func (b *batchLog) n() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.batches)
}

func runSource(t *testing.T, s *source, log *batchLog) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx, nil, log.emit) }()
	t.Cleanup(func() { cancel(); <-done })
	return cancel
}

func committedOffsets(t testing.TB, brokers []string, group, topic string) map[int32]int64 {
	t.Helper()
	cl, _ := kgo.NewClient(kgo.SeedBrokers(brokers...))
	defer cl.Close()
	resp, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Nothing is committed until Committed says a batch is delivered, and then
// exactly that batch's positions (never further).
func TestOffsetsCommittedOnlyAfterDelivery(t *testing.T) {
	brokers := testBrokers(t)
	topic, at := testTopic(t, brokers, 3, 300)
	group := "g-" + topic
	reg := prometheus.NewRegistry()
	s := testSource(t, brokers, topic, group, reg)
	log := &batchLog{ids: map[string]int{}}
	runSource(t, s, log)
	waitUntil(t, "every record", 30*time.Second, func() bool { return log.count() == 300 })
	for id := range at {
		if log.ids[at[id]] != 1 {
			t.Fatalf("record %v (%s) emitted %d times", id, at[id], log.ids[at[id]])
		}
	}
	time.Sleep(300 * time.Millisecond)
	if got := committedOffsets(t, brokers, group, topic); len(got) != 0 {
		t.Fatalf("offsets committed before any delivery: %v", got)
	}

	// Deliver the batches up to k: the committed offsets are exactly the
	// positions after batch k, and every record below them was emitted in
	// a batch ≤ k.
	k := log.n() / 2
	delivered := map[string]bool{}
	for i := 0; i <= k; i++ {
		for _, ev := range log.batch(i).Events {
			delivered[ev.Meta.ID] = true
		}
	}
	if err := s.Committed(context.Background(), log.batch(k).Checkpoint); err != nil {
		t.Fatal(err)
	}
	got := committedOffsets(t, brokers, group, topic)
	if len(got) == 0 {
		t.Fatal("nothing committed after Committed")
	}
	for key, id := range at {
		p, off := int32(key[0]), key[1]
		if off < got[p] && !delivered[id] {
			t.Fatalf("offset %d of partition %d committed (at %d) but %s was not delivered", off, p, got[p], id)
		}
	}
	// An older checkpoint never moves the offsets back.
	if err := s.Committed(context.Background(), log.batch(0).Checkpoint); err != nil {
		t.Fatal(err)
	}
	if again := committedOffsets(t, brokers, group, topic); fmt.Sprint(again) != fmt.Sprint(got) {
		t.Fatalf("an older checkpoint moved offsets: %v → %v", got, again)
	}
	// The last batch commits everything; the lag is then zero.
	if err := s.Committed(context.Background(), log.batch(log.n()-1).Checkpoint); err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	for _, o := range committedOffsets(t, brokers, group, topic) {
		total += o
	}
	if total != 300 {
		t.Fatalf("committed offsets sum to %d, want 300", total)
	}
	waitUntil(t, "lag metric", 10*time.Second, func() bool {
		n, _ := testutil.GatherAndCount(reg, "forwarder_kafka_source_lag_records")
		return n == 3
	})
	if v := testutil.ToFloat64(s.lag.WithLabelValues(topic, "0")); v != 0 {
		t.Fatalf("lag after commit = %v", v)
	}
	// Another process's checkpoint is ignored.
	other := &checkpointDoc{Session: "someone-else", Positions: []position{{Topic: topic, Partition: 0, Offset: 1, Assignment: 1}}}
	if err := s.Committed(context.Background(), encodeCheckpoint(other)); err != nil {
		t.Fatal(err)
	}
	if o := committedOffsets(t, brokers, group, topic); o[0] == 1 {
		t.Fatal("a foreign checkpoint was committed")
	}
}

// When a second instance joins, the first gives partitions up; a
// checkpoint the first made before the rebalance must not commit the
// partitions it lost, and the records of the partitions it keeps are not
// emitted twice by it.
func TestRebalanceNeverCommitsLostPartitions(t *testing.T) {
	brokers := testBrokers(t)
	topic, _ := testTopic(t, brokers, 4, 200)
	group := "g-" + topic
	a := testSource(t, brokers, topic, group, nil)
	logA := &batchLog{ids: map[string]int{}}
	runSource(t, a, logA)
	waitUntil(t, "a to read everything", 30*time.Second, func() bool { return logA.count() == 200 })
	stale := logA.batch(logA.n() - 1).Checkpoint // covers all 4 partitions, never delivered

	b := testSource(t, brokers, topic, group, nil)
	logB := &batchLog{ids: map[string]int{}}
	runSource(t, b, logB)
	// a still has in-flight (never delivered) records on the partitions it
	// must give up: it waits revoke_timeout for them, then lets go.
	waitUntil(t, "b to own partitions", 30*time.Second, func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.parts) == 2
	})
	a.mu.Lock()
	kept := map[int32]bool{}
	for k := range a.parts {
		kept[k.partition] = true
	}
	a.mu.Unlock()
	if len(kept) != 2 {
		t.Fatalf("a kept %d partitions", len(kept))
	}
	if err := a.Committed(context.Background(), stale); err != nil {
		t.Fatal(err)
	}
	got := committedOffsets(t, brokers, group, topic)
	for p, off := range got {
		if !kept[p] {
			t.Fatalf("a committed offset %d of partition %d, which it lost", off, p)
		}
	}
	if len(got) != 2 {
		t.Fatalf("committed %v, want a's two kept partitions", got)
	}
	// b re-reads the partitions a lost (nothing of them was committed).
	waitUntil(t, "b to re-read the lost partitions", 30*time.Second, func() bool { return logB.count() == 100 })
	for id, n := range logA.ids {
		if n != 1 {
			t.Fatalf("a emitted %s %d times", id, n)
		}
	}
}

func TestEventFromRecord(t *testing.T) {
	s, err := newSource(plugins.NopSettings("k"), defaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(100, 0)
	tests := []struct {
		name              string
		r                 *kgo.Record
		id, dataset, time string
		field, fieldWant  string
	}{
		{"ecs document", &kgo.Record{Value: []byte(`{"@timestamp":"2026-01-02T03:04:05.123Z","event":{"id":"x1","dataset":"nhncloud.cloudtrail"}}`), Key: []byte("k")},
			"x1", "nhncloud.cloudtrail", "2026-01-02T03:04:05.123Z", "event.id", "x1"},
		{"key and header fallback", &kgo.Record{Value: []byte(`{"a":1}`), Key: []byte("key-1"), Timestamp: time.Unix(5, 0).UTC(),
			Headers: []kgo.RecordHeader{{Key: "dataset", Value: []byte("ncloud.activity_tracer")}}},
			"key-1", "ncloud.activity_tracer", "1970-01-01T00:00:05Z", "a", "1"},
		{"position fallback", &kgo.Record{Value: []byte(`{}`), Topic: "t", Partition: 2, Offset: 7, Timestamp: time.Unix(6, 0).UTC()},
			"t-2-7", "kafka", "1970-01-01T00:00:06Z", "", ""},
		{"not json", &kgo.Record{Value: []byte(`not json`), Topic: "t", Partition: 0, Offset: 1, Timestamp: time.Unix(7, 0).UTC()},
			"t-0-1", "kafka", "1970-01-01T00:00:07Z", "event.original", "not json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := s.event(tt.r, now)
			if ev.Meta.ID != tt.id || ev.Meta.Dataset != tt.dataset || ev.Meta.Time.UTC().Format(time.RFC3339Nano) != tt.time ||
				ev.Meta.Source != "k" || !ev.Meta.Received.Equal(now) {
				t.Fatalf("meta %+v", ev.Meta)
			}
			if tt.field != "" {
				v, _ := ev.Fields.Get(tt.field)
				if fmt.Sprint(v) != tt.fieldWant {
					t.Fatalf("%s = %v", tt.field, v)
				}
			}
		})
	}
	ev := s.event(&kgo.Record{Value: []byte(`[1]`)}, now)
	if msg, _ := ev.Fields.GetString("error.message"); !strings.Contains(msg, "not a JSON object") {
		t.Fatalf("error.message = %q", msg)
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	d := &checkpointDoc{Session: "s", Positions: []position{{Topic: "a", Partition: 1, Offset: 5, LeaderEpoch: 2, Assignment: 3}}}
	got, err := decodeCheckpoint(encodeCheckpoint(d))
	if err != nil || fmt.Sprint(got) != fmt.Sprint(d) {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range []string{"", "{", `{"v":2}`, `{"v":1,"p":[{"t":"","p":0,"o":1}]}`, `{"v":1,"p":[{"t":"a","p":0,"o":-1}]}`} {
		if _, err := decodeCheckpoint([]byte(bad)); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}

func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add([]byte(`{"v":1,"s":"x","p":[{"t":"a","p":0,"o":1,"e":-1,"a":1}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeCheckpoint(b)
		if err != nil {
			return
		}
		again, err := decodeCheckpoint(encodeCheckpoint(d))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(d) {
			t.Fatalf("re-encoding changed %+v: %+v %v", d, again, err)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	ok := func(c *Config) { c.Brokers, c.Topics, c.Group = []string{"b:9092"}, []string{"t"}, "g" }
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no brokers", func(c *Config) { ok(c); c.Brokers = nil }, "brokers: needs at least one host:port"},
		{"bad broker", func(c *Config) { ok(c); c.Brokers = []string{"b"} }, `brokers[0]: must be host:port, got "b"`},
		{"no topics", func(c *Config) { ok(c); c.Topics = nil }, "topics: needs at least one topic"},
		{"bad topic", func(c *Config) { ok(c); c.Topics = []string{"a b"} }, `topics[0]: topic name "a b" has ' '`},
		{"no group", func(c *Config) { ok(c); c.Group = "" }, "group: is required"},
		{"start_from", func(c *Config) { ok(c); c.StartFrom = "middle" }, `start_from: must be earliest or latest, got "middle"`},
		{"isolation", func(c *Config) { ok(c); c.IsolationLevel = "dirty" }, "isolation_level: must be read_committed or read_uncommitted"},
		{"batch", func(c *Config) { ok(c); c.MaxBatchRecords = 0 }, "max_batch_records: must be between 1 and 100000, got 0"},
		{"session", func(c *Config) { ok(c); c.SessionTimeout = time.Second }, "session_timeout: must be between 6s and 30m"},
		{"heartbeat", func(c *Config) { ok(c); c.HeartbeatInterval = 5 * time.Second }, "heartbeat_interval: must be positive and at most a third"},
		{"rebalance", func(c *Config) { ok(c); c.RebalanceTimeout = 10 * time.Second }, "rebalance_timeout: must be at least 1s and above revoke_timeout"},
		{"tls", func(c *Config) { ok(c); c.TLS.CAFile = "/x" }, "tls.ca_file: is set but tls.enabled is false"},
		{"sasl", func(c *Config) { ok(c); c.SASL.Mechanism = "PLAIN"; c.SASL.Username = "u" }, "sasl.password: is required with sasl.mechanism"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			tt.mod(c)
			err := plugins.ValidateConfig("sources.k", c)
			if err == nil || !strings.Contains(err.Error(), "sources.k."+tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
	c := defaultConfig()
	ok(c)
	if err := plugins.ValidateConfig("", c); err != nil {
		t.Fatal(err)
	}
}

func TestFactoryDecodesSampleAndREADME(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+string(sample)+"```") {
		t.Fatal("README.md's yaml block differs from sample.yaml; copy the sample into the README")
	}
	f := NewFactory()
	if f.Type() != "kafka" || f.Kind() != plugins.KindSource {
		t.Fatal(f.Type(), f.Kind())
	}
}

func BenchmarkRecordToEvent(b *testing.B) {
	s, _ := newSource(plugins.NopSettings("k"), defaultConfig())
	r := &kgo.Record{Key: []byte("id"), Value: []byte(`{"@timestamp":"2026-01-02T03:04:05.123Z","event":{"id":"x1","dataset":"ncloud.activity_tracer","action":"Login","outcome":"success"},"source":{"ip":"203.0.113.0"},"user":{"name":"h***@example.com"},"cloud":{"provider":"ncloud","region":"KR"},"message":"a typical ECS document of about half a kilobyte with a few nested objects"}`)}
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(r.Value)))
	for i := 0; i < b.N; i++ {
		_ = s.event(r, now)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
