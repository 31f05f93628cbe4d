package file

import (
	"context"
	_ "embed"

	"github.com/auditforwarder/forwarder/plugins"
)

//go:embed sample.yaml
var sample []byte

// NewFactory returns the factory of the `file` source.
func NewFactory() plugins.Factory {
	return plugins.NewSourceFactory("file", "replay exported NCP / NHN audit archives: one raw API item per NDJSON line",
		sample, defaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Source, error) {
			return newSource(set, cfg)
		})
}
