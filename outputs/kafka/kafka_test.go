package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/auditforwarder/forwarder/plugins"
)

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func kfakeConfig(c *kfake.Cluster, topic string) *Config {
	cfg := defaultConfig()
	cfg.Brokers = c.ListenAddrs()
	cfg.Topic = topic
	cfg.Linger = time.Millisecond
	return cfg
}

func TestWriteDeliversRecords(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(3, "audit"))
	env := newTestEnv("kafka")
	o := startOutput(t, env, kfakeConfig(c, "audit"))

	// Two concurrent writes, as with delivery.max_in_flight: 2.
	batches := [][]*plugins.Event{
		makeEvents(0, 500, "ncloud.activity_tracer", "ncp", 1024),
		makeEvents(500, 500, "nhncloud.cloudtrail", "nhn", 600),
	}
	var wg sync.WaitGroup
	errs := make([]error, len(batches))
	for i, b := range batches {
		wg.Go(func() { errs[i] = o.Write(t.Context(), b) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
	}

	recs := consume(t, c.ListenAddrs(), "audit", 1000, 10*time.Second)
	if len(recs) != 1000 {
		t.Fatalf("consumed %d records, want 1000", len(recs))
	}
	byID := map[string]*plugins.Event{}
	for _, b := range batches {
		for _, ev := range b {
			byID[ev.Meta.ID] = ev
		}
	}
	for _, r := range recs {
		ev, ok := byID[string(r.Key)]
		if !ok {
			t.Fatalf("unexpected key %q", r.Key)
		}
		delete(byID, string(r.Key))
		if want := string(ev.AppendJSON(nil)); string(r.Value) != want {
			t.Fatalf("value of %s:\n got %s\nwant %s", r.Key, r.Value, want)
		}
		if header(r, "dataset") != ev.Meta.Dataset || header(r, "source") != ev.Meta.Source {
			t.Fatalf("headers of %s: %v", r.Key, r.Headers)
		}
		ts, _ := ev.Fields.GetString("@timestamp")
		if got := r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"); got != ts {
			t.Fatalf("timestamp of %s = %s, want %s", r.Key, got, ts)
		}
	}
	if len(byID) != 0 {
		t.Fatalf("%d events never arrived", len(byID))
	}
	if got := testutil.ToFloat64(o.m.records); got != 1000 {
		t.Fatalf("records metric = %v", got)
	}
	if got := testutil.ToFloat64(o.m.bytes); got < 1000*600 {
		t.Fatalf("bytes metric = %v", got)
	}
	if n := testutil.CollectAndCount(o.m.latency); n != 1 {
		t.Fatalf("latency histogram series = %d", n)
	}
	if err := env.status.get(); err != nil {
		t.Fatalf("status: %v", err)
	}
}

func TestKeyAndTimestampFallbacks(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "audit"))
	env := newTestEnv("kafka")
	cfg := kfakeConfig(c, "audit")
	o := startOutput(t, env, cfg)

	// No event.id field: the key comes from Meta.ID; no @timestamp: Meta.Time.
	ev := plugins.NewEvent()
	ev.Fields.SetKey("message", "hi")
	ev.Meta = plugins.Meta{ID: "meta-id", Source: "s", Dataset: "d", Time: eventBase}
	if err := o.Write(t.Context(), []*plugins.Event{ev}); err != nil {
		t.Fatal(err)
	}
	recs := consume(t, c.ListenAddrs(), "audit", 1, 5*time.Second)
	if len(recs) != 1 || string(recs[0].Key) != "meta-id" || !recs[0].Timestamp.Equal(eventBase) {
		t.Fatalf("got %+v", recs)
	}

	// key: "" sends records without a key.
	cfg2 := kfakeConfig(c, "audit")
	cfg2.Key = ""
	o2 := startOutput(t, newTestEnv("kafka2"), cfg2)
	if err := o2.Write(t.Context(), makeEvents(0, 1, "d", "s", 300)); err != nil {
		t.Fatal(err)
	}
	recs = consume(t, c.ListenAddrs(), "audit", 2, 5*time.Second)
	if len(recs) != 2 || recs[1].Key != nil {
		t.Fatalf("keyless record has key %q", recs[len(recs)-1].Key)
	}
}

