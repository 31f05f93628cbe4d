package mask

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditforwarder/forwarder/plugins"
)

func mustParse(t testing.TB, s string) *plugins.Object {
	t.Helper()
	o, err := plugins.ParseObject([]byte(s))
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return o
}

func newT(t testing.TB, cfg *Config) *transform {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tr, err := newTransform(plugins.NopSettings("mask"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// visitStrings calls fn with every string of v, and recurses into strings
// that are themselves JSON documents, at any depth.
func visitStrings(v any, fn func(string)) {
	switch t := v.(type) {
	case string:
		fn(t)
		if s := strings.TrimSpace(t); len(s) > 1 && (s[0] == '{' || s[0] == '[' || s[0] == '"') {
			if inner, err := plugins.ParseValue([]byte(s)); err == nil {
				visitStrings(inner, fn)
			}
		}
	case *plugins.Object:
		for i := 0; i < t.Len(); i++ {
			visitStrings(t.Key(i), fn)
			visitStrings(t.Value(i), fn)
		}
	case []any:
		for _, e := range t {
			visitStrings(e, fn)
		}
	}
}

// survivors returns the needles found in doc's raw JSON or in any of its
// strings after JSON unescaping, at any depth.
func survivors(doc *plugins.Object, needles []string) []string {
	raw := string(doc.AppendJSON(nil))
	var texts []string
	visitStrings(doc, func(s string) { texts = append(texts, s) })
	var out []string
	for _, n := range needles {
		if strings.Contains(raw, n) {
			out = append(out, n+" (raw)")
			continue
		}
		for _, s := range texts {
			if strings.Contains(s, n) {
				out = append(out, n+" (unescaped)")
				break
			}
		}
	}
	return out
}

const ecsDoc = `{
  "@timestamp": "2026-01-02T03:04:05.678Z",
  "event": {"id": "e-1", "dataset": "nhncloud.cloudtrail", "original": "{\"userIp\":\"203.0.113.45\",\"userId\":\"minsu.kim@example.com\"}"},
  "source": {"ip": "203.0.113.45", "geo": {"country_iso_code": "KR"}},
  "destination": {"ip": "2001:db8:85a3::8a2e:370:7334"},
  "host": {"ip": ["10.20.30.40", "2001:db8:1:2::5"]},
  "user": {"email": "minsu.kim@example.com", "name": "minsu.kim@example.com"},
  "related": {"ip": ["203.0.113.45", "10.20.30.40"], "user": ["minsu.kim@example.com"]},
  "nhncloud": {"cloudtrail": {
    "request": "{\"member\":{\"emailAddress\":\"target@nhn.com\"},\"payload\":\"{\\\"ip\\\":\\\"198.51.100.7\\\",\\\"mail\\\":\\\"deep\\\\u0040nhn.com\\\"}\"}",
    "targetMembers": [{"emailAddress": "TARGET.Two+x@NHN.com"}],
    "byEmail": {"owner@nhn.com": "admin"}
  }}
}`

var ecsDocAddrs = []string{"203.0.113.45", "minsu.kim", "2001:db8:85a3::8a2e:370:7334", "10.20.30.40", "2001:db8:1:2::5",
	"target@nhn.com", "198.51.100.7", "deep", "TARGET.Two", "owner@nhn.com"}

func TestDocumentTruncate(t *testing.T) {
	tr := newT(t, DefaultConfig())
	doc := tr.Document(mustParse(t, ecsDoc))
	if s := survivors(doc, ecsDocAddrs); len(s) > 0 {
		t.Fatalf("survived: %v\n%s", s, doc.AppendJSON(nil))
	}
	// ECS ip fields keep a valid address in place.
	for path, want := range map[string]any{
		"source.ip":      "203.0.113.0",
		"destination.ip": "2001:db8:85a3::",
		"host.ip":        []any{"10.20.30.0", "2001:db8:1::"},
		"related.ip":     []any{"203.0.113.0", "10.20.30.0"},
		"user.email":     "m***@example.com",
	} {
		got, _ := doc.Get(path)
		if !equalJSON(got, want) {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	for _, f := range IPFields {
		if v, ok := doc.Get(f); ok {
			forEachString(v, func(s string) {
				if _, err := netip.ParseAddr(s); err != nil {
					t.Errorf("%s holds %q, not an IP", f, s)
				}
			})
		}
		if _, ok := doc.Get(f + MaskedSuffix); ok {
			t.Errorf("%s%s present in truncate mode", f, MaskedSuffix)
		}
	}
	if by, _ := doc.GetObject("nhncloud.cloudtrail.byEmail"); by == nil || by.Len() != 1 || by.Key(0) != "o***@nhn.com" {
		t.Errorf("email key not masked: %s", doc.AppendJSON(nil))
	}
	assertIdempotent(t, tr, doc)
}

func TestDocumentHashAndRedactMoveIPFields(t *testing.T) {
	for _, mode := range []string{ModeHash, ModeRedact} {
		t.Run(mode, func(t *testing.T) {
			tr := newT(t, cfgFor(mode, mode))
			doc := tr.Document(mustParse(t, ecsDoc))
			if s := survivors(doc, ecsDocAddrs); len(s) > 0 {
				t.Fatalf("survived: %v\n%s", s, doc.AppendJSON(nil))
			}
			for _, f := range []string{"source.ip", "destination.ip", "host.ip", "related.ip"} {
				if v, ok := doc.Get(f); ok {
					t.Errorf("%s still present: %v", f, v)
				}
				v, ok := doc.Get(f + MaskedSuffix)
				if !ok {
					t.Errorf("%s%s missing", f, MaskedSuffix)
					continue
				}
				_, wasArray := mustParse(t, ecsDoc).Get(f)
				if _, isArray := v.([]any); isArray != isArrayVal(mustGet(t, mustParse(t, ecsDoc), f)) {
					t.Errorf("%s%s: array-ness changed (%v, %v)", f, MaskedSuffix, v, wasArray)
				}
			}
			src, _ := doc.GetString("source.ip_masked")
			if mode == ModeHash && !strings.HasPrefix(src, "ip-") || mode == ModeRedact && src != RedactedIP {
				t.Errorf("source.ip_masked = %q", src)
			}
			// the geo sibling stays
			if _, ok := doc.Get("source.geo.country_iso_code"); !ok {
				t.Error("source.geo lost")
			}
			assertIdempotent(t, tr, doc)
		})
	}
}

func TestMoveMergesExistingMaskedField(t *testing.T) {
	tr := newT(t, cfgFor(ModeRedact, ModeRedact))
	doc := tr.Document(mustParse(t, `{"related":{"ip":["1.2.3.4"],"ip_masked":["[REDACTED_IP]","x"]},"source":{"ip":"5.6.7.8","ip_masked":"y"}}`))
	got := string(doc.AppendJSON(nil))
	want := `{"related":{"ip_masked":["[REDACTED_IP]","x"]},"source":{"ip_masked":["y","[REDACTED_IP]"]}}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestIPFieldNotAnAddressStays(t *testing.T) {
	tr := newT(t, cfgFor(ModeHash, ModeHash))
	doc := tr.Document(mustParse(t, `{"source":{"ip":"unknown"},"client":{"ip":"***.***.***.***"}}`))
	if got := string(doc.AppendJSON(nil)); got != `{"source":{"ip":"unknown"},"client":{"ip":"***.***.***.***"}}` {
		t.Fatalf("got %s", got)
	}
}

func TestFieldsLimitMasking(t *testing.T) {
	cfg := cfgFor(ModeHash, ModePartial)
	cfg.Fields = []string{"user.email", "source.ip", "related", "missing.path"}
	tr := newT(t, cfg)
	doc := tr.Document(mustParse(t, ecsDoc))
	for path, check := range map[string]func(any) bool{
		"user.email":       func(v any) bool { return v == "m***@example.com" },
		"user.name":        func(v any) bool { return v == "minsu.kim@example.com" },
		"source.ip":        func(v any) bool { return v == nil },
		"source.ip_masked": func(v any) bool { s, _ := v.(string); return strings.HasPrefix(s, "ip-") },
		"related.ip":       func(v any) bool { return v == nil },
		"related.user":     func(v any) bool { return equalJSON(v, []any{"m***@example.com"}) },
		"destination.ip":   func(v any) bool { return v == "2001:db8:85a3::8a2e:370:7334" },
	} {
		v, _ := doc.Get(path)
		if !check(v) {
			t.Errorf("%s = %#v", path, v)
		}
	}
}

func TestFactoryProcessAndMetrics(t *testing.T) {
	f := NewFactory()
	if f.Type() != "mask" || f.Kind() != plugins.KindTransform {
		t.Fatalf("factory %s/%v", f.Type(), f.Kind())
	}
	cfg := f.CreateDefaultConfig().(*Config)
	if err := plugins.ValidateConfig("transforms.mask", cfg); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	set := plugins.NopSettings("mask")
	reg := prometheus.NewRegistry()
	set.Metrics = reg
	c, err := f.Create(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr := c.(plugins.Transform)
	if err := tr.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev := &plugins.Event{Fields: mustParse(t, `{"source":{"ip":"203.0.113.45"},"user":{"email":"a.b@c.io"},"message":"x 1.2.3.4 y"}`)}
	out, err := tr.Process(context.Background(), []*plugins.Event{ev, {}})
	if err != nil || len(out) != 2 {
		t.Fatalf("Process: %v, %d events", err, len(out))
	}
	if got := string(out[0].Fields.AppendJSON(nil)); got != `{"source":{"ip":"203.0.113.0"},"user":{"email":"a***@c.io"},"message":"x 1.2.3.0 y"}` {
		t.Fatalf("got %s", got)
	}
	counts := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "forwarder_mask_addresses_total" {
			for _, m := range mf.GetMetric() {
				counts[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	if counts["ip"] != 2 || counts["email"] != 1 {
		t.Errorf("counters = %v, want ip 2, email 1", counts)
	}
	for range 2 {
		if err := tr.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// A second instance on the same registry reuses the collector.
	if _, err := f.Create(context.Background(), set, cfg); err != nil {
		t.Fatalf("second instance: %v", err)
	}
}

func TestNewStringMasker(t *testing.T) {
	f, err := NewStringMasker(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := f("dial tcp 203.0.113.77:443 for hong@navercorp.com"); got != "dial tcp 203.0.113.0:443 for h***@navercorp.com" {
		t.Fatalf("got %q", got)
	}
	bad := cfgFor(ModeHash, ModePartial)
	bad.HashKey = ""
	if _, err := NewStringMasker(bad); err == nil || !strings.Contains(err.Error(), "hash_key") {
		t.Fatalf("want hash_key error, got %v", err)
	}
	// concurrent use
	done := make(chan bool)
	for range 4 {
		go func() {
			for range 200 {
				if f("x 198.51.100.7 y") != "x 198.51.100.0 y" {
					t.Error("wrong result under concurrency")
				}
			}
			done <- true
		}()
	}
	for range 4 {
		<-done
	}
}

func assertIdempotent(t *testing.T, tr *transform, doc *plugins.Object) {
	t.Helper()
	before := string(doc.AppendJSON(nil))
	after := string(tr.Document(doc.Clone()).AppendJSON(nil))
	if before != after {
		t.Errorf("not idempotent:\nonce  %s\ntwice %s", before, after)
	}
}

func mustGet(t *testing.T, o *plugins.Object, p string) any {
	t.Helper()
	v, ok := o.Get(p)
	if !ok {
		t.Fatalf("%s missing", p)
	}
	return v
}

func isArrayVal(v any) bool { _, ok := v.([]any); return ok }

func forEachString(v any, fn func(string)) {
	switch t := v.(type) {
	case string:
		fn(t)
	case []any:
		for _, e := range t {
			forEachString(e, fn)
		}
	}
}

func equalJSON(a, b any) bool {
	return string(plugins.AppendJSONValue(nil, a)) == string(plugins.AppendJSONValue(nil, b))
}
