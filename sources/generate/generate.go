// Package generate is the `generate` source: deterministic synthetic events
// with a sequence-number checkpoint, for tests, benchmarks and trying a
// pipeline without credentials (like Vector's demo_logs or Benthos's
// generate input). Event n always has id "gen-<n>", so a restarted source
// produces exactly the events after its checkpoint.
package generate

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

//go:embed sample.yaml
var sample []byte

// NewFactory returns the factory of the `generate` source.
func NewFactory() plugins.Factory {
	return plugins.NewSourceFactory("generate", "deterministic synthetic events, for tests and benchmarks",
		sample, defaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Source, error) {
			return &source{cfg: cfg, set: set}, nil
		})
}

type source struct {
	cfg *Config
	set plugins.Settings
}

var _ plugins.Source = (*source)(nil)

func (s *source) Start(context.Context) error { return nil }
func (s *source) Close(context.Context) error { return nil }

// Run emits events from the checkpointed sequence number on.
func (s *source) Run(ctx context.Context, from plugins.Checkpoint, emit plugins.Emit) error {
	next := int64(0)
	if len(from) > 0 {
		n, err := strconv.ParseInt(string(from), 10, 64)
		if err != nil {
			return plugins.Permanent(fmt.Errorf("checkpoint %q is not a sequence number", from))
		}
		next = n
	}
	padding := strings.Repeat("x", max(0, s.cfg.Size-260))
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for {
		if s.cfg.Count > 0 && next >= s.cfg.Count {
			if s.set.Once {
				return nil
			}
			<-ctx.Done()
			return nil
		}
		n := int64(s.cfg.BatchSize)
		if s.cfg.Count > 0 && next+n > s.cfg.Count {
			n = s.cfg.Count - next
		}
		events := make([]*plugins.Event, n)
		for i := range events {
			events[i] = s.event(next+int64(i), base, padding)
		}
		next += n
		if err := emit(ctx, plugins.Batch{Events: events, Checkpoint: plugins.Checkpoint(strconv.FormatInt(next, 10))}); err != nil {
			return nil // shutting down
		}
		if s.cfg.Interval > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(s.cfg.Interval):
			}
		}
	}
}

func (s *source) event(seq int64, base time.Time, padding string) *plugins.Event {
	id := "gen-" + strconv.FormatInt(seq, 10)
	ts := base.Add(time.Duration(seq) * time.Millisecond)
	o := plugins.NewObject(8)
	o.SetKey("@timestamp", ts.Format("2006-01-02T15:04:05.000Z"))
	ev := plugins.NewObject(4)
	ev.SetKey("id", id)
	ev.SetKey("dataset", s.cfg.Dataset)
	ev.SetKey("sequence", seq)
	ev.SetKey("action", "generate")
	o.SetKey("event", ev)
	src := plugins.NewObject(1)
	src.SetKey("ip", "203.0.113."+strconv.FormatInt(seq%250+1, 10))
	o.SetKey("source", src)
	user := plugins.NewObject(1)
	user.SetKey("email", "user"+strconv.FormatInt(seq%97, 10)+"@example.com")
	o.SetKey("user", user)
	o.SetKey("message", padding)
	return &plugins.Event{Fields: o, Meta: plugins.Meta{Source: s.set.ID, Dataset: s.cfg.Dataset, ID: id, Time: ts}}
}
