// Package elasticsearch is the `elasticsearch` output: ECS documents into
// an Elasticsearch 8 data stream (op create, _id = event.id, a 409 conflict
// means already indexed) or a plain, optionally date-suffixed index (op
// index), through the bulk API of go-elasticsearch v8.
//
// Each Write sends the batch as one bulk request (more when it exceeds
// bulk_max_bytes or bulk_max_docs) and reads the result of every item:
// 429 and 5xx items are handed back for a retry, mapping and parsing errors
// (400) are permanent and go to the dead-letter file with Elasticsearch's
// reason, everything else is acknowledged. A request that fails as a whole
// (connection refused, 429, 5xx) is retried by the engine with backoff.
//
// With manage_template the output installs, at start and idempotently, a
// composable index template with the ECS mappings (and creates the data
// stream); when the cluster is unreachable at start the forwarder still
// starts, reports not-ready, and installs the template before its first
// write. Start, Write and Close follow plugins.Output; Close is safe without
// Start and twice; Write is safe for concurrent use.
package elasticsearch

import (
	"context"
	_ "embed"

	"github.com/auditforwarder/forwarder/plugins"
)

//go:embed sample.yaml
var sample []byte

// NewFactory returns the factory of the `elasticsearch` output.
func NewFactory() plugins.Factory {
	return plugins.NewOutputFactory("elasticsearch",
		"Elasticsearch 8 bulk API: data stream (op create, _id = event.id) or index, ECS index template",
		sample, defaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Output, error) {
			return newOutput(set, cfg)
		})
}
