package host

import (
	"testing"

	"github.com/auditforwarder/forwarder/plugins/host/internal/testcomp"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

// TestConformance runs the suite on the test plugin's components twice:
// in process, and through the plugin protocol as plugin_dir discovers
// them. (The `type: plugin` factories are run against the example
// plugins by cmd/forwarder's conformance test.)
func TestConformance(t *testing.T) {
	for _, f := range testcomp.Factories() {
		t.Run("in_process/"+f.Type(), func(t *testing.T) {
			plugintest.Run(t, f, plugintest.Options{})
		})
	}
	fs, err := DescribeBinary(testPlugin)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		t.Run("external/"+f.Type(), func(t *testing.T) {
			plugintest.Run(t, f, plugintest.Options{})
		})
	}
}
