// Package nhncloud is the `nhncloud_cloudtrail` source: it reads NHN Cloud
// CloudTrail events through POST /cloud-trail/{v1.0|v2.0}/appkeys/{appKey}/events/search
// and emits each API item, unchanged, as an event of dataset
// nhncloud.cloudtrail. It also exports Simulator, a faithful in-memory
// CloudTrail API for tests, benchmarks and `forwarder demo`.
//
// # Reading
//
// The window, retry, rate-limit, de-duplication and checkpoint machinery is
// sources/internal/httppoll's, shared with the NAVER Cloud source. This
// package pages one window: every window's end is frozen when the poll
// starts, pages are asked for with page.sortBy eventTime:asc and read until
// the page says last (cross-checked against totalPages), and with event_ids
// set each id is a query of its own. Per window and query the number of
// distinct events received is compared with the API's totalElements; a
// shortfall is counted and logged.
//
// # Errors
//
// CloudTrail answers errors with HTTP 200 and header.isSuccessful=false.
// Authentication and permission codes make the source not ready and are
// retried on a long backoff (fatal in once mode); bad-request codes stop the
// source with a Permanent error; an exhausted quota (HTTP 403, 20004) backs
// off for 30s, doubling to 10m; transient and unknown codes are retried with
// backoff, their code and message logged. Error texts carry the HTTP status
// and the API's resultCode and resultMessage, never the appKey, the access
// key id or the secret, and redirects are not followed.
//
// # Events
//
// Meta.ID is eventLogUuid, or for v1.0 items (which have none) the SHA-256
// of the item's canonical JSON, so a re-read item gets the same id.
// Meta.Time is eventTime (2019-09-04T10:31:49.348+0000); an item whose
// eventTime does not parse is counted, reported with its page coordinates
// and still emitted, with Meta.Time set to its window's end.
package nhncloud

import (
	"context"
	_ "embed"

	"github.com/auditforwarder/forwarder/plugins"
)

// TypeName is the `type:` of this source in pipeline.yaml.
const TypeName = "nhncloud_cloudtrail"

//go:embed sample.yaml
var sample []byte

// NewFactory returns the factory of the `nhncloud_cloudtrail` source.
func NewFactory() plugins.Factory {
	return plugins.NewSourceFactory(TypeName, "NHN Cloud CloudTrail events (API v1.0 and v2.0)",
		sample, defaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Source, error) {
			return newSource(set, cfg)
		})
}
