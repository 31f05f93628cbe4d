package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"testing"
)

func TestAllocObjectsIsolated(t *testing.T) {
	objs := make([]*Object, 3)
	AllocObjects(objs, []int{1, 2, 1})
	objs[0].SetKey("a", "1")
	objs[1].SetKey("b", "2")
	objs[1].SetKey("c", "3")
	objs[2].SetKey("d", "4")
	// Growing past the size must not overwrite the neighbour.
	objs[0].SetKey("x", "grown")
	objs[1].SetKey("y", "grown")
	for i, want := range []string{`{"a":"1","x":"grown"}`, `{"b":"2","c":"3","y":"grown"}`, `{"d":"4"}`} {
		if got := string(objs[i].AppendJSON(nil)); got != want {
			t.Errorf("object %d = %s, want %s", i, got, want)
		}
	}
}

func TestFingerprintIgnoresKeyOrderAndWhitespace(t *testing.T) {
	a, err := ParseObject([]byte(`{"b":1,"a":{"y":"\u0040","x":[true,null,1.50]}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseObject([]byte("{ \"a\" : { \"x\" : [ true , null , 1.50 ] , \"y\" : \"@\" } , \"b\" : 1 }"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(AppendCanonicalJSON(nil, a)), `{"a":{"x":[true,null,1.50],"y":"@"},"b":1}`; got != want {
		t.Fatalf("canonical = %s, want %s", got, want)
	}
	if Fingerprint(a) != Fingerprint(b) {
		t.Fatal("same item, different fingerprints")
	}
	sum := sha256.Sum256([]byte(`{"a":{"x":[true,null,1.50],"y":"@"},"b":1}`))
	if got, want := Fingerprint(a), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("fingerprint = %s, want sha256 of the canonical JSON %s", got, want)
	}
	c, _ := ParseObject([]byte(`{"b":2,"a":{"y":"@","x":[true,null,1.50]}}`))
	if Fingerprint(a) == Fingerprint(c) {
		t.Fatal("different items, same fingerprint")
	}
}

func TestAppend(t *testing.T) {
	o := NewObject(1)
	o.Append("a", "1")
	o.Append("b", Number("2"))
	if got := string(o.AppendJSON(nil)); got != `{"a":"1","b":2}` {
		t.Fatalf("got %s", got)
	}
	if v, ok := o.GetKey("b"); !ok || v != Number("2") {
		t.Fatalf("GetKey(b) = %v, %v", v, ok)
	}
}

func TestObjectArena(t *testing.T) {
	var a ObjectArena
	fill := func() []*Object {
		objs := make([]*Object, 3)
		a.Alloc(objs, []int{1, 2, 1})
		objs[0].Append("a", "1")
		objs[1].Append("b", "2")
		objs[1].Append("c", "3")
		objs[2].Append("d", "4")
		objs[0].SetKey("x", "grown") // past its size: must not touch objs[1]
		return objs
	}
	check := func(objs []*Object) {
		t.Helper()
		for i, want := range []string{`{"a":"1","x":"grown"}`, `{"b":"2","c":"3"}`, `{"d":"4"}`} {
			if got := string(objs[i].AppendJSON(nil)); got != want {
				t.Errorf("object %d = %s, want %s", i, got, want)
			}
		}
	}
	first := fill()
	second := fill()
	check(first)
	check(second)
	a.Reset()
	if first[1].Len() != 0 {
		t.Errorf("Reset left %d members in a recycled object", first[1].Len())
	}
	check(fill())
	// Once warm, the arena allocates only what outgrows it (objs[0]).
	allocs := testing.AllocsPerRun(10, func() {
		a.Reset()
		for range 100 {
			fill()
		}
	})
	if allocs > 201 { // per fill: dst, and objs[0]'s growth
		t.Errorf("%.0f allocations per 100 documents after Reset", allocs)
	}
}

func TestOnRelease(t *testing.T) {
	if OnRelease(context.Background(), func() {}) {
		t.Fatal("OnRelease without a batch reported true")
	}
	var got []func()
	ctx := WithRelease(context.Background(), func(fn func()) { got = append(got, fn) })
	n := 0
	if !OnRelease(ctx, func() { n++ }) || len(got) != 1 {
		t.Fatal("OnRelease did not register")
	}
	got[0]()
	if n != 1 {
		t.Fatal("registered function not the one given")
	}
}

func TestBoxerReuse(t *testing.T) {
	var b Boxer
	fill := func() []any {
		out := make([]any, 0, 100)
		for i := range 50 {
			out = append(out, b.String("s"+strconv.Itoa(i)), b.Number(Number(strconv.Itoa(i))))
		}
		return out
	}
	check := func(vals []any) {
		t.Helper()
		for i := range 50 {
			if vals[2*i] != "s"+strconv.Itoa(i) || vals[2*i+1] != Number(strconv.Itoa(i)) {
				t.Fatalf("value %d = %v %v", i, vals[2*i], vals[2*i+1])
			}
		}
	}
	first := fill()
	check(first)
	b.Reuse()
	second := fill()
	check(second)
	b.Reuse()
	if s, _ := second[0].(string); s != "" {
		t.Errorf("Reuse left %q in a recycled box", s)
	}
	// Once warm, boxing allocates nothing: the chunks come back.
	allocs := testing.AllocsPerRun(10, func() {
		for i := range 50 {
			b.String("s")
			b.Number(Number(strconv.Itoa(i % 10)))
		}
		b.Reuse()
	})
	if allocs > 0 {
		t.Errorf("%.0f allocations per 100 values after Reuse", allocs)
	}
}
