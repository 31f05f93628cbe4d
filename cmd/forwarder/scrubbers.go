package main

import (
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/logging"
)

// logScrubbers returns the address-masking scrubbers applied to the
// forwarder's own logs (filled in by the mask transform's integration).
func logScrubbers(_ *config.Config) []logging.Scrubber { return nil }