func TestTemplatedTopics(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(2, "cloud-audit.a", "cloud-audit.b"))
	env := newTestEnv("kafka")
	o := startOutput(t, env, kfakeConfig(c, "cloud-audit.{{event.dataset}}"))

	events := append(makeEvents(0, 10, "a", "src", 300), makeEvents(10, 5, "b", "src", 300)...)
	bad := makeEvent(99, "a", "src", 300)
	bad.Fields.Delete("event.dataset")
	illegal := makeEvent(98, "bad topic!", "src", 300)
	events = append(events, bad, illegal)
	err := o.Write(t.Context(), events)
	var be *plugins.BatchError
	if !errors.As(err, &be) || len(be.Failures) != 2 {
		t.Fatalf("want a BatchError with 2 failures, got %v", err)
	}
	for _, f := range be.Failures {
		if !plugins.IsPermanent(f.Err) {
			t.Fatalf("template failure not permanent: %v", f.Err)
		}
	}
	if be.Failures[0].Index != 15 || !strings.Contains(be.Failures[0].Err.Error(), `field "event.dataset" is missing`) {
		t.Fatalf("failure 0: %+v", be.Failures[0])
	}
	if be.Failures[1].Index != 16 || !strings.Contains(be.Failures[1].Err.Error(), `"cloud-audit.bad topic!"`) {
		t.Fatalf("failure 1: %+v", be.Failures[1])
	}
	if n := len(consume(t, c.ListenAddrs(), "cloud-audit.a", 10, 5*time.Second)); n != 10 {
		t.Fatalf("topic a: %d records", n)
	}
	if n := len(consume(t, c.ListenAddrs(), "cloud-audit.b", 5, 5*time.Second)); n != 5 {
		t.Fatalf("topic b: %d records", n)
	}
	if got := testutil.ToFloat64(o.m.errors.WithLabelValues("INVALID_TOPIC")); got != 2 {
		t.Fatalf("INVALID_TOPIC errors = %v", got)
	}
}

// produceResponse answers every partition of a produce request with code.
func produceResponse(req kmsg.Request, code int16) kmsg.Response {
	preq := req.(*kmsg.ProduceRequest)
	resp := preq.ResponseKind().(*kmsg.ProduceResponse)
	for _, rt := range preq.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

func TestRetriableProduceErrorsAreRetriedByTheClient(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "audit"))
	var injected atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if injected.Add(1) > 1 { // one failure: each retry waits for a metadata refresh (MetadataMinAge, 5 s)
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		return produceResponse(req, kerr.NotEnoughReplicas.Code), nil, true
	})
	env := newTestEnv("kafka")
	o := startOutput(t, env, kfakeConfig(c, "audit"))
	if err := o.Write(t.Context(), makeEvents(0, 100, "d", "s", 500)); err != nil {
		t.Fatalf("Write after transient NOT_ENOUGH_REPLICAS: %v", err)
	}
	if injected.Load() < 2 {
		t.Fatalf("only %d produce requests seen; the error was not injected", injected.Load())
	}
	if n := len(consume(t, c.ListenAddrs(), "audit", 100, 5*time.Second)); n != 100 {
		t.Fatalf("consumed %d, want 100", n)
	}
}

func TestNonRetriableProduceErrorsArePermanentPerRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *kerr.Error
	}{
		{"topic authorization", kerr.TopicAuthorizationFailed},
		{"invalid record", kerr.InvalidRecord},
		{"message too large", kerr.MessageTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, kfake.SeedTopics(2, "audit"))
			// Partition 1 refuses; partition 0 accepts.
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "audit", Partitions: []int32{1}, Err: tc.err, Count: -1})
			env := newTestEnv("kafka")
			o := startOutput(t, env, kfakeConfig(c, "audit"))
			events := makeEvents(0, 200, "d", "s", 400)
			err := o.Write(t.Context(), events)
			var be *plugins.BatchError
			if !errors.As(err, &be) {
				t.Fatalf("want *plugins.BatchError, got %v", err)
			}
			failed := map[string]bool{}
			for _, f := range be.Failures {
				if !plugins.IsPermanent(f.Err) {
					t.Fatalf("failure %d not permanent: %v", f.Index, f.Err)
				}
				if !strings.Contains(f.Err.Error(), tc.err.Message) || !strings.Contains(f.Err.Error(), `kafka topic "audit"`) {
					t.Fatalf("failure %d does not carry the broker error: %v", f.Index, f.Err)
				}
				failed[events[f.Index].Meta.ID] = true
			}
			ok := consume(t, c.ListenAddrs(), "audit", 200-len(failed), 5*time.Second)
			if len(failed) == 0 || len(ok) == 0 || len(ok)+len(failed) != 200 {
				t.Fatalf("%d failed + %d delivered, want both non-zero and 200 in all", len(failed), len(ok))
			}
			for _, r := range ok {
				if failed[string(r.Key)] || r.Partition != 0 {
					t.Fatalf("record %s delivered to partition %d but reported failed=%v", r.Key, r.Partition, failed[string(r.Key)])
				}
			}
			if got := testutil.ToFloat64(o.m.errors.WithLabelValues(tc.err.Message)); int(got) != len(failed) {
				t.Fatalf("errors{code=%s} = %v, want %d", tc.err.Message, got, len(failed))
			}
		})
	}
}

