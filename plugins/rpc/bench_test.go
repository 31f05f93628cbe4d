package rpc

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

func benchEvents(n int) []*plugins.Event {
	out := make([]*plugins.Event, n)
	for i := range out {
		o := plugins.NewObject(8)
		o.SetKey("@timestamp", "2026-01-01T00:00:00.000Z")
		ev := plugins.NewObject(4)
		ev.SetKey("id", "ev-1")
		ev.SetKey("dataset", "test")
		ev.SetKey("sequence", i)
		ev.SetKey("action", "login")
		o.SetKey("event", ev)
		o.SetKey("message", strings.Repeat("x", 830))
		out[i] = &plugins.Event{Fields: o, Meta: plugins.Meta{ID: "ev-1", Time: time.Now()}}
	}
	return out
}

// labellingServer serves the benchmarks' transform (labels.plugin set on
// every event) and creates an instance with the host's features.
func labellingServer(features uint32) (*Server, *CreateResponse) {
	fn := func(e []*plugins.Event) ([]*plugins.Event, error) {
		for _, ev := range e {
			ev.Fields.Set("labels.plugin", "x")
		}
		return e, nil
	}
	srv, _ := NewServer(testFactories(&created{}, fn, nil, nil), ServerConfig{})
	cr, _ := srv.Create(context.Background(), &CreateRequest{Kind: Kind_KIND_TRANSFORM, Type: "test_transform", Features: features})
	return srv, cr
}

// BenchmarkServerProcess measures the plugin side of one 500-event
// Process call without the transport: decode, transform, diff, encode.
func BenchmarkServerProcess(b *testing.B) {
	srv, cr := labellingServer(0)
	evs := encodeEvents(benchEvents(500), &buffers{})
	req, _ := proto.Marshal(&ProcessRequest{Instance: cr.Instance, Events: evs})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var r ProcessRequest
		if err := proto.Unmarshal(req, &r); err != nil {
			b.Fatal(err)
		}
		resp, _ := srv.Process(context.Background(), &r)
		if _, err := proto.Marshal(resp); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkServerProcessPacked is BenchmarkServerProcess in the packed
// encoding, events as the host benchmark makes them.
func BenchmarkServerProcessPacked(b *testing.B) {
	srv, cr := labellingServer(supportedFeatures)
	events := make([]*plugins.Event, 500)
	for i := range events {
		events[i] = plugintest.Event(i, 1024)
	}
	parts, _ := packEvents(events, &buffers{}, true)
	req, _ := proto.Marshal(&ProcessRequest{Instance: cr.Instance, Packed: partData(parts)})
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for i := 0; i < b.N; i++ {
		var r ProcessRequest
		if err := (wireCodec{}).Unmarshal(mem.BufferSlice{mem.SliceBuffer(req)}, &r); err != nil {
			b.Fatal(err)
		}
		resp, _ := srv.Process(context.Background(), &r)
		if resp.Error != nil {
			b.Fatal(resp.Error)
		}
		if _, err := (wireCodec{}).Marshal(resp); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "events/s")
}
