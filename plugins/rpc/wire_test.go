package rpc

import (
	"bytes"
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/auditforwarder/forwarder/plugins"
)

// frames cuts b into buffers of at most n bytes, as gRPC hands over a
// message received in several HTTP/2 frames.
func frames(b []byte, n int) mem.BufferSlice {
	var out mem.BufferSlice
	for len(b) > 0 {
		k := min(n, len(b))
		out = append(out, mem.SliceBuffer(bytes.Clone(b[:k])))
		b = b[k:]
	}
	return out
}

var wireMessages = []struct {
	name string
	msg  proto.Message
	// fast: wireCodec marshals it itself (the others go to protobuf).
	fast bool
}{
	{"packed request", &ProcessRequest{Instance: 7, Packed: [][]byte{[]byte("part one"), {}, []byte("part three")}}, true},
	{"packed request, instance 0", &ProcessRequest{Packed: [][]byte{[]byte("x")}}, true},
	{"packed write", &WriteRequest{Instance: 1 << 40, Packed: [][]byte{bytes.Repeat([]byte("y"), 70000)}}, true},
	{"packed response", &ProcessResponse{PackedOut: [][]byte{[]byte("out"), []byte("out 2")}}, true},
	{"events request", &ProcessRequest{Instance: 3, Events: []*Event{{Fields: []byte(`{"a":1}`), Meta: &Meta{Id: "x"}}}}, false},
	{"empty request", &ProcessRequest{Instance: 3}, false},
	{"response with error", &ProcessResponse{Error: &Error{Message: "boom"}, PackedOut: [][]byte{[]byte("x")}}, false},
	{"events response", &ProcessResponse{Events: []*OutEvent{{Origin: 1, Replace: true, Fields: []byte(`{}`)}}}, false},
	{"other message", &CreateRequest{Type: "t", ConfigJson: []byte(`{}`), Features: 3}, false},
}

