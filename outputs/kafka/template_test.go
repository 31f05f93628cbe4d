package kafka

import (
	"strings"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
)

func TestTemplateRender(t *testing.T) {
	doc, err := plugins.ParseObject([]byte(`{"event":{"dataset":"ncloud.activity_tracer","severity":3,"ok":true,"obj":{}},"cloud":{"region":"KR"},"n":null}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tmpl, want, err string
	}{
		{"cloud-audit", "cloud-audit", ""},
		{"cloud-audit.{{event.dataset}}", "cloud-audit.ncloud.activity_tracer", ""},
		{"{{ event.dataset }}", "ncloud.activity_tracer", ""},
		{"a-{{cloud.region}}-{{event.severity}}-{{event.ok}}", "a-KR-3-true", ""},
		{"x.{{event.missing}}", "", `topic template "x.{{event.missing}}": field "event.missing" is missing`},
		{"x.{{n}}", "", `field "n" is missing`},
		{"x.{{event.obj}}", "", `field "event.obj" is not a string, number or boolean`},
		{"x.{{event.dataset.deeper}}", "", "is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl, func(t *testing.T) {
			tp, err := parseTemplate(tt.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tp.render(doc)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestTemplateParseErrors(t *testing.T) {
	for _, s := range []string{"a{{", "a{{b", "a}}", "{{}}", "{{a..b}}", "a}}{{b}}", "{{a b}}", "{{a}}}}"} {
		if _, err := parseTemplate(s); err == nil {
			t.Errorf("parseTemplate(%q) accepted", s)
		}
	}
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"cloud-audit", "cloud-audit.{{event.dataset}}", "{{a}}{{b}}", "a{{", "}}", "{{ x.y }}-z"} {
		f.Add(s)
	}
	doc := plugins.NewObject(2)
	doc.Set("event.dataset", "ds")
	doc.Set("a", "A")
	f.Fuzz(func(t *testing.T, s string) {
		tp, err := parseTemplate(s)
		if err != nil {
			return
		}
		// Round trip: literals and placeholders rebuild an equivalent template.
		var b strings.Builder
		for _, p := range tp.parts {
			if p.path != "" {
				if !validPath(p.path) {
					t.Fatalf("accepted invalid path %q in %q", p.path, s)
				}
				b.WriteString("{{" + p.path + "}}")
			} else {
				if strings.Contains(p.lit, "{{") || strings.Contains(p.lit, "}}") {
					t.Fatalf("literal %q of %q holds braces", p.lit, s)
				}
				b.WriteString(p.lit)
			}
		}
		again, err := parseTemplate(b.String())
		if err != nil || len(again.parts) != len(tp.parts) {
			t.Fatalf("round trip of %q via %q: %v", s, b.String(), err)
		}
		out, err := tp.render(doc)
		if err == nil && tp.static() && out != s {
			t.Fatalf("static template %q rendered %q", s, out)
		}
	})
}
