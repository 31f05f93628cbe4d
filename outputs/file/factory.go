// Package file holds the `file` output (NDJSON, fsynced before
// acknowledgement, optional size rotation) and the `console` output.
package file

import (
	"context"
	_ "embed"
	"os"

	"github.com/auditforwarder/forwarder/plugins"
)

//go:embed sample.yaml
var sample []byte

//go:embed sample_console.yaml
var sampleConsole []byte

// NewFactory returns the factory of the `file` output.
func NewFactory() plugins.Factory {
	return plugins.NewOutputFactory("file", "NDJSON file, one document per line, fsynced before acknowledgement",
		sample, defaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Output, error) {
			return newFileOutput(set, cfg), nil
		})
}

// NewConsoleFactory returns the factory of the `console` output.
func NewConsoleFactory() plugins.Factory {
	return plugins.NewOutputFactory("console", "NDJSON on stdout or stderr, for debugging",
		sampleConsole, defaultConsoleConfig, func(_ context.Context, _ plugins.Settings, cfg *ConsoleConfig) (plugins.Output, error) {
			w := os.Stdout
			if cfg.Stream == "stderr" {
				w = os.Stderr
			}
			return &console{w: w}, nil
		})
}
