package kafka

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/kafkaconfig"
)

// TLSConfig is the `tls:` block, shared by everything that talks to Kafka.
type TLSConfig = kafkaconfig.TLS

// SASLConfig is the `sasl:` block, shared by everything that talks to Kafka.
type SASLConfig = kafkaconfig.SASL

// Config is the `type: kafka` output's configuration.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `koanf:"brokers"`
	// Topic is the destination topic; {{field.path}} placeholders are
	// replaced by the event's values (cloud-audit.{{event.dataset}}).
	Topic string `koanf:"topic"`
	// Key is the field path whose value becomes the record key; empty sends
	// records without a key.
	Key string `koanf:"key"`
	// Compression is none, gzip, snappy, lz4 or zstd.
	Compression string `koanf:"compression"`
	// ClientID identifies the forwarder in broker logs and quotas.
	ClientID string `koanf:"client_id"`
	// Linger is how long a partition waits for more records before a batch is sent.
	Linger time.Duration `koanf:"linger"`
	// BatchMaxBytes caps one record batch (uncompressed), like the broker's
	// max.message.bytes; the topic's own max.message.bytes lowers it.
	BatchMaxBytes int `koanf:"batch_max_bytes"`
	// MaxBufferedRecords bounds the records held by the client; when full,
	// Write blocks (backpressure reaches the pipeline).
	MaxBufferedRecords int `koanf:"max_buffered_records"`
	// MaxBufferedBytes bounds the bytes held by the client; 0 = no byte bound.
	MaxBufferedBytes int `koanf:"max_buffered_bytes"`
	// CreateTopic creates a missing topic instead of failing.
	CreateTopic bool `koanf:"create_topic"`
	// Partitions of a created topic; -1 = the broker's num.partitions.
	Partitions int `koanf:"partitions"`
	// ReplicationFactor of a created topic; -1 = the broker's default.replication.factor.
	ReplicationFactor int `koanf:"replication_factor"`
	// ExactlyOnce writes the records of a source that feeds this output
	// alone in one Kafka transaction with the source's checkpoint (cluster
	// mode, brokers = cluster.kafka.brokers); see cmd/forwarder/CLUSTER.md.
	ExactlyOnce bool `koanf:"exactly_once"`
	// TLS secures the broker connections.
	TLS TLSConfig `koanf:"tls"`
	// SASL authenticates to the brokers.
	SASL SASLConfig `koanf:"sasl"`
}

// Compression codec names.
var compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// SASL mechanism names, as Kafka spells them.
const (
	mechPlain     = "PLAIN"
	mechSCRAM256  = "SCRAM-SHA-256"
	mechSCRAM512  = "SCRAM-SHA-512"
	maxTopicBytes = 249
)

func defaultConfig() *Config {
	return &Config{
		Key:                "event.id",
		Compression:        "zstd",
		ClientID:           "forwarder",
		Linger:             0, // each Write waits for its acks: lingering only adds latency
		BatchMaxBytes:      1 << 20,
		MaxBufferedRecords: 10000,
		MaxBufferedBytes:   64 << 20,
		Partitions:         -1,
		ReplicationFactor:  -1,
	}
}

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, plugins.FieldErrorf("brokers", "needs at least one host:port"))
	}
	for i, b := range c.Brokers {
		if err := kafkaconfig.CheckBroker(b); err != nil {
			errs = append(errs, plugins.FieldErrorf(fmt.Sprintf("brokers[%d]", i), "%v", err))
		}
	}
	if c.Topic == "" {
		errs = append(errs, plugins.FieldErrorf("topic", "is required"))
	} else if t, err := parseTemplate(c.Topic); err != nil {
		errs = append(errs, plugins.FieldErrorf("topic", "%v", err))
	} else if t.static() {
		if err := kafkaconfig.CheckTopicName(c.Topic); err != nil {
			errs = append(errs, plugins.FieldErrorf("topic", "%v", err))
		}
	}
	if c.Key != "" && !validPath(c.Key) {
		errs = append(errs, plugins.FieldErrorf("key", "must be a dotted field path such as event.id, got %q", c.Key))
	}
	if !contains(compressions, c.Compression) {
		errs = append(errs, plugins.FieldErrorf("compression", "must be one of %s, got %q", strings.Join(compressions, ", "), c.Compression))
	}
	if c.Linger < 0 || c.Linger > time.Minute {
		errs = append(errs, plugins.FieldErrorf("linger", "must be between 0s and 1m, got %s", c.Linger))
	}
	if c.BatchMaxBytes < 1024 || c.BatchMaxBytes > 1<<30 {
		errs = append(errs, plugins.FieldErrorf("batch_max_bytes", "must be between 1024 and 1073741824, got %d", c.BatchMaxBytes))
	}
	if c.MaxBufferedRecords < 1 {
		errs = append(errs, plugins.FieldErrorf("max_buffered_records", "must be at least 1, got %d", c.MaxBufferedRecords))
	}
	if c.MaxBufferedBytes < 0 {
		errs = append(errs, plugins.FieldErrorf("max_buffered_bytes", "must be 0 (no byte bound) or positive, got %d", c.MaxBufferedBytes))
	} else if c.MaxBufferedBytes > 0 && c.MaxBufferedBytes < c.BatchMaxBytes {
		errs = append(errs, plugins.FieldErrorf("max_buffered_bytes", "must be 0 or at least batch_max_bytes (%d), got %d", c.BatchMaxBytes, c.MaxBufferedBytes))
	}
	if c.Partitions == 0 || c.Partitions < -1 || c.Partitions > 1<<20 {
		errs = append(errs, plugins.FieldErrorf("partitions", "must be -1 (broker default) or between 1 and 1048576, got %d", c.Partitions))
	}
	if c.ReplicationFactor == 0 || c.ReplicationFactor < -1 || c.ReplicationFactor > 32767 {
		errs = append(errs, plugins.FieldErrorf("replication_factor", "must be -1 (broker default) or between 1 and 32767, got %d", c.ReplicationFactor))
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
