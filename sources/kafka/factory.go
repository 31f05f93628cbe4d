// Package kafka is the `kafka` source: a consumer group reading ECS
// documents (JSON, one per record) from Kafka topics, for the delivery tier
// that moves events from Kafka to Elasticsearch or syslog. Offsets are
// committed only after every downstream output acknowledged the records
// (plugins.CheckpointCommitter), so a crash or a rebalance re-delivers
// rather than loses. Every forwarder instance with the same group shares
// the partitions; in cluster mode the source runs on every instance
// (plugins.SharedSource).
package kafka

import (
	"context"
	_ "embed"

	"github.com/auditforwarder/forwarder/plugins"
)

//go:embed sample.yaml
var sample []byte

// TypeName is the `type:` of the source.
const TypeName = "kafka"

// NewFactory returns the factory of the `kafka` source.
func NewFactory() plugins.Factory {
	return plugins.NewSourceFactory(TypeName, "Kafka consumer group reading ECS JSON documents; commits offsets after delivery",
		sample, defaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Source, error) {
			return newSource(set, cfg)
		})
}
