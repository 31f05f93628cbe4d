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

// Config is the `type: kafka` source's configuration.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `koanf:"brokers"`
	// Topics are read in full (every partition).
	Topics []string `koanf:"topics"`
	// Group is the consumer group: every forwarder instance with the same
	// group shares the topics' partitions, and the group's committed
	// offsets are where delivery got to.
	Group string `koanf:"group"`
	// ClientID identifies the forwarder in broker logs and quotas.
	ClientID string `koanf:"client_id"`
	// StartFrom is where a partition without a committed offset starts:
	// earliest or latest.
	StartFrom string `koanf:"start_from"`
	// IsolationLevel is read_committed (skip aborted transactions' records,
	// the right choice behind an exactly-once producer) or read_uncommitted.
	IsolationLevel string `koanf:"isolation_level"`
	// MaxBatchRecords caps the records of one emitted batch.
	MaxBatchRecords int `koanf:"max_batch_records"`
	// Dataset is Meta.Dataset of a record whose document has no
	// event.dataset and which has no dataset header.
	Dataset string `koanf:"dataset"`
	// SessionTimeout is how long the group waits for a silent instance
	// before its partitions move to the others.
	SessionTimeout time.Duration `koanf:"session_timeout"`
	// HeartbeatInterval is how often the instance heartbeats; at most a
	// third of session_timeout.
	HeartbeatInterval time.Duration `koanf:"heartbeat_interval"`
	// RebalanceTimeout bounds a rebalance, revocation waits included.
	RebalanceTimeout time.Duration `koanf:"rebalance_timeout"`
	// RevokeTimeout is how long a partition being taken away waits for its
	// records in flight to be delivered and committed before it is let go
	// (the next owner then re-reads them: duplicates, never loss).
	RevokeTimeout time.Duration `koanf:"revoke_timeout"`
	// TLS secures the broker connections.
	TLS TLSConfig `koanf:"tls"`
	// SASL authenticates to the brokers.
	SASL SASLConfig `koanf:"sasl"`
}

func defaultConfig() *Config {
	return &Config{
		ClientID:          "forwarder",
		StartFrom:         "earliest",
		IsolationLevel:    "read_committed",
		MaxBatchRecords:   1000,
		Dataset:           "kafka",
		SessionTimeout:    10 * time.Second,
		HeartbeatInterval: time.Second,
		RebalanceTimeout:  time.Minute,
		RevokeTimeout:     15 * time.Second,
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
	if len(c.Topics) == 0 {
		errs = append(errs, plugins.FieldErrorf("topics", "needs at least one topic"))
	}
	for i, t := range c.Topics {
		if err := kafkaconfig.CheckTopicName(t); err != nil {
			errs = append(errs, plugins.FieldErrorf(fmt.Sprintf("topics[%d]", i), "%v", err))
		}
	}
	if c.Group == "" {
		errs = append(errs, plugins.FieldErrorf("group", "is required: the consumer group the instances share"))
	} else if len(c.Group) > 200 || strings.ContainsFunc(c.Group, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		errs = append(errs, plugins.FieldErrorf("group", "must be 1 to 200 printable ASCII characters without spaces, got %q", c.Group))
	}
	if c.StartFrom != "earliest" && c.StartFrom != "latest" {
		errs = append(errs, plugins.FieldErrorf("start_from", "must be earliest or latest, got %q", c.StartFrom))
	}
	if c.IsolationLevel != "read_committed" && c.IsolationLevel != "read_uncommitted" {
		errs = append(errs, plugins.FieldErrorf("isolation_level", "must be read_committed or read_uncommitted, got %q", c.IsolationLevel))
	}
	if c.MaxBatchRecords < 1 || c.MaxBatchRecords > 100000 {
		errs = append(errs, plugins.FieldErrorf("max_batch_records", "must be between 1 and 100000, got %d", c.MaxBatchRecords))
	}
	if c.Dataset == "" {
		errs = append(errs, plugins.FieldErrorf("dataset", "must not be empty"))
	}
	if c.SessionTimeout < 6*time.Second || c.SessionTimeout > 30*time.Minute {
		errs = append(errs, plugins.FieldErrorf("session_timeout", "must be between 6s and 30m (Kafka's group.min/max.session.timeout.ms), got %s", c.SessionTimeout))
	}
	if c.HeartbeatInterval <= 0 || c.HeartbeatInterval*3 > c.SessionTimeout {
		errs = append(errs, plugins.FieldErrorf("heartbeat_interval", "must be positive and at most a third of session_timeout (%s), got %s", c.SessionTimeout, c.HeartbeatInterval))
	}
	if c.RevokeTimeout < 0 {
		errs = append(errs, plugins.FieldErrorf("revoke_timeout", "must not be negative, got %s", c.RevokeTimeout))
	}
	if c.RebalanceTimeout < time.Second || c.RebalanceTimeout <= c.RevokeTimeout {
		errs = append(errs, plugins.FieldErrorf("rebalance_timeout", "must be at least 1s and above revoke_timeout (%s), got %s", c.RevokeTimeout, c.RebalanceTimeout))
	}
	return errors.Join(errs...)
}