func TestRecordLargerThanTopicLimitIsPermanentAlone(t *testing.T) {
	c := newCluster(t)
	if err := c.CreateTopic("audit", 1, map[string]string{"max.message.bytes": "8192"}); err != nil {
		t.Fatal(err)
	}
	env := newTestEnv("kafka")
	cfg := kfakeConfig(c, "audit")
	cfg.Linger = 20 * time.Millisecond // let many 1 KB records share batches
	o := startOutput(t, env, cfg)
	events := makeEvents(0, 100, "d", "s", 1024)
	events[42] = makeEvent(42, "d", "s", 20000)
	err := o.Write(t.Context(), events)
	var be *plugins.BatchError
	if !errors.As(err, &be) || len(be.Failures) != 1 || be.Failures[0].Index != 42 {
		t.Fatalf("want exactly event 42 to fail, got %v", err)
	}
	if f := be.Failures[0]; !plugins.IsPermanent(f.Err) || !strings.Contains(f.Err.Error(), "MESSAGE_TOO_LARGE") {
		t.Fatalf("failure: %v", f.Err)
	}
	if n := len(consume(t, c.ListenAddrs(), "audit", 99, 5*time.Second)); n != 99 {
		t.Fatalf("consumed %d, want 99: small records were refused with the large one", n)
	}
}

