package main

import (
	"github.com/auditforwarder/forwarder/outputs/file"
	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/sources/generate"
)

// builtins is the explicit list of components compiled into the forwarder.
// A component missing here is a compile-time decision, not an init() side
// effect; tests build exactly the registry they need.
func builtins() []plugins.Factory {
	return []plugins.Factory{
		// sources
		generate.NewFactory(),
		// transforms
		// outputs
		file.NewFactory(),
		file.NewConsoleFactory(),
	}
}

// newRegistry returns a registry of the built-ins.
func newRegistry() (*plugins.Registry, error) {
	return plugins.NewRegistry(builtins()...)
}
