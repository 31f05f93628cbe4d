package host

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEShowsTheSamples fails when plugins/README.md and the
// `type: plugin` samples (what `forwarder plugins --sample plugin` prints)
// drift apart.
func TestREADMEShowsTheSamples(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range NewFactories() {
		if !strings.Contains(string(readme), "```yaml\n"+string(f.SampleConfig())+"```") {
			t.Errorf("plugins/README.md lacks the %s sample verbatim; copy sample_%s.yaml into it", f.Kind(), f.Kind())
		}
	}
}
