package main

import (
	"github.com/auditforwarder/forwarder/outputs/elasticsearch"
	"github.com/auditforwarder/forwarder/outputs/file"
	"github.com/auditforwarder/forwarder/outputs/kafka"
	"github.com/auditforwarder/forwarder/outputs/syslog"
	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/host"
	filesource "github.com/auditforwarder/forwarder/sources/file"
	"github.com/auditforwarder/forwarder/sources/generate"
	kafkasource "github.com/auditforwarder/forwarder/sources/kafka"
	"github.com/auditforwarder/forwarder/sources/ncloud"
	"github.com/auditforwarder/forwarder/sources/nhncloud"
	"github.com/auditforwarder/forwarder/transforms/ecs"
	"github.com/auditforwarder/forwarder/transforms/mask"
)

// builtins is the explicit list of components compiled into the forwarder.
// A component missing here is a compile-time decision, not an init() side
// effect; tests build exactly the registry they need.
func builtins() []plugins.Factory {
	return []plugins.Factory{
		// sources
		host.NewSourceFactory(), // type: plugin
		generate.NewFactory(),
		ncloud.NewFactory(),
		nhncloud.NewFactory(),
		filesource.NewFactory(),
		kafkasource.NewFactory(),
		// transforms
		host.NewTransformFactory(), // type: plugin
		ecs.NewFactory(),
		mask.NewFactory(),
		// outputs
		host.NewOutputFactory(), // type: plugin
		file.NewFactory(),
		file.NewConsoleFactory(),
		kafka.NewFactory(),
		elasticsearch.NewFactory(),
		syslog.NewFactory(),
	}
}

// newRegistry returns a registry of the built-ins.
func newRegistry() (*plugins.Registry, error) {
	return plugins.NewRegistry(builtins()...)
}
