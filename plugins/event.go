package plugins

import (
	"strings"
	"time"
)

// Event is one audit record travelling through the pipeline.
//
// Fields holds the document (the raw API item as a source emits it, the ECS
// document after the ecs transform). Meta is what the pipeline knows about
// the event without looking inside it.
type Event struct {
	Fields *Object
	Meta   Meta
}

// Meta is pipeline metadata that travels beside the document and is never
// serialized by outputs unless they choose to.
type Meta struct {
	// Source is the id (pipeline name) of the source component that read the event.
	Source string
	// Dataset names the shape of Fields, e.g. "ncloud.activity_tracer".
	Dataset string
	// ID is the stable event id used for de-duplication (event.id).
	ID string
	// Time is the event time as the API reported it.
	Time time.Time
	// Received is when the source fetched the event (ECS event.created).
	Received time.Time
}

// NewEvent returns an event with an empty document.
func NewEvent() *Event { return &Event{Fields: NewObject(8)} }

// Clone returns a deep copy of the event, for fan-out to several consumers.
func (e *Event) Clone() *Event {
	return &Event{Fields: e.Fields.Clone(), Meta: e.Meta}
}

// Detached returns a deep copy of the event that shares no memory with
// its batch, strings and numbers included: the copy to make of an event
// kept beyond Process or Write (see Memory). Clone, cheaper, shares the
// immutable values and lives as long as the batch.
func (e *Event) Detached() *Event {
	c := &Event{Fields: e.Fields.Detached(), Meta: e.Meta}
	c.Meta.Source = strings.Clone(c.Meta.Source)
	c.Meta.Dataset = strings.Clone(c.Meta.Dataset)
	c.Meta.ID = strings.Clone(c.Meta.ID)
	return c
}

// AppendJSON appends the event document as JSON.
func (e *Event) AppendJSON(dst []byte) []byte { return e.Fields.AppendJSON(dst) }

// Checkpoint is a source's opaque position. The engine persists it once every
// event of the batch that carried it, and of every earlier batch, has been
// delivered; a restarted source resumes from it.
type Checkpoint []byte

// Batch is the unit sources emit: a page or window of events and the
// checkpoint that becomes true once they are all delivered.
type Batch struct {
	Events     []*Event
	Checkpoint Checkpoint
	// Release, when set, is called once the pipeline is done with the
	// batch: every output it reached has accepted or dead-lettered its
	// events, or a transform dropped them. The source may then reuse the
	// memory the events point into, which spares the garbage collector the
	// busiest allocations of a fast source. A batch still in flight at
	// shutdown is never released (the garbage collector reclaims it).
	Release func()
}
