package plugins

import (
	"context"
	"time"
)

// KafkaRecord is a Kafka record an exactly-once output asks the engine to
// write for it (see ExactlyOnceOutput).
type KafkaRecord struct {
	Topic     string
	Key       []byte
	Value     []byte
	Headers   []KafkaHeader
	Timestamp time.Time
}

// KafkaHeader is a record header.
type KafkaHeader struct {
	Key   string
	Value []byte
}

// ExactlyOnceOutput is implemented by a Kafka output that can deliver
// exactly once: instead of producing a batch itself, it encodes the
// records, and the engine writes them in one Kafka transaction together
// with the checkpoint record of the source that read them, in the
// cluster's state topic. A read_committed consumer then sees each event
// exactly once, even across crashes: a transaction holds both a batch and
// the checkpoint past it, or neither.
//
// The engine uses it only in cluster mode (checkpoints in Kafka), only
// when the output's brokers are the cluster's, and only for sources whose
// every event reaches this output and no other; for any other source the
// output's Write is used as usual (at-least-once).
type ExactlyOnceOutput interface {
	// ExactlyOnceBrokers returns the output's seed brokers when the user
	// asked for exactly-once delivery (exactly_once: true), else nil.
	ExactlyOnceBrokers() []string
	// EncodeRecords returns the records Write would produce for events,
	// without producing them. A *BatchError names events that can never
	// be encoded (Permanent: dead-lettered); the others are returned.
	EncodeRecords(ctx context.Context, events []*Event) ([]KafkaRecord, error)
}
