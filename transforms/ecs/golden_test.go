package ecs

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/auditforwarder/forwarder/plugins"
)

var update = flag.Bool("update", false, "rewrite the golden expected.json files from the current mapping")

// goldenRoot is the repository's testdata/<dataset>/<case>/ tree.
const goldenRoot = "../../testdata"

// goldenReceived is the fetch time of every golden event (event.created).
var goldenReceived = time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)

// TestGolden maps each testdata/<dataset>/<case>/input.json (one raw API
// item) and compares the document with expected.json, byte for byte after
// indentation, so key order and number literals are pinned too. A case may
// hold config.yaml (the transform's keys). Every document must pass Check.
// `go test ./transforms/ecs -run TestGolden -update` rewrites the goldens;
// without -update a missing or stale expected.json fails.
func TestGolden(t *testing.T) {
	total := 0
	for _, ds := range []string{DatasetNCP, DatasetNHN} {
		dirs, err := filepath.Glob(filepath.Join(goldenRoot, ds, "*"))
		if err != nil {
			t.Fatal(err)
		}
		if len(dirs) < 10 {
			t.Fatalf("%s: %d golden cases, want at least 10", ds, len(dirs))
		}
		for _, dir := range dirs {
			total++
			t.Run(ds+"/"+filepath.Base(dir), func(t *testing.T) {
				runGolden(t, ds, dir)
			})
		}
	}
	if total < 15+5 {
		t.Fatalf("%d golden cases in all, want the docs' examples and at least 15 more", total)
	}
}

func runGolden(t *testing.T, ds, dir string) {
	t.Helper()
	input, err := os.ReadFile(filepath.Join(dir, "input.json"))
	if err != nil {
		t.Fatalf("every case needs input.json: %v", err)
	}
	cfg := defaultConfig()
	if raw, err := os.ReadFile(filepath.Join(dir, "config.yaml")); err == nil {
		var m map[string]any
		if err := yaml.Unmarshal(raw, &m); err != nil {
			t.Fatalf("config.yaml: %v", err)
		}
		if err := plugins.DecodeConfig(m, cfg); err != nil {
			t.Fatalf("config.yaml: %v", err)
		}
		if err := plugins.ValidateConfig("transforms.ecs", cfg); err != nil {
			t.Fatalf("config.yaml: %v", err)
		}
	}
	got := mapOne(t, cfg, ds, input)
	if v := Check(got); len(v) > 0 {
		t.Errorf("document violates the ECS contract:\n%s", joinViolations(v))
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got.AppendJSON(nil), "", "  "); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	pretty.WriteByte('\n')
	path := filepath.Join(dir, "expected.json")
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("missing golden (run with -update to create it): %v", err)
	}
	if !bytes.Equal(want, pretty.Bytes()) {
		t.Errorf("stale golden %s (run `go test ./transforms/ecs -run TestGolden -update` if the change is intended):\n%s",
			path, lineDiff(string(want), pretty.String()))
	}
}

// mapOne runs the transform over one raw item of dataset ds.
func mapOne(t testing.TB, cfg *Config, ds string, input []byte) *plugins.Object {
	t.Helper()
	item, err := plugins.ParseObject(input)
	if err != nil {
		t.Fatalf("input.json: %v", err)
	}
	set := plugins.NopSettings("ecs")
	set.Now = func() time.Time { return goldenReceived }
	tr, err := newTransform(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev := &plugins.Event{Fields: item, Meta: plugins.Meta{Source: "test", Dataset: ds, Received: goldenReceived}}
	out, err := tr.Process(context.Background(), []*plugins.Event{ev})
	if err != nil || len(out) != 1 {
		t.Fatalf("Process: %v (%d events)", err, len(out))
	}
	return out[0].Fields
}

func joinViolations(vs []Violation) string {
	var b strings.Builder
	for _, v := range vs {
		b.WriteString("  ")
		b.WriteString(v.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// lineDiff shows the lines that differ, with a little context.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	n := max(len(w), len(g))
	shown := 0
	for i := 0; i < n && shown < 40; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("  line ")
			b.WriteString(strconv.Itoa(i + 1))
			b.WriteString(":\n    want: ")
			b.WriteString(wl)
			b.WriteString("\n    got:  ")
			b.WriteString(gl)
			b.WriteByte('\n')
			shown++
		}
	}
	return b.String()
}
