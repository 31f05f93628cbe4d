package rpc

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

func TestErrorRoundTrip(t *testing.T) {
	be := &plugins.BatchError{}
	be.Add(1, errors.New("retry me"))
	be.Add(3, plugins.Permanent(errors.New("never")))
	tests := []struct {
		name  string
		err   error
		check func(error) bool
	}{
		{"nil", nil, func(e error) bool { return e == nil }},
		{"plain", fmt.Errorf("write: %w", errors.New("refused")), func(e error) bool {
			return e.Error() == "write: refused" && !plugins.IsPermanent(e)
		}},
		{"permanent", plugins.Permanent(errors.New("bad")), func(e error) bool { return plugins.IsPermanent(e) && e.Error() == "bad" }},
		{"wrapped permanent", fmt.Errorf("ctx: %w", plugins.Permanent(errors.New("bad"))), func(e error) bool { return plugins.IsPermanent(e) }},
		{"batch", be, func(e error) bool {
			var got *plugins.BatchError
			return errors.As(e, &got) && len(got.Failures) == 2 && got.Failures[1].Index == 3 &&
				plugins.IsPermanent(got.Failures[1].Err) && !plugins.IsPermanent(got.Failures[0].Err)
		}},
		{"field errors", errors.Join(plugins.FieldErrorf("a.b", "must be set"), errors.New("loose")), func(e error) bool {
			lines := plugins.ErrorLines(plugins.PrefixErrors("transforms.x", e))
			return len(lines) == 2 && lines[0] == "transforms.x.a.b: must be set" && lines[1] == "transforms.x: loose"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DecodeError(EncodeError(tt.err)); !tt.check(got) {
				t.Fatalf("round trip of %v gave %#v", tt.err, got)
			}
		})
	}
}

func TestTimes(t *testing.T) {
	for _, tm := range []time.Time{{}, time.Unix(0, 0), time.Date(1500, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(2026, 3, 4, 5, 6, 7, 8, time.FixedZone("KST", 9*3600)), time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC)} {
		s, n := encodeTime(tm)
		got := decodeTime(s, n)
		if !got.Equal(tm) || got.IsZero() != tm.IsZero() {
			t.Errorf("%v came back as %v", tm, got)
		}
	}
}

func TestSplitTopLevel(t *testing.T) {
	tests := []struct {
		in   string
		keys string
		ok   bool
	}{
		{`{}`, "", true},
		{` { "a" : 1 , "b":{"c":[1,"}",{"d":"\""}]},"e":"x\"y","f":null,"g":-1.5e3} `, "a,b,e,f,g", true},
		{`{"a\u0041":1}`, "", false},
		{`[1]`, "", false},
		{`{"a":1`, "", false},
		{`{"a":"unterminated}`, "", false},
		{`{"a" 1}`, "", false},
	}
	for _, tt := range tests {
		var d rawDoc
		ok := splitTopLevel([]byte(tt.in), &d)
		if ok != tt.ok || (ok && strings.Join(d.keys, ",") != tt.keys) {
			t.Errorf("splitTopLevel(%s) = %v %q", tt.in, ok, d.keys)
		}
	}
}

// FuzzPatchRoundTrip checks that for any document and any edit, the
// patches the plugin sends rebuild exactly the edited document on the host.
func FuzzPatchRoundTrip(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":"d"},"e":[1,2]}`), uint8(0), "b")
	f.Add([]byte(`{"@timestamp":"x","event":{"id":"1"},"message":"caf\u00e9"}`), uint8(1), "event")
	f.Add([]byte(`{"x":true,"y":false,"z":null}`), uint8(2), "y")
	f.Add([]byte(`{"x":true,"y":false,"z":null}`), uint8(3), "x")
	f.Add([]byte(`{"k":"v"}`), uint8(4), "new")
	f.Fuzz(func(t *testing.T, data []byte, op uint8, key string) {
		var d rawDoc
		splitOK := splitTopLevel(data, &d) // must never panic
		orig, err := plugins.ParseObject(data)
		if err != nil {
			return
		}
		canon := orig.AppendJSON(nil)
		if !splitOK {
			// Only escaped keys may make a valid object unsplittable.
			if !splitTopLevel(canon, &d) && !strings.Contains(string(canon), `\`) {
				t.Fatalf("canonical %s not splittable", canon)
			}
			return
		}
		if !splitTopLevel(canon, &d) {
			return
		}
		edited, _ := plugins.ParseObject(canon)
		switch op % 5 {
		case 0:
			edited.Set(key+".nested", "v")
		case 1:
			edited.DeleteKey(key)
		case 2:
			if v, ok := edited.GetKey(key); ok {
				edited.DeleteKey(key)
				edited.SetKey(key, v)
			}
		case 3:
			edited.SetKey(key, []any{1, "two", nil})
			edited.SetKey(key+"2", plugins.Number("3.25"))
		case 4:
			for i := 0; i < edited.Len(); i++ {
				edited.SetValue(i, "x")
			}
		}
		patches, _, ok := diffObject(&d, edited, nil, nil)
		if !ok {
			return // sent whole
		}
		host, _ := plugins.ParseObject(canon)
		if err := applyPatches(host, patches); err != nil {
			t.Fatal(err)
		}
		// Compare as JSON: the wire turns invalid UTF-8 into U+FFFD.
		if got, want := canonical(t, host), canonical(t, edited); got != want {
			t.Fatalf("patched %s\n   got %s\n  want %s", canon, got, want)
		}
	})
}

func canonical(t *testing.T, o *plugins.Object) string {
	re, err := plugins.ParseObject(o.AppendJSON(nil))
	if err != nil {
		t.Fatal(err)
	}
	return string(re.AppendJSON(nil))
}
