package rpc

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

func TestRegionAllocator(t *testing.T) {
	r := newRegionOver(make([]byte, 8*sharedAlign))
	type span struct{ off, n int }
	take := func(n int) span {
		t.Helper()
		off, mem, ok := r.alloc(n)
		if !ok || len(mem) != n || cap(mem) != n {
			t.Fatalf("alloc(%d) = %d, %d bytes (cap %d), %v", n, off, len(mem), cap(mem), ok)
		}
		return span{off, n}
	}
	a := take(1)               // page 0
	b := take(sharedAlign + 1) // pages 1-2
	c := take(sharedAlign)     // page 3
	if a.off != 0 || b.off != sharedAlign || c.off != 3*sharedAlign {
		t.Fatalf("offsets %d %d %d: want lowest first, page aligned", a.off, b.off, c.off)
	}
	if _, _, ok := r.alloc(5 * sharedAlign); ok {
		t.Fatal("alloc beyond the free room succeeded")
	}
	// Freed neighbours coalesce: a (1 page) + b (2 pages) make room for 3.
	r.release(a.off, a.n, true)
	r.release(b.off, b.n, true)
	if d := take(3 * sharedAlign); d.off != 0 {
		t.Fatalf("coalesced room at %d, want 0", d.off)
	}
	// Room a failed call used is never handed out again.
	r.release(c.off, c.n, false)
	for {
		off, _, ok := r.alloc(sharedAlign)
		if !ok {
			break
		}
		if off == c.off {
			t.Fatalf("abandoned room at %d was reused", off)
		}
	}
	if got := r.free; len(got) != 0 {
		t.Fatalf("free list %v after taking every page", got)
	}
	// Close waits for the allocations in use before unmapping.
	r.mu.Lock()
	active := r.active
	r.mu.Unlock()
	r.Close()
	if r.mem == nil {
		t.Fatalf("unmapped with %d allocations in use", active)
	}
	if _, _, ok := r.alloc(1); ok {
		t.Fatal("alloc after Close succeeded")
	}
}

func TestSharedPartsBounds(t *testing.T) {
	mem := make([]byte, 100)
	tests := []struct {
		name  string
		sp    *SharedParts
		sizes []int
		want  string
	}{
		{"parts", &SharedParts{Offset: 10, Sizes: []uint32{5, 0, 85}}, []int{5, 0, 85}, ""},
		{"empty", &SharedParts{Offset: 100}, []int{}, ""},
		{"offset beyond", &SharedParts{Offset: 101, Sizes: []uint32{0}}, nil, "beyond the 100-byte region"},
		{"huge offset", &SharedParts{Offset: 1 << 63, Sizes: []uint32{1}}, nil, "beyond"},
		{"part beyond", &SharedParts{Offset: 90, Sizes: []uint32{5, 6}}, nil, "shared part 1 (6 bytes at 95) ends beyond"},
		{"huge part", &SharedParts{Offset: 0, Sizes: []uint32{1<<32 - 1}}, nil, "ends beyond"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts, err := sharedParts(mem, tt.sp)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("err = %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var sizes []int
			for _, p := range parts {
				sizes = append(sizes, len(p))
				if cap(p) != len(p) {
					t.Fatalf("part capacity %d > length %d: appending would overwrite the next", cap(p), len(p))
				}
			}
			if !slices.Equal(sizes, tt.sizes) && len(sizes)+len(tt.sizes) > 0 {
				t.Fatalf("sizes %v, want %v", sizes, tt.sizes)
			}
		})
	}
	if _, err := sharedParts(nil, &SharedParts{}); err == nil {
		t.Fatal("a request in shared memory was accepted without a region")
	}
}