// TestWireCodecMatchesProto checks that wireCodec writes the bytes
// protobuf writes and reads what protobuf reads, so a peer using the
// plain codec cannot tell the difference.
func TestWireCodecMatchesProto(t *testing.T) {
	for _, tt := range wireMessages {
		t.Run(tt.name, func(t *testing.T) {
			want, err := proto.MarshalOptions{Deterministic: true}.Marshal(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			data, err := wireCodec{}.Marshal(tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if got := data.Materialize(); !bytes.Equal(got, want) {
				t.Errorf("Marshal:\n got %x\nwant %x", got, want)
			}
			if got := sendsInPlace(data, tt.msg); got != tt.fast {
				t.Errorf("parts sent in place = %v, want %v", got, tt.fast)
			}
			for _, n := range []int{1, 7, 16 << 10, len(want) + 1} {
				got := tt.msg.ProtoReflect().New().Interface()
				if err := (wireCodec{}).Unmarshal(frames(want, n), got); err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(got, tt.msg) {
					t.Errorf("Unmarshal (frames of %d): got %v, want %v", n, got, tt.msg)
				}
			}
		})
	}
	// A field this version does not know goes through protobuf, which
	// keeps it.
	unknown := protowire.AppendTag(nil, 99, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, []byte("future"))
	b, _ := proto.Marshal(&ProcessRequest{Instance: 1, Packed: [][]byte{[]byte("p")}})
	var got ProcessRequest
	if err := (wireCodec{}).Unmarshal(frames(append(b, unknown...), 4), &got); err != nil {
		t.Fatal(err)
	}
	if got.Instance != 1 || len(got.Packed) != 1 || !bytes.Equal(got.ProtoReflect().GetUnknown(), unknown) {
		t.Errorf("with an unknown field: %v", &got)
	}
	// Received parts are capped: appending to one never writes over the
	// next.
	if err := (wireCodec{}).Unmarshal(frames(mustMarshal(t, wireMessages[0].msg), 3), &got); err != nil {
		t.Fatal(err)
	}
	_ = append(got.Packed[0], "!!!"...)
	if string(got.Packed[2]) != "part three" {
		t.Errorf("an append to a part changed the next: %q", got.Packed[2])
	}
}

// sendsInPlace reports whether data points at m's first packed part
// instead of a copy of it.
func sendsInPlace(data mem.BufferSlice, m proto.Message) bool {
	var parts [][]byte
	switch m := m.(type) {
	case *ProcessRequest:
		parts = m.Packed
	case *WriteRequest:
		parts = m.Packed
	case *ProcessResponse:
		parts = m.PackedOut
	}
	if len(parts) == 0 {
		return false
	}
	for _, b := range data {
		if d := b.ReadOnlyData(); len(d) > 0 && &d[0] == &parts[0][0] {
			return true
		}
	}
	return false
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzWireUnmarshal checks that wireCodec reads any input as protobuf
// does: the same message, or an error.
func FuzzWireUnmarshal(f *testing.F) {
	for _, m := range wireMessages {
		b, _ := proto.Marshal(m.msg)
		f.Add(b)
	}
	f.Add([]byte{0x1a, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []proto.Message{&ProcessRequest{}, &WriteRequest{}, &ProcessResponse{}} {
			want := m.ProtoReflect().New().Interface()
			werr := proto.Unmarshal(data, want)
			got := m.ProtoReflect().New().Interface()
			gerr := (wireCodec{}).Unmarshal(frames(data, 5), got)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("%T: protobuf error %v, wireCodec error %v", m, werr, gerr)
			}
			if werr == nil && !proto.Equal(got, want) {
				t.Fatalf("%T: got %v, want %v", m, got, want)
			}
		}
	})
}

// TestWireCodecPairings runs packed Process and Write calls between every
// pairing of a host and a plugin with and without wireCodec (a host or
// plugin of session 2 uses gRPC's own codec).
func TestWireCodecPairings(t *testing.T) {
	fn := func(e []*plugins.Event) ([]*plugins.Event, error) {
		for _, ev := range e {
			ev.Fields.Set("labels.plugin", "x")
		}
		return e, nil
	}
	for _, pair := range []struct {
		name         string
		host, plugin bool
	}{
		{"wire host, wire plugin", true, true},
		{"wire host, plain plugin", true, false},
		{"plain host, wire plugin", false, true},
	} {
		t.Run(pair.name, func(t *testing.T) {
			c := &created{}
			srv, err := NewServer(testFactories(c, fn, nil, nil), ServerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			var sopts []grpc.ServerOption
			if pair.plugin {
				sopts = ServerOptions()
			}
			gs := grpc.NewServer(sopts...)
			if err := (&GRPCPlugin{Impl: srv}).GRPCServer(nil, gs); err != nil {
				t.Fatal(err)
			}
			lis := bufconn.Listen(1 << 20)
			go func() { _ = gs.Serve(lis) }()
			t.Cleanup(gs.Stop)
			dopts := []grpc.DialOption{
				grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			}
			if pair.host {
				dopts = append(dopts, DialOptions()...)
			}
			conn, err := grpc.NewClient("passthrough:///plugin", dopts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.Close() })
			client := NewClient(nil, conn)
			ctx := ctxT(t)

			id, err := client.Create(ctx, plugins.KindTransform, "test_transform", nil, CreateSettings{ID: "t"})
			if err != nil || !client.packed() {
				t.Fatal(err, client.packed())
			}
			local, remote := sampleEvents(300), sampleEvents(300)
			want, _ := fn(local)
			got, err := client.Process(ctx, id, remote)
			if err != nil || len(got) != len(want) {
				t.Fatalf("Process: %d events, %v", len(got), err)
			}
			for i := range want {
				if g, w := string(got[i].AppendJSON(nil)), string(want[i].AppendJSON(nil)); g != w {
					t.Fatalf("event %d:\n got %s\nwant %s", i, g, w)
				}
			}

			id, err = client.Create(ctx, plugins.KindOutput, "test_output", nil, CreateSettings{ID: "o"})
			if err != nil {
				t.Fatal(err)
			}
			events := sampleEvents(5)
			if err := client.Write(ctx, id, events); err != nil {
				t.Fatal(err)
			}
			written := c.output(0).events()
			if len(written) != len(events) {
				t.Fatalf("plugin got %d events", len(written))
			}
			for i := range events {
				if g, w := string(written[i].AppendJSON(nil)), string(events[i].AppendJSON(nil)); g != w {
					t.Errorf("written event %d: %s", i, g)
				}
			}
		})
	}
}
