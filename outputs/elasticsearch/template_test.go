package elasticsearch

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// mappingType returns the explicit type mapped at a dotted path, or "".
func mappingType(m map[string]any, path string) string {
	cur := m
	parts := strings.Split(path, ".")
	for i, p := range parts {
		props, _ := cur["properties"].(map[string]any)
		f, ok := props[p].(map[string]any)
		if !ok {
			return ""
		}
		if t, ok := f["type"].(string); ok {
			if t == "flattened" || i == len(parts)-1 {
				return t
			}
			if t != "object" {
				return ""
			}
		}
		if i == len(parts)-1 {
			return "object"
		}
		cur = f
	}
	return ""
}

func loadMappings(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(mappingsJSON, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMappingsContract(t *testing.T) {
	m := loadMappings(t)
	want := map[string]string{
		"@timestamp":                  "date",
		"event.id":                    "keyword",
		"event.action":                "keyword",
		"event.code":                  "keyword",
		"event.outcome":               "keyword",
		"event.kind":                  "keyword",
		"event.module":                "keyword",
		"event.dataset":               "keyword",
		"event.provider":              "keyword",
		"event.category":              "keyword",
		"event.type":                  "keyword",
		"event.created":               "date",
		"event.original":              "keyword",
		"cloud.provider":              "keyword",
		"cloud.region":                "keyword",
		"cloud.account.id":            "keyword",
		"cloud.project.id":            "keyword",
		"cloud.project.name":          "keyword",
		"cloud.service.name":          "keyword",
		"organization.id":             "keyword",
		"source.ip":                   "ip",
		"source.ip_masked":            "keyword",
		"destination.ip":              "ip",
		"client.ip":                   "ip",
		"server.ip":                   "ip",
		"host.ip":                     "ip",
		"related.ip":                  "ip",
		"related.ip_masked":           "keyword",
		"related.user":                "keyword",
		"source.geo.country_iso_code": "keyword",
		"user.id":                     "keyword",
		"user.name":                   "keyword",
		"user.email":                  "keyword",
		"user.full_name":              "keyword",
		"user.domain":                 "keyword",
		"user.target.id":              "keyword",
		"user.target.name":            "keyword",
		"user.target.email":           "keyword",
		"user_agent.original":         "keyword",
		"ecs.version":                 "keyword",
		"ncloud":                      "flattened",
		"nhncloud":                    "flattened",
	}
	for path, typ := range want {
		if got := mappingType(m, path); got != typ {
			t.Errorf("%s mapped as %q, want %q", path, got, typ)
		}
	}
	orig := m["properties"].(map[string]any)["event"].(map[string]any)["properties"].(map[string]any)["original"].(map[string]any)
	if orig["index"] != false || orig["doc_values"] != false {
		t.Errorf("event.original must be stored only (index: false, doc_values: false): %v", orig)
	}
	// Every *_masked sibling the mask transform may create is a keyword,
	// through the dynamic template when not listed.
	dts, _ := m["dynamic_templates"].([]any)
	found := false
	for _, d := range dts {
		for _, v := range d.(map[string]any) {
			dt := v.(map[string]any)
			if dt["match"] == "*_masked" && dt["mapping"].(map[string]any)["type"] == "keyword" {
				found = true
			}
		}
	}
	if !found {
		t.Error("no dynamic template maps *_masked as keyword")
	}
}

// TestMappingsCoverGoldenECS walks the ecs transform's golden documents
// (testdata/<dataset>/<case>/expected.json at the repository root) and
// checks that every field outside the vendor payloads has an explicit
// mapping, and that every ip field holds an ip.
func TestMappingsCoverGoldenECS(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/*/*/expected.json")
	if len(files) == 0 {
		t.Fatal("no golden ECS documents under ../../testdata/*/*/expected.json")
	}
	m := loadMappings(t)
	missing := map[string][]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range leafPaths(doc, "") {
			if typ := mappingType(m, p); typ == "" {
				missing[p] = append(missing[p], f)
			}
		}
	}
	if len(missing) > 0 {
		var keys []string
		for k := range missing {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t.Errorf("field %s (in %s) has no explicit mapping", k, missing[k][0])
		}
	}
}

// leafPaths returns the dotted paths of doc's leaves; flattened vendor
// payloads count as one leaf.
func leafPaths(v any, prefix string) []string {
	obj, ok := v.(map[string]any)
	if !ok {
		return []string{prefix}
	}
	if prefix == "ncloud" || prefix == "nhncloud" {
		return []string{prefix}
	}
	var out []string
	for k, e := range obj {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if arr, ok := e.([]any); ok && len(arr) > 0 {
			if _, isObj := arr[0].(map[string]any); isObj {
				out = append(out, leafPaths(arr[0], p)...)
				continue
			}
			out = append(out, p)
			continue
		}
		out = append(out, leafPaths(e, p)...)
	}
	return out
}

func TestBuildTemplate(t *testing.T) {
	cases := []struct {
		name         string
		tweak        func(*Config)
		wantName     string
		wantPattern  string
		wantDS       bool
		wantPriority float64
	}{
		{"data stream", func(*Config) {}, "logs-cloudaudit-default", "logs-cloudaudit-default", true, 200},
		{"dated index", func(c *Config) { c.DataStream = false; c.Index = "cloudaudit-%{+yyyy.MM.dd}" }, "cloudaudit", "cloudaudit-*", false, 200},
		{"named", func(c *Config) { c.TemplateName = "my-template"; c.TemplatePriority = 150 }, "my-template", "logs-cloudaudit-default", true, 150},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			tc.tweak(cfg)
			p, err := parseIndexPattern(cfg.Index)
			if err != nil {
				t.Fatal(err)
			}
			tmpl, err := buildTemplate(cfg, p)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			if err := json.Unmarshal(tmpl.body, &body); err != nil {
				t.Fatal(err)
			}
			if tmpl.name != tc.wantName {
				t.Errorf("name %q, want %q", tmpl.name, tc.wantName)
			}
			if pats := body["index_patterns"].([]any); len(pats) != 1 || pats[0] != tc.wantPattern {
				t.Errorf("index_patterns %v, want [%s]", pats, tc.wantPattern)
			}
			if _, ds := body["data_stream"]; ds != tc.wantDS {
				t.Errorf("data_stream present=%v, want %v", ds, tc.wantDS)
			}
			if body["priority"] != tc.wantPriority || tc.wantPriority <= 100 {
				t.Errorf("priority %v, want %v (> 100)", body["priority"], tc.wantPriority)
			}
			meta := body["_meta"].(map[string]any)
			if meta["template_hash"] != tmpl.hash || tmpl.hash == "" {
				t.Errorf("_meta.template_hash %v, want %s", meta["template_hash"], tmpl.hash)
			}
		})
	}
}