// FuzzSharedParts: whatever a request says, the parts lie in the region
// or the request is refused; nothing panics.
func FuzzSharedParts(f *testing.F) {
	f.Add(uint64(0), uint32(10), uint32(20), 64)
	f.Add(uint64(60), uint32(4), uint32(0), 64)
	f.Add(uint64(1<<63), uint32(1), uint32(1), 1)
	f.Fuzz(func(t *testing.T, off uint64, a, b uint32, size int) {
		size = min(max(size, 0), 1<<16)
		mem := make([]byte, size)
		parts, err := sharedParts(mem, &SharedParts{Offset: off, Sizes: []uint32{a, b}})
		if err != nil {
			return
		}
		if size == 0 || off+uint64(a)+uint64(b) > uint64(size) {
			t.Fatalf("accepted parts %d+%d at %d in %d bytes", a, b, off, size)
		}
		if len(parts[0]) != int(a) || len(parts[1]) != int(b) {
			t.Fatalf("part sizes %d %d, want %d %d", len(parts[0]), len(parts[1]), a, b)
		}
	})
}

// connectShared connects a host and a plugin that share a region of size
// bytes, or, with pluginMaps false, a plugin that did not map it.
func connectShared(t *testing.T, size int, pluginMaps bool, trFn func([]*plugins.Event) ([]*plugins.Event, error), outErr func([]*plugins.Event) error) (*harness, *Region) {
	t.Helper()
	mem := make([]byte, size)
	cfg, pluginSide := ServerConfig{}, supportedFeatures
	if pluginMaps {
		cfg.Shared, pluginSide = mem, supportedFeatures|FeatureShared
	}
	c := &created{}
	h := connectFactories(t, supportedFeatures|FeatureShared, pluginSide, testFactories(c, trFn, outErr, nil), cfg)
	h.created = c
	r := newRegionOver(mem)
	h.client.UseShared(r)
	return h, r
}

