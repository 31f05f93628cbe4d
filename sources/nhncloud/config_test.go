package nhncloud

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/auditforwarder/forwarder/plugins"
)

func validConfig() *Config {
	c := defaultConfig()
	c.Endpoint = "https://cloudtrail.example.nhncloudservice.com"
	c.AppKey, c.UserAccessKeyID, c.SecretAccessKey = testAppKey, testKeyID, testSecret
	return c
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the error; none = valid
	}{
		{"valid v2", func(*Config) {}, nil},
		{"valid v1 without user keys", func(c *Config) { c.APIVersion, c.UserAccessKeyID, c.SecretAccessKey = "v1", "", "" }, nil},
		{"v1 keeps ignored keys", func(c *Config) { c.APIVersion = "v1" }, nil},
		{"path form version", func(c *Config) { c.APIVersion = "v2.0" }, nil},
		{"endpoint missing", func(c *Config) { c.Endpoint = "" }, []string{"endpoint: is required"}},
		{"endpoint not a URL", func(c *Config) { c.Endpoint = "cloudtrail.example.com" }, []string{"endpoint: must be an http(s) URL"}},
		{"endpoint with query", func(c *Config) { c.Endpoint = "https://h/?x=1" }, []string{"endpoint: must be"}},
		{"bad version", func(c *Config) { c.APIVersion = "v3" }, []string{`api_version: must be v1 or v2, got "v3"`}},
		{"app_key missing", func(c *Config) { c.AppKey = "" }, []string{"app_key: is required"}},
		{"app_key with slash", func(c *Config) { c.AppKey = "a/b" }, []string{"app_key: must not contain"}},
		{"v2 without key id", func(c *Config) { c.UserAccessKeyID = "" }, []string{"user_access_key_id: is required with api_version v2"}},
		{"v2 without secret", func(c *Config) { c.SecretAccessKey = "" }, []string{"secret_access_key: is required with api_version v2"}},
		{"page_size 0", func(c *Config) { c.PageSize = 0 }, []string{"page_size: must be between 1 and 1000, got 0"}},
		{"page_size 5000", func(c *Config) { c.PageSize = 5000 }, []string{"page_size: must be between 1 and 1000, got 5000"}},
		{"page_size 1", func(c *Config) { c.PageSize = 1 }, nil},
		{"empty event id", func(c *Config) { c.EventIDs = []string{"event_id.a", " "} }, []string{"event_ids: item 1 is empty"}},
		{"duplicate event id", func(c *Config) { c.EventIDs = []string{"event_id.a", "event_id.a"} }, []string{`event_ids: "event_id.a" is listed twice`}},
		{"toast ok", func(c *Config) { c.Member = MemberConfig{MemberType: "TOAST", EmailAddress: "a@b.c"} }, nil},
		{"toast lowercase ok", func(c *Config) { c.Member = MemberConfig{MemberType: "toast", EmailAddress: "a@b.c", IDNo: "x"} }, nil},
		{"toast without email", func(c *Config) { c.Member = MemberConfig{MemberType: "TOAST"} }, []string{"member.email_address: is required with member_type TOAST"}},
		{"toast with user code", func(c *Config) { c.Member = MemberConfig{MemberType: "TOAST", EmailAddress: "a@b.c", UserCode: "u"} }, []string{"member.user_code: must be empty with member_type TOAST"}},
		{"iam ok", func(c *Config) { c.Member = MemberConfig{MemberType: "IAM", UserCode: "u"} }, nil},
		{"iam without user code", func(c *Config) { c.Member = MemberConfig{MemberType: "IAM"} }, []string{"member.user_code: is required with member_type IAM"}},
		{"iam with email", func(c *Config) { c.Member = MemberConfig{MemberType: "IAM", UserCode: "u", EmailAddress: "a@b.c"} }, []string{"member.email_address: must be empty with member_type IAM"}},
		{"unknown member type", func(c *Config) { c.Member = MemberConfig{MemberType: "ROOT", UserCode: "u"} }, []string{`member.member_type: must be TOAST or IAM, got "ROOT"`}},
		{"user code without type", func(c *Config) { c.Member = MemberConfig{UserCode: "u"} }, []string{"member.member_type: is required"}},
		{"id_no alone ok", func(c *Config) { c.Member = MemberConfig{IDNo: "uuid"} }, nil},
		{"interval 0", func(c *Config) { c.Interval = 0 }, []string{"interval: must be positive"}},
		{"lookback too long", func(c *Config) { c.Lookback = 91 * 24 * time.Hour }, []string{"lookback: must be positive and at most 2160h"}},
		{"overlap negative", func(c *Config) { c.Overlap = -time.Second }, []string{"overlap: must not be negative"}},
		{"overlap ≥ lookback", func(c *Config) { c.Lookback, c.Overlap = time.Hour, time.Hour }, []string{"overlap: must be shorter than lookback"}},
		{"overlap 0 ok", func(c *Config) { c.Overlap = 0 }, nil},
		{"timeout 0", func(c *Config) { c.Timeout = 0 }, []string{"timeout: must be positive"}},
		{"max_retries -2", func(c *Config) { c.MaxRetries = -2 }, []string{"max_retries: must be -1 (forever) or at least 0, got -2"}},
		{"rate_limit 0", func(c *Config) { c.RateLimit = 0 }, []string{"rate_limit: must be positive"}},
		{"several at once", func(c *Config) { c.PageSize, c.RateLimit = 5000, -1 }, []string{"page_size:", "rate_limit:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.mutate(c)
			err := plugins.ValidateConfig("sources.nhn", c)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), "sources.nhn."+w) {
					t.Errorf("error %q lacks %q", err, "sources.nhn."+w)
				}
			}
			assertNoSecrets(t, "validation error", err.Error())
		})
	}
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	c := validConfig()
	for _, s := range []string{fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(*c)} {
		assertNoSecrets(t, "formatted config", s)
		if !strings.Contains(s, plugins.Redacted) {
			t.Errorf("secrets not shown as %s: %s", plugins.Redacted, s)
		}
	}
	got := plugins.CollectSecrets(c)
	if len(got) != 3 {
		t.Fatalf("CollectSecrets found %d secrets, want appKey, key id and secret", len(got))
	}
}

