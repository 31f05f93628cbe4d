package kafka

import (
	"fmt"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

func validConfig() *Config {
	c := defaultConfig()
	c.Brokers = []string{"127.0.0.1:9092"}
	c.Topic = "cloud-audit"
	return c
}

func TestDefaultConfig(t *testing.T) {
	c := defaultConfig()
	if c.Key != "event.id" || c.Compression != "zstd" || c.CreateTopic {
		t.Fatalf("defaults drifted from DESIGN.md: %+v", c)
	}
	if err := plugins.ValidateConfig("outputs.kafka", validConfig()); err != nil {
		t.Fatalf("default config with brokers and topic: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want string // substring of the error; "" = valid
	}{
		{"valid", func(*Config) {}, ""},
		{"templated topic", func(c *Config) { c.Topic = "cloud-audit.{{event.dataset}}" }, ""},
		{"no key", func(c *Config) { c.Key = "" }, ""},
		{"every codec", func(c *Config) { c.Compression = "lz4" }, ""},
		{"no brokers", func(c *Config) { c.Brokers = nil }, "outputs.kafka.brokers: needs at least one host:port"},
		{"broker without port", func(c *Config) { c.Brokers = []string{"kafka"} }, "outputs.kafka.brokers[0]: must be host:port"},
		{"broker bad port", func(c *Config) { c.Brokers = []string{"kafka:x"} }, "numeric port"},
		{"no topic", func(c *Config) { c.Topic = "" }, "outputs.kafka.topic: is required"},
		{"bad topic chars", func(c *Config) { c.Topic = "cloud audit" }, "outputs.kafka.topic: topic name \"cloud audit\" has ' '"},
		{"long topic", func(c *Config) { c.Topic = strings.Repeat("a", 250) }, "at most 249"},
		{"unclosed placeholder", func(c *Config) { c.Topic = "a.{{event.dataset" }, "without a closing"},
		{"empty placeholder", func(c *Config) { c.Topic = "a.{{ }}" }, "must name a dotted field path"},
		{"bad key", func(c *Config) { c.Key = "event..id" }, "outputs.kafka.key: must be a dotted field path"},
		{"bad codec", func(c *Config) { c.Compression = "brotli" }, `outputs.kafka.compression: must be one of none, gzip, snappy, lz4, zstd, got "brotli"`},
		{"negative linger", func(c *Config) { c.Linger = -1 }, "outputs.kafka.linger"},
		{"tiny batch", func(c *Config) { c.BatchMaxBytes = 10 }, "outputs.kafka.batch_max_bytes: must be between 1024"},
		{"no buffer", func(c *Config) { c.MaxBufferedRecords = 0 }, "outputs.kafka.max_buffered_records: must be at least 1, got 0"},
		{"buffer bytes below batch", func(c *Config) { c.MaxBufferedBytes = 2048 }, "outputs.kafka.max_buffered_bytes"},
		{"zero partitions", func(c *Config) { c.Partitions = 0 }, "outputs.kafka.partitions: must be -1"},
		{"zero rf", func(c *Config) { c.ReplicationFactor = 0 }, "outputs.kafka.replication_factor: must be -1"},
		{"tls key without enabled", func(c *Config) { c.TLS.CAFile = "/ca.pem" }, "outputs.kafka.tls.ca_file: is set but tls.enabled is false"},
		{"tls cert without key", func(c *Config) { c.TLS.Enabled = true; c.TLS.CertFile = "/c.pem" }, "outputs.kafka.tls.cert_file: and key_file must be set together"},
		{"tls full", func(c *Config) {
			c.TLS = TLSConfig{Enabled: true, CAFile: "/ca", CertFile: "/c", KeyFile: "/k", ServerName: "kafka", InsecureSkipVerify: true}
		}, ""},
		{"sasl bad mechanism", func(c *Config) { c.SASL = SASLConfig{Mechanism: "GSSAPI", Username: "u", Password: "p"} }, `outputs.kafka.sasl.mechanism: must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got "GSSAPI"`},
		{"sasl lower case", func(c *Config) { c.SASL = SASLConfig{Mechanism: "scram-sha-512", Username: "u", Password: "p"} }, ""},
		{"sasl no user", func(c *Config) { c.SASL = SASLConfig{Mechanism: "PLAIN", Password: "p"} }, "outputs.kafka.sasl.username: is required"},
		{"sasl no password", func(c *Config) { c.SASL = SASLConfig{Mechanism: "PLAIN", Username: "u"} }, "outputs.kafka.sasl.password: is required"},
		{"sasl password without mechanism", func(c *Config) { c.SASL = SASLConfig{Password: "p"} }, "outputs.kafka.sasl.mechanism: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mod(c)
			err := plugins.ValidateConfig("outputs.kafka", c)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDecodeRejectsUnknownKeys(t *testing.T) {
	c := defaultConfig()
	err := plugins.DecodeConfig(map[string]any{"brokers": []any{"a:1"}, "topic": "t", "sasl": map[string]any{"mechnism": "PLAIN"}}, c)
	if err == nil || !strings.Contains(err.Error(), "sasl.mechnism: unknown key") {
		t.Fatalf("got %v", err)
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	c := validConfig()
	c.SASL = SASLConfig{Mechanism: "SCRAM-SHA-256", Username: "svc", Password: "hunter2-very-secret"}
	for _, s := range []string{fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(c.SASL), fmt.Sprintf("%v", *c)} {
		if strings.Contains(s, "hunter2") {
			t.Fatalf("password printed: %s", s)
		}
	}
	if got := plugins.CollectSecrets(c); len(got) != 1 || got[0] != "hunter2-very-secret" {
		t.Fatalf("CollectSecrets = %q", got)
	}
}

// sampleComponent returns the kafka component's keys from sample.yaml.
func sampleComponent(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]map[string]map[string]any
	if err := yaml.Unmarshal(sample, &doc); err != nil {
		t.Fatalf("sample.yaml: %v", err)
	}
	comp, ok := doc["outputs"]["kafka"]
	if !ok {
		t.Fatalf("sample.yaml has no outputs.kafka")
	}
	return comp
}

func TestSampleIsValid(t *testing.T) {
	comp := sampleComponent(t)
	if comp["type"] != "kafka" {
		t.Fatalf("sample type = %v", comp["type"])
	}
	delete(comp, "type")
	delete(comp, "inputs")
	c := defaultConfig()
	if err := plugins.DecodeConfig(comp, c); err != nil {
		t.Fatalf("decoding sample: %v", err)
	}
	if err := plugins.ValidateConfig("outputs.kafka", c); err != nil {
		t.Fatalf("validating sample: %v", err)
	}
	// The sample documents the defaults: decoding it must not change them
	// apart from the keys a user has to choose.
	d := defaultConfig()
	d.Brokers, d.Topic = c.Brokers, c.Topic
	if fmt.Sprintf("%+v", d) != fmt.Sprintf("%+v", c) {
		t.Fatalf("sample.yaml values differ from the defaults:\nsample   %+v\ndefaults %+v", c, d)
	}
}

func TestReadmeShowsSample(t *testing.T) { plugintest.READMEShowsSample(t, sample) }

func TestFactory(t *testing.T) {
	f := NewFactory()
	if f.Type() != "kafka" || f.Kind() != plugins.KindOutput || !plugins.ValidTypeName(f.Type()) {
		t.Fatalf("factory %s/%v", f.Type(), f.Kind())
	}
	if _, ok := f.CreateDefaultConfig().(*Config); !ok {
		t.Fatalf("default config has type %T", f.CreateDefaultConfig())
	}
	comp, err := f.Create(t.Context(), plugins.NopSettings("kafka"), validConfig())
	if err != nil {
		t.Fatal(err)
	}
	// Close without Start, twice.
	if err := comp.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := comp.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := comp.(plugins.Output).Write(t.Context(), []*plugins.Event{plugins.NewEvent()}); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}