// Batches in shared memory give the results of batches in the message,
// for transforms and outputs; a plugin that did not map the region, or a
// batch that does not fit, crosses the socket as before.
func TestSharedMemoryTransport(t *testing.T) {
	tests := []struct {
		name       string
		size       int
		pluginMaps bool
		shared     bool // the batch must have crossed in the region
	}{
		{"shared", 1 << 20, true, true},
		{"plugin without the region", 1 << 20, false, false},
		{"batch too big for the region", sharedAlign, true, false},
	}
	for _, tt := range tests {
		for _, tc := range transformCases {
			t.Run(tt.name+"/"+tc.name, func(t *testing.T) {
				h, r := connectShared(t, tt.size, tt.pluginMaps, tc.fn, nil)
				mem := r.mem
				ctx := ctxT(t)
				id, err := h.client.Create(ctx, plugins.KindTransform, "test_transform", nil, CreateSettings{ID: "t"})
				if err != nil {
					t.Fatal(err)
				}
				if h.client.SharedMemory() != tt.pluginMaps {
					t.Fatalf("SharedMemory() = %v, want %v", !tt.pluginMaps, tt.pluginMaps)
				}
				n := 3
				if tt.size == sharedAlign {
					n = 64 // more than a page of parts
				}
				want, err := tc.fn(sampleEvents(n))
				if err != nil {
					t.Fatal(err)
				}
				got, err := h.client.Process(ctx, id, sampleEvents(n))
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("got %d events, want %d", len(got), len(want))
				}
				for i := range want {
					if g, w := got[i].AppendJSON(nil), want[i].AppendJSON(nil); !bytes.Equal(g, w) || !sameMeta(&got[i].Meta, &want[i].Meta) {
						t.Errorf("event %d:\n got %s %+v\nwant %s %+v", i, g, got[i].Meta, w, want[i].Meta)
					}
				}
				if used := bytes.Contains(mem, []byte("203.0.113.7")); used != tt.shared {
					t.Fatalf("batch in the shared region: %v, want %v", used, tt.shared)
				}
			})
		}
	}

	t.Run("output", func(t *testing.T) {
		// The output reads its events during Write (they are its own only
		// until Write returns, when the host may reuse the room).
		var mu sync.Mutex
		var written []string
		h, r := connectShared(t, 1<<20, true, nil, func(evs []*plugins.Event) error {
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range evs {
				written = append(written, string(ev.AppendJSON(nil)))
			}
			return nil
		})
		ctx := ctxT(t)
		id, err := h.client.Create(ctx, plugins.KindOutput, "test_output", nil, CreateSettings{ID: "o"})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if err := h.client.Write(ctx, id, sampleEvents(5)); err != nil {
				t.Fatal(err)
			}
		}
		var want []string
		for range 3 {
			for _, ev := range sampleEvents(5) {
				want = append(want, string(ev.AppendJSON(nil)))
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(written, want) {
			t.Fatalf("written:\n%s\nwant:\n%s", strings.Join(written, "\n"), strings.Join(want, "\n"))
		}
		if !bytes.Contains(r.mem, []byte("203.0.113.7")) {
			t.Fatal("the batches did not cross in the shared region")
		}
	})

	t.Run("host without a region", func(t *testing.T) {
		c := &created{}
		h := connectFactories(t, supportedFeatures, supportedFeatures|FeatureShared, testFactories(c, transformCases[0].fn, nil, nil),
			ServerConfig{Shared: make([]byte, 1<<20)})
		id, err := h.client.Create(ctxT(t), plugins.KindTransform, "test_transform", nil, CreateSettings{ID: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if h.client.SharedMemory() {
			t.Fatal("shared memory used by a host that offered none")
		}
		if out, err := h.client.Process(ctxT(t), id, sampleEvents(3)); err != nil || len(out) != 3 {
			t.Fatalf("Process: %d events, %v", len(out), err)
		}
	})
}

// The room of a call that failed without an answer may still be read by
// the plugin: it is never handed out again, and the region outlives it.
func TestSharedRoomOfAnUnansweredCallIsNotReused(t *testing.T) {
	fn, dieDuringProcess := blockingTransform()
	h, r := connectShared(t, 1<<20, true, fn, nil)
	if err := dieDuringProcess(t, h); !errors.Is(err, ErrCrashed) {
		t.Fatalf("Process = %v, want ErrCrashed", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active != 0 || len(r.free) != 1 || r.free[0].off != sharedAlign {
		t.Fatalf("after the unanswered call: %d in use, free %v; want the first page never free again", r.active, r.free)
	}
}

// The plugin's decoders are pooled: once a call is answered, the memory
// of its events (objects, boxed values, the events themselves) serves the
// next request, and the results stay exact.
func TestPluginReusesTheMemoryOfAnsweredCalls(t *testing.T) {
	seen := map[*plugins.Object]bool{}
	reused := 0
	fn := func(e []*plugins.Event) ([]*plugins.Event, error) {
		for _, ev := range e {
			if seen[ev.Fields] {
				reused++
			}
			seen[ev.Fields] = true
			ev.Fields.Set("labels.plugin", "x")
		}
		return e, nil
	}
	srv, err := NewServer(testFactories(&created{}, fn, nil, nil), ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cr, _ := srv.Create(context.Background(), &CreateRequest{Kind: Kind_KIND_TRANSFORM, Type: "test_transform", Features: supportedFeatures})
	for call := range 20 {
		events := make([]*plugins.Event, 100)
		for i := range events {
			events[i] = plugintest.Event(call*100+i, 300)
		}
		parts, _ := packEvents(events, &buffers{}, true)
		resp, err := srv.Process(context.Background(), &ProcessRequest{Instance: cr.Instance, Packed: partData(parts)})
		if err != nil || resp.Error != nil {
			t.Fatal(err, resp.GetError())
		}
		out, err := unpackOut(resp.PackedOut, events, nil, true)
		if err != nil || len(out) != len(events) {
			t.Fatalf("call %d: %d events, %v", call, len(out), err)
		}
		for i, ev := range out {
			want := plugintest.Event(call*100+i, 300)
			want.Fields.Set("labels.plugin", "x")
			if g, w := ev.AppendJSON(nil), want.AppendJSON(nil); !bytes.Equal(g, w) {
				t.Fatalf("call %d event %d:\n got %s\nwant %s", call, i, g, w)
			}
		}
	}
	// sync.Pool may drop decoders (it does often under -race): ask for
	// some reuse, not all.
	if reused == 0 {
		t.Fatal("no decoded object was ever reused: the decoders are not pooled")
	}
}
