package sdk

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
)

type cfg struct{}

func factory(typ string) plugins.Factory {
	return plugins.NewTransformFactory(typ, "a test transform", nil, func() *cfg { return &cfg{} },
		func(context.Context, plugins.Settings, *cfg) (plugins.Transform, error) { return nil, nil })
}

func TestRunByHandOrMisconfigured(t *testing.T) {
	tests := []struct {
		name      string
		factories []plugins.Factory
		want      string
	}{
		{"by hand", []plugins.Factory{factory("team_tag")}, "is an Audit Forwarder plugin (protocol 1). It offers:\n  transform  team_tag"},
		{"no factories", nil, "forwarder plugin: no component factories to serve"},
		{"duplicate", []plugins.Factory{factory("a"), factory("a")}, `transform type "a" is served twice`},
		{"bad name", []plugins.Factory{factory("A")}, `component type "A": must be lower snake_case`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("FORWARDER_PLUGIN_MAGIC_COOKIE", "")
			var buf bytes.Buffer
			if code := run(tt.factories, &buf); code != 1 {
				t.Fatalf("exit code %d", code)
			}
			if !strings.Contains(buf.String(), tt.want) {
				t.Fatalf("output %q lacks %q", buf.String(), tt.want)
			}
		})
	}
}
