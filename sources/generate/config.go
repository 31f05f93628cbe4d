package generate

import (
	"errors"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// Config is the `generate` source's configuration.
type Config struct {
	// Count is how many events to produce in all; 0 means without end.
	Count int64 `koanf:"count"`
	// BatchSize is the number of events per batch.
	BatchSize int `koanf:"batch_size"`
	// Size is the approximate size of one event's JSON in bytes.
	Size int `koanf:"size"`
	// Interval is the pause between batches; 0 produces as fast as the pipeline accepts.
	Interval time.Duration `koanf:"interval"`
	// Dataset is written to Meta.Dataset and event.dataset.
	Dataset string `koanf:"dataset"`
}

func defaultConfig() *Config {
	return &Config{Count: 1000, BatchSize: 500, Size: 1024, Dataset: "generate"}
}

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	if c.Count < 0 {
		errs = append(errs, plugins.FieldErrorf("count", "must be 0 (endless) or positive, got %d", c.Count))
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		errs = append(errs, plugins.FieldErrorf("batch_size", "must be between 1 and 100000, got %d", c.BatchSize))
	}
	if c.Size < 0 || c.Size > 1<<20 {
		errs = append(errs, plugins.FieldErrorf("size", "must be between 0 and 1048576, got %d", c.Size))
	}
	if c.Interval < 0 {
		errs = append(errs, plugins.FieldErrorf("interval", "must not be negative"))
	}
	return errors.Join(errs...)
}
