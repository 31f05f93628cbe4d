package rpc

import (
	"context"
	"fmt"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
)

// featureCombos are the four pairings of a host and a plugin with and
// without the packed encoding: within protocol version 1 each must work,
// and the original encoding is what crosses unless both sides announce the
// feature.
var featureCombos = []struct {
	name           string
	host, plugin   uint32
	packed, binary bool
}{
	{"new host, new plugin", supportedFeatures, supportedFeatures, true, true},
	{"new host, old plugin", supportedFeatures, 0, false, false},
	{"old host, new plugin", 0, supportedFeatures, false, false},
	{"old host, old plugin", 0, 0, false, false},
	// Hosts and plugins of session 2: packed parts with JSON documents.
	{"new host, packed-only plugin", supportedFeatures, FeaturePacked, true, false},
	{"packed-only host, new plugin", FeaturePacked, supportedFeatures, true, false},
	// A binary-only peer cannot exist, but must not break anything.
	{"new host, binary-only plugin", supportedFeatures, FeatureBinaryDocs, false, false},
}

func TestFeatureNegotiation(t *testing.T) {
	for _, fc := range featureCombos {
		t.Run(fc.name, func(t *testing.T) {
			// Process: same results as in process, in either encoding.
			for _, tc := range transformCases {
				h := connectFeatures(t, fc.host, fc.plugin, tc.fn, nil, nil)
				ctx := ctxT(t)
				id, err := h.client.Create(ctx, plugins.KindTransform, "test_transform", nil, CreateSettings{ID: "t"})
				if err != nil {
					t.Fatal(err)
				}
				if got := h.client.packed(); got != fc.packed {
					t.Fatalf("packed = %v, want %v", got, fc.packed)
				}
				if got := binaryDocs(h.client.features.Load()); got != fc.binary {
					t.Fatalf("binary documents = %v, want %v", got, fc.binary)
				}
				local, remote := sampleEvents(3), sampleEvents(3)
				want, _ := tc.fn(local)
				got, err := h.client.Process(ctx, id, remote)
				if err != nil {
					t.Fatalf("%s: %v", tc.name, err)
				}
				if len(got) != len(want) {
					t.Fatalf("%s: got %d events, want %d", tc.name, len(got), len(want))
				}
				for i := range want {
					if g, w := string(got[i].AppendJSON(nil)), string(want[i].AppendJSON(nil)); g != w {
						t.Errorf("%s: event %d:\n got %s\nwant %s", tc.name, i, g, w)
					}
					if !sameMeta(&got[i].Meta, &want[i].Meta) {
						t.Errorf("%s: event %d meta: got %+v, want %+v", tc.name, i, got[i].Meta, want[i].Meta)
					}
				}
			}

			// Write: the plugin gets the events as they were.
			h := connectFeatures(t, fc.host, fc.plugin, nil, nil, nil)
			ctx := ctxT(t)
			id, err := h.client.Create(ctx, plugins.KindOutput, "test_output", nil, CreateSettings{ID: "o"})
			if err != nil {
				t.Fatal(err)
			}
			events := sampleEvents(5)
			if err := h.client.Write(ctx, id, events); err != nil {
				t.Fatal(err)
			}
			written := h.created.output(0).events()
			if len(written) != len(events) {
				t.Fatalf("plugin got %d events", len(written))
			}
			for i := range events {
				if g, w := string(written[i].AppendJSON(nil)), string(events[i].AppendJSON(nil)); g != w || !sameMeta(&written[i].Meta, &events[i].Meta) {
					t.Errorf("written event %d: %s %+v", i, g, written[i].Meta)
				}
			}

			// Run: the source's batches and checkpoints arrive.
			h = connectFeatures(t, fc.host, fc.plugin, nil, nil, nil)
			id, err = h.client.Create(ctx, plugins.KindSource, "test_source", []byte(`{"count": 4}`), CreateSettings{ID: "s", Once: true})
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			err = h.client.Run(ctx, id, nil, func(_ context.Context, b plugins.Batch) error {
				for _, ev := range b.Events {
					s, _ := ev.Fields.GetString("event.id")
					ids = append(ids, s+"/"+ev.Meta.Dataset)
				}
				return nil
			})
			if err != nil || fmt.Sprint(ids) != "[ev-0/test ev-1/test ev-2/test ev-3/test]" {
				t.Fatalf("Run = %v, events %v", err, ids)
			}
		})
	}
}

// TestPackedChunks checks that the packed encoding splits a batch into
// several requests like the original one, keeping every event's identity.
func TestPackedChunks(t *testing.T) {
	old := chunkBytes
	chunkBytes = 1 << 10
	t.Cleanup(func() { chunkBytes = old })
	fn := func(e []*plugins.Event) ([]*plugins.Event, error) {
		for _, ev := range e {
			ev.Fields.SetKey("seen", true)
		}
		return e, nil
	}
	h := connect(t, fn, nil, nil)
	ctx := ctxT(t)
	id, err := h.client.Create(ctx, plugins.KindTransform, "test_transform", nil, CreateSettings{ID: "t"})
	if err != nil || !h.client.packed() {
		t.Fatal(err, h.client.packed())
	}
	events := sampleEvents(300)
	parts, _ := packEvents(events, &buffers{}, true)
	if n := len(groupParts(parts)); n < 2 {
		t.Fatalf("%d requests", n)
	}
	got, err := h.client.Process(ctx, id, events)
	if err != nil || len(got) != len(events) {
		t.Fatalf("Process: %d events, %v", len(got), err)
	}
	for i, ev := range got {
		if ev != events[i] {
			t.Fatalf("event %d is not the host's own", i)
		}
		if v, _ := ev.Fields.GetKey("seen"); v != true {
			t.Fatalf("event %d not transformed", i)
		}
	}
}
