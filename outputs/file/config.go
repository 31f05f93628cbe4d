package file

import (
	"errors"

	"github.com/auditforwarder/forwarder/plugins"
)

// Config is the `type: file` output's configuration.
type Config struct {
	// Path of the NDJSON file; parent directories are created.
	Path string `koanf:"path"`
	// Sync fsyncs the file before a batch is acknowledged.
	Sync bool `koanf:"sync"`
	// MaxBytes rotates the file once it grows past this size; 0 disables rotation.
	MaxBytes int64 `koanf:"max_bytes"`
	// MaxFiles is how many rotated files (path.1 … path.N) are kept.
	MaxFiles int `koanf:"max_files"`
}

func defaultConfig() *Config { return &Config{Sync: true, MaxFiles: 5} }

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, plugins.FieldErrorf("path", "is required"))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, plugins.FieldErrorf("max_bytes", "must be 0 (no rotation) or positive, got %d", c.MaxBytes))
	}
	if c.MaxFiles < 1 {
		errs = append(errs, plugins.FieldErrorf("max_files", "must be at least 1, got %d", c.MaxFiles))
	}
	return errors.Join(errs...)
}

// ConsoleConfig is the `type: console` output's configuration.
type ConsoleConfig struct {
	// Stream is stdout or stderr.
	Stream string `koanf:"stream"`
}

func defaultConsoleConfig() *ConsoleConfig { return &ConsoleConfig{Stream: "stdout"} }

// Validate implements plugins.Validator.
func (c *ConsoleConfig) Validate() error {
	if c.Stream != "stdout" && c.Stream != "stderr" {
		return plugins.FieldErrorf("stream", "must be stdout or stderr, got %q", c.Stream)
	}
	return nil
}
