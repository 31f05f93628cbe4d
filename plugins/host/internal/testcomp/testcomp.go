// Package testcomp holds the components of the host's test plugin (built
// from ../testplugin), so host tests and benchmarks can also run them in
// process. They can crash on demand.
package testcomp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

// Config is shared by the test components.
type Config struct {
	// Label is set as labels.plugin on every event (transform).
	Label string `koanf:"label"`
	// Env adds plugin.env: the names of the process's environment variables.
	Env bool `koanf:"env"`
	// CrashOnceFile: when this file exists, the next call removes it and panics.
	CrashOnceFile string `koanf:"crash_once_file"`
	// CrashAtBatch makes the source's crash check happen at that batch only.
	CrashAtBatch int `koanf:"crash_at_batch"`
	// Count and BatchSize shape the source.
	Count     int `koanf:"count"`
	BatchSize int `koanf:"batch_size"`
	// Path is where the output appends NDJSON.
	Path string `koanf:"path"`
	// Status, when set, is reported as the component's status on Start.
	Status string `koanf:"status"`
	// Token is a secret, to check it is reported for log scrubbing.
	Token plugins.Secret `koanf:"token"`
	// Interval is a duration, to check durations cross as in YAML.
	Interval time.Duration `koanf:"interval"`
	// CPUProfile, when set, is where the plugin writes a CPU profile from
	// Start to Close (for benchmarks).
	CPUProfile string `koanf:"cpu_profile"`
}

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	if c.Count < 0 {
		errs = append(errs, plugins.FieldErrorf("count", "must not be negative, got %d", c.Count))
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs = append(errs, plugins.FieldErrorf("batch_size", "must be between 1 and 10000, got %d", c.BatchSize))
	}
	return errors.Join(errs...)
}

func defaults() *Config { return &Config{Label: "plugin", BatchSize: 10} }

// Factories returns the test components.
func Factories() []plugins.Factory {
	return []plugins.Factory{
		plugins.NewSourceFactory("test_source", "numbered test events", []byte("sources:\n  s:\n    type: test_source\n    count: 10\n"), defaults,
			func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Source, error) {
				return &source{base{cfg, set}}, nil
			}),
		plugins.NewTransformFactory("test_transform", "labels events; can crash", []byte("transforms:\n  t:\n    type: test_transform\n    inputs: [s]\n    label: x\n"), defaults,
			func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Transform, error) {
				return &transform{base: base{cfg, set}}, nil
			}),
		plugins.NewOutputFactory("test_output", "appends NDJSON to a file; can crash", []byte("outputs:\n  o:\n    type: test_output\n    inputs: [t]\n    path: ./out.ndjson\n"), defaults,
			func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Output, error) {
				return &output{base{cfg, set}}, nil
			}),
	}
}

func crashOnce(file string) {
	if file == "" {
		return
	}
	if err := os.Remove(file); err == nil {
		panic("test plugin: crash requested by " + file)
	}
}

type base struct {
	cfg *Config
	set plugins.Settings
}

func (b *base) Start(context.Context) error {
	if b.cfg.CPUProfile != "" {
		f, err := os.Create(b.cfg.CPUProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	if b.cfg.Status != "" {
		b.set.Status.SetStatus(errors.New(b.cfg.Status))
	}
	return nil
}

func (b *base) Close(context.Context) error {
	if b.cfg.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	return nil
}

type source struct{ base }

func (s *source) Run(ctx context.Context, from plugins.Checkpoint, emit plugins.Emit) error {
	next := 0
	if len(from) > 0 {
		n, err := strconv.Atoi(string(from))
		if err != nil {
			return plugins.Permanent(fmt.Errorf("bad checkpoint %q", from))
		}
		next = n
	}
	batch := 0
	for next < s.cfg.Count {
		batch++
		if batch == s.cfg.CrashAtBatch || s.cfg.CrashAtBatch == 0 {
			crashOnce(s.cfg.CrashOnceFile)
		}
		n := min(s.cfg.BatchSize, s.cfg.Count-next)
		events := make([]*plugins.Event, n)
		for i := range events {
			events[i] = plugintest.Event(next+i, 0)
		}
		next += n
		if err := emit(ctx, plugins.Batch{Events: events, Checkpoint: plugins.Checkpoint(strconv.Itoa(next))}); err != nil {
			return nil
		}
	}
	if s.set.Once {
		return nil
	}
	<-ctx.Done()
	return nil
}

type transform struct {
	base
	logged atomic.Bool
}

// The transform keeps no scratch state: it is parallel, as a built-in
// mapper would be, so the host may keep several batches in flight.
var _ plugins.ParallelTransform = (*transform)(nil)

// Fork implements plugins.ParallelTransform.
func (t *transform) Fork() plugins.ProcessFunc { return t.Process }

func (t *transform) Process(_ context.Context, events []*plugins.Event) ([]*plugins.Event, error) {
	crashOnce(t.cfg.CrashOnceFile)
	if !t.logged.Swap(true) {
		t.set.Logger.Info("first batch", "events", len(events))
	}
	for _, ev := range events {
		if v, _ := ev.Fields.GetKey("crash"); v == true {
			panic("test plugin: event asked to crash")
		}
		ev.Fields.Set("labels.plugin", t.cfg.Label)
		if t.cfg.Env {
			var names []any
			for _, kv := range os.Environ() {
				k, _, _ := strings.Cut(kv, "=")
				names = append(names, k)
			}
			sort.Slice(names, func(i, j int) bool { return names[i].(string) < names[j].(string) })
			ev.Fields.Set("plugin.env", names)
		}
	}
	return events, nil
}

type output struct{ base }

func (o *output) Write(_ context.Context, events []*plugins.Event) error {
	crashOnce(o.cfg.CrashOnceFile)
	f, err := os.OpenFile(o.cfg.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	var buf []byte
	for _, ev := range events {
		buf = ev.AppendJSON(buf)
		buf = append(buf, '\n')
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
