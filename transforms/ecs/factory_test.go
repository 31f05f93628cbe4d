package ecs

import (
	"context"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

func TestFactory(t *testing.T) {
	f := NewFactory()
	if f.Type() != "ecs" || f.Kind() != plugins.KindTransform || !plugins.ValidTypeName(f.Type()) {
		t.Fatalf("factory %s %q", f.Kind(), f.Type())
	}
	cfg := f.CreateDefaultConfig()
	if err := plugins.ValidateConfig("transforms.ecs", cfg); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	c, err := f.Create(context.Background(), plugins.NopSettings("ecs"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Close before Start, twice.
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(plugins.Transform); !ok {
		t.Fatal("not a transform")
	}
}

// The sample's keys decode strictly over the defaults and validate.
func TestSampleDecodes(t *testing.T) {
	var doc struct {
		Transforms map[string]map[string]any `yaml:"transforms"`
	}
	if err := yaml.Unmarshal(sample, &doc); err != nil {
		t.Fatal(err)
	}
	raw := doc.Transforms["ecs"]
	if raw["type"] != "ecs" {
		t.Fatalf("sample.yaml: transforms.ecs.type = %v", raw["type"])
	}
	delete(raw, "type")
	delete(raw, "inputs")
	cfg := defaultConfig()
	if err := plugins.DecodeConfig(raw, cfg); err != nil {
		t.Fatal(err)
	}
	if err := plugins.ValidateConfig("transforms.ecs", cfg); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	raw := map[string]any{
		"rules": []any{map[string]any{"name": "x", "match": []any{"bucket"}, "category": []any{"storage"}}},
		"verbs": map[string]any{"made": []any{"provision"}},
	}
	cfg := defaultConfig()
	if err := plugins.DecodeConfig(raw, cfg); err != nil {
		t.Fatal(err)
	}
	err := plugins.ValidateConfig("transforms.ecs", cfg)
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{`transforms.ecs.rules[0].category[0]: "storage" is not an ECS event.category allowed value`,
		`transforms.ecs.verbs.made: is not an ECS event.type allowed value`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if err := plugins.DecodeConfig(map[string]any{"keep_orignal": true}, defaultConfig()); err == nil {
		t.Error("a misspelt key was accepted")
	}
}

func TestREADMEShowsSample(t *testing.T) { plugintest.READMEShowsSample(t, sample) }
