package ecs

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditforwarder/forwarder/plugins"
)

func newTestTransform(t testing.TB, cfg *Config) (*transform, *prometheus.Registry) {
	t.Helper()
	if cfg == nil {
		cfg = defaultConfig()
	}
	reg := prometheus.NewRegistry()
	set := plugins.NopSettings("ecs")
	set.Metrics = reg
	set.Now = func() time.Time { return goldenReceived }
	tr, err := newTransform(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tr, reg
}

func parse(t testing.TB, s string) *plugins.Object {
	t.Helper()
	o, err := plugins.ParseObject([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestUnknownDatasetPassesThroughAndIsCounted(t *testing.T) {
	tr, _ := newTestTransform(t, nil)
	gen := parse(t, `{"event":{"id":"gen-1","dataset":"generate"},"message":"x"}`)
	before := string(gen.AppendJSON(nil))
	evs := []*plugins.Event{
		{Fields: gen, Meta: plugins.Meta{Dataset: "generate"}},
		{Fields: parse(t, `{"a":1}`)},
		{Fields: nil, Meta: plugins.Meta{Dataset: DatasetNCP}},
		nil,
	}
	out, err := tr.Process(context.Background(), evs)
	if err != nil || len(out) != 4 {
		t.Fatalf("Process: %v, %d events", err, len(out))
	}
	if out[0].Fields != gen || string(gen.AppendJSON(nil)) != before {
		t.Fatal("an event of an unknown dataset was modified")
	}
	if got := testutil.ToFloat64(tr.m.events[2]); got != 4 {
		t.Fatalf("passthrough counter = %v, want 4", got)
	}
}

func TestDatasetFromEventDatasetField(t *testing.T) {
	tr, _ := newTestTransform(t, nil)
	for _, in := range []string{
		`{"event.dataset":"ncloud.activity_tracer","historyId":"h1","eventTime":1728529785024,"productName":"Server","actionDisplayName":"Create Server","actionResultType":"SUCCESS"}`,
		`{"event":{"dataset":"ncloud.activity_tracer"},"historyId":"h1","eventTime":1728529785024,"productName":"Server","actionDisplayName":"Create Server","actionResultType":"SUCCESS"}`,
	} {
		ev := &plugins.Event{Fields: parse(t, in)}
		if _, err := tr.Process(context.Background(), []*plugins.Event{ev}); err != nil {
			t.Fatal(err)
		}
		if v := Check(ev.Fields); len(v) > 0 {
			t.Fatalf("%s: %v", in, v)
		}
		if ev.Meta.Dataset != DatasetNCP || ev.Meta.ID != "h1" {
			t.Errorf("meta = %+v", ev.Meta)
		}
		if _, ok := ev.Fields.Get("ncloud.activity_tracer.event"); ok {
			t.Error("the dataset hint ended up under the vendor namespace")
		}
	}
}

func TestAlreadyECSPassesThrough(t *testing.T) {
	tr, _ := newTestTransform(t, nil)
	doc := parse(t, validDoc)
	ev := &plugins.Event{Fields: doc, Meta: plugins.Meta{Dataset: DatasetNCP}}
	tr.Process(context.Background(), []*plugins.Event{ev})
	if ev.Fields != doc || string(doc.AppendJSON(nil)) != string(parse(t, validDoc).AppendJSON(nil)) {
		t.Fatal("an ECS document was mapped again")
	}
	if got := testutil.ToFloat64(tr.m.events[3]); got != 1 {
		t.Fatalf("already_ecs counter = %v", got)
	}
}

func TestMetaAndFallbacks(t *testing.T) {
	tr, _ := newTestTransform(t, nil)
	// No id, no received time, unreadable event time, but a Meta.Time.
	item := `{"eventTime":"not a time","eventId":"event_id.iaas.instance.create","userIp":"203.0.113.9"}`
	raw := parse(t, item)
	metaTime := time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	ev := &plugins.Event{Fields: parse(t, item), Meta: plugins.Meta{Dataset: DatasetNHN, Time: metaTime}}
	tr.Process(context.Background(), []*plugins.Event{ev})
	if want := plugins.Fingerprint(raw); ev.Meta.ID != want {
		t.Errorf("Meta.ID = %q, want the fingerprint %q", ev.Meta.ID, want)
	}
	if id, _ := ev.Fields.GetString("event.id"); id != ev.Meta.ID {
		t.Errorf("event.id = %q, Meta.ID = %q", id, ev.Meta.ID)
	}
	if ts, _ := ev.Fields.GetString("@timestamp"); ts != "2025-03-04T05:06:07.890Z" {
		t.Errorf("@timestamp = %q, want Meta.Time", ts)
	}
	if c, _ := ev.Fields.GetString("event.created"); c != "2026-01-02T03:04:05.678Z" {
		t.Errorf("event.created = %q, want Settings.Now", c)
	}
	if v, _ := ev.Fields.GetString("nhncloud.cloudtrail.eventTime"); v != "not a time" {
		t.Errorf("unreadable eventTime not kept: %q", v)
	}
	if got := testutil.ToFloat64(tr.m.badTime); got != 1 {
		t.Errorf("invalid time counter = %v", got)
	}

	// The source's id wins over the fingerprint; the item's id over both.
	ev = &plugins.Event{Fields: parse(t, item), Meta: plugins.Meta{Dataset: DatasetNHN, ID: "from-source"}}
	tr.Process(context.Background(), []*plugins.Event{ev})
	if id, _ := ev.Fields.GetString("event.id"); id != "from-source" {
		t.Errorf("event.id = %q, want Meta.ID", id)
	}
	ev = &plugins.Event{Fields: parse(t, `{"historyId":"h9","eventTime":1728529785024}`), Meta: plugins.Meta{Dataset: DatasetNCP, ID: "from-source"}}
	tr.Process(context.Background(), []*plugins.Event{ev})
	if id, _ := ev.Fields.GetString("event.id"); id != "h9" {
		t.Errorf("event.id = %q, want historyId", id)
	}
	if !ev.Meta.Time.Equal(time.UnixMilli(1728529785024)) {
		t.Errorf("Meta.Time = %v", ev.Meta.Time)
	}
}

func TestKeepOriginalIsTheRawItem(t *testing.T) {
	tr, _ := newTestTransform(t, &Config{KeepOriginal: true})
	in, err := os.ReadFile(filepath.Join(goldenRoot, DatasetNHN, "doc-v1-member-role-update", "input.json"))
	if err != nil {
		t.Fatal(err)
	}
	ev := &plugins.Event{Fields: parse(t, string(in)), Meta: plugins.Meta{Dataset: DatasetNHN}}
	tr.Process(context.Background(), []*plugins.Event{ev})
	orig, _ := ev.Fields.GetString("event.original")
	var a, b any
	if err := json.Unmarshal([]byte(orig), &a); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(in, &b)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("event.original differs from the item:\n%s\n%s", ja, jb)
	}
}

// Nothing the API said is lost: every non-empty value of every golden
// input (JSON inside request/response strings included) appears in the
// document, except eventTime, which became @timestamp, and NCP's
// actionResultType SUCCESS / FAIL, which became event.outcome.
func TestNothingIsLost(t *testing.T) {
	for _, ds := range []string{DatasetNCP, DatasetNHN} {
		dirs, _ := filepath.Glob(filepath.Join(goldenRoot, ds, "*", "input.json"))
		for _, path := range dirs {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			item := parse(t, string(in))
			want := map[string]bool{}
			for i := 0; i < item.Len(); i++ {
				if item.Key(i) == "eventTime" {
					if _, ok := parseEpochMillis(item.Value(i)); ok {
						continue
					}
					if _, ok := parseISOTime(str(item.Value(i))); ok {
						continue
					}
				}
				if k := item.Key(i); ds == DatasetNCP && k == "actionResultType" {
					if r := str(item.Value(i)); r == "SUCCESS" || r == "FAIL" {
						continue
					}
				}
				leaves(item.Value(i), want, true)
			}
			doc := mapOne(t, defaultConfig(), ds, in)
			got := map[string]bool{}
			leaves(doc, got, false)
			for v := range want {
				if !got[v] {
					t.Errorf("%s: value %q is in the item but not in the document", path, v)
				}
			}
		}
	}
}

// leaves collects the text of every non-empty scalar; embedded JSON
// strings are opened when open is set.
func leaves(v any, into map[string]bool, open bool) {
	switch t := v.(type) {
	case *plugins.Object:
		for i := 0; i < t.Len(); i++ {
			leaves(t.Value(i), into, open)
		}
	case []any:
		for _, e := range t {
			leaves(e, into, open)
		}
	case string:
		if t == "" {
			return
		}
		if open && (strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[")) {
			if p, err := plugins.ParseValue([]byte(t)); err == nil {
				leaves(p, into, open)
				return
			}
		}
		into[t] = true
	case plugins.Number:
		into[string(t)] = true
	case bool:
		if t {
			into["true"] = true
		} else {
			into["false"] = true
		}
	case int:
		into[string(plugins.AppendJSONValue(nil, t))] = true
	}
}

// The transform reuses buffers across events: documents of one batch must
// not share mutable state.
func TestBatchDocumentsAreIndependent(t *testing.T) {
	tr, _ := newTestTransform(t, nil)
	var evs []*plugins.Event
	for _, raw := range [][]byte{benchNCP, benchNHN, benchNCP} {
		evs = append(evs, &plugins.Event{Fields: parse(t, string(raw)), Meta: plugins.Meta{Dataset: map[bool]string{true: DatasetNCP, false: DatasetNHN}[len(raw) == len(benchNCP)]}})
	}
	tr.Process(context.Background(), evs)
	first := string(evs[0].Fields.AppendJSON(nil))
	evs[2].Fields.Set("event.category", []any{"iam"})
	cat, _ := evs[2].Fields.Get("related.ip")
	cat.([]any)[0] = "changed"
	if string(evs[0].Fields.AppendJSON(nil)) != first {
		t.Fatal("changing one document changed another")
	}
	for _, ev := range evs {
		if v := Check(ev.Fields); ev != evs[2] && len(v) > 0 {
			t.Errorf("%v", v)
		}
	}
}

// Parsed responses are cached: each document must still get its own copy.
func TestCachedResponsesAreNotShared(t *testing.T) {
	tr, _ := newTestTransform(t, nil)
	mk := func() *plugins.Event {
		return &plugins.Event{Fields: parse(t, string(benchNHN)), Meta: plugins.Meta{Dataset: DatasetNHN}}
	}
	a, b := mk(), mk()
	tr.Process(context.Background(), []*plugins.Event{a, b})
	ra, _ := a.Fields.GetObject("nhncloud.cloudtrail.response.header")
	rb, _ := b.Fields.GetObject("nhncloud.cloudtrail.response.header")
	if ra == nil || ra == rb {
		t.Fatal("two documents share one response object")
	}
	ra.SetKey("resultMessage", "changed")
	c := mk()
	tr.Process(context.Background(), []*plugins.Event{c})
	if m, _ := c.Fields.GetString("nhncloud.cloudtrail.response.header.resultMessage"); m != "SUCCESS" {
		t.Fatalf("a later document sees another's change: %q", m)
	}
	if o, _ := c.Fields.GetString("event.outcome"); o != "success" {
		t.Fatalf("outcome %q", o)
	}
}

// TestArenaDocumentsMatch: in a pipeline a batch's documents come from an
// arena recycled when the batch is released. They must read exactly as
// plain ones, stay intact while their batch is not released, even as later
// batches are mapped, and be recycled after.
func TestArenaDocumentsMatch(t *testing.T) {
	var inputs []*plugins.Event
	for _, ds := range []string{DatasetNCP, DatasetNHN} {
		dirs, err := filepath.Glob(filepath.Join(goldenRoot, ds, "*", "input.json"))
		if err != nil || len(dirs) == 0 {
			t.Fatalf("no golden inputs for %s: %v", ds, err)
		}
		for _, f := range dirs {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			inputs = append(inputs, &plugins.Event{Fields: parse(t, string(raw)), Meta: plugins.Meta{Dataset: ds, Received: goldenReceived}})
		}
	}
	batch := func() []*plugins.Event {
		out := make([]*plugins.Event, len(inputs))
		for i, ev := range inputs {
			out[i] = ev.Clone()
		}
		return out
	}
	tr, _ := newTestTransform(t, nil)
	plain := batch()
	if _, err := tr.Process(context.Background(), plain); err != nil {
		t.Fatal(err)
	}
	want := make([]string, len(plain))
	for i, ev := range plain {
		want[i] = string(ev.Fields.AppendJSON(nil))
	}
	check := func(name string, evs []*plugins.Event) {
		t.Helper()
		for i, ev := range evs {
			if got := string(ev.Fields.AppendJSON(nil)); got != want[i] {
				t.Fatalf("%s, document %d:\n got %s\nwant %s", name, i, got, want[i])
			}
		}
	}
	var releases []func()
	inBatch := func() context.Context {
		return plugins.WithRelease(context.Background(), func(fn func()) { releases = append(releases, fn) })
	}
	a, b := batch(), batch()
	tr.Process(inBatch(), a)
	tr.Process(inBatch(), b)
	if len(releases) != 2 {
		t.Fatalf("%d releases registered for 2 batches", len(releases))
	}
	check("batch a, b mapped after it", a)
	check("batch b", b)
	docA, _ := a[0].Fields.GetObject("event")
	releases[0]() // a is delivered: its arena is recycled
	if docA.Len() != 0 {
		t.Fatal("the released batch's objects were not recycled")
	}
	c := batch()
	tr.Process(inBatch(), c)
	check("batch c, in a's recycled arena", c)
	check("batch b, after a's release", b)
}
