package host

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/internal/ordered"
	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/host/internal/testcomp"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

const benchBatch, benchSize = 500, 1024

// benchTransforms runs fn with the same simple transform (labels.plugin
// set on every event) in process and as an external plugin. pid is the
// plugin process (0 in process), for its CPU time.
func benchTransforms(b *testing.B, fn func(b *testing.B, tr plugins.Transform, pid int)) {
	b.Run("in_process", func(b *testing.B) {
		f := testcomp.Factories()[1]
		c, err := f.Create(context.Background(), plugins.NopSettings("bench"), f.CreateDefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		fn(b, c.(plugins.Transform), 0)
	})
	b.Run("external", func(b *testing.B) {
		f := NewTransformFactory()
		cfg := f.CreateDefaultConfig()
		raw := map[string]any{"path": testPlugin}
		if p := os.Getenv("PLUGIN_CPU_PROFILE"); p != "" {
			raw["config"] = map[string]any{"cpu_profile": p}
		}
		if err := plugins.DecodeConfig(raw, cfg); err != nil {
			b.Fatal(err)
		}
		if err := plugins.ValidateConfig("", cfg); err != nil {
			b.Fatal(err)
		}
		c, err := f.Create(context.Background(), plugins.NopSettings("bench"), cfg)
		if err != nil {
			b.Fatal(err)
		}
		fn(b, c.(plugins.Transform), c.(remoteTr).Pid())
	})
}

// cpuClock measures CPU time of this process and, optionally, a plugin's,
// so figures stay meaningful on a busy machine where wall time is not.
type cpuClock struct {
	pid         int
	self, child time.Duration
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPU reads utime+stime of a process from /proc (Linux; 0 elsewhere).
func procCPU(pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond // USER_HZ = 100
}

func (c *cpuClock) start() {
	c.self = selfCPU()
	if c.pid != 0 {
		c.child = procCPU(c.pid)
	}
}

func (c *cpuClock) report(b *testing.B, events int) {
	self := selfCPU() - c.self
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(self.Nanoseconds())/float64(events), "host-cpu-ns/event")
	if c.pid != 0 {
		child := procCPU(c.pid) - c.child
		b.ReportMetric(float64(child.Nanoseconds())/float64(events), "plugin-cpu-ns/event")
		self += child
	}
	// Events per second of CPU: what the transform costs, load aside.
	b.ReportMetric(float64(events)/self.Seconds(), "events/cpu-s")
}

// BenchmarkTransform calls Process on batches of 500 1 KB events.
func BenchmarkTransform(b *testing.B) {
	events := make([]*plugins.Event, benchBatch)
	for i := range events {
		events[i] = plugintest.Event(i, benchSize)
	}
	if n := len(events[0].AppendJSON(nil)); n < 1000 || n > 1100 {
		b.Fatalf("event is %d bytes", n)
	}
	benchTransforms(b, func(b *testing.B, tr plugins.Transform, pid int) {
		ctx := context.Background()
		if err := tr.Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer tr.Close(ctx)
		clock := cpuClock{pid: pid}
		b.ReportAllocs()
		b.SetBytes(int64(benchBatch * benchSize))
		b.ResetTimer()
		clock.start()
		for i := 0; i < b.N; i++ {
			out, err := tr.Process(ctx, events)
			if err != nil || len(out) != benchBatch {
				b.Fatal(err)
			}
		}
		clock.report(b, b.N*benchBatch)
	})
}

// BenchmarkPipeline runs a pipeline around the transform: a source stage
// making batches of 500 1 KB events, the transform, and an output stage
// encoding every event to JSON, connected by bounded queues as in the
// engine. The transform stage is the engine's too: a ParallelTransform (in
// process or remote) gets GOMAXPROCS workers and keeps the batches' order.
func BenchmarkPipeline(b *testing.B) {
	benchTransforms(b, func(b *testing.B, tr plugins.Transform, pid int) {
		ctx := context.Background()
		if err := tr.Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer tr.Close(ctx)
		clock := cpuClock{pid: pid}
		b.ReportAllocs()
		b.SetBytes(int64(benchBatch * benchSize))
		b.ResetTimer()
		clock.start()
		toTransform := make(chan []*plugins.Event, 4)
		toOutput := make(chan []*plugins.Event, 4)
		done := make(chan struct{})
		go func() {
			for i := 0; i < b.N; i++ {
				events := make([]*plugins.Event, benchBatch)
				for j := range events {
					events[j] = plugintest.Event(i*benchBatch+j, benchSize)
				}
				toTransform <- events
			}
			close(toTransform)
		}()
		go transformStage(ctx, tr, toTransform, toOutput)
		go func() {
			var buf []byte
			for events := range toOutput {
				for _, ev := range events {
					buf = ev.AppendJSON(buf[:0])
					buf = append(buf, '\n')
				}
			}
			close(done)
		}()
		<-done
		clock.report(b, b.N*benchBatch)
	})
}

// transformStage runs tr over the batches of in and sends the results to
// out in order, as the engine's transform node does: one batch at a time,
// or for a ParallelTransform on GOMAXPROCS forks at once.
func transformStage(ctx context.Context, tr plugins.Transform, in <-chan []*plugins.Event, out chan<- []*plugins.Event) {
	defer close(out)
	check := func(evs []*plugins.Event, err error) []*plugins.Event {
		if err != nil || len(evs) != benchBatch {
			panic(fmt.Sprintf("transform: %d events, %v", len(evs), err))
		}
		return evs
	}
	pt, ok := tr.(plugins.ParallelTransform)
	if !ok || runtime.GOMAXPROCS(0) == 1 {
		for events := range in {
			out <- check(tr.Process(ctx, events))
		}
		return
	}
	type job struct{ in, out []*plugins.Event }
	pipe := ordered.New(ctx, runtime.GOMAXPROCS(0), func() func(*job) {
		process := pt.Fork()
		return func(j *job) { j.out = check(process(ctx, j.in)) }
	}, func(j *job) { out <- j.out })
	for events := range in {
		if err := pipe.Submit(ctx, &job{in: events}); err != nil {
			panic(err)
		}
	}
	pipe.Close()
}
