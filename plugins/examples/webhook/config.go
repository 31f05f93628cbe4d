package main

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// Config is the webhook output's configuration.
type Config struct {
	// URL receives one POST per batch.
	URL string `koanf:"url"`
	// Token, when set, is sent as a bearer token.
	Token plugins.Secret `koanf:"token"`
	// Headers are added to every request.
	Headers map[string]string `koanf:"headers"`
	// Format is the body: ndjson or json_array.
	Format string `koanf:"format"`
	// Timeout bounds one request.
	Timeout time.Duration `koanf:"timeout"`
	// MaxRetries is how often a failed request is retried within one write.
	MaxRetries int `koanf:"max_retries"`
	// InitialBackoff is the first retry delay.
	InitialBackoff time.Duration `koanf:"initial_backoff"`
}

func defaultConfig() *Config {
	return &Config{Format: "ndjson", Timeout: 10 * time.Second, MaxRetries: 3, InitialBackoff: 500 * time.Millisecond}
}

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		errs = append(errs, plugins.FieldErrorf("url", "is required"))
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		errs = append(errs, plugins.FieldErrorf("url", "must be an http:// or https:// URL"))
	case u.User != nil:
		errs = append(errs, plugins.FieldErrorf("url", "must not hold credentials; use token"))
	}
	for k := range c.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n") || http.CanonicalHeaderKey(k) == "Content-Type" {
			errs = append(errs, plugins.FieldErrorf("headers", "%q is not a header this output may set", k))
		}
	}
	if c.Format != "ndjson" && c.Format != "json_array" {
		errs = append(errs, plugins.FieldErrorf("format", "must be ndjson or json_array, got %q", c.Format))
	}
	if c.Timeout <= 0 {
		errs = append(errs, plugins.FieldErrorf("timeout", "must be positive"))
	}
	if c.MaxRetries < 0 || c.MaxRetries > 100 {
		errs = append(errs, plugins.FieldErrorf("max_retries", "must be between 0 and 100, got %d", c.MaxRetries))
	}
	if c.InitialBackoff <= 0 || c.InitialBackoff > maxBackoff {
		errs = append(errs, plugins.FieldErrorf("initial_backoff", "must be positive and at most %s", maxBackoff))
	}
	return errors.Join(errs...)
}
