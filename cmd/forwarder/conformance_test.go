package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/host"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

// conformanceOptions adapts the suite to built-ins that need something a
// unit test does not have, keyed "kind/type". A component not listed runs
// the whole suite with its sample config, in a temporary directory
// prepared by prepareSampleDir.
var conformanceOptions = map[string]plugintest.Options{
	"output/kafka":         {SkipStart: "Start connects to the brokers; outputs/kafka's tests run against a real broker"},
	"output/elasticsearch": {SkipStart: "Start installs the index template; outputs/elasticsearch's tests run against a real node"},
	"output/syslog":        {SkipStart: "Start dials the receiver; outputs/syslog's tests run against rsyslog"},
}

// prepareSampleDir holds what the samples refer to by relative path: the
// example plugin binaries the `type: plugin` samples run, the asset table
// and an archive to replay.
func prepareSampleDir(t *testing.T, dir string) {
	t.Helper()
	bins := examplePlugins(t)
	if err := os.MkdirAll(filepath.Join(dir, "plugins"), 0o750); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"asset-owner", "ndjson-replay", "webhook"} {
		if err := os.Symlink(filepath.Join(bins, name), filepath.Join(dir, "plugins", name)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(dir, "owners.csv"), "account,owner,team\n1234-5678,kim@example.com,platform\n")
	if err := os.MkdirAll(filepath.Join(dir, "archive"), 0o750); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "archive", "a.ndjson"), `{"event":{"id":"1"}}`+"\n")
}

// TestConformanceBuiltins runs the conformance suite over every built-in,
// the `type: plugin` factories included (against the example plugins).
func TestConformanceBuiltins(t *testing.T) {
	for _, f := range builtins() {
		t.Run(f.Kind().String()+"/"+f.Type(), func(t *testing.T) {
			opts := conformanceOptions[f.Kind().String()+"/"+f.Type()]
			opts.Prepare = prepareSampleDir
			plugintest.Run(t, f, opts)
		})
	}
}

// TestConformanceExamplePlugins runs the suite over every example plugin
// through the plugin protocol, as plugin_dir discovery registers them.
func TestConformanceExamplePlugins(t *testing.T) {
	bins := examplePlugins(t)
	var factories []plugins.Factory
	for _, name := range []string{"asset-owner", "ndjson-replay", "webhook"} {
		fs, err := host.DescribeBinary(filepath.Join(bins, name))
		if err != nil {
			t.Fatal(err)
		}
		factories = append(factories, fs...)
	}
	if len(factories) != 3 {
		t.Fatalf("%d components in the examples, want 3", len(factories))
	}
	for _, f := range factories {
		t.Run(f.Kind().String()+"/"+f.Type(), func(t *testing.T) {
			plugintest.Run(t, f, plugintest.Options{Prepare: prepareSampleDir})
		})
	}
}
