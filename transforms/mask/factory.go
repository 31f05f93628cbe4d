// Package mask is the `mask` transform: it finds IPv4 and IPv6 addresses
// and email addresses in every string of a document (nested objects,
// arrays, keys, and JSON documents carried inside strings at any depth)
// and rewrites them by policy: truncate or keep IPs, partial or keep
// emails, or replace either with a keyed HMAC-SHA256 pseudonym or a fixed
// token. Masking is idempotent.
//
// The same policy is exported as NewStringMasker for the forwarder's own
// log handler.
//
// A transform instance is not safe for concurrent Process calls (the
// engine never makes them); Start and Close do nothing and may be called
// any number of times.
package mask

import (
	"context"
	_ "embed"

	"github.com/auditforwarder/forwarder/plugins"
)

//go:embed sample.yaml
var sample []byte

// NewFactory returns the factory of the `mask` transform.
func NewFactory() plugins.Factory {
	return plugins.NewTransformFactory("mask", "masks IP and email addresses in every string: truncate, partial, keyed hash or redact",
		sample, DefaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Transform, error) {
			return newTransform(set, cfg)
		})
}
