package ecs

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
)

func addGoldenSeeds(f *testing.F, ds string) {
	paths, _ := filepath.Glob(filepath.Join(goldenRoot, ds, "*", "input.json"))
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, false)
		}
	}
	f.Add([]byte(`{}`), true)
	f.Add([]byte(`{"eventTime":null,"productData":[],"eventTarget":{"targetMembers":[null,1,{"idNo":{}}]}}`), true)
	f.Add([]byte(`{"request":"[1,2","response":"{\"header\":{\"isSuccessful\":\"maybe\",\"resultCode\":[]}}"}`), false)
	f.Add([]byte(`{"eventTime":1e400,"historyId":12,"actionSubAccountNo":-1,"sourceIp":"[::1]:0"}`), false)
}

// FuzzNCP and FuzzNHN: any JSON object, mapped by either mapper, never
// panics and gives a document that encodes to JSON and can be checked.
func FuzzNCP(f *testing.F) {
	addGoldenSeeds(f, DatasetNCP)
	f.Fuzz(func(t *testing.T, data []byte, keep bool) { fuzzMap(t, DatasetNCP, data, keep) })
}

func FuzzNHN(f *testing.F) {
	addGoldenSeeds(f, DatasetNHN)
	f.Fuzz(func(t *testing.T, data []byte, keep bool) { fuzzMap(t, DatasetNHN, data, keep) })
}

func fuzzMap(t *testing.T, ds string, data []byte, keep bool) {
	item, err := plugins.ParseObject(data)
	if err != nil {
		return
	}
	tr, err := newTransform(plugins.NopSettings("fuzz"), &Config{KeepOriginal: keep})
	if err != nil {
		t.Fatal(err)
	}
	ev := &plugins.Event{Fields: item, Meta: plugins.Meta{Dataset: ds}}
	if _, err := tr.Process(context.Background(), []*plugins.Event{ev}); err != nil {
		t.Fatal(err)
	}
	out := ev.Fields.AppendJSON(nil)
	if _, err := plugins.ParseObject(out); err != nil {
		t.Fatalf("document is not JSON: %v\n%s", err, out)
	}
	if ev.Meta.ID == "" {
		t.Fatal("no event id")
	}
	// Check never panics; the fields the mapper always writes are valid.
	for _, v := range Check(ev.Fields) {
		switch v.Field {
		case "event.kind", "event.module", "event.dataset", "event.category", "event.type",
			"event.outcome", "event.created", "cloud.provider", "ecs.version", "source.ip", "related.ip":
			t.Fatalf("mapper wrote an invalid %s: %s\n%s", v.Field, v, out)
		}
	}
}
