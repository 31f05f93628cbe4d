package ecs

import (
	"context"
	_ "embed"

	"github.com/auditforwarder/forwarder/plugins"
)

//go:embed sample.yaml
var sample []byte

// NewFactory returns the factory of the `ecs` transform.
func NewFactory() plugins.Factory {
	return plugins.NewTransformFactory("ecs", "normalize NCP Activity Tracer and NHN CloudTrail items to ECS "+Version,
		sample, defaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Transform, error) {
			return newTransform(set, cfg)
		})
}