func TestLeaderChangesLoseNothing(t *testing.T) {
	c := newCluster(t, kfake.NumBrokers(3), kfake.SeedTopics(6, "audit"))
	env := newTestEnv("kafka")
	o := startOutput(t, env, kfakeConfig(c, "audit"))

	stop := make(chan struct{})
	var moves atomic.Int32
	var mover sync.WaitGroup
	mover.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(15 * time.Millisecond):
			}
			p := int32(i % 6)
			node := (c.LeaderFor("audit", p) + 1) % 3
			if err := c.MoveTopicPartition("audit", p, node); err == nil {
				moves.Add(1)
			}
		}
	})
	// Write at least 20 batches, and go on until several leader moves
	// happened during the writes (a fast machine finishes 20 in a blink).
	const minBatches, size = 20, 250
	var next atomic.Int32
	deadline := time.Now().Add(20 * time.Second)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				b := int(next.Add(1)) - 1
				if b >= minBatches && (moves.Load() >= 5 || time.Now().After(deadline)) {
					next.Add(-1)
					return
				}
				events := makeEvents(b*size, size, "d", "s", 512)
				// Retry like the engine does.
				for attempt := 0; ; attempt++ {
					err := o.Write(t.Context(), events)
					if err == nil {
						break
					}
					if attempt == 5 {
						t.Errorf("batch %d still failing: %v", b, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	mover.Wait()
	if moves.Load() < 5 {
		t.Fatalf("only %d leader moves happened", moves.Load())
	}
	batches := int(next.Load())
	recs := consume(t, c.ListenAddrs(), "audit", batches*size, 20*time.Second)
	seen := map[string]bool{}
	for _, id := range recordIDs(recs) {
		seen[id] = true
	}
	for i := range batches * size {
		if !seen["ev-"+strconv.Itoa(i)] {
			t.Fatalf("event ev-%d lost across %d leader moves", i, moves.Load())
		}
	}
	t.Logf("%d records (%d distinct) across %d leader moves", len(recs), len(seen), moves.Load())
}

func TestMissingTopicAtStart(t *testing.T) {
	c := newCluster(t)
	env := newTestEnv("kafka")
	o := createOutput(t, env, kfakeConfig(c, "nope"))
	err := o.Start(t.Context())
	if err == nil || !strings.Contains(err.Error(), `topic "nope" does not exist`) || !strings.Contains(err.Error(), "create_topic: true") {
		t.Fatalf("Start: %v", err)
	}
	if st := env.status.get(); st == nil || !strings.Contains(st.Error(), `"nope"`) {
		t.Fatalf("status: %v", st)
	}
}

func TestCreateTopic(t *testing.T) {
	c := newCluster(t)
	env := newTestEnv("kafka")
	cfg := kfakeConfig(c, "audit")
	cfg.CreateTopic, cfg.Partitions = true, 4
	o := startOutput(t, env, cfg)

	cfg2 := kfakeConfig(c, "audit.{{event.dataset}}")
	cfg2.CreateTopic, cfg2.Partitions = true, 2
	o2 := startOutput(t, newTestEnv("kafka2"), cfg2)
	if err := o.Write(t.Context(), makeEvents(0, 10, "x", "s", 300)); err != nil {
		t.Fatal(err)
	}
	if err := o2.Write(t.Context(), makeEvents(0, 10, "x", "s", 300)); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	td, err := kadm.NewClient(cl).ListTopics(t.Context(), "audit", "audit.x")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(td["audit"].Partitions); n != 4 {
		t.Fatalf("audit has %d partitions, want 4", n)
	}
	if n := len(td["audit.x"].Partitions); n != 2 {
		t.Fatalf("audit.x has %d partitions, want 2", n)
	}
	if !strings.Contains(env.logs.String(), `msg="created topic" topic=audit`) {
		t.Fatalf("no creation logged:\n%s", env.logs.String())
	}
}

func TestMissingTemplatedTopicWaitsAndRecovers(t *testing.T) {
	c := newCluster(t)
	env := newTestEnv("kafka")
	o := startOutput(t, env, kfakeConfig(c, "audit.{{event.dataset}}"))
	events := makeEvents(0, 20, "late", "s", 300)
	err := o.Write(t.Context(), events)
	if err == nil || plugins.IsPermanent(err) || !strings.Contains(err.Error(), `topic "audit.late" does not exist`) {
		t.Fatalf("Write to a missing topic: %v", err)
	}
	var be *plugins.BatchError
	if errors.As(err, &be) {
		t.Fatalf("want a plain (retriable) error, got a BatchError: %v", err)
	}
	if got := testutil.ToFloat64(o.m.errors.WithLabelValues("MISSING_TOPIC")); got != 20 {
		t.Fatalf("MISSING_TOPIC errors = %v, want 20", got)
	}
	env.status.waitStatus(t, "not ready naming the topic", 5*time.Second, func(err error) bool {
		return err != nil && strings.Contains(err.Error(), `topic "audit.late" does not exist`)
	})
	if err := c.CreateTopic("audit.late", 1, nil); err != nil {
		t.Fatal(err)
	}
	// franz-go caches metadata answers for MetadataMinAge (5 s).
	env.status.waitStatus(t, "ready", 15*time.Second, func(err error) bool { return err == nil })
	if err := o.Write(t.Context(), events); err != nil {
		t.Fatalf("Write after the topic was created: %v", err)
	}
	if n := len(consume(t, c.ListenAddrs(), "audit.late", 20, 5*time.Second)); n != 20 {
		t.Fatalf("consumed %d", n)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestUnreachableBrokersMakeItNotReadyUntilTheyAnswer(t *testing.T) {
	port := freePort(t)
	env := newTestEnv("kafka")
	cfg := defaultConfig()
	cfg.Brokers = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	cfg.Topic = "audit"
	o := createOutput(t, env, cfg)
	start := time.Now()
	if err := o.Start(t.Context()); err != nil {
		t.Fatalf("Start with no broker must not fail: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Start took %s", d)
	}
	if err := env.status.get(); err == nil || !strings.Contains(err.Error(), "no Kafka broker reachable at 127.0.0.1:") {
		t.Fatalf("status: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	err := o.Write(ctx, makeEvents(0, 5, "d", "s", 300))
	cancel()
	if err == nil || plugins.IsPermanent(err) {
		t.Fatalf("Write with no broker: %v", err)
	}

	c := newCluster(t, kfake.Ports(port), kfake.SeedTopics(1, "audit"))
	env.status.waitStatus(t, "ready", 10*time.Second, func(err error) bool { return err == nil })
	if err := o.Write(t.Context(), makeEvents(0, 5, "d", "s", 300)); err != nil {
		t.Fatalf("Write once the broker is up: %v", err)
	}
	if n := len(consume(t, c.ListenAddrs(), "audit", 5, 5*time.Second)); n < 5 {
		t.Fatalf("consumed %d", n)
	}
}

func TestBackpressureBoundsBufferedRecords(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "audit"))
	// The broker never answers produce requests.
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		return nil, nil, true
	})
	env := newTestEnv("kafka")
	cfg := kfakeConfig(c, "audit")
	cfg.MaxBufferedRecords = 50
	o := startOutput(t, env, cfg)
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
				if n := int64(o.bufferedRecords()); n > peak.Load() {
					peak.Store(n)
				}
			}
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	start := time.Now()
	err := o.Write(ctx, makeEvents(0, 500, "d", "s", 300))
	cancel()
	close(done)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write into a stuck broker: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Write returned after %s; it must honour its 500ms context", d)
	}
	// franz-go counts the one Produce call blocked on the limit as buffered.
	if p := peak.Load(); p > 51 || p < 40 {
		t.Fatalf("client buffered up to %d records, want max_buffered_records 50 (+1 blocked)", p)
	}
}

