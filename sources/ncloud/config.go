package ncloud

import (
	"errors"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// Endpoints of Cloud Activity Tracer by region: public, government and
// financial. Any http(s) URL is accepted too (a proxy, the simulator).
const (
	PublicEndpoint    = "https://cloudactivitytracer.apigw.ntruss.com"
	GovEndpoint       = "https://cloudactivitytracer.apigw.gov-ntruss.com"
	FinancialEndpoint = "https://cloudactivitytracer.apigw.fin-ntruss.com"
)

// Environment variables read when access_key / secret_key are empty, as the
// NAVER Cloud CLI and SDKs do.
const (
	EnvAccessKey = "NCLOUD_ACCESS_KEY_ID"
	EnvSecretKey = "NCLOUD_SECRET_KEY"
)

// maxLookback is how far back the API serves events: 30 days.
const maxLookback = 720 * time.Hour

// Config is the `ncloud_activity_tracer` source's configuration.
type Config struct {
	// Endpoint is the API base URL (public, gov or fin region).
	Endpoint string `koanf:"endpoint"`
	// AccessKey is the API access key id (default: $NCLOUD_ACCESS_KEY_ID).
	AccessKey plugins.Secret `koanf:"access_key"`
	// SecretKey signs requests (default: $NCLOUD_SECRET_KEY).
	SecretKey plugins.Secret `koanf:"secret_key"`
	// NRN restricts the query to one resource (optional).
	NRN string `koanf:"nrn"`
	// PageSize is the number of items per page, 1..100.
	PageSize int `koanf:"page_size"`
	// Interval is the pause between polls once caught up.
	Interval time.Duration `koanf:"interval"`
	// Lookback is where a source without checkpoint starts; at most 720h.
	Lookback time.Duration `koanf:"lookback"`
	// Overlap is re-read before the checkpoint on every poll, for late events.
	Overlap time.Duration `koanf:"overlap"`
	// Timeout bounds one request.
	Timeout time.Duration `koanf:"timeout"`
	// MaxRetries bounds the retries of one request; -1 retries forever.
	MaxRetries int `koanf:"max_retries"`
	// RateLimit is the number of requests per second, at most.
	RateLimit float64 `koanf:"rate_limit"`
	// TLS holds a custom CA for endpoints behind an inspecting proxy.
	TLS TLSConfig `koanf:"tls"`
}

// TLSConfig configures the HTTPS client.
type TLSConfig struct {
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string `koanf:"ca_file"`
}

func defaultConfig() *Config {
	return &Config{
		Endpoint:   PublicEndpoint,
		PageSize:   100,
		Interval:   time.Minute,
		Lookback:   maxLookback,
		Overlap:    10 * time.Minute,
		Timeout:    30 * time.Second,
		MaxRetries: -1,
		RateLimit:  5,
	}
}

// credentials returns the keys, falling back to the environment.
func (c *Config) credentials() (access, secret plugins.Secret) {
	access, secret = c.AccessKey, c.SecretKey
	if !access.IsSet() {
		access = plugins.Secret(os.Getenv(EnvAccessKey))
	}
	if !secret.IsSet() {
		secret = plugins.Secret(os.Getenv(EnvSecretKey))
	}
	return access, secret
}

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	if err := validEndpoint(c.Endpoint); err != nil {
		errs = append(errs, plugins.FieldErrorf("endpoint", "%v", err))
	}
	access, secret := c.credentials()
	if !access.IsSet() {
		errs = append(errs, plugins.FieldErrorf("access_key", "is required (or set %s)", EnvAccessKey))
	}
	if !secret.IsSet() {
		errs = append(errs, plugins.FieldErrorf("secret_key", "is required (or set %s)", EnvSecretKey))
	}
	if c.PageSize < 1 || c.PageSize > 100 {
		errs = append(errs, plugins.FieldErrorf("page_size", "must be between 1 and 100, got %d", c.PageSize))
	}
	if c.Interval <= 0 {
		errs = append(errs, plugins.FieldErrorf("interval", "must be positive, got %s", c.Interval))
	}
	if c.Lookback <= 0 || c.Lookback > maxLookback {
		errs = append(errs, plugins.FieldErrorf("lookback", "must be between 1s and 720h (the API keeps 30 days), got %s", c.Lookback))
	}
	if c.Overlap < 0 || c.Overlap > 24*time.Hour {
		errs = append(errs, plugins.FieldErrorf("overlap", "must be between 0s and 24h, got %s", c.Overlap))
	}
	if c.Timeout <= 0 {
		errs = append(errs, plugins.FieldErrorf("timeout", "must be positive, got %s", c.Timeout))
	}
	if c.MaxRetries < -1 {
		errs = append(errs, plugins.FieldErrorf("max_retries", "must be -1 (forever) or >= 0, got %d", c.MaxRetries))
	}
	if c.RateLimit <= 0 || c.RateLimit > 1000 {
		errs = append(errs, plugins.FieldErrorf("rate_limit", "must be between 0 and 1000 requests per second, got %g", c.RateLimit))
	}
	if c.TLS.CAFile != "" {
		if _, err := os.Stat(c.TLS.CAFile); err != nil {
			errs = append(errs, plugins.FieldErrorf("tls.ca_file", "cannot be read: %v", errors.Unwrap(err)))
		}
	}
	return errors.Join(errs...)
}

func validEndpoint(s string) error {
	if s == "" {
		return errors.New("is required, e.g. " + PublicEndpoint)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("must be an http(s) URL such as " + PublicEndpoint + " (gov: " + GovEndpoint + ", fin: " + FinancialEndpoint + ")")
	}
	if p := strings.TrimRight(u.Path, "/"); p != "" || u.RawQuery != "" || u.User != nil {
		return errors.New("must be the API's base URL without path, query or user info, e.g. " + PublicEndpoint)
	}
	return nil
}
