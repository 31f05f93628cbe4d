package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/kafkaconfig"
)

// KafkaTLS is the `tls:` block, shared by everything that talks to Kafka.
type KafkaTLS = kafkaconfig.TLS

// KafkaSASL is the `sasl:` block, shared by everything that talks to Kafka.
type KafkaSASL = kafkaconfig.SASL

// ClusterConfig is the optional `cluster:` block. With it, every instance
// that runs the same pipeline.yaml joins one Kafka group: the instances
// split the sources between them (one ownership slot per source, a
// partition of CoordinationTopic, balanced cooperative-sticky) and keep the
// sources' checkpoints in the compacted StateTopic. Without it, one instance
// runs every source and keeps checkpoints under data_dir.
type ClusterConfig struct {
	// Kafka is the cluster used for membership and checkpoints.
	Kafka ClusterKafka `koanf:"kafka"`
	// Group is the Kafka group id the instances join; it also prefixes the
	// transactional ids that fence a stale owner's checkpoint writes.
	Group string `koanf:"group"`
	// StateTopic is the compacted topic of checkpoints (key = source name);
	// empty = "<group>-state". Created with cleanup.policy=compact if absent.
	StateTopic string `koanf:"state_topic"`
	// CoordinationTopic has one partition per ownership slot; empty =
	// "<group>-coordination". Created (or grown) as needed; it holds no records.
	CoordinationTopic string `koanf:"coordination_topic"`
	// InstanceID names this instance in logs, metrics and /readyz; empty =
	// "<hostname>-<pid>".
	InstanceID string `koanf:"instance_id"`
	// SessionTimeout is how long Kafka waits for a silent instance before
	// moving its sources elsewhere: it bounds the failover time.
	SessionTimeout time.Duration `koanf:"session_timeout"`
	// HeartbeatInterval is how often an instance tells Kafka it is alive;
	// at most a third of SessionTimeout.
	HeartbeatInterval time.Duration `koanf:"heartbeat_interval"`
	// ReplicationFactor of the topics the forwarder creates; -1 = the
	// broker's default.replication.factor.
	ReplicationFactor int `koanf:"replication_factor"`
}

// ClusterKafka is `cluster.kafka`: where the Kafka cluster is and how to
// authenticate, with the same keys as the Kafka output.
type ClusterKafka struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `koanf:"brokers"`
	// ClientID identifies the forwarder in broker logs and quotas.
	ClientID string `koanf:"client_id"`
	// TLS secures the broker connections.
	TLS KafkaTLS `koanf:"tls"`
	// SASL authenticates to the brokers.
	SASL KafkaSASL `koanf:"sasl"`
}

// DefaultCluster returns the defaults a `cluster:` block is decoded over.
func DefaultCluster() *ClusterConfig {
	return &ClusterConfig{
		Kafka:             ClusterKafka{ClientID: "forwarder"},
		Group:             "forwarder",
		SessionTimeout:    10 * time.Second,
		HeartbeatInterval: time.Second,
		ReplicationFactor: -1,
	}
}

// fill derives the defaults that depend on other keys.
func (c *ClusterConfig) fill() {
	if c.StateTopic == "" && c.Group != "" {
		c.StateTopic = c.Group + "-state"
	}
	if c.CoordinationTopic == "" && c.Group != "" {
		c.CoordinationTopic = c.Group + "-coordination"
	}
}

// Validate implements plugins.Validator.
func (c *ClusterConfig) Validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, plugins.FieldErrorf("group", "must not be empty"))
	} else if len(c.Group) > 200 || strings.ContainsFunc(c.Group, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		errs = append(errs, plugins.FieldErrorf("group", "must be 1 to 200 printable ASCII characters without spaces, got %q", c.Group))
	}
	for _, t := range []struct{ key, name string }{{"state_topic", c.StateTopic}, {"coordination_topic", c.CoordinationTopic}} {
		if err := kafkaconfig.CheckTopicName(t.name); err != nil {
			errs = append(errs, plugins.FieldErrorf(t.key, "%v", err))
		}
	}
	if c.StateTopic != "" && c.StateTopic == c.CoordinationTopic {
		errs = append(errs, plugins.FieldErrorf("coordination_topic", "must differ from state_topic (%q)", c.StateTopic))
	}
	if c.SessionTimeout < 6*time.Second || c.SessionTimeout > 30*time.Minute {
		errs = append(errs, plugins.FieldErrorf("session_timeout", "must be between 6s and 30m (Kafka's group.min/max.session.timeout.ms), got %s", c.SessionTimeout))
	}
	if c.HeartbeatInterval <= 0 || c.HeartbeatInterval*3 > c.SessionTimeout {
		errs = append(errs, plugins.FieldErrorf("heartbeat_interval", "must be positive and at most a third of session_timeout (%s), got %s", c.SessionTimeout, c.HeartbeatInterval))
	}
	if c.ReplicationFactor == 0 || c.ReplicationFactor < -1 || c.ReplicationFactor > 32767 {
		errs = append(errs, plugins.FieldErrorf("replication_factor", "must be -1 (broker default) or between 1 and 32767, got %d", c.ReplicationFactor))
	}
	return errors.Join(errs...)
}

// Validate implements plugins.Validator.
func (k *ClusterKafka) Validate() error {
	var errs []error
	if len(k.Brokers) == 0 {
		errs = append(errs, plugins.FieldErrorf("brokers", "needs at least one host:port"))
	}
	for i, b := range k.Brokers {
		if err := kafkaconfig.CheckBroker(b); err != nil {
			errs = append(errs, plugins.FieldErrorf(fmt.Sprintf("brokers[%d]", i), "%v", err))
		}
	}
	return errors.Join(errs...)
}

// prepareCluster puts the defaults under a `cluster:` block before
// decoding, so that absent keys keep them; absent block = no cluster mode.
func prepareCluster(raw map[string]any, cfg *Config) error {
	v, ok := raw["cluster"]
	if !ok {
		return nil
	}
	if _, isMap := v.(map[string]any); !isMap {
		return &plugins.FieldError{Path: "cluster", Msg: "must be a mapping with at least kafka.brokers (remove the key to run without cluster mode)"}
	}
	cfg.Cluster = DefaultCluster()
	return nil
}
