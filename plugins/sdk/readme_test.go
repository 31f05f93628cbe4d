package sdk_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/host"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

// TestReadmePluginIn30Lines builds the plugin shown in plugins/README.md,
// runs the conformance suite on it through the protocol, and sends it a
// batch: the documented example stays true.
func TestReadmePluginIn30Lines(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Write a plugin in 30 lines\n\n```go\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("no Go example under \"Write a plugin in 30 lines\"")
	}
	code := string(m[1])
	lines := 0
	for _, l := range strings.Split(code, "\n") {
		if strings.TrimSpace(l) != "" {
			lines++
		}
	}
	if lines > 30 {
		t.Errorf("the example has %d non-blank lines, the title promises 30", lines)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte(code), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "team-tag")
	if out, err := exec.Command("go", "build", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("the README example does not build: %v\n%s", err, out)
	}
	fs, err := host.DescribeBinary(bin)
	if err != nil || len(fs) != 1 || fs[0].Type() != "team_tag" {
		t.Fatalf("DescribeBinary = %v, %v", fs, err)
	}
	f := fs[0]
	plugintest.Run(t, f, plugintest.Options{})

	cfg := f.CreateDefaultConfig()
	if err := plugins.DecodeConfig(map[string]any{"team": "soc"}, cfg); err != nil {
		t.Fatal(err)
	}
	if err := plugins.ValidateConfig("transforms.team", cfg); err != nil {
		t.Fatal(err)
	}
	c, err := f.Create(context.Background(), plugins.NopSettings("team"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ev := plugins.NewEvent()
	ev.Fields.Set("event.id", "1")
	out, err := c.(plugins.Transform).Process(context.Background(), []*plugins.Event{ev})
	if err != nil || string(out[0].AppendJSON(nil)) != `{"event":{"id":"1"},"labels":{"team":"soc"}}` {
		t.Fatalf("Process = %s, %v", out[0].AppendJSON(nil), err)
	}
	// The typo the README quotes.
	cfg = f.CreateDefaultConfig()
	_ = plugins.DecodeConfig(map[string]any{"tean": "soc"}, cfg)
	if err := plugins.ValidateConfig("transforms.team", cfg); err == nil || err.Error() != "transforms.team.tean: unknown key" {
		t.Fatalf("typo: %v", err)
	}
}
