package plugins

import "testing"

// A detached copy survives the reuse of everything its original's
// memory came from: the parser's objects and boxes, and the input bytes.
func TestDetachedSharesNoMemory(t *testing.T) {
	var dp DocParser
	input := []byte(`{"a":"x","n":12,"o":{"b":["y",1.5,true,null]},"z":"w"}`)
	o, err := dp.ParseObject(string(input))
	if err != nil {
		t.Fatal(err)
	}
	ev := &Event{Fields: o, Meta: Meta{Source: string(input[2:3]), ID: "id"}}
	want := string(ev.AppendJSON(nil))
	d := ev.Detached()
	dp.Reuse()
	for i := range input {
		input[i] = '#'
	}
	if _, err := dp.ParseObject(`{"q":"overwrite","r":"every","s":"box"}`); err != nil {
		t.Fatal(err)
	}
	if got := string(d.AppendJSON(nil)); got != want || d.Meta.Source != "a" {
		t.Fatalf("detached copy = %s (source %q), want %s", got, d.Meta.Source, want)
	}
}
