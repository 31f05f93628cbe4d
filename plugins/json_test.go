package plugins

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseEncodeRoundTrip(t *testing.T) {
	cases := []string{
		`{}`,
		`{"a":1,"b":"x","c":[1,2,{"d":null}],"e":true,"f":false}`,
		`{"eventTime":1670832000000,"float":-1.5e-3,"zero":0}`,
		`{"esc":"q\"b\\s\/n\n\t\r\u0001 \u00e9 \ud83d\ude00"}`,
		`{"nested":{"a":{"b":{"c":"deep"}}}}`,
		`{"dup":1,"dup":2}`,
		`{"unicode":"한국어 テスト","lsep":"\u2028"}`,
	}
	for _, in := range cases {
		t.Run(in, func(t *testing.T) {
			o, err := ParseObject([]byte(in))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			out := o.AppendJSON(nil)
			var want, got any
			if err := json.Unmarshal([]byte(in), &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("our output is not JSON: %v: %s", err, out)
			}
			if !reflect.DeepEqual(want, got) {
				t.Fatalf("round trip differs:\nwant %v\ngot  %v", want, got)
			}
		})
	}
}

func TestParseKeepsOrderAndNumbers(t *testing.T) {
	o, err := ParseObject([]byte(`{"z":1,"a":12345678901234567890,"m":2.50}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(o.AppendJSON(nil)); got != `{"z":1,"a":12345678901234567890,"m":2.50}` {
		t.Fatalf("got %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	bad := []string{``, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `{"a":tru}`, `{"a":"\x01"}`,
		`{"a":"\q"}`, `{"a":01}`, `{"a":1}x`, `"str"`, `{"a":"\u12"}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`,
		strings.Repeat("[", 600) + strings.Repeat("]", 600)}
	for _, in := range bad {
		if _, err := ParseObject([]byte(in)); err == nil {
			t.Errorf("ParseObject(%q) succeeded", in)
		}
	}
}

func TestInvalidUTF8IsReplaced(t *testing.T) {
	o, err := ParseObject([]byte("{\"a\":\"x\xffy\"}"))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := o.GetString("a")
	if s != "x\uFFFDy" {
		t.Fatalf("got %q", s)
	}
	enc := AppendJSONString(nil, "a\xffb")
	if !json.Valid(enc) {
		t.Fatalf("invalid JSON %q", enc)
	}
}

func TestObjectPaths(t *testing.T) {
	o := NewObject(0)
	o.Set("source.ip", "203.0.113.7")
	o.Set("source.port", 443)
	o.Set("event.id", "x")
	if v, ok := o.GetString("source.ip"); !ok || v != "203.0.113.7" {
		t.Fatalf("get: %v %v", v, ok)
	}
	if _, ok := o.Get("source.ip.deeper"); ok {
		t.Fatal("path through a string must not resolve")
	}
	if !o.Delete("source.port") || o.Delete("source.port") {
		t.Fatal("delete twice")
	}
	o.Set("source.ip", "198.51.100.1")
	if got := string(o.AppendJSON(nil)); got != `{"source":{"ip":"198.51.100.1"},"event":{"id":"x"}}` {
		t.Fatalf("got %s", got)
	}
	c := o.Clone()
	c.Set("source.ip", "changed")
	if v, _ := o.GetString("source.ip"); v != "198.51.100.1" {
		t.Fatal("clone shares nested objects")
	}
	// A scalar in the way is replaced by an object.
	o.Set("event.id.x", 1)
	if _, ok := o.Get("event.id.x"); !ok {
		t.Fatal("set through scalar")
	}
}

func TestFromMapToMap(t *testing.T) {
	m := map[string]any{"b": 1, "a": map[string]any{"c": []any{"x", map[string]any{"d": true}}}}
	o := FromMap(m)
	if got := string(o.AppendJSON(nil)); got != `{"a":{"c":["x",{"d":true}]},"b":1}` {
		t.Fatalf("got %s", got)
	}
	if !reflect.DeepEqual(o.Map(), m) {
		t.Fatalf("Map() = %v", o.Map())
	}
}

func FuzzParseObject(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":[1,"b",{"c":null}]}`, `{"e":"\ud83d\ude00\u0040"}`, `{"n":-0.1e+5}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := ParseObject(data)
		var std map[string]any
		stdErr := json.Unmarshal(data, &std)
		if err != nil {
			return // we may be stricter on depth; never looser
		}
		if stdErr != nil {
			t.Fatalf("we accepted what encoding/json rejects: %q (%v)", data, stdErr)
		}
		out := o.AppendJSON(nil)
		// A DocParser reads it the same, before and after other documents.
		var dp DocParser
		for range 2 {
			d, err := dp.ParseObject(string(data))
			if err != nil || !bytes.Equal(d.AppendJSON(nil), out) {
				t.Fatalf("DocParser: %v, %q, want %q", err, d.AppendJSON(nil), out)
			}
			_, _ = dp.ParseObject(`{"x":[1,{"y":"z"}],`) // a failed one in between
			dp.Reuse()                                   // and its memory recycled
		}
		var back map[string]any
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("re-encoding is not JSON: %v: %q", err, out)
		}
		// The document means what encoding/json says it means: same keys
		// (last duplicate wins), values, U+FFFD for invalid UTF-8.
		if !reflect.DeepEqual(std, back) {
			t.Fatalf("parsed %q as %q: encoding/json reads them differently", data, out)
		}
		o2, err := ParseObject(out)
		if err != nil {
			t.Fatalf("cannot parse our own output: %v", err)
		}
		if !bytes.Equal(o2.AppendJSON(nil), out) {
			t.Fatal("encoding not stable")
		}
	})
}

var benchDoc = []byte(`{"historyId":"0f3c5e0a-1a2b-4c5d-8e9f-0123456789ab","eventTime":1670832000000,"actionDisplayName":"Login","actionResultType":"SUCCESS","productName":"Console","productDisplayName":"Console","regionCode":"KR","regionDisplayName":"Korea","sourceIp":"203.0.113.77","sourceType":"CONSOLE","loginId":"honggildong@navercorp.com","subAccountName":"","resourceName":"","resourceType":"","resourceId":"","actionName":"Login","requestPayload":"","productData":{"userAgent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/108.0.0.0 Safari/537.36","loginType":"ROOT"},"platformType":"VPC","tenantId":"1234567","nrn":"nrn:PUB:Console::1234567:Login/abc"}`)

func BenchmarkParseObject(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchDoc)))
	for i := 0; i < b.N; i++ {
		if _, err := ParseObject(benchDoc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStdUnmarshal(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchDoc)))
	for i := 0; i < b.N; i++ {
		var m map[string]any
		if err := json.Unmarshal(benchDoc, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	o, _ := ParseObject(benchDoc)
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchDoc)))
	for i := 0; i < b.N; i++ {
		buf = o.AppendJSON(buf[:0])
	}
}

func BenchmarkStdMarshal(b *testing.B) {
	var m map[string]any
	_ = json.Unmarshal(benchDoc, &m)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchDoc)))
	for i := 0; i < b.N; i++ {
		if _, err := json.Marshal(m); err != nil {
			b.Fatal(err)
		}
	}
}

// Documents from one DocParser share chunks but never storage: growing
// one never writes into its neighbour.
func TestDocParserDocumentsAreIndependent(t *testing.T) {
	var dp DocParser
	var docs []*Object
	for i := range 100 {
		o, err := dp.ParseObject(fmt.Sprintf(`{"i":%d,"o":{"a":"b"},"l":["x",%d]}`, i, i))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, o)
	}
	for i, o := range docs {
		o.Set("added", i)
		o.Set("o.c", "d")
	}
	for i, o := range docs {
		want := fmt.Sprintf(`{"i":%d,"o":{"a":"b","c":"d"},"l":["x",%d],"added":%d}`, i, i, i)
		if got := string(o.AppendJSON(nil)); got != want {
			t.Fatalf("document %d = %s, want %s", i, got, want)
		}
	}
}

// plainWords stops at the first word holding a byte the scanners must
// look at, and never earlier.
func FuzzPlainWords(f *testing.F) {
	for _, s := range []string{"", "abcdefgh", "abcdefg\"", "abc\\defghijklmnop", "\x1fabcdefgh", "abcdefgh\x80ijklmnop", "0123456789abcdef ~"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := plainWords(s, 0)
		first := len(s)
		for i := 0; i < len(s); i++ {
			if strSpecial[s[i]] {
				first = i
				break
			}
		}
		if n%8 != 0 || n > first || first-n >= 8 && n+8 <= len(s) {
			t.Fatalf("plainWords(%q) = %d, first special byte at %d", s, n, first)
		}
	})
}

// TestDocParserReuse: after Reuse, documents of the same shape parse into
// the recycled chunks without allocating, and read correctly.
func TestDocParserReuse(t *testing.T) {
	docs := make([]string, 50)
	for i := range docs {
		docs[i] = fmt.Sprintf(`{"id":"e%d","n":%d,"user":{"name":"u%d","tags":["a","b"]},"ok":true}`, i, i, i)
	}
	var dp DocParser
	parseAll := func() []*Object {
		out := make([]*Object, len(docs))
		for i, d := range docs {
			o, err := dp.ParseObject(d)
			if err != nil {
				t.Fatal(err)
			}
			out[i] = o
		}
		return out
	}
	parseAll()
	dp.Reuse()
	got := parseAll()
	for i, o := range got {
		if s := string(o.AppendJSON(nil)); s != docs[i] {
			t.Fatalf("doc %d after Reuse: %s, want %s", i, s, docs[i])
		}
	}
	// Only the arrays (one per document: its elements and its boxed
	// header, not chunked) and the result slice may allocate.
	allocs := testing.AllocsPerRun(5, func() {
		dp.Reuse()
		parseAll()
	})
	if max := float64(2*len(docs) + 1); allocs > max {
		t.Errorf("%.0f allocations per round after Reuse, want at most %.0f", allocs, max)
	}
}
