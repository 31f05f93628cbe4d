package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestComponentREADMEsShowTheirSamples fails when a component's README no
// longer contains its sample*.yaml verbatim (Telegraf's sample.conf habit):
// the documented example and `forwarder plugins --sample` cannot drift.
func TestComponentREADMEsShowTheirSamples(t *testing.T) {
	root := filepath.Join("..", "..")
	checked := 0
	for _, top := range []string{"sources", "transforms", "outputs"} {
		_ = filepath.WalkDir(filepath.Join(root, top), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasPrefix(d.Name(), "sample") || filepath.Ext(d.Name()) != ".yaml" {
				return err
			}
			sample, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			readme, err := os.ReadFile(filepath.Join(filepath.Dir(path), "README.md"))
			if err != nil {
				t.Errorf("%s: component has a sample but no README.md", filepath.Dir(path))
				return nil
			}
			if !strings.Contains(string(readme), strings.TrimSpace(string(sample))) {
				t.Errorf("%s: README.md does not contain %s verbatim; copy the sample into the README's yaml block", filepath.Dir(path), d.Name())
			}
			checked++
			return nil
		})
	}
	if checked < 3 {
		t.Fatalf("only %d samples found; the walk is broken", checked)
	}
}

// TestEveryBuiltinHasAValidSample checks that `forwarder plugins --sample`
// prints a pipeline fragment that mentions the type it documents.
func TestEveryBuiltinHasAValidSample(t *testing.T) {
	for _, f := range builtins() {
		s := string(f.SampleConfig())
		if !strings.Contains(s, "type: "+f.Type()) && !strings.Contains(s, "type: plugin") {
			t.Errorf("%s %s: sample does not contain `type: %s`", f.Kind(), f.Type(), f.Type())
		}
		if f.Description() == "" {
			t.Errorf("%s %s: no description", f.Kind(), f.Type())
		}
	}
}
