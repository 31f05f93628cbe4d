// Package kafka is the `kafka` output: one record per event, produced with
// franz-go's idempotent producer (acks=all), the record key taken from a
// field (event.id by default), the timestamp from @timestamp and headers
// naming the dataset and the source component.
//
// Lifecycle: Start connects and, for a fixed topic, checks that it exists
// (or creates it with create_topic); an unreachable cluster only makes the
// output not ready, while refused credentials and a missing topic are
// errors. Write returns once every record of the batch is acknowledged;
// records the brokers refuse for good come back as permanent per-event
// failures (dead letters), anything else is retried. Close flushes and
// disconnects; it is safe without Start and more than once.
package kafka

import (
	"context"
	_ "embed"

	"github.com/auditforwarder/forwarder/plugins"
)

//go:embed sample.yaml
var sample []byte

// NewFactory returns the factory of the `kafka` output.
func NewFactory() plugins.Factory {
	return plugins.NewOutputFactory("kafka", "Apache Kafka topics (franz-go, idempotent, acks=all)",
		sample, defaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Output, error) {
			return newOutput(set, cfg)
		})
}
