package elasticsearch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

func TestConformance(t *testing.T) {
	f := newFakeES(t)
	plugintest.Run(t, NewFactory(), plugintest.Options{
		Config: map[string]any{"addresses": []any{f.URL}},
	})
}

func TestConfigValidate(t *testing.T) {
	cloudID := "my-deployment:" + "ZXUtd2VzdC0xLmF3cy5mb3VuZC5pbyRhYmMxMjMkZGVmNDU2" // eu-west-1.aws.found.io$abc123$def456
	fp := strings.Repeat("ab", 32)
	cases := []struct {
		name  string
		tweak func(*Config)
		want  string // substring of the error; empty = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"addresses", func(c *Config) { c.Addresses = []string{"https://es1:9200", "http://es2:9200"} }, ""},
		{"cloud id", func(c *Config) { c.CloudID = cloudID }, ""},
		{"cloud id and addresses", func(c *Config) { c.CloudID = cloudID; c.Addresses = []string{"http://x:9200"} }, "cloud_id: set either addresses or cloud_id"},
		{"bad cloud id", func(c *Config) { c.CloudID = "name:!!!" }, "cloud_id: must be an Elastic Cloud id"},
		{"address without scheme", func(c *Config) { c.Addresses = []string{"es1:9200"} }, "addresses: entry 0 must be an http:// or https:// URL"},
		{"address with credentials", func(c *Config) { c.Addresses = []string{"http://u:p@es1:9200"} }, "addresses: entry 0 must not carry credentials"},
		{"api key", func(c *Config) { c.APIKey = "id:key" }, ""},
		{"api key and basic", func(c *Config) { c.APIKey = "k"; c.Username = "u"; c.Password = "p" }, "api_key: set either api_key or username + password"},
		{"username without password", func(c *Config) { c.Username = "elastic" }, "password: is required with username"},
		{"password without username", func(c *Config) { c.Password = "p" }, "username: is required with password"},
		{"fingerprint with colons", func(c *Config) { c.TLS.CAFingerprint = strings.ToUpper(strings.Join(splitPairs(fp), ":")) }, ""},
		{"bad fingerprint", func(c *Config) { c.TLS.CAFingerprint = "abc" }, "tls.ca_fingerprint: must be a SHA-256 fingerprint"},
		{"empty index", func(c *Config) { c.Index = "" }, "index: is required"},
		{"upper-case index", func(c *Config) { c.Index = "Logs-x-default" }, "index: must be a lowercase name"},
		{"index with space", func(c *Config) { c.Index = "logs x" }, "index: must be a lowercase name"},
		{"index starting with _", func(c *Config) { c.Index = "_logs" }, "index: must be a lowercase name"},
		{"date pattern in data stream", func(c *Config) { c.Index = "audit-%{+yyyy.MM.dd}" }, "index: date patterns need data_stream: false"},
		{"date pattern in index mode", func(c *Config) { c.DataStream = false; c.Index = "audit-%{+yyyy.MM.dd}" }, ""},
		{"bad date token", func(c *Config) { c.DataStream = false; c.Index = "audit-%{+yyyy.QQ}" }, "index: date pattern has \"QQ\""},
		{"date pattern without +", func(c *Config) { c.DataStream = false; c.Index = "audit-%{yyyy}" }, "index: date pattern %{yyyy} must start with +"},
		{"unclosed date pattern", func(c *Config) { c.DataStream = false; c.Index = "audit-%{+yyyy" }, "index: has an unclosed %{ date pattern"},
		{"bad template name", func(c *Config) { c.TemplateName = "My Template" }, "template_name: must be a lowercase name"},
		{"negative priority", func(c *Config) { c.TemplatePriority = -1 }, "template_priority: must not be negative"},
		{"compression", func(c *Config) { c.Compression = "zstd" }, `compression: must be none or gzip, got "zstd"`},
		{"gzip", func(c *Config) { c.Compression = "gzip" }, ""},
		{"bulk bytes", func(c *Config) { c.BulkMaxBytes = 10 }, "bulk_max_bytes: must be between 1024 and 104857600, got 10"},
		{"bulk docs", func(c *Config) { c.BulkMaxDocs = 0 }, "bulk_max_docs: must be between 1 and 100000, got 0"},
		{"health interval", func(c *Config) { c.HealthCheckInterval = time.Millisecond }, "health_check_interval: must be at least 1s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig()
			tc.tweak(c)
			err := plugins.ValidateConfig("outputs.es", c)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "outputs.es."+tc.want) {
				t.Fatalf("want error containing %q, got %v", "outputs.es."+tc.want, err)
			}
		})
	}
}

func splitPairs(s string) []string {
	var out []string
	for i := 0; i+2 <= len(s); i += 2 {
		out = append(out, s[i:i+2])
	}
	return out
}

