package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

const owners = "account,owner,team\n1234-5678,kim@example.com,platform\n8765-4321,,payments\n42,num@example.com,\n"

func TestConformance(t *testing.T) {
	plugintest.Run(t, newFactory(), plugintest.Options{Prepare: func(t *testing.T, dir string) {
		if err := os.WriteFile(filepath.Join(dir, "owners.csv"), []byte(owners), 0o600); err != nil {
			t.Fatal(err)
		}
	}})
}

func TestREADMEShowsTheSample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(readme)
	if m == nil || string(m[1]) != string(sample) {
		t.Fatalf("README.md's yaml block differs from sample.yaml; copy sample.yaml into it")
	}
}

func newTransform(t *testing.T, cfg *Config, csv string) plugins.Transform {
	t.Helper()
	path := filepath.Join(t.TempDir(), "owners.csv")
	if err := os.WriteFile(path, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Table = path
	if err := plugins.ValidateConfig("", cfg); err != nil {
		t.Fatal(err)
	}
	c, err := newFactory().Create(context.Background(), plugins.NopSettings("owners"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c.(plugins.Transform)
}

func TestProcess(t *testing.T) {
	tests := []struct {
		name, in, want string
		mod            func(*Config)
	}{
		{"match", `{"cloud":{"account":{"id":"1234-5678"}}}`,
			`{"cloud":{"account":{"id":"1234-5678"}},"labels":{"owner":"kim@example.com","team":"platform"}}`, nil},
		{"empty cell adds nothing", `{"cloud":{"account":{"id":"8765-4321"}},"labels":{"env":"prod"}}`,
			`{"cloud":{"account":{"id":"8765-4321"}},"labels":{"env":"prod","team":"payments"}}`, nil},
		{"number key", `{"cloud":{"account":{"id":42}}}`,
			`{"cloud":{"account":{"id":42}},"labels":{"owner":"num@example.com"}}`, nil},
		{"no match kept", `{"cloud":{"account":{"id":"nope"}}}`, `{"cloud":{"account":{"id":"nope"}}}`, nil},
		{"no field tagged", `{"tags":["a"]}`, `{"tags":["a","asset_owner_unknown"]}`,
			func(c *Config) { c.OnMissing = "tag" }},
		{"other match and target", `{"user":{"name":"1234-5678"}}`,
			`{"user":{"name":"1234-5678"},"asset":{"owner":"kim@example.com","team":"platform"}}`,
			func(c *Config) { c.Match, c.Target = "user.name", "asset" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig()
			if tt.mod != nil {
				tt.mod(cfg)
			}
			tr := newTransform(t, cfg, owners)
			o, err := plugins.ParseObject([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			out, err := tr.Process(context.Background(), []*plugins.Event{{Fields: o}})
			if err != nil {
				t.Fatal(err)
			}
			if got := string(out[0].AppendJSON(nil)); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestTableErrors(t *testing.T) {
	tests := []struct{ name, csv, key, want string }{
		{"empty", "", "", "reading the header"},
		{"one column", "account\n1\n", "", "needs a key column and at least one more"},
		{"duplicate", "account,owner\n1,a\n1,b\n", "", `:3: key "1" appears twice`},
		{"bad column", "account,Owner Name\n", "", `column "Owner Name" must be a lower snake_case field name`},
		{"missing key column", "account,owner\n", "project", `no column "project"`},
		{"ragged", "account,owner\n1,a,extra\n", "", "wrong number of fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseTable(strings.NewReader(tt.csv), "owners.csv", tt.key)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := loadTable(filepath.Join(t.TempDir(), "missing.csv"), ""); err == nil || !strings.Contains(err.Error(), "asset table: open") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestKeyColumn(t *testing.T) {
	tb, err := parseTable(strings.NewReader("owner,project\nkim,p1\n"), "t", "project")
	if err != nil {
		t.Fatal(err)
	}
	if got := tb.rows["p1"]; len(got) != 1 || got[0] != "kim" || tb.columns[0] != "owner" {
		t.Fatalf("table = %+v", tb)
	}
}

// FuzzParseTable: any input either parses or fails cleanly, and a parsed
// table has one value per column in every row.
func FuzzParseTable(f *testing.F) {
	f.Add(owners, "")
	f.Add("a,b\n\"x,y\",z\n", "b")
	f.Fuzz(func(t *testing.T, csv, key string) {
		tb, err := parseTable(strings.NewReader(csv), "f", key)
		if err != nil {
			return
		}
		for k, row := range tb.rows {
			if len(row) != len(tb.columns) {
				t.Fatalf("row %q has %d values for %d columns", k, len(row), len(tb.columns))
			}
		}
	})
}
