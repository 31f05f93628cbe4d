package rpc

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
)

// viaJSON is what a document means once it crossed as JSON.
func viaJSON(t testing.TB, o *plugins.Object) (*plugins.Object, error) {
	t.Helper()
	return plugins.ParseObject(appendDoc(nil, o, false)[4:])
}

// viaBinary is what a document means once it crossed as a binary document.
func viaBinary(t testing.TB, o *plugins.Object) (*plugins.Object, error) {
	t.Helper()
	var r binReader
	return r.object(appendDoc(nil, o, true)[4:])
}

// shape describes a value's types as well as its JSON, so that a string
// and a Number with the same text differ.
func shape(v any) string {
	switch t := v.(type) {
	case *plugins.Object:
		var b strings.Builder
		b.WriteString("{")
		for i := 0; i < t.Len(); i++ {
			fmt.Fprintf(&b, "%q:%s,", t.Key(i), shape(t.Value(i)))
		}
		return b.String() + "}"
	case []any:
		var b strings.Builder
		b.WriteString("[")
		for _, e := range t {
			b.WriteString(shape(e) + ",")
		}
		return b.String() + "]"
	}
	return fmt.Sprintf("%T(%v)", v, v)
}

func TestBinaryDocsMeanWhatJSONMeans(t *testing.T) {
	docs := []struct {
		name string
		doc  func() *plugins.Object
	}{
		{"nil document", func() *plugins.Object { return nil }},
		{"empty", func() *plugins.Object { return plugins.NewObject(0) }},
		{"parsed", func() *plugins.Object {
			o, _ := plugins.ParseObject([]byte(`{"a":1,"b":{"c":[1,"}",{"d":"\""}],"e":[]},"f":-1.5e3,"g":null,"h":true,"i":false,"j":"caf\u00e9 \u2028"}`))
			return o
		}},
		{"go values", func() *plugins.Object {
			o := plugins.NewObject(0)
			o.SetKey("int", 42)
			o.SetKey("int64", int64(-7))
			o.SetKey("float", 0.1)
			o.SetKey("big float", 1e300)
			o.SetKey("nan", math.NaN())
			o.SetKey("inf", math.Inf(-1))
			o.SetKey("empty number", plugins.Number(""))
			o.SetKey("nil object", (*plugins.Object)(nil))
			o.SetKey("strings", []string{"a", "b"})
			o.SetKey("map", map[string]any{"z": 1, "a": []any{"x"}})
			o.SetKey("stringer", struct{ A int }{3})
			o.SetKey("long", strings.Repeat("x", 300))
			return o
		}},
		{"invalid UTF-8", func() *plugins.Object {
			o := plugins.NewObject(0)
			o.SetKey("bad\xffkey", "a\xff\xfeb\xc3")
			o.SetKey("nested", []any{"\xe2\x82"})
			return o
		}},
		{"repeated key", func() *plugins.Object {
			o := plugins.NewObject(0)
			o.Append("k", 1)
			o.Append("other", 2)
			o.Append("k", "last")
			return o
		}},
	}
	for _, tt := range docs {
		t.Run(tt.name, func(t *testing.T) {
			want, err := viaJSON(t, tt.doc())
			if err != nil {
				t.Fatal(err)
			}
			got, err := viaBinary(t, tt.doc())
			if err != nil {
				t.Fatal(err)
			}
			if g, w := shape(got), shape(want); g != w {
				t.Errorf("binary:\n got %s\nwant %s", g, w)
			}
		})
	}
}

func TestBinaryDocsRejectWhatJSONRejects(t *testing.T) {
	deep := plugins.NewObject(1)
	for i := 0; i < maxBinDepth+1; i++ {
		o := plugins.NewObject(1)
		o.SetKey("d", deep)
		deep = o
	}
	bad := plugins.NewObject(1)
	bad.SetKey("n", plugins.Number("12abc"))
	for name, o := range map[string]*plugins.Object{"too deep": deep, "invalid number": bad} {
		if _, err := viaJSON(t, o); err == nil {
			t.Fatalf("%s: JSON accepted it", name)
		}
		if _, err := viaBinary(t, o); err == nil {
			t.Errorf("%s: binary accepted it", name)
		}
	}
}

func TestBinaryDocsMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":          {},
		"not an object":  {binArray, 0},
		"unknown tag":    {binObject, 1, 1, 'k', 9},
		"short string":   {binObject, 1, 1, 'k', binString, 5, 'a'},
		"short key":      {binObject, 1, 9, 'k'},
		"huge count":     {binObject, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"trailing":       {binObject, 0, 0},
		"short json":     {binObject, 1, 1, 'k', binJSON, 9, 0, 0, 0, '1'},
		"invalid json":   {binObject, 1, 1, 'k', binJSON, 1, 0, 0, 0, 'x'},
		"missing member": {binObject, 2, 1, 'k', binNull},
	} {
		var r binReader
		if o, err := r.object(b); err == nil {
			t.Errorf("%s: decoded %s", name, o.AppendJSON(nil))
		}
	}
}

// FuzzBinaryDocs checks that any JSON document means the same after
// crossing as a binary document as after crossing as JSON, and that no
// input makes the reader panic.
func FuzzBinaryDocs(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":[1,"}",{"d":"\""}]},"e":"x","f":null,"g":true}`))
	f.Add([]byte(`{"k":"v","k":2,"n":-0.5e-3,"u":"\u00e9\ud83d\ude00"}`))
	f.Add([]byte{binObject, 1, 1, 'k', binArray, 2, binTrue, binString, 1, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		same := func(o *plugins.Object) {
			want, werr := viaJSON(t, o)
			got, gerr := viaBinary(t, o)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("JSON error %v, binary error %v", werr, gerr)
			}
			if werr == nil && shape(got) != shape(want) {
				t.Fatalf("binary:\n got %s\nwant %s", shape(got), shape(want))
			}
		}
		// Raw bytes as a binary document: an error, or a document (maybe
		// with invalid UTF-8, from a writer other than ours) that means
		// the same in both encodings.
		var r binReader
		if o, err := r.object(bytes.Clone(data)); err == nil {
			same(o)
		}
		// JSON documents: both encodings mean the same.
		if o, err := plugins.ParseObject(data); err == nil {
			same(o)
		}
	})
}
