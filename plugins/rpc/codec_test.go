package rpc

import (
	"errors"
	"fmt"
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

func TestSnapshotEqual(t *testing.T) {
	doc := `{"a":1,"b":{"c":[1,"}",{"d":"\""}]},"e":"x","f":null,"g":true}`
	edits := []struct {
		name string
		edit func(o *plugins.Object)
		same bool
	}{
		{"none", func(o *plugins.Object) {}, true},
		{"same value again", func(o *plugins.Object) { o.SetKey("e", "x") }, true},
		{"scalar", func(o *plugins.Object) { o.SetKey("a", plugins.Number("2")) }, false},
		{"number as int", func(o *plugins.Object) { o.SetKey("a", 1) }, false},
		{"nested in place", func(o *plugins.Object) { o.Set("b.x", 1) }, false},
		{"array element in place", func(o *plugins.Object) {
			b, _ := o.GetObject("b")
			c, _ := b.GetKey("c")
			c.([]any)[0] = "one"
		}, false},
		{"deep in place", func(o *plugins.Object) {
			b, _ := o.GetObject("b")
			c, _ := b.GetKey("c")
			c.([]any)[2].(*plugins.Object).SetKey("d", "changed")
		}, false},
		{"rebuilt equal", func(o *plugins.Object) {
			b, _ := o.GetObject("b")
			o.SetKey("b", b.Clone())
		}, true},
		{"other type", func(o *plugins.Object) { o.SetKey("f", map[string]any{}) }, false},
	}
	for _, tt := range edits {
		o, err := plugins.ParseObject([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		snaps, release := takeSnapshots([]*plugins.Event{{Fields: o}})
		snap := snaps[0]
		tt.edit(o)
		var d differ
		if !d.diff(snap, o, true) {
			t.Fatalf("%s: not diffable", tt.name)
		}
		if got := len(d.patches) == 0; got != tt.same {
			t.Errorf("%s: unchanged = %v, want %v (%d patches)", tt.name, got, tt.same, len(d.patches))
		}
		release()
	}
}

// FuzzPatchRoundTrip checks that for any document and any edit, the
// patches the plugin sends, in either encoding, rebuild exactly the edited
// document on the host.
func FuzzPatchRoundTrip(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":{"c":"d"},"e":[1,2]}`), uint8(0), "b")
	f.Add([]byte(`{"@timestamp":"x","event":{"id":"1"},"message":"caf\u00e9"}`), uint8(1), "event")
	f.Add([]byte(`{"x":true,"y":false,"z":null}`), uint8(2), "y")
	f.Add([]byte(`{"x":true,"y":false,"z":null}`), uint8(3), "x")
	f.Add([]byte(`{"k":"v"}`), uint8(4), "new")
	f.Add([]byte(`{"a\u0041":{"b":[1,{"c":2}]}}`), uint8(5), "aA")
	f.Fuzz(func(t *testing.T, data []byte, op uint8, key string) {
		orig, err := plugins.ParseObject(data)
		if err != nil {
			return
		}
		canon := orig.AppendJSON(nil)
		edited, err := plugins.ParseObject(canon)
		if err != nil {
			t.Fatalf("canonical %s: %v", canon, err)
		}
		ev := &plugins.Event{Fields: edited}
		snaps, release := takeSnapshots([]*plugins.Event{ev})
		defer release()
		switch op % 6 {
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
		case 5:
			// In place, deep inside: the first array or object found.
			var walk func(v any) bool
			walk = func(v any) bool {
				switch t := v.(type) {
				case *plugins.Object:
					for i := 0; i < t.Len(); i++ {
						if walk(t.Value(i)) {
							return true
						}
					}
					if t.Len() > 0 {
						t.SetValue(t.Len()-1, key)
						return true
					}
				case []any:
					if len(t) > 0 {
						t[0] = key
						return true
					}
				}
				return false
			}
			walk(edited)
		}
		want := canonical(t, edited)

		// The original encoding: FieldPatch messages.
		var d differ
		if d.diff(snaps[0], edited, true) {
			var patches []*FieldPatch
			for _, p := range d.patches {
				patches = append(patches, &FieldPatch{Key: p.key, Delete: p.del, Value: p.val})
			}
			host, _ := plugins.ParseObject(canon)
			if err := applyPatches(host, patches); err != nil {
				t.Fatal(err)
			}
			// Compare as JSON: the wire turns invalid UTF-8 into U+FFFD.
			if got := canonical(t, host); got != want {
				t.Fatalf("patched %s\n   got %s\n  want %s", canon, got, want)
			}
		}

		// The packed encoding, with JSON and with binary documents.
		for _, bin := range []bool{false, true} {
			part := packOut([]*plugins.Event{ev}, []int{0}, snaps, []*plugins.Object{edited}, []plugins.Meta{{}}, bin)
			host, _ := plugins.ParseObject(canon)
			in := []*plugins.Event{{Fields: host}}
			out, err := unpackOut(part, in, nil, bin)
			if err != nil || len(out) != 1 || out[0] != in[0] {
				t.Fatalf("unpackOut: %v %v", out, err)
			}
			if got := canonical(t, out[0].Fields); got != want {
				t.Fatalf("packed (binary %v) %s\n   got %s\n  want %s", bin, canon, got, want)
			}
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
