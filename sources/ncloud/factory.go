// Package ncloud is the `ncloud_activity_tracer` source: NAVER Cloud
// Platform's Cloud Activity Tracer (GetActivityList, POST
// /api/v1/activities), signed with x-ncp-apigw-signature-v2, paged with
// pageIndex/pageSize/hasMore over time windows frozen at each poll's start.
// Windows, retries, rate limiting, de-duplication and checkpoints come from
// sources/internal/httppoll; this package knows the API: the signer, the
// request and response shapes, the gateway's error bodies, and the clock
// correction when the gateway refuses a timestamp.
//
// The package also exports Simulator, a faithful fake of the API (the same
// authentication checks and error bodies, realistic items, fault knobs)
// used by the tests, the benchmarks and `forwarder demo`.
package ncloud

import (
	"context"
	_ "embed"

	"github.com/auditforwarder/forwarder/plugins"
)

//go:embed sample.yaml
var sample []byte

// TypeName is the source's `type:` in pipeline.yaml.
const TypeName = "ncloud_activity_tracer"

// NewFactory returns the factory of the `ncloud_activity_tracer` source.
func NewFactory() plugins.Factory {
	return plugins.NewSourceFactory(TypeName, "NAVER Cloud Activity Tracer: account and resource activity history",
		sample, defaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Source, error) {
			return newSource(set, cfg, nil)
		})
}