func TestSASLPlain(t *testing.T) {
	c := newCluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "svc", "right-password"), kfake.SeedTopics(1, "audit"))
	env := newTestEnv("kafka")
	cfg := kfakeConfig(c, "audit")
	cfg.SASL = SASLConfig{Mechanism: "PLAIN", Username: "svc", Password: "right-password"}
	o := startOutput(t, env, cfg)
	if err := o.Write(t.Context(), makeEvents(0, 3, "d", "s", 300)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(env.logs.String(), "SASL PLAIN without TLS") {
		t.Fatal("no warning about PLAIN without TLS")
	}

	env2 := newTestEnv("kafka2")
	cfg2 := kfakeConfig(c, "audit")
	cfg2.SASL = SASLConfig{Mechanism: "PLAIN", Username: "svc", Password: "wrong-password"}
	o2 := createOutput(t, env2, cfg2)
	// kfake drops the connection on a wrong PLAIN password (Apache Kafka
	// answers SASL_AUTHENTICATION_FAILED, which the integration tests
	// check): the output is then not ready.
	if err := o2.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st := env2.status.get()
	if st == nil {
		t.Fatal("ready with a wrong password")
	}
	if strings.Contains(st.Error(), "wrong-password") || strings.Contains(env2.logs.String(), "wrong-password") {
		t.Fatal("the password leaked into the status or a log line")
	}
}

