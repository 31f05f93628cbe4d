package file

import (
	"errors"
	"path/filepath"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// The datasets a file can hold: one raw API item per line.
const (
	DatasetNCP = "ncloud.activity_tracer"
	DatasetNHN = "nhncloud.cloudtrail"
)

// Config is the `file` source's configuration.
type Config struct {
	// Path is a glob (filepath.Match syntax, no **) naming the NDJSON files
	// to read, in lexical order of their absolute paths.
	Path string `koanf:"path"`
	// Dataset says which API the items come from.
	Dataset string `koanf:"dataset"`
	// BatchSize is the number of events per batch. The engine keeps up to
	// 16 unacknowledged batches of a source in flight, so this bounds the
	// memory a replay uses (200 keeps a whole file → ecs → mask → file
	// pipeline under 64 MiB).
	BatchSize int `koanf:"batch_size"`
	// MaxLineBytes bounds one line; longer lines are skipped and counted.
	MaxLineBytes int `koanf:"max_line_bytes"`
	// PollInterval is how often, outside --once, the glob is matched again
	// for new files and the last file for appended lines.
	PollInterval time.Duration `koanf:"poll_interval"`
}

func defaultConfig() *Config {
	return &Config{BatchSize: 200, MaxLineBytes: 1 << 20, PollInterval: 10 * time.Second}
}

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, plugins.FieldErrorf("path", "is required"))
	} else if _, err := filepath.Match(c.Path, ""); err != nil {
		errs = append(errs, plugins.FieldErrorf("path", "is not a valid glob: %v", err))
	}
	if c.Dataset != DatasetNCP && c.Dataset != DatasetNHN {
		errs = append(errs, plugins.FieldErrorf("dataset", "must be %s or %s, got %q", DatasetNCP, DatasetNHN, c.Dataset))
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		errs = append(errs, plugins.FieldErrorf("batch_size", "must be between 1 and 100000, got %d", c.BatchSize))
	}
	if c.MaxLineBytes < 1024 || c.MaxLineBytes > 64<<20 {
		errs = append(errs, plugins.FieldErrorf("max_line_bytes", "must be between 1024 and 67108864, got %d", c.MaxLineBytes))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, plugins.FieldErrorf("poll_interval", "must be positive, got %s", c.PollInterval))
	}
	return errors.Join(errs...)
}
