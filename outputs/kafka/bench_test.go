package kafka

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/auditforwarder/forwarder/plugins"
)

// BenchmarkWriteKfake measures the output's own cost (record building,
// JSON encoding, zstd, promises) against kfake answering without storing.
// One op is one 500-event batch of ~1 KB documents.
func BenchmarkWriteKfake(b *testing.B) {
	c, err := kfake.NewCluster(kfake.BlackholeProduce(), kfake.SeedTopics(3, "bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchWrite(b, kfakeConfig(c, "bench"))
}

// BenchmarkWriteBroker is the same against the real broker of
// .ci/services/kafka.sh.
func BenchmarkWriteBroker(b *testing.B) {
	brokers := realBrokers(b)
	topic := createTopic(b, brokers, 3, nil)
	cfg := defaultConfig()
	cfg.Brokers, cfg.Topic = brokers, topic
	benchWrite(b, cfg)
}

func benchWrite(b *testing.B, cfg *Config) {
	const batch = 500
	if v := os.Getenv("FORWARDER_BENCH_LINGER"); v != "" {
		cfg.Linger, _ = time.ParseDuration(v)
	}
	writers := 2
	if v := os.Getenv("FORWARDER_BENCH_WRITERS"); v != "" {
		fmt.Sscan(v, &writers)
	}
	env := newTestEnv("bench")
	env.set.Logger = plugins.NopSettings("bench").Logger
	o, err := newOutput(env.set, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := o.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer o.Close(context.Background())
	events := makeEvents(0, batch, "generate", "bench", 1024)
	size := 0
	for _, ev := range events {
		size += len(ev.AppendJSON(nil))
	}
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	// Two writers, as the engine's default delivery.max_in_flight.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := o.Write(context.Background(), events); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N*batch)/el, "events/s")
}

// TestBenchmarkAgainstKcat produces the same NDJSON file of 1 KB ECS
// documents with `kcat -P` and with the output, zstd and acks=all both,
// into the local broker, and compares the rates. Opt-in: FORWARDER_BENCH=1.
func TestBenchmarkAgainstKcat(t *testing.T) {
	if os.Getenv("FORWARDER_BENCH") == "" {
		t.Skip("benchmark: set FORWARDER_BENCH=1 (needs the broker of .ci/services/kafka.sh and kcat)")
	}
	brokers := realBrokers(t)
	n := 200000
	if v := os.Getenv("FORWARDER_BENCH_EVENTS"); v != "" {
		fmt.Sscan(v, &n)
	}

	// The NDJSON file: "key<TAB>document" per line for kcat -K.
	dir := t.TempDir()
	file := filepath.Join(dir, "events.ndjson")
	var buf bytes.Buffer
	docBytes := 0
	for i := range n {
		ev := makeEvent(i, "generate", "bench", 1024)
		buf.WriteString(ev.Meta.ID)
		buf.WriteByte('\t')
		before := buf.Len()
		buf.Write(ev.AppendJSON(nil))
		docBytes += buf.Len() - before
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	avg := docBytes / n

	// The same file, parsed into events, for the output.
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	events := make([]*plugins.Event, 0, n)
	for sc.Scan() {
		key, doc, _ := strings.Cut(sc.Text(), "\t")
		obj, err := plugins.ParseObject([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, &plugins.Event{Fields: obj, Meta: plugins.Meta{ID: key, Source: "bench", Dataset: "generate"}})
	}
	f.Close()

	rate := func(d time.Duration) (float64, float64) {
		return float64(n) / d.Seconds(), float64(docBytes) / d.Seconds() / 1e6
	}

	// kcat -P: librdkafka, idempotent (so acks=all), zstd, same linger.
	runKcat := func() time.Duration {
		topic := createTopic(t, brokers, 3, nil)
		in, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		cmd := exec.Command("kcat", "-P", "-b", strings.Join(brokers, ","), "-t", topic, "-K", "\t", "-z", "zstd",
			"-X", "enable.idempotence=true", "-X", "acks=all", "-X", "linger.ms=10")
		cmd.Stdin = in
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("kcat -P: %v\n%s", err, stderr.String())
		}
		d := time.Since(start)
		if got := endOffsets(t, brokers, topic); got != int64(n) {
			t.Fatalf("kcat produced %d of %d records", got, n)
		}
		dropTopic(t, brokers, topic)
		return d
	}

	// The output: batches of 500 as the engine hands them over, with
	// writers = delivery.max_in_flight (default 2).
	measure := func(writers, batch, count int) time.Duration {
		topic := createTopic(t, brokers, 3, nil)
		env := newTestEnv("bench")
		cfg := defaultConfig()
		cfg.Brokers, cfg.Topic = brokers, topic
		if v := os.Getenv("FORWARDER_BENCH_LINGER"); v != "" {
			cfg.Linger, _ = time.ParseDuration(v)
		}
		o := startOutput(t, env, cfg)
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range writers {
			wg.Go(func() {
				for {
					i := int(next.Add(int64(batch))) - batch
					if i >= count {
						return
					}
					if err := o.Write(context.Background(), events[i:min(i+batch, count)]); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		d := time.Since(start)
		if got := endOffsets(t, brokers, topic); got != int64(count) {
			t.Fatalf("output produced %d of %d records", got, count)
		}
		dropTopic(t, brokers, topic)
		return d
	}

	// Warm both up (the broker's JIT, page cache), then alternate rounds:
	// the machine is shared and noisy, so report the best and the median.
	measure(2, 500, min(n, 20000))
	runKcat()
	rounds := 5
	var kcatTimes, outTimes []time.Duration
	for r := range rounds {
		k, o := runKcat(), measure(2, 500, n)
		t.Logf("round %d: kcat %s, output %s", r+1, k.Round(time.Millisecond), o.Round(time.Millisecond))
		kcatTimes, outTimes = append(kcatTimes, k), append(outTimes, o)
	}
	slices.Sort(kcatTimes)
	slices.Sort(outTimes)
	kcatTime, outTime := kcatTimes[0], outTimes[0]
	kcatMedian, outMedian := kcatTimes[rounds/2], outTimes[rounds/2]
	outTime4 := measure(4, 500, n)

	ke, km := rate(kcatTime)
	oe, om := rate(outTime)
	kme, kmm := rate(kcatMedian)
	ome, omm := rate(outMedian)
	oe4, om4 := rate(outTime4)
	t.Logf("%d events of %d bytes (zstd, acks=all, idempotent, 3 partitions):", n, avg)
	t.Logf("  kcat -P, best of %d             %8.0f events/s  %6.1f MB/s  (%s)", rounds, ke, km, kcatTime.Round(time.Millisecond))
	t.Logf("  output, 2 writers x 500, best   %8.0f events/s  %6.1f MB/s  (%s)  = %.0f%% of kcat", oe, om, outTime.Round(time.Millisecond), 100*oe/ke)
	t.Logf("  kcat -P, median                 %8.0f events/s  %6.1f MB/s  (%s)", kme, kmm, kcatMedian.Round(time.Millisecond))
	t.Logf("  output, 2 writers x 500, median %8.0f events/s  %6.1f MB/s  (%s)  = %.0f%% of kcat", ome, omm, outMedian.Round(time.Millisecond), 100*ome/kme)
	t.Logf("  output, 4 writers x 500         %8.0f events/s  %6.1f MB/s  (%s)  = %.0f%% of kcat", oe4, om4, outTime4.Round(time.Millisecond), 100*oe4/ke)
	// The machine is shared: judge the medians of interleaved rounds.
	if ome < 0.8*kme {
		t.Errorf("the output reached %.0f%% of kcat's median rate with the engine's defaults; target is 80%%", 100*ome/kme)
	}
}

// dropTopic deletes a measured topic at once, so the next round does not
// pay for the page cache write-back of the previous ones.
func dropTopic(t *testing.T, brokers []string, topic string) {
	t.Helper()
	if _, err := adminFor(t, brokers).DeleteTopics(t.Context(), topic); err != nil {
		t.Logf("deleting %s: %v", topic, err)
	}
}

// endOffsets returns the number of records in topic (the sum of its end
// offsets: the topics here are fresh).
func endOffsets(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	offs, err := adminFor(t, brokers).ListEndOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	offs.Each(func(o kadm.ListedOffset) { total += o.Offset })
	return total
}
