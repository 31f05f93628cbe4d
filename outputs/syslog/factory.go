// Package syslog is the `syslog` output: RFC 5424 (or RFC 3164) messages
// carrying the ECS document as JSON, CEF or LEEF, over UDP, TCP, TLS
// (RFC 5425) or RELP, for SIEMs.
//
// Delivery: on tcp:// and tls:// a batch is acknowledged once it is written
// and flushed to the socket (the receiver sends nothing back, so events in
// flight when it dies can be lost); on relp:// once the receiver has
// acknowledged every message (at-least-once); udp:// gives no guarantee.
// A connection failure fails every event not yet delivered, so the engine
// resends them; an event whose message is longer than max_message_bytes
// fails permanently (dead letter) and is never cut.
//
// Lifecycle: Start tries a first connection (an unreachable receiver only
// marks the output not ready); Write may be called concurrently and
// serializes on the single connection, reconnecting with backoff; Close
// ends the connection and may be called twice or without Start.
package syslog

import (
	"context"
	_ "embed"

	"github.com/auditforwarder/forwarder/plugins"
)

//go:embed sample.yaml
var sample []byte

// NewFactory returns the factory of the `syslog` output.
func NewFactory() plugins.Factory {
	return plugins.NewOutputFactory("syslog",
		"syslog for SIEMs: RFC 5424/3164 over UDP, TCP, TLS or RELP; JSON, CEF or LEEF payloads",
		sample, defaultConfig, func(_ context.Context, set plugins.Settings, cfg *Config) (plugins.Output, error) {
			return newOutput(set, cfg)
		})
}
