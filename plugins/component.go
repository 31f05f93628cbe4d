package plugins

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Kind is the role of a component in the pipeline.
type Kind int

// The three kinds of component.
const (
	KindSource Kind = iota + 1
	KindTransform
	KindOutput
)

// String returns the pipeline.yaml section name of the kind, singular.
func (k Kind) String() string {
	switch k {
	case KindSource:
		return "source"
	case KindTransform:
		return "transform"
	case KindOutput:
		return "output"
	}
	return "unknown"
}

// Section returns the pipeline.yaml section that holds components of this kind.
func (k Kind) Section() string { return k.String() + "s" }

// Component is the lifecycle every source, transform and output shares.
//
// The engine calls Start once before any other method and Close once at the
// end. Close must be safe to call without a prior Start and more than once;
// it releases resources and must not lose accepted data (an output flushes).
type Component interface {
	Start(ctx context.Context) error
	Close(ctx context.Context) error
}

// Emit hands a batch to the pipeline. It blocks while downstream queues are
// full (backpressure) and returns an error only when ctx is done or the
// pipeline is shutting down; the source must then return from Run.
type Emit func(ctx context.Context, b Batch) error

// Source reads events from the outside world.
//
// Run is called after Start, in its own goroutine, with the last committed
// checkpoint (nil on first start). It emits batches in order until ctx is
// cancelled, then returns nil. In once mode (Settings.Once) it returns nil as
// soon as it has caught up. A returned error that is not Permanent makes the
// engine call Run again after a backoff, with the checkpoint of the last
// emitted batch; a Permanent error stops the source.
type Source interface {
	Component
	Run(ctx context.Context, from Checkpoint, emit Emit) error
}

// Transform rewrites events. Process may modify the events in place, drop
// them or add new ones; it returns the events to pass on. Dropped events
// count as delivered. An error from Process is treated as permanent for the
// whole batch: its events go to the dead-letter file. Process is never
// called concurrently on one instance.
//
// Neither a transform nor an output keeps an event, its document or any of
// its strings once Process or Write has returned: a source may reuse that
// memory when the batch is delivered (Batch.Release). What a component
// caches across batches is a copy (Event.Detached, strings.Clone). The
// same holds inside an external plugin, which reuses a call's memory for
// the next request.
type Transform interface {
	Component
	Process(ctx context.Context, events []*Event) ([]*Event, error)
}

// ProcessFunc is the signature of Transform.Process.
type ProcessFunc func(ctx context.Context, events []*Event) ([]*Event, error)

// ParallelTransform is implemented by transforms whose work can be spread
// over several cores. Fork returns a Process function with scratch state
// of its own, sharing the transform's configuration and metrics. The
// engine calls Fork after Start, once per worker, calls each fork from one
// goroutine at a time (different forks at once) and passes the batches on
// in the order they arrived, so outputs see the same order as with one
// worker.
type ParallelTransform interface {
	Transform
	Fork() ProcessFunc
}

// Output delivers events. Write returns nil only when every event has been
// durably accepted by the destination. Otherwise it returns an error that is
// retried for the whole batch, a Permanent error (the whole batch goes to the
// dead-letter file) or a *BatchError naming the events that failed, each
// retriable or permanent; the events not named count as accepted. Write may
// be called concurrently when the output's delivery.max_in_flight is above 1.
type Output interface {
	Component
	Write(ctx context.Context, events []*Event) error
}

// Settings is what the engine gives every component it creates.
type Settings struct {
	// ID is the component's name in pipeline.yaml.
	ID string
	// Logger already carries component_id and component_type.
	Logger *slog.Logger
	// Metrics registers the component's own metrics; it adds the
	// component_id label, so collectors need not.
	Metrics prometheus.Registerer
	// Status lets the component report health for /readyz.
	Status StatusReporter
	// DataDir is a directory reserved for this component (created on demand).
	DataDir string
	// Once is true for `forwarder run --once`: sources return from Run once caught up.
	Once bool
	// Now returns the current time; tests replace it.
	Now func() time.Time
}

// StatusReporter receives a component's health. A nil error means ready.
type StatusReporter interface {
	SetStatus(err error)
}

// StatusFunc adapts a function to StatusReporter.
type StatusFunc func(err error)

// SetStatus calls f(err).
func (f StatusFunc) SetStatus(err error) { f(err) }

// NopSettings returns Settings suitable for tests: a discarding logger, a
// fresh registry and a status sink that ignores reports.
func NopSettings(id string) Settings {
	return Settings{
		ID:      id,
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: prometheus.NewRegistry(),
		Status:  StatusFunc(func(error) {}),
		Now:     time.Now,
	}
}
