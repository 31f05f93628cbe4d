package mask

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

func TestConformance(t *testing.T) {
	plugintest.Run(t, NewFactory(), plugintest.Options{})
}

// The README's yaml block must be the embedded sample, verbatim.
func TestREADMEShowsSample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+string(sample)+"```") {
		t.Fatalf("README.md's yaml block differs from sample.yaml:\n%s", sample)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none = valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"hash with key", func(c *Config) { c.IP.Mode, c.Email.Mode, c.HashKey = ModeHash, ModeHash, testKey }, nil},
		{"redact, keep", func(c *Config) { c.IP.Mode, c.Email.Mode = ModeRedact, ModeKeep }, nil},
		{"prefix bounds", func(c *Config) { c.IP.IPv4Prefix, c.IP.IPv6Prefix = 0, 128 }, nil},
		{"fields", func(c *Config) { c.Fields = []string{"user.email", "source.ip"} }, nil},
		{"bad ip mode", func(c *Config) { c.IP.Mode = "partial" }, []string{`ip.mode: must be one of truncate, hash, redact, keep, got "partial"`}},
		{"bad email mode", func(c *Config) { c.Email.Mode = "truncate" }, []string{`email.mode: must be one of partial, hash, redact, keep, got "truncate"`}},
		{"bad prefixes", func(c *Config) { c.IP.IPv4Prefix, c.IP.IPv6Prefix = 33, -1 }, []string{
			"ip.ipv4_prefix: must be between 0 and 32, got 33", "ip.ipv6_prefix: must be between 0 and 128, got -1"}},
		{"ip hash without key", func(c *Config) { c.IP.Mode = ModeHash }, []string{"hash_key: is required when ip.mode is hash"}},
		{"both hash without key", func(c *Config) { c.IP.Mode, c.Email.Mode = ModeHash, ModeHash }, []string{"hash_key: is required when ip.mode and email.mode are hash"}},
		{"email hash short key", func(c *Config) { c.Email.Mode, c.HashKey = ModeHash, "short" }, []string{"hash_key: must be at least 16 bytes long"}},
		{"bad field", func(c *Config) { c.Fields = []string{"user..email", ""} }, []string{`fields: entry 0 must be a dotted path`, `entry 1`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(c)
			err := plugins.ValidateConfig("transforms.mask", c)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "transforms.mask.") {
				t.Errorf("error %q is not prefixed with the component path", err)
			}
		})
	}
}

// The engine refuses to create the transform when any hash mode has no
// key: the config is validated before Create.
func TestDecodeAndRefuseWithoutKey(t *testing.T) {
	cfg := NewFactory().CreateDefaultConfig()
	raw := map[string]any{"ip": map[string]any{"mode": "hash"}, "hash_key": ""}
	if err := plugins.DecodeConfig(raw, cfg); err != nil {
		t.Fatal(err)
	}
	err := plugins.ValidateConfig("transforms.mask", cfg)
	if err == nil || !strings.Contains(err.Error(), "transforms.mask.hash_key: is required") {
		t.Fatalf("got %v", err)
	}
	if err := plugins.DecodeConfig(map[string]any{"ip": map[string]any{"mode": "hash", "ipv4_prefx": 1}}, NewFactory().CreateDefaultConfig()); err == nil {
		t.Fatal("unknown key accepted")
	}
}

func TestHashKeyNeverPrinted(t *testing.T) {
	c := cfgFor(ModeHash, ModeHash)
	printed := fmt.Sprintf("%v %+v %#v", c, c, c) + fmt.Sprint(*c)
	if strings.Contains(printed, testKey) {
		t.Fatalf("hash_key printed: %s", printed)
	}
	if err := (&Config{IP: IPConfig{Mode: ModeHash}, Email: EmailConfig{Mode: ModeKeep}, HashKey: "tiny"}).Validate(); err == nil || strings.Contains(err.Error(), "tiny") {
		t.Fatalf("error %v must exist and not quote the key", err)
	}
}
