package syslog

import (
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

func TestFactory(t *testing.T) {
	f := NewFactory()
	if f.Type() != "syslog" || f.Kind() != plugins.KindOutput || !plugins.ValidTypeName(f.Type()) {
		t.Fatalf("factory type %q kind %v", f.Type(), f.Kind())
	}
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Address = "tcp://127.0.0.1:1"
	if err := plugins.ValidateConfig("outputs.siem", cfg); err != nil {
		t.Fatalf("defaults plus an address must be valid: %v", err)
	}
	c, err := f.Create(t.Context(), plugins.NopSettings("siem"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Close without Start, twice.
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.(plugins.Output).Write(t.Context(), []*plugins.Event{testEvent("x", 1, 0)}); err == nil {
		t.Error("Write after Close succeeded")
	}
}

// sampleOutput decodes sample.yaml's one output the way the engine does.
func sampleOutput(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var doc struct {
		Outputs map[string]map[string]any `yaml:"outputs"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Outputs) != 1 {
		t.Fatalf("sample must hold one output, got %d", len(doc.Outputs))
	}
	for _, raw := range doc.Outputs {
		if raw["type"] != "syslog" {
			t.Fatalf("sample type = %v", raw["type"])
		}
		delete(raw, "type")
		delete(raw, "inputs")
		return raw
	}
	return nil
}

func TestSampleDecodesAndEqualsDefaults(t *testing.T) {
	raw := sampleOutput(t, sample)
	cfg := defaultConfig()
	if err := plugins.DecodeConfig(raw, cfg); err != nil {
		t.Fatalf("sample does not decode: %v", err)
	}
	if err := plugins.ValidateConfig("outputs.siem", cfg); err != nil {
		t.Fatalf("sample is not valid: %v", err)
	}
	// Every default shows in the sample with its default value.
	def := defaultConfig()
	def.Address = cfg.Address
	if got, want := yamlOf(t, cfg), yamlOf(t, def); got != want {
		t.Errorf("sample.yaml differs from the defaults:\nsample:\n%s\ndefaults:\n%s", got, want)
	}
}

func yamlOf(t *testing.T, v any) string {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestREADMEShowsSample(t *testing.T) { plugintest.READMEShowsSample(t, sample) }

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"no address", func(c *Config) { c.Address = "" }, "outputs.siem.address: is required"},
		{"bad scheme", func(c *Config) { c.Address = "http://h:1" }, "scheme must be udp, tcp, tls or relp"},
		{"no port", func(c *Config) { c.Address = "tcp://host" }, "must include a host and a port"},
		{"port range", func(c *Config) { c.Address = "tcp://host:70000" }, "port must be 1..65535"},
		{"path", func(c *Config) { c.Address = "tcp://host:1/x" }, "nothing after the port"},
		{"credentials not echoed", func(c *Config) { c.Address = "tcp://user:s3cret@host:1" }, "must not hold credentials"},
		{"garbage", func(c *Config) { c.Address = "127.0.0.1:514" }, "must look like tcp://host:port"},
		{"format", func(c *Config) { c.Format = "rfc5425" }, "format: must be rfc5424 or rfc3164"},
		{"payload", func(c *Config) { c.Payload = "xml" }, "payload: must be json, cef or leef"},
		{"framing", func(c *Config) { c.Framing = "lf" }, "framing: must be octet-counting or newline"},
		{"facility", func(c *Config) { c.Facility = "local8" }, "facility: must be a facility name"},
		{"facility number", func(c *Config) { c.Facility = "16" }, ""},
		{"hostname space", func(c *Config) { c.Hostname = "my host" }, "hostname: must be 1..255 printable"},
		{"app_name long", func(c *Config) { c.AppName = strings.Repeat("a", 49) }, "app_name: must be 1..48"},
		{"app_name 3164", func(c *Config) { c.Format = "rfc3164"; c.AppName = "app:x" }, "for rfc3164"},
		{"sd_id", func(c *Config) { c.SDID = "a=b" }, "sd_id: must be 1..32"},
		{"max too small", func(c *Config) { c.MaxMessageBytes = 100 }, "max_message_bytes: must be 0 (transport default) or between 480 and 16777216"},
		{"max udp", func(c *Config) { c.Address = "udp://h:514"; c.MaxMessageBytes = 65508 }, "between 480 and 65507"},
		{"timeouts", func(c *Config) { c.ConnectTimeout = 0; c.WriteTimeout = -1 }, "connect_timeout: must be positive"},
		{"backoff", func(c *Config) { c.Reconnect.MaxBackoff = 1 }, "reconnect.initial_backoff"},
		{"window", func(c *Config) { c.RELP.WindowSize = 0 }, "relp.window_size: must be between 1 and 65536, got 0"},
		{"tls on tcp", func(c *Config) { c.TLS.CAFile = "/ca.pem" }, "tls: is only used with tls:// addresses"},
		{"cert without key", func(c *Config) { c.Address = "tls://h:6514"; c.TLS.CertFile = "c.pem" }, "tls.cert_file: and tls.key_file must be set together"},
		{"cef bad key", func(c *Config) { c.Payload = "cef"; c.CEF.Extensions["bad key"] = "a" }, "cef.extensions.bad key: is not a valid CEF key"},
		{"cef cs in extensions", func(c *Config) { c.Payload = "cef"; c.CEF.Extensions["cs1"] = "a" }, "come from cef.custom_strings"},
		{"cef bad field", func(c *Config) { c.Payload = "cef"; c.CEF.Extensions["src"] = "a b" }, "must be a dotted ECS field path"},
		{"cef 7 strings", func(c *Config) {
			c.Payload = "cef"
			c.CEF.CustomStrings = append(c.CEF.CustomStrings, CustomString{Label: "x", Field: "y"})
		}, "at most 6 entries"},
		{"cef vendor", func(c *Config) { c.Payload = "cef"; c.CEF.Vendor = "" }, "cef.vendor"},
		{"cef ignored for json", func(c *Config) { c.CEF.Vendor = "" }, ""},
		{"leef delimiter letter", func(c *Config) { c.Payload = "leef"; c.LEEF.Delimiter = "a" }, "leef.delimiter: must not be a letter"},
		{"leef delimiter pipe", func(c *Config) { c.Payload = "leef"; c.LEEF.Delimiter = "|" }, "leef.delimiter"},
		{"leef delimiter hex", func(c *Config) { c.Payload = "leef"; c.LEEF.Delimiter = "0x5E" }, ""},
		{"leef delimiter x09", func(c *Config) { c.Payload = "leef"; c.LEEF.Delimiter = "x09" }, ""},
		{"leef delimiter tab", func(c *Config) { c.Payload = "leef"; c.LEEF.Delimiter = "\t" }, ""},
		{"leef delimiter bad hex", func(c *Config) { c.Payload = "leef"; c.LEEF.Delimiter = "x0" }, "leef.delimiter: must be a tab or a printable"},
		{"leef delimiter two", func(c *Config) { c.Payload = "leef"; c.LEEF.Delimiter = "^^" }, "must be one character"},
		{"leef devTimeFormat", func(c *Config) { c.Payload = "leef"; c.LEEF.Attributes["devTimeFormat"] = "x" }, "added automatically"},
		{"leef key with delimiter", func(c *Config) { c.Payload = "leef"; c.LEEF.Delimiter = "."; c.LEEF.Attributes["a.b"] = "x" }, "not a valid LEEF key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.Address = "tcp://127.0.0.1:514"
			c.mutate(cfg)
			err := plugins.ValidateConfig("outputs.siem", cfg)
			if c.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error shows a credential: %v", err)
			}
		})
	}
}

func TestDecodeOverDefaults(t *testing.T) {
	cfg := defaultConfig()
	raw := map[string]any{
		"address": "relp://127.0.0.1:2514",
		"cef": map[string]any{
			"extensions":     map[string]any{"suser": "", "dvchost": "host.name"},
			"custom_strings": []any{map[string]any{"label": "only", "field": "event.id"}},
		},
	}
	if err := plugins.DecodeConfig(raw, cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.CEF.Extensions["suser"] != "" || cfg.CEF.Extensions["dvchost"] != "host.name" || cfg.CEF.Extensions["src"] != "source.ip" {
		t.Errorf("extensions merge: %v", cfg.CEF.Extensions)
	}
	if len(cfg.CEF.CustomStrings) != 1 || cfg.CEF.CustomStrings[0].Label != "only" {
		t.Errorf("custom_strings must replace the defaults: %+v", cfg.CEF.CustomStrings)
	}
	if err := plugins.DecodeConfig(map[string]any{"adress": "x"}, defaultConfig()); err == nil || !strings.Contains(err.Error(), "adress: unknown key") {
		t.Errorf("typo not refused: %v", err)
	}
	if err := plugins.DecodeConfig(map[string]any{"max_message_bytes": "big"}, defaultConfig()); err == nil {
		t.Error("string for an integer accepted")
	}
}

func TestEffectiveMaxMessageBytes(t *testing.T) {
	for addr, want := range map[string]int{"udp://h:1": 8192, "tcp://h:1": 65536, "tls://h:1": 65536, "relp://h:1": 65536} {
		c := defaultConfig()
		c.Address = addr
		if got := c.maxMessageBytes(); got != want {
			t.Errorf("%s: %d, want %d", addr, got, want)
		}
	}
	c := defaultConfig()
	c.Address, c.MaxMessageBytes = "udp://h:1", 1200
	if c.maxMessageBytes() != 1200 {
		t.Error("explicit max_message_bytes ignored")
	}
}

func TestTLSFilesCheckedAtCreate(t *testing.T) {
	cfg := defaultConfig()
	cfg.Address = "tls://127.0.0.1:6514"
	cfg.TLS.CAFile = "/nonexistent/ca.pem"
	if _, err := newOutput(plugins.NopSettings("siem"), cfg); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Errorf("missing CA file: %v", err)
	}
}