func TestSecretsNeverPrinted(t *testing.T) {
	c := defaultConfig()
	c.APIKey = "super-secret-api-key"
	c.Password = "super-secret-password"
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, c)
		if strings.Contains(out, "super-secret") {
			t.Fatalf("%s shows a secret: %s", format, out)
		}
	}
	// Nor do errors about the client.
	c.Username, c.APIKey = "", ""
	c.Username = "u"
	c.Addresses = []string{"http://127.0.0.1:1"}
	o, err := newOutput(plugins.NopSettings("es"), c)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(t.Context())
	werr := o.Write(t.Context(), testEvents(1))
	if werr == nil || strings.Contains(werr.Error(), "super-secret") {
		t.Fatalf("error %v", werr)
	}
}

func TestReadmeMatchesSample(t *testing.T) { plugintest.READMEShowsSample(t, sample) }

func TestIndexPattern(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	cases := []struct {
		in, name, wildcard, prefix string
		dated                      bool
	}{
		{"logs-cloudaudit-default", "logs-cloudaudit-default", "logs-cloudaudit-default", "logs-cloudaudit-default", false},
		{"cloudaudit-%{+yyyy.MM.dd}", "cloudaudit-2026.03.04", "cloudaudit-*", "cloudaudit", true},
		{"audit-%{+yy_MM}-x-%{+HH}", "audit-26_03-x-05", "audit-*-x-*", "audit", true},
		{"%{+yyyy}", "2026", "*", "", true},
	}
	for _, tc := range cases {
		p, err := parseIndexPattern(tc.in)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := p.name(at); got != tc.name {
			t.Errorf("%s: name %q, want %q", tc.in, got, tc.name)
		}
		if got := p.wildcard(); got != tc.wildcard {
			t.Errorf("%s: wildcard %q, want %q", tc.in, got, tc.wildcard)
		}
		if got := p.prefix(); got != tc.prefix {
			t.Errorf("%s: prefix %q, want %q", tc.in, got, tc.prefix)
		}
		if p.dated() != tc.dated {
			t.Errorf("%s: dated %v", tc.in, p.dated())
		}
	}
}

func FuzzIndexPattern(f *testing.F) {
	for _, s := range []string{"logs-cloudaudit-default", "a-%{+yyyy.MM.dd}", "%{+", "%{}", "x%{+HH}y%{+yy}", "Ä-%{+dd}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parseIndexPattern(s)
		if err != nil {
			return
		}
		for _, at := range []time.Time{time.Unix(0, 0), time.Date(9999, 12, 31, 23, 0, 0, 0, time.UTC)} {
			if name := p.name(at); !validName(name) {
				t.Fatalf("%q accepted but gives invalid name %q", s, name)
			}
		}
		if strings.ContainsAny(p.wildcard(), "\"\\") {
			t.Fatalf("wildcard of %q needs escaping", s)
		}
	})
}

func TestCloudAddress(t *testing.T) {
	got, err := cloudAddress("my-deployment:ZXUtd2VzdC0xLmF3cy5mb3VuZC5pbyRhYmMxMjMkZGVmNDU2")
	if err != nil || got != "https://abc123.eu-west-1.aws.found.io" {
		t.Fatalf("got %q, %v", got, err)
	}
	cfg := defaultConfig()
	cfg.CloudID = "my-deployment:ZXUtd2VzdC0xLmF3cy5mb3VuZC5pbyRhYmMxMjMkZGVmNDU2"
	if _, err := newClient(cfg); err != nil {
		t.Fatalf("client from cloud id: %v", err)
	}
}

// TestTLS checks ca_file, ca_fingerprint and insecure_skip_verify against
// an HTTPS fake node with a self-signed certificate.
func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		if strings.HasSuffix(r.URL.Path, "/_bulk") {
			_, _ = w.Write([]byte(`{"errors":false,"items":[{"create":{"status":201}}]}`))
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	cert := srv.Certificate()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	cases := []struct {
		name string
		tls  TLSConfig
		ok   bool
	}{
		{"untrusted", TLSConfig{}, false},
		{"ca_file", TLSConfig{CAFile: caFile}, true},
		{"ca_fingerprint", TLSConfig{CAFingerprint: hex.EncodeToString(sum[:])}, true},
		{"wrong fingerprint", TLSConfig{CAFingerprint: strings.Repeat("00", 32)}, false},
		{"insecure_skip_verify", TLSConfig{InsecureSkipVerify: true}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.Addresses = []string{srv.URL}
			cfg.ManageTemplate = false
			cfg.TLS = tc.tls
			o, err := newOutput(plugins.NopSettings("es"), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close(t.Context())
			err = o.Write(t.Context(), testEvents(1))
			if (err == nil) != tc.ok {
				t.Fatalf("ok=%v, got %v", tc.ok, err)
			}
		})
	}
	cfg := defaultConfig()
	cfg.TLS.CAFile = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := newOutput(plugins.NopSettings("es"), cfg); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Fatalf("missing ca_file: %v", err)
	}
}
