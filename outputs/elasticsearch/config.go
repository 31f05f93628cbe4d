package elasticsearch

import (
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// DefaultIndex is the data stream written to when `index` is not set.
const DefaultIndex = "logs-cloudaudit-default"

// defaultAddress is used when neither addresses nor cloud_id is set.
const defaultAddress = "http://127.0.0.1:9200"

// Config is the `elasticsearch` output's configuration.
type Config struct {
	// Addresses are the node URLs (http:// or https://); empty with no
	// cloud_id means http://127.0.0.1:9200.
	Addresses []string `koanf:"addresses"`
	// CloudID is an Elastic Cloud deployment id; it replaces addresses.
	CloudID string `koanf:"cloud_id"`
	// APIKey is an Elasticsearch API key, either the base64 "encoded" form
	// or "id:api_key".
	APIKey plugins.Secret `koanf:"api_key"`
	// Username and Password are HTTP basic auth credentials.
	Username string         `koanf:"username"`
	Password plugins.Secret `koanf:"password"`
	// TLS configures server verification.
	TLS TLSConfig `koanf:"tls"`

	// Index is the data stream (data_stream: true) or index name. In index
	// mode it may hold date patterns such as cloudaudit-%{+yyyy.MM.dd},
	// filled from each event's time (UTC).
	Index string `koanf:"index"`
	// DataStream writes with op `create` to a data stream; false writes
	// with op `index` to a plain index.
	DataStream bool `koanf:"data_stream"`
	// ManageTemplate installs the ECS index template (and the data stream)
	// at start, and before the first write if the cluster was unreachable.
	ManageTemplate bool `koanf:"manage_template"`
	// TemplateName names the index template; empty derives it from index.
	TemplateName string `koanf:"template_name"`
	// TemplatePriority is the template's priority; above 100 so it wins
	// over Elasticsearch's built-in logs-*-* template.
	TemplatePriority int `koanf:"template_priority"`

	// Compression of bulk request bodies: none or gzip.
	Compression string `koanf:"compression"`
	// BulkMaxBytes caps the body of one bulk request; a batch larger than
	// this is split into several requests.
	BulkMaxBytes int `koanf:"bulk_max_bytes"`
	// BulkMaxDocs caps the documents of one bulk request.
	BulkMaxDocs int `koanf:"bulk_max_docs"`
	// HealthCheckInterval is how often the cluster is probed for /readyz.
	HealthCheckInterval time.Duration `koanf:"health_check_interval"`
}

// TLSConfig is the `tls` block.
type TLSConfig struct {
	// CAFile is a PEM file of the certificate authorities to trust.
	CAFile string `koanf:"ca_file"`
	// CAFingerprint is the hex SHA-256 fingerprint of the CA or server
	// certificate (as Elasticsearch prints it on first start); colons allowed.
	CAFingerprint string `koanf:"ca_fingerprint"`
	// InsecureSkipVerify disables server certificate verification.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

func defaultConfig() *Config {
	return &Config{
		Index:               DefaultIndex,
		DataStream:          true,
		ManageTemplate:      true,
		TemplatePriority:    200,
		Compression:         "none",
		BulkMaxBytes:        5 << 20,
		BulkMaxDocs:         1000,
		HealthCheckInterval: 15 * time.Second,
	}
}

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Addresses) > 0 && c.CloudID != "" {
		errs = append(errs, plugins.FieldErrorf("cloud_id", "set either addresses or cloud_id, not both"))
	}
	for i, a := range c.Addresses {
		u, err := url.Parse(a)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, plugins.FieldErrorf("addresses", "entry %d must be an http:// or https:// URL", i))
		} else if u.User != nil {
			errs = append(errs, plugins.FieldErrorf("addresses", "entry %d must not carry credentials; use username/password or api_key", i))
		}
	}
	if c.CloudID != "" {
		if _, err := cloudAddress(c.CloudID); err != nil {
			errs = append(errs, plugins.FieldErrorf("cloud_id", "%v", err))
		}
	}
	if c.APIKey.IsSet() && (c.Username != "" || c.Password.IsSet()) {
		errs = append(errs, plugins.FieldErrorf("api_key", "set either api_key or username + password, not both"))
	}
	if c.Username != "" && !c.Password.IsSet() {
		errs = append(errs, plugins.FieldErrorf("password", "is required with username"))
	}
	if c.Password.IsSet() && c.Username == "" {
		errs = append(errs, plugins.FieldErrorf("username", "is required with password"))
	}
	if c.TLS.CAFingerprint != "" {
		if _, err := parseFingerprint(c.TLS.CAFingerprint); err != nil {
			errs = append(errs, plugins.FieldErrorf("tls.ca_fingerprint", "%v", err))
		}
	}
	if c.Index == "" {
		errs = append(errs, plugins.FieldErrorf("index", "is required"))
	} else if p, err := parseIndexPattern(c.Index); err != nil {
		errs = append(errs, plugins.FieldErrorf("index", "%v", err))
	} else if c.DataStream && p.dated() {
		errs = append(errs, plugins.FieldErrorf("index", "date patterns need data_stream: false (a data stream has one fixed name)"))
	}
	if c.TemplateName != "" && !validName(c.TemplateName) {
		errs = append(errs, plugins.FieldErrorf("template_name", "must be a lowercase name without spaces or any of \\/*?\"<>|,#:, got %q", c.TemplateName))
	}
	if c.TemplatePriority < 0 {
		errs = append(errs, plugins.FieldErrorf("template_priority", "must not be negative, got %d", c.TemplatePriority))
	}
	switch c.Compression {
	case "none", "gzip":
	default:
		errs = append(errs, plugins.FieldErrorf("compression", "must be none or gzip, got %q", c.Compression))
	}
	if c.BulkMaxBytes < 1024 || c.BulkMaxBytes > 100<<20 {
		errs = append(errs, plugins.FieldErrorf("bulk_max_bytes", "must be between 1024 and 104857600, got %d", c.BulkMaxBytes))
	}
	if c.BulkMaxDocs < 1 || c.BulkMaxDocs > 100000 {
		errs = append(errs, plugins.FieldErrorf("bulk_max_docs", "must be between 1 and 100000, got %d", c.BulkMaxDocs))
	}
	if c.HealthCheckInterval < time.Second {
		errs = append(errs, plugins.FieldErrorf("health_check_interval", "must be at least 1s, got %s", c.HealthCheckInterval))
	}
	return errors.Join(errs...)
}

// parseFingerprint decodes a hex SHA-256 fingerprint, with or without colons.
func parseFingerprint(s string) (string, error) {
	h := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return "", errors.New("must be a SHA-256 fingerprint: 64 hex digits, colons allowed")
	}
	return h, nil
}

// validName reports whether s is usable as an index, data stream or
// template name (Elasticsearch's rules, without date patterns).
func validName(s string) bool {
	if s == "" || len(s) > 255 || s == "." || s == ".." {
		return false
	}
	switch s[0] {
	case '-', '_', '+':
		return false
	}
	for _, r := range s {
		if (r >= 'A' && r <= 'Z') || r < 0x20 || r == 0x7f {
			return false
		}
		if strings.ContainsRune(" \\/*?\"<>|,#:", r) {
			return false
		}
	}
	return true
}
