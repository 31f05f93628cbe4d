package plugins

import "context"

// CheckpointCommitter is implemented by a source that must tell its origin
// how far delivery got, such as a Kafka consumer group committing offsets.
//
// The engine calls Committed after it has persisted cp, the checkpoint of
// a batch that every output acknowledged together with every earlier batch
// of the source; cp is always one the source emitted. Calls are made in
// checkpoint order, one at a time, from a goroutine other than Run's, and
// may continue after Run returned, until Close. An error is logged and
// reported on /readyz; the engine does not retry it (the next Committed
// carries a newer checkpoint), so a source that needs every commit should
// retry on its own. A source must never commit progress anywhere before
// Committed says so: that is what keeps delivery at-least-once.
type CheckpointCommitter interface {
	Committed(ctx context.Context, cp Checkpoint) error
}

// SharedSource is implemented by a source that shares its work between
// forwarder instances by itself, through its origin's own group protocol
// (the kafka source: a consumer group). In cluster mode the engine runs a
// source whose Shared returns true on every instance, instead of on the
// one instance that owns it, and keeps no checkpoint for it in the
// cluster's state topic: Run is always called with a nil checkpoint, and
// the source resumes from the position its origin keeps (committed
// through CheckpointCommitter). Outside cluster mode it is a source like
// any other.
type SharedSource interface {
	Shared() bool
}
