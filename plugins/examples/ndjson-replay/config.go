package main

import (
	"errors"
	"path/filepath"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// Config is the ndjson_replay source's configuration.
type Config struct {
	// Paths are glob patterns of NDJSON files.
	Paths []string `koanf:"paths"`
	// Dataset is set as every event's Meta.Dataset; empty takes the
	// event's own event.dataset field.
	Dataset string `koanf:"dataset"`
	// BatchSize is the number of events per batch.
	BatchSize int `koanf:"batch_size"`
	// IDField is the dotted path of the stable event id.
	IDField string `koanf:"id_field"`
	// TimeField is the dotted path of the event time.
	TimeField string `koanf:"time_field"`
	// Interval is the pause between looks for new data once caught up.
	Interval time.Duration `koanf:"interval"`
}

func defaultConfig() *Config {
	return &Config{BatchSize: 500, IDField: "event.id", TimeField: "@timestamp", Interval: 10 * time.Second}
}

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Paths) == 0 {
		errs = append(errs, plugins.FieldErrorf("paths", "is required: at least one glob of NDJSON files"))
	}
	for i, p := range c.Paths {
		if _, err := filepath.Match(p, ""); err != nil || p == "" {
			errs = append(errs, plugins.FieldErrorf("paths", "entry %d (%q) is not a valid glob", i, p))
		}
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs = append(errs, plugins.FieldErrorf("batch_size", "must be between 1 and 10000, got %d", c.BatchSize))
	}
	if c.IDField == "" {
		errs = append(errs, plugins.FieldErrorf("id_field", "is required"))
	}
	if c.Interval < 100*time.Millisecond {
		errs = append(errs, plugins.FieldErrorf("interval", "must be at least 100ms, got %s", c.Interval))
	}
	return errors.Join(errs...)
}
