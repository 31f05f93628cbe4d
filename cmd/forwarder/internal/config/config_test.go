package config

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

type srcCfg struct {
	PageSize int            `koanf:"page_size"`
	Secret   plugins.Secret `koanf:"secret_key"`
	Interval time.Duration  `koanf:"interval"`
	Member   map[string]any `koanf:"member"`
}

func (c *srcCfg) Validate() error {
	if c.PageSize < 1 || c.PageSize > 100 {
		return plugins.FieldErrorf("page_size", "must be between 1 and 100, got %d", c.PageSize)
	}
	return nil
}

type nopCfg struct {
	Path string `koanf:"path"`
}

func testRegistry(t *testing.T) *plugins.Registry {
	t.Helper()
	reg, err := plugins.NewRegistry(
		plugins.NewSourceFactory("src", "", nil, func() *srcCfg { return &srcCfg{PageSize: 100, Interval: time.Minute} },
			func(context.Context, plugins.Settings, *srcCfg) (plugins.Source, error) { return nil, nil }),
		plugins.NewTransformFactory("tr", "", nil, func() *nopCfg { return &nopCfg{} },
			func(context.Context, plugins.Settings, *nopCfg) (plugins.Transform, error) { return nil, nil }),
		plugins.NewOutputFactory("out", "", nil, func() *nopCfg { return &nopCfg{} },
			func(context.Context, plugins.Settings, *nopCfg) (plugins.Output, error) { return nil, nil }),
	)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

const valid = `
data_dir: /tmp/x
sources:
  ncp:
    type: src
    page_size: 50
    secret_key: ${NCP_SECRET}
transforms:
  t1:
    type: tr
    inputs: [ncp]
outputs:
  o1:
    type: out
    inputs: [t1]
    path: ${OUT_PATH:-/tmp/default.ndjson}
`

func load(t *testing.T, yaml string, env []string, sets ...string) (*Config, error) {
	t.Helper()
	if env == nil {
		env = []string{}
	}
	return Load(Options{Path: "pipeline.yaml", Bytes: []byte(yaml), Environ: env, Set: sets, Registry: testRegistry(t)})
}

func TestLoadValid(t *testing.T) {
	cfg, err := load(t, valid, []string{"NCP_SECRET=topsecret"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ShutdownTimeout != 30*time.Second || cfg.API.Address != "127.0.0.1:8686" || cfg.Log.Level != "info" {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
	if len(cfg.Components) != 3 {
		t.Fatalf("components = %d", len(cfg.Components))
	}
	var src *srcCfg
	var out *nopCfg
	for _, c := range cfg.Components {
		switch c.Name {
		case "ncp":
			src = c.Config.(*srcCfg)
		case "o1":
			out = c.Config.(*nopCfg)
			if c.Delivery.MaxRetries != -1 {
				t.Fatalf("delivery default: %+v", c.Delivery)
			}
		}
	}
	if src.PageSize != 50 || src.Secret.Reveal() != "topsecret" || src.Interval != time.Minute {
		t.Fatalf("source config %+v", src)
	}
	if out.Path != "/tmp/default.ndjson" {
		t.Fatalf("default expansion: %q", out.Path)
	}
}

func TestEnvAndFlagOverrides(t *testing.T) {
	env := []string{"NCP_SECRET=x", "FORWARDER_SOURCES__NCP__PAGE_SIZE=42", "FORWARDER_TEST_KAFKA_BROKERS=127.0.0.1:1", "FORWARDER_SERVICES_DIR=/tmp/x", "FORWARDER_LOG__LEVEL=debug", "FORWARDER_SHUTDOWN_TIMEOUT=5s"}
	cfg, err := load(t, valid, env, "outputs.o1.path=/tmp/flag.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Log.Level != "debug" || cfg.ShutdownTimeout != 5*time.Second {
		t.Fatalf("env override: %+v", cfg)
	}
	for _, c := range cfg.Components {
		if c.Name == "ncp" && c.Config.(*srcCfg).PageSize != 42 {
			t.Fatalf("FORWARDER_SOURCES__NCP__PAGE_SIZE not applied: %+v", c.Config)
		}
		if c.Name == "o1" && c.Config.(*nopCfg).Path != "/tmp/flag.ndjson" {
			t.Fatalf("--set not applied")
		}
	}
}

func TestErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name   string
		yaml   string
		env    []string
		want   string
		absent string
	}{
		{"validate range", strings.Replace(valid, "page_size: 50", "page_size: 500", 1), []string{"NCP_SECRET=x"},
			"sources.ncp.page_size: must be between 1 and 100, got 500", ""},
		{"unknown key", strings.Replace(valid, "page_size: 50", "page_sise: 50", 1), []string{"NCP_SECRET=x"},
			"sources.ncp.page_sise: unknown key", ""},
		{"type mismatch", strings.Replace(valid, "page_size: 50", "page_size: fifty", 1), []string{"NCP_SECRET=x"},
			"sources.ncp.page_size: must be an integer, got a string", ""},
		{"unset variable", valid, nil,
			"sources.ncp.secret_key: environment variable NCP_SECRET is not set", ""},
		{"unknown type", strings.Replace(valid, "type: src", "type: nope", 1), []string{"NCP_SECRET=x"},
			`sources.ncp.type: unknown source type "nope"`, ""},
		{"missing type", strings.Replace(valid, "    type: tr\n", "", 1), []string{"NCP_SECRET=x"},
			"transforms.t1.type: is required", ""},
		{"unknown input", strings.Replace(valid, "inputs: [t1]", "inputs: [t2]", 1), []string{"NCP_SECRET=x"},
			`outputs.o1.inputs: unknown component "t2"`, ""},
		{"no inputs", strings.Replace(valid, "    inputs: [t1]\n", "", 1), []string{"NCP_SECRET=x"},
			"outputs.o1.inputs: is required", ""},
		{"unused component", strings.Replace(valid, "outputs:\n", "  t2:\n    type: tr\n    inputs: [ncp]\noutputs:\n", 1), []string{"NCP_SECRET=x"},
			"transforms.t2: is not used", ""},
		{"cycle", strings.Replace(strings.Replace(valid, "inputs: [ncp]", "inputs: [ncp, t1b]", 1), "outputs:\n", "  t1b:\n    type: tr\n    inputs: [t1]\noutputs:\n", 1), []string{"NCP_SECRET=x"},
			"cycle: ", ""},
		{"duplicate name", valid + "  ncp:\n    type: out\n    inputs: [t1]\n", []string{"NCP_SECRET=x"},
			"names must be unique", ""},
		{"output as input", valid + "  o2:\n    type: out\n    inputs: [o1]\n", []string{"NCP_SECRET=x"},
			`outputs.o2.inputs: "o1" is an output`, ""},
		{"source with inputs", strings.Replace(valid, "    page_size: 50\n", "    page_size: 50\n    inputs: [t1]\n", 1), []string{"NCP_SECRET=x"},
			"sources.ncp.inputs: sources take no inputs", ""},
		{"bad delivery", strings.Replace(valid, "    path: ", "    delivery:\n      max_in_flight: 0\n    path: ", 1), []string{"NCP_SECRET=x"},
			"outputs.o1.delivery.max_in_flight: must be between 1 and 64, got 0", ""},
		{"bad top-level", "bogus: 1\n" + valid, []string{"NCP_SECRET=x"}, "bogus: unknown key", ""},
		{"bad log level", valid + "log:\n  level: loud\n", []string{"NCP_SECRET=x"}, `log.level: must be one of debug, info, warn, error, got "loud"`, ""},
		{"bad duration", valid + "shutdown_timeout: soon\n", []string{"NCP_SECRET=x"}, "shutdown_timeout: must be a duration", ""},
		{"secret not echoed", strings.Replace(valid, "secret_key: ${NCP_SECRET}", "secret_key: 12345678", 1), nil,
			"sources.ncp.secret_key: must be a string", "12345678"},
		{"bad yaml", "sources: [", nil, "invalid YAML", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.yaml, tt.env)
			if err == nil {
				t.Fatalf("expected error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error does not contain %q:\n%v", tt.want, err)
			}
			if tt.absent != "" && strings.Contains(err.Error(), tt.absent) {
				t.Fatalf("error contains %q:\n%v", tt.absent, err)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	lookup := func(k string) (string, bool) {
		m := map[string]string{"A": "1", "EMPTY": ""}
		v, ok := m[k]
		return v, ok
	}
	tests := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}", "1", ""},
		{"x${A}y${A}", "x1y1", ""},
		{"${B:-dflt}", "dflt", ""},
		{"${EMPTY:-dflt}", "dflt", ""},
		{"${EMPTY}", "", ""},
		{"$${A}", "${A}", ""},
		{"${B}", "", "B is not set"},
		{"${A", "", "unterminated"},
		{"${1X}", "", "invalid variable name"},
	}
	for _, tt := range tests {
		got, err := Expand(tt.in, lookup)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Expand(%q) err = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load(Options{Path: "/nonexistent/pipeline.yaml", Registry: testRegistry(t), Environ: []string{}})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/pipeline.yaml") {
		t.Fatalf("got %v", err)
	}
}

func TestClusterBlockAbsentMeansSingleInstance(t *testing.T) {
	cfg, err := load(t, valid, []string{"NCP_SECRET=x"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster != nil {
		t.Fatalf("no cluster block, got %+v", cfg.Cluster)
	}
}

func TestClusterBlockDefaults(t *testing.T) {
	cfg, err := load(t, valid+"cluster:\n  kafka:\n    brokers: [127.0.0.1:9092]\n  group: audit\n", []string{"NCP_SECRET=x"})
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Cluster
	if c == nil {
		t.Fatal("cluster block not decoded")
	}
	if c.Group != "audit" || c.StateTopic != "audit-state" || c.CoordinationTopic != "audit-coordination" ||
		c.SessionTimeout != 10*time.Second || c.HeartbeatInterval != time.Second || c.ReplicationFactor != -1 ||
		c.Kafka.ClientID != "forwarder" || len(c.Kafka.Brokers) != 1 {
		t.Fatalf("defaults: %+v", c)
	}
	// Environment overrides reach the block like any other key.
	cfg, err = load(t, valid+"cluster:\n  kafka:\n    brokers: [127.0.0.1:9092]\n", []string{"NCP_SECRET=x", "FORWARDER_CLUSTER__STATE_TOPIC=st", "FORWARDER_CLUSTER__SESSION_TIMEOUT=20s"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster.StateTopic != "st" || cfg.Cluster.SessionTimeout != 20*time.Second || cfg.Cluster.Group != "forwarder" {
		t.Fatalf("overrides: %+v", cfg.Cluster)
	}
}

func TestClusterBlockSecretNeverPrinted(t *testing.T) {
	cfg, err := load(t, valid+"cluster:\n  kafka:\n    brokers: [b:9092]\n    sasl: {mechanism: SCRAM-SHA-512, username: u, password: hunter2-cluster}\n", []string{"NCP_SECRET=x"})
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%+v %#v", *cfg.Cluster, *cfg.Cluster); strings.Contains(s, "hunter2-cluster") {
		t.Fatalf("secret printed: %s", s)
	}
	if cfg.Cluster.Kafka.SASL.Password.Reveal() != "hunter2-cluster" {
		t.Fatal("password not decoded")
	}
}

func TestClusterBlockErrors(t *testing.T) {
	base := valid + "cluster:\n  kafka:\n    brokers: [127.0.0.1:9092]\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"empty block", valid + "cluster:\n", "cluster: must be a mapping with at least kafka.brokers"},
		{"no brokers", valid + "cluster:\n  group: g\n", "cluster.kafka.brokers: needs at least one host:port"},
		{"bad broker", valid + "cluster:\n  kafka:\n    brokers: [localhost]\n", `cluster.kafka.brokers[0]: must be host:port, got "localhost"`},
		{"unknown key", base + "  groop: g\n", "cluster.groop: unknown key"},
		{"empty group", base + "  group: \"\"\n", "cluster.group: must not be empty"},
		{"group with space", base + "  group: \"a b\"\n", "cluster.group: must be 1 to 200 printable ASCII"},
		{"bad state topic", base + "  state_topic: \"a/b\"\n", `cluster.state_topic: topic name "a/b" has '/'`},
		{"same topics", base + "  state_topic: t\n  coordination_topic: t\n", `cluster.coordination_topic: must differ from state_topic ("t")`},
		{"short session", base + "  session_timeout: 1s\n", "cluster.session_timeout: must be between 6s and 30m"},
		{"slow heartbeat", base + "  session_timeout: 9s\n  heartbeat_interval: 4s\n", "cluster.heartbeat_interval: must be positive and at most a third of session_timeout (9s), got 4s"},
		{"bad duration", base + "  session_timeout: soon\n", "cluster.session_timeout: must be a duration"},
		{"replication", base + "  replication_factor: 0\n", "cluster.replication_factor: must be -1 (broker default) or between 1 and 32767, got 0"},
		{"tls key without enabled", base + "    tls: {ca_file: /x}\n", "cluster.kafka.tls.ca_file: is set but tls.enabled is false"},
		{"tls cert without key", base + "    tls: {enabled: true, cert_file: /x}\n", "cluster.kafka.tls.cert_file: and key_file must be set together"},
		{"sasl bad mechanism", base + "    sasl: {mechanism: GSSAPI, username: u, password: p}\n", `cluster.kafka.sasl.mechanism: must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, got "GSSAPI"`},
		{"sasl no password", base + "    sasl: {mechanism: PLAIN, username: u}\n", "cluster.kafka.sasl.password: is required with sasl.mechanism"},
		{"sasl user without mechanism", base + "    sasl: {username: u}\n", "cluster.kafka.sasl.mechanism: is required when username or password is set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.yaml, []string{"NCP_SECRET=x"})
			if err == nil {
				t.Fatalf("expected error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error does not contain %q:\n%v", tt.want, err)
			}
		})
	}
}