// sampleSource returns the sample's nhn source as decoded YAML.
func sampleSource(t *testing.T, data []byte) map[string]any {
	t.Helper()
	expanded := regexp.MustCompile(`\$\{([A-Z_]+)\}`).ReplaceAllStringFunc(string(data), func(v string) string {
		if v == "${NHN_CLOUDTRAIL_ENDPOINT}" {
			return "https://cloudtrail.example.nhncloudservice.com"
		}
		return "value-of-" + strings.Trim(v, "${}")
	})
	var doc struct {
		Sources map[string]map[string]any `yaml:"sources"`
	}
	if err := yaml.Unmarshal([]byte(expanded), &doc); err != nil {
		t.Fatalf("sample is not YAML: %v", err)
	}
	src, ok := doc.Sources["nhn"]
	if !ok || src["type"] != TypeName {
		t.Fatalf("sample has no sources.nhn of type %s", TypeName)
	}
	delete(src, "type")
	return src
}

func TestSampleDecodesStrictlyAndValidates(t *testing.T) {
	raw := sampleSource(t, sample)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := plugins.DecodeConfig(raw, cfg); err != nil {
		t.Fatalf("sample does not decode: %v", err)
	}
	if err := plugins.ValidateConfig("sources.nhn", cfg); err != nil {
		t.Fatalf("sample is not valid: %v", err)
	}
	// Every key of the config struct is documented in the sample.
	for _, key := range []string{"endpoint", "api_version", "app_key", "user_access_key_id", "secret_access_key",
		"event_ids", "member", "page_size", "interval", "lookback", "overlap", "timeout", "max_retries", "rate_limit"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("sample lacks %s", key)
		}
	}
	if cfg.PageSize != 1000 || cfg.APIVersion != "v2" || cfg.Overlap != 10*time.Minute {
		t.Fatalf("sample and defaults disagree: %+v", cfg)
	}
	// Strict: a typo is an error naming the key.
	raw["page_sise"] = 10
	if err := plugins.DecodeConfig(raw, NewFactory().CreateDefaultConfig()); err == nil || !strings.Contains(err.Error(), "page_sise") {
		t.Fatalf("typo accepted: %v", err)
	}
	delete(raw, "page_sise")
	raw["member"] = map[string]any{"member_type": "IAM", "user_code": "ops01"}
	cfg = NewFactory().CreateDefaultConfig().(*Config)
	if err := plugins.DecodeConfig(raw, cfg); err != nil || cfg.Member.UserCode != "ops01" {
		t.Fatalf("member decode: %v %+v", err, cfg.Member)
	}
}

func TestReadmeShowsTheSample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Configuration\n\n```yaml\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no yaml block under ## Configuration")
	}
	if string(m[1]) != string(sample) {
		t.Fatalf("README's example drifted from sample.yaml:\n--- README\n%s\n--- sample.yaml\n%s", m[1], sample)
	}
}

func TestFactory(t *testing.T) {
	f := NewFactory()
	if f.Type() != "nhncloud_cloudtrail" || f.Kind() != plugins.KindSource || !plugins.ValidTypeName(f.Type()) {
		t.Fatalf("factory %s %v", f.Type(), f.Kind())
	}
	// The defaults alone are invalid only for what a user must supply.
	err := plugins.ValidateConfig("sources.nhn", f.CreateDefaultConfig())
	lines := plugins.ErrorLines(err)
	if len(lines) != 4 {
		t.Fatalf("defaults: %v", lines)
	}
	for _, want := range []string{"endpoint", "app_key", "user_access_key_id", "secret_access_key"} {
		if !strings.Contains(err.Error(), "sources.nhn."+want+":") {
			t.Errorf("defaults error lacks %s", want)
		}
	}
	c, err := f.Create(context.Background(), plugins.NopSettings("nhn"), validConfig())
	if err != nil {
		t.Fatal(err)
	}
	// Lifecycle: Close without Start, twice.
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(plugins.Source); !ok {
		t.Fatal("not a Source")
	}
}