// testPKI writes a CA, a server certificate for 127.0.0.1 / kafka.test and
// a client certificate, and returns the paths and the server's TLS config.
type testPKI struct {
	caFile, certFile, keyFile string
	server                    *tls.Config
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP, dns []string) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: ips, DNSNames: dns,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	srv := leaf(2, "kafka", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")}, []string{"kafka.test"})
	cli := leaf(3, "forwarder", x509.ExtKeyUsageClientAuth, nil, nil)
	p := testPKI{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "client.pem"), keyFile: filepath.Join(dir, "client.key")}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	writePEM(t, p.certFile, "CERTIFICATE", cli.Certificate[0])
	keyDER, _ := x509.MarshalECPrivateKey(cli.PrivateKey.(*ecdsa.PrivateKey))
	writePEM(t, p.keyFile, "EC PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	p.server = &tls.Config{Certificates: []tls.Certificate{srv}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	c := newCluster(t, kfake.TLS(pki.server), kfake.SeedTopics(1, "audit"))
	tests := []struct {
		name     string
		tls      TLSConfig
		startErr string // "" = Start succeeds
		ready    bool
		warn     bool
	}{
		{"ca and client cert", TLSConfig{Enabled: true, CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile}, "", true, false},
		{"server name", TLSConfig{Enabled: true, CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile, ServerName: "kafka.test"}, "", true, false},
		{"wrong server name", TLSConfig{Enabled: true, CAFile: pki.caFile, CertFile: pki.certFile, KeyFile: pki.keyFile, ServerName: "other.test"}, "TLS certificate verification failed", false, false},
		{"system roots", TLSConfig{Enabled: true, CertFile: pki.certFile, KeyFile: pki.keyFile}, "TLS certificate verification failed", false, false},
		{"insecure", TLSConfig{Enabled: true, CertFile: pki.certFile, KeyFile: pki.keyFile, InsecureSkipVerify: true}, "", true, true},
		{"no client cert", TLSConfig{Enabled: true, CAFile: pki.caFile}, "", false, false},
		{"missing ca file", TLSConfig{Enabled: true, CAFile: filepath.Join(t.TempDir(), "nope.pem")}, "tls.ca_file", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv("kafka")
			cfg := kfakeConfig(c, "audit")
			cfg.TLS = tt.tls
			o := createOutput(t, env, cfg)
			err := o.Start(t.Context())
			if tt.startErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.startErr) {
					t.Fatalf("Start: %v, want %q", err, tt.startErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if got := strings.Contains(env.logs.String(), "TLS CERTIFICATE VERIFICATION IS DISABLED"); got != tt.warn {
				t.Fatalf("loud warning logged = %v, want %v", got, tt.warn)
			}
			if !tt.ready {
				if env.status.get() == nil {
					t.Fatal("status ready although the handshake cannot succeed")
				}
				return
			}
			if err := o.Write(t.Context(), makeEvents(0, 3, "d", "s", 300)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestWriteWithoutStartAndAfterClose(t *testing.T) {
	c := newCluster(t, kfake.SeedTopics(1, "audit"))
	env := newTestEnv("kafka")
	o := createOutput(t, env, kfakeConfig(c, "audit"))
	if err := o.Write(t.Context(), makeEvents(0, 1, "d", "s", 100)); err == nil {
		t.Fatal("Write before Start succeeded")
	}
	if err := o.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := o.Write(t.Context(), nil); err != nil {
		t.Fatalf("empty Write: %v", err)
	}
	if err := o.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := o.Write(t.Context(), makeEvents(0, 1, "d", "s", 100)); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if err := o.Start(t.Context()); err == nil {
		t.Fatal("Start after Close succeeded")
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{kerr.MessageTooLarge, "MESSAGE_TOO_LARGE"},
		{errors.Join(errors.New("x"), kerr.NotLeaderForPartition), "NOT_LEADER_FOR_PARTITION"},
		{context.DeadlineExceeded, "DEADLINE_EXCEEDED"},
		{context.Canceled, "CANCELED"},
		{kgo.ErrClientClosed, "CLIENT_CLOSED"},
		{kgo.ErrRecordTimeout, "RECORD_TIMEOUT"},
		{errors.New("boom"), "OTHER"},
	}
	for _, tt := range tests {
		if got := errorCode(tt.err); got != tt.want {
			t.Errorf("errorCode(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
	perm := []*kerr.Error{kerr.MessageTooLarge, kerr.TopicAuthorizationFailed, kerr.InvalidRecord, kerr.InvalidTimestamp}
	for _, e := range perm {
		if !permanentKafkaError(e) {
			t.Errorf("%v should be permanent", e)
		}
	}
	for _, e := range []*kerr.Error{kerr.NotLeaderForPartition, kerr.RequestTimedOut, kerr.UnknownTopicOrPartition, kerr.SaslAuthenticationFailed} {
		if permanentKafkaError(e) {
			t.Errorf("%v should be retriable", e)
		}
	}
	if !slices.Contains(compressions, "zstd") {
		t.Fatal("zstd missing")
	}
}

func TestClientLogIsRateLimited(t *testing.T) {
	env := newTestEnv("kafka")
	l := newKgoLogger(env.set.Logger)
	for range 100 {
		l.Log(kgo.LogLevelWarn, "unable to open connection to broker", "addr", "127.0.0.1:1")
	}
	l.Log(kgo.LogLevelError, "another problem")
	l.Log(kgo.LogLevelInfo, "chatter")
	logs := env.logs.String()
	if n := strings.Count(logs, "unable to open connection"); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, logs)
	}
	if !strings.Contains(logs, "another problem") || !strings.Contains(logs, "level=DEBUG") {
		t.Fatalf("logs:\n%s", logs)
	}
	// After the window the message comes back with the count held back.
	l.seen["unable to open connection to broker"].last = time.Now().Add(-time.Hour)
	l.Log(kgo.LogLevelWarn, "unable to open connection to broker")
	if !strings.Contains(env.logs.String(), "suppressed_since_last=99") {
		t.Fatalf("logs:\n%s", env.logs.String())
	}
}

func TestBrokerLossMidRunMakesItNotReady(t *testing.T) {
	c, err := kfake.NewCluster(kfake.SeedTopics(1, "audit"))
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnv("kafka")
	o := startOutput(t, env, kfakeConfig(c, "audit"))
	if err := o.Write(t.Context(), makeEvents(0, 5, "d", "s", 300)); err != nil {
		t.Fatal(err)
	}
	if err := env.status.get(); err != nil {
		t.Fatalf("status before the loss: %v", err)
	}
	c.Close()
	env.status.waitStatus(t, "not ready", 10*time.Second, func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "no Kafka broker reachable")
	})
	if !strings.Contains(env.logs.String(), "Kafka brokers unreachable; not ready") {
		t.Fatalf("no warning logged:\n%s", env.logs.String())
	}
}
