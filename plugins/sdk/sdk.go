// Package sdk is what the main function of an external plugin calls. A
// plugin implements the same interfaces and factories as a built-in
// component (package plugins) and serves them:
//
//	func main() {
//		sdk.Serve(NewFactory())
//	}
//
// The forwarder starts the binary, talks to it over gRPC through
// hashicorp/go-plugin (package rpc holds the protocol), and from then on
// cannot tell the component from a built-in: its config is decoded and
// validated by the plugin with the same strict decoder, its errors keep
// their Permanent-ness and key paths, and its logs (written through
// Settings.Logger) land in the forwarder's log with the component id.
//
// Inside the plugin, Settings.Metrics is a private registry (not exported
// to the forwarder's /metrics in protocol version 1), Settings.Status is
// reported to the forwarder's /readyz, and Settings.DataDir is the
// directory the forwarder reserves for the component.
//
// Memory follows the built-ins' rule (package plugins, Memory): an event,
// its document and its strings are the component's only until Process or
// Write returns. The strings of a batch's events point into the message
// or the memory region shared with the forwarder that carried the batch,
// and the forwarder writes the next batch there once the call has
// returned: copy what you cache (plugins.Event.Detached, strings.Clone). The
// plugin also reuses the events' own memory, objects and values, for the
// next request.
//
// A transform that keeps no state between batches should implement
// plugins.ParallelTransform: the forwarder then keeps several batches in
// flight to the plugin, which runs each on a fork.
package sdk

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/rpc"
)

// Serve serves the factories to the forwarder that started this process
// and returns when the forwarder is done with it. Run by hand, it prints
// what the binary offers and exits with status 1. An invalid factory list
// (no factory, a duplicate, a bad type name) exits with status 1 too.
func Serve(factories ...plugins.Factory) {
	os.Exit(run(factories, os.Stderr))
}

func run(factories []plugins.Factory, stderr io.Writer) int {
	level := rpc.ParseLevel(os.Getenv(rpc.LogLevelEnv))
	handler := rpc.NewLogHandler(stderr, level)
	shared, err := rpc.OpenSharedFromEnv()
	if err != nil {
		// Batches then cross the socket: slower, never wrong.
		slog.New(handler).Warn("not using the memory the forwarder shares", "error", err)
	}
	srv, err := rpc.NewServer(factories, rpc.ServerConfig{
		Logger: func(string, string) *slog.Logger { return slog.New(handler) },
		Shared: shared,
	})
	if err != nil {
		fmt.Fprintf(stderr, "forwarder plugin: %v\n", err)
		return 1
	}
	if os.Getenv(rpc.Handshake.MagicCookieKey) != rpc.Handshake.MagicCookieValue {
		usage(stderr, factories)
		return 1
	}
	go watchParent(os.Getppid())
	if os.Getenv("GOGC") == "" {
		// A plugin's live heap is a batch or two; collecting less often
		// trades a few MiB for CPU spent decoding events.
		debug.SetGCPercent(400)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  rpc.Handshake,
		VersionedPlugins: rpc.PluginSets(srv),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, rpc.ServerOptions()...)...)
		},
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "go-plugin",
			Output:     stderr,
			JSONFormat: true,
			Level:      hclog.LevelFromString(rpc.LevelName(level)),
		}),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.CloseAll(ctx)
	return 0
}

func usage(w io.Writer, factories []plugins.Factory) {
	fmt.Fprintf(w, "%s is an Audit Forwarder plugin (protocol %d). It offers:\n", os.Args[0], rpc.ProtocolVersion)
	for _, f := range factories {
		fmt.Fprintf(w, "  %-10s %-24s %s\n", f.Kind(), f.Type(), f.Description())
	}
	fmt.Fprintln(w, "\nIt is started by the forwarder, not by hand: put it in the pipeline's plugin_dir,\n"+
		"or reference it from a component with `type: plugin` and `path:`.")
}

// watchParent exits when the forwarder that started this process is gone
// (its parent changes), so a killed forwarder leaves no orphan behind on
// systems where the host cannot ask the kernel for that.
func watchParent(ppid int) {
	for range time.Tick(time.Second) {
		if os.Getppid() != ppid {
			os.Exit(1)
		}
	}
}
