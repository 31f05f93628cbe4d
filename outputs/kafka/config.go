package kafka

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

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

// TLSConfig is the `tls:` block.
type TLSConfig struct {
	// Enabled turns TLS on; the other keys need it.
	Enabled bool `koanf:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the brokers' certificates;
	// empty = the system roots.
	CAFile string `koanf:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key (mutual TLS).
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
	// ServerName overrides the name checked in the brokers' certificates.
	ServerName string `koanf:"server_name"`
	// InsecureSkipVerify disables certificate verification. Testing only.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

// SASLConfig is the `sasl:` block.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty = no SASL.
	Mechanism string `koanf:"mechanism"`
	// Username is the SASL user.
	Username string `koanf:"username"`
	// Password is the SASL password.
	Password plugins.Secret `koanf:"password"`
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
		if err := checkHostPort(b); err != nil {
			errs = append(errs, plugins.FieldErrorf(fmt.Sprintf("brokers[%d]", i), "%v", err))
		}
	}
	if c.Topic == "" {
		errs = append(errs, plugins.FieldErrorf("topic", "is required"))
	} else if t, err := parseTemplate(c.Topic); err != nil {
		errs = append(errs, plugins.FieldErrorf("topic", "%v", err))
	} else if t.static() {
		if err := checkTopicName(c.Topic); err != nil {
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

// Validate implements plugins.Validator.
func (t *TLSConfig) Validate() error {
	var errs []error
	if !t.Enabled {
		for _, f := range []struct {
			key string
			set bool
		}{
			{"ca_file", t.CAFile != ""}, {"cert_file", t.CertFile != ""}, {"key_file", t.KeyFile != ""},
			{"server_name", t.ServerName != ""}, {"insecure_skip_verify", t.InsecureSkipVerify},
		} {
			if f.set {
				errs = append(errs, plugins.FieldErrorf(f.key, "is set but tls.enabled is false; set enabled: true"))
			}
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, plugins.FieldErrorf("cert_file", "and key_file must be set together"))
	}
	return errors.Join(errs...)
}

// Validate implements plugins.Validator.
func (s *SASLConfig) Validate() error {
	var errs []error
	switch s.mechanism() {
	case "":
		if s.Username != "" || s.Password.IsSet() {
			errs = append(errs, plugins.FieldErrorf("mechanism", "is required when username or password is set (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"))
		}
		return errors.Join(errs...)
	case mechPlain, mechSCRAM256, mechSCRAM512:
	default:
		errs = append(errs, plugins.FieldErrorf("mechanism", "must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got %q", s.Mechanism))
	}
	if s.Username == "" {
		errs = append(errs, plugins.FieldErrorf("username", "is required with sasl.mechanism"))
	}
	if !s.Password.IsSet() {
		errs = append(errs, plugins.FieldErrorf("password", "is required with sasl.mechanism"))
	}
	return errors.Join(errs...)
}

// mechanism returns the mechanism in Kafka's upper-case spelling.
func (s *SASLConfig) mechanism() string { return strings.ToUpper(strings.TrimSpace(s.Mechanism)) }

func checkHostPort(b string) error {
	i := strings.LastIndexByte(b, ':')
	if i <= 0 || i == len(b)-1 {
		return fmt.Errorf("must be host:port, got %q", b)
	}
	for _, r := range b[i+1:] {
		if r < '0' || r > '9' {
			return fmt.Errorf("must be host:port with a numeric port, got %q", b)
		}
	}
	return nil
}

// checkTopicName applies Kafka's topic name rules.
func checkTopicName(t string) error {
	if t == "" {
		return errors.New("topic name is empty")
	}
	if t == "." || t == ".." {
		return fmt.Errorf("topic name %q is not allowed", t)
	}
	if len(t) > maxTopicBytes {
		return fmt.Errorf("topic name is %d characters long; Kafka allows at most %d", len(t), maxTopicBytes)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has %q; Kafka allows only ASCII letters, digits, '.', '_' and '-'", t, c)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
