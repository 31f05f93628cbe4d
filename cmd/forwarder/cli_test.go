package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func TestCLIExitCodesAndMessages(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, fmt.Sprintf(`
data_dir: %s/data
api: {address: ""}
sources:
  gen: {type: generate, count: 10}
outputs:
  out: {type: file, inputs: [gen], path: %s/out.ndjson}
`, dir, dir))
	bad := filepath.Join(dir, "bad.yaml")
	writeFile(t, bad, `
sources:
  gen: {type: generate, count: -1, batch_size: 0}
outputs:
  out: {type: file, inputs: [nope]}
`)
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStderr []string
	}{
		{"validate ok", []string{"validate", "-c", good}, 0, []string{"is valid: 1 sources, 0 transforms, 1 outputs"}, nil, nil},
		{"validate bad", []string{"validate", "--config", bad}, 1, nil, []string{
			"sources.gen.count: must be 0 (endless) or positive, got -1",
			"sources.gen.batch_size: must be between 1 and 100000, got 0",
			"outputs.out.path: is required",
			`outputs.out.inputs: unknown component "nope"`,
			"sources.gen: is not used",
		}, nil},
		{"missing file", []string{"validate", "-c", filepath.Join(dir, "nope.yaml")}, 1, nil, []string{"nope.yaml"}, nil},
		{"run bad config", []string{"run", "-c", bad}, 1, nil, []string{"sources.gen.count"}, nil},
		{"run once", []string{"run", "--once", "-c", good}, 0, nil, nil, nil},
		{"set override", []string{"validate", "-c", good, "--set", "sources.gen.batch_size=0"}, 1, nil, []string{"sources.gen.batch_size: must be between 1 and 100000, got 0"}, nil},
		{"plugins", []string{"plugins"}, 0, []string{"source", "generate", "output", "file", "console"}, nil, nil},
		{"sample", []string{"plugins", "--sample", "generate"}, 0, []string{"type: generate", "batch_size:"}, nil, nil},
		{"sample unknown", []string{"plugins", "--sample", "nope"}, 1, nil, []string{`no component type "nope"`}, nil},
		{"version", []string{"version"}, 0, []string{"forwarder "}, nil, nil},
		{"unknown flag", []string{"run", "--bogus"}, 1, nil, []string{"unknown flag"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range tt.stderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestRuntimeFailureExitsTwo(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "p.yaml")
	// The output path is below a regular file: Start fails at run time.
	writeFile(t, filepath.Join(dir, "blocker"), "")
	writeFile(t, cfg, fmt.Sprintf(`
data_dir: %s/data
api: {address: ""}
sources:
  gen: {type: generate, count: 10}
outputs:
  out: {type: file, inputs: [gen], path: %s/blocker/out.ndjson}
`, dir, dir))
	code, _, stderr := runCLI("run", "--once", "-c", cfg)
	if code != 2 || !strings.Contains(stderr, "outputs.out: start") || !strings.Contains(stderr, "blocker") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}
