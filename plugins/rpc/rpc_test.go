package rpc

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/auditforwarder/forwarder/plugins"
)

type harness struct {
	client  *Client
	server  *plugin.GRPCServer
	created *created
}

func connect(t *testing.T, trFn func([]*plugins.Event) ([]*plugins.Event, error), outErr func([]*plugins.Event) error, emitted *atomic.Int64) *harness {
	t.Helper()
	return connectFeatures(t, supportedFeatures, supportedFeatures, trFn, outErr, emitted)
}

// connectFeatures connects a host and a plugin announcing the given
// Feature bits: 0 plays a side built before features existed.
func connectFeatures(t *testing.T, host, pluginSide uint32, trFn func([]*plugins.Event) ([]*plugins.Event, error), outErr func([]*plugins.Event) error, emitted *atomic.Int64) *harness {
	t.Helper()
	c := &created{}
	h := connectFactories(t, host, pluginSide, testFactories(c, trFn, outErr, emitted), ServerConfig{})
	h.created = c
	return h
}

// connectFactories connects a host to a plugin serving factories.
func connectFactories(t *testing.T, host, pluginSide uint32, factories []plugins.Factory, cfg ServerConfig) *harness {
	t.Helper()
	srv, err := NewServer(factories, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.features = pluginSide
	gc, gs := plugin.TestPluginGRPCConn(t, false, map[string]plugin.Plugin{PluginName: &GRPCPlugin{Impl: srv}})
	// Close stops the server through go-plugin's controller.
	t.Cleanup(func() { _ = gc.Close() })
	raw, err := gc.Dispense(PluginName)
	if err != nil {
		t.Fatal(err)
	}
	client := raw.(*Client)
	client.offer = host
	return &harness{client: client, server: gs}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNewServerRejectsBadFactories(t *testing.T) {
	c := &created{}
	fs := testFactories(c, nil, nil, nil)
	tests := []struct {
		name      string
		factories []plugins.Factory
		want      string
	}{
		{"none", nil, "no component factories"},
		{"duplicate", []plugins.Factory{fs[0], fs[0]}, "served twice"},
		{"bad type", []plugins.Factory{plugins.NewOutputFactory("Bad-Name", "", nil, defaultTestConfig,
			func(context.Context, plugins.Settings, *testConfig) (plugins.Output, error) { return nil, nil })}, "lower snake_case"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServer(tt.factories, ServerConfig{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewServer: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	h := connect(t, nil, nil, nil)
	infos, err := h.client.Describe(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range infos {
		got = append(got, i.Kind.String()+"/"+i.Type)
	}
	want := "source/test_source transform/test_transform output/test_output"
	if strings.Join(got, " ") != want {
		t.Fatalf("Describe = %v, want %s", got, want)
	}
	if !strings.Contains(string(infos[0].Sample), "type: test_source") || infos[0].Description != "a test source" {
		t.Fatalf("sample/description lost: %+v", infos[0])
	}
}

func TestValidateKeepsKeyPaths(t *testing.T) {
	h := connect(t, nil, nil, nil)
	tests := []struct {
		name    string
		config  string
		want    []string
		secrets []string
	}{
		{"valid", `{"count": 5, "token": "s3cr3t-token", "interval": "30s"}`, nil, []string{"s3cr3t-token"}},
		{"empty", ``, nil, nil},
		{"typo", `{"cuont": 5}`, []string{"cuont: unknown key"}, nil},
		{"nested typo", `{"nested": {"limt": 1}}`, []string{"nested.limt: unknown key"}, nil},
		{"wrong type", `{"count": "five"}`, []string{"count: must be an integer, got a string"}, nil},
		{"integer stays exact", `{"count": 101}`, []string{"count: must be between 0 and 100, got 101"}, nil},
		{"nested validate", `{"nested": {"limit": -1}}`, []string{"nested.limit: must not be negative"}, nil},
		{"bad duration", `{"interval": "soon"}`, []string{"interval: must be a duration"}, nil},
		{"not an object", `[1]`, []string{"config is not a JSON object"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets, err := h.client.Validate(ctxT(t), plugins.KindSource, "test_source", []byte(tt.config))
			lines := plugins.ErrorLines(err)
			if len(lines) != len(tt.want) {
				t.Fatalf("errors = %q, want %q", lines, tt.want)
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error %d = %q, want prefix %q", i, lines[i], w)
				}
			}
			if err != nil && len(tt.want) > 0 && !strings.Contains(tt.want[0], "JSON object") {
				var fe *plugins.FieldError
				if !errors.As(err, &fe) {
					t.Errorf("error %T is not a *plugins.FieldError", err)
				}
				// The host prefixes the component path as for a built-in.
				prefixed := plugins.ErrorLines(plugins.PrefixErrors("sources.remote", err))
				if !strings.HasPrefix(prefixed[0], "sources.remote."+tt.want[0]) {
					t.Errorf("prefixed = %q", prefixed[0])
				}
			}
			if strings.Join(secrets, ",") != strings.Join(tt.secrets, ",") {
				t.Errorf("secrets = %q, want %q", secrets, tt.secrets)
			}
		})
	}
	_, err := h.client.Validate(ctxT(t), plugins.KindOutput, "nope", nil)
	if err == nil || !strings.Contains(err.Error(), `no output type "nope"`) {
		t.Fatalf("unknown type: %v", err)
	}
}

func TestLifecycle(t *testing.T) {
	h := connect(t, nil, nil, nil)
	ctx := ctxT(t)
	set := CreateSettings{ID: "x", DataDir: t.TempDir()}
	if _, err := h.client.Create(ctx, plugins.KindSource, "test_source", []byte(`{"mode":"fail_create"}`), set); err == nil ||
		err.Error() != "cannot create: resource missing" {
		t.Fatalf("Create error = %v", err)
	}
	if _, err := h.client.Create(ctx, plugins.KindSource, "test_source", []byte(`{"count":"x"}`), set); err == nil ||
		!strings.Contains(err.Error(), "count: must be an integer") {
		t.Fatalf("Create with a bad config = %v", err)
	}
	// Close without Start, twice.
	id, err := h.client.Create(ctx, plugins.KindOutput, "test_output", nil, set)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := h.client.Close(ctx, id); err != nil {
			t.Fatalf("Close %d: %v", i, err)
		}
	}
	// Start, Close, Close.
	id, err = h.client.Create(ctx, plugins.KindOutput, "test_output", nil, set)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.client.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := h.client.Close(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := h.client.Close(ctx, id); err != nil {
		t.Fatal(err)
	}
	o := h.created.output(1)
	if got := o.callList(); got != "start,close" {
		t.Fatalf("calls = %s", got)
	}
	if err := h.client.Start(ctx, id); err == nil {
		t.Fatal("Start of a closed instance succeeded")
	}
}

func TestWriteErrorsCrossTheWire(t *testing.T) {
	var mode atomic.Value
	outErr := func(evs []*plugins.Event) error {
		switch mode.Load().(string) {
		case "plain":
			return errors.New("connection refused")
		case "permanent":
			return plugins.Permanent(errors.New("mapping error"))
		case "batch":
			be := &plugins.BatchError{}
			be.Add(0, errors.New("busy"))
			be.Add(2, plugins.Permanent(errors.New("too large")))
			return be
		}
		return nil
	}
	h := connect(t, nil, outErr, nil)
	ctx := ctxT(t)
	id, err := h.client.Create(ctx, plugins.KindOutput, "test_output", nil, CreateSettings{ID: "o"})
	if err != nil {
		t.Fatal(err)
	}
	events := sampleEvents(3)
	tests := []struct {
		mode  string
		check func(error) bool
	}{
		{"ok", func(err error) bool { return err == nil }},
		{"plain", func(err error) bool {
			return err != nil && !plugins.IsPermanent(err) && err.Error() == "connection refused"
		}},
		{"permanent", func(err error) bool { return plugins.IsPermanent(err) && err.Error() == "mapping error" }},
		{"batch", func(err error) bool {
			var be *plugins.BatchError
			return errors.As(err, &be) && len(be.Failures) == 2 &&
				be.Failures[0].Index == 0 && !plugins.IsPermanent(be.Failures[0].Err) && be.Failures[0].Err.Error() == "busy" &&
				be.Failures[1].Index == 2 && plugins.IsPermanent(be.Failures[1].Err)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			mode.Store(tt.mode)
			if err := h.client.Write(ctx, id, events); !tt.check(err) {
				t.Fatalf("Write error = %#v", err)
			}
		})
	}
	mode.Store("ok")
	if err := h.client.Write(ctx, id, nil); err != nil {
		t.Fatalf("empty Write: %v", err)
	}
	got := h.created.output(0).events()[0]
	if string(got.AppendJSON(nil)) != string(events[0].AppendJSON(nil)) || !sameMeta(&got.Meta, &events[0].Meta) {
		t.Fatalf("event changed on the wire: %s %+v", got.AppendJSON(nil), got.Meta)
	}
}

func TestWriteSplitsLargeBatches(t *testing.T) {
	old := chunkBytes
	chunkBytes = 2 << 10
	t.Cleanup(func() { chunkBytes = old })
	var calls atomic.Int64
	outErr := func(evs []*plugins.Event) error {
		if calls.Add(1) == 2 {
			return errors.New("second request failed")
		}
		return nil
	}
	h := connect(t, nil, outErr, nil)
	ctx := ctxT(t)
	id, err := h.client.Create(ctx, plugins.KindOutput, "test_output", nil, CreateSettings{ID: "o"})
	if err != nil {
		t.Fatal(err)
	}
	events := sampleEvents(40)
	err = h.client.Write(ctx, id, events)
	var be *plugins.BatchError
	if !errors.As(err, &be) || calls.Load() < 3 {
		t.Fatalf("Write = %v after %d requests, want a BatchError after several", err, calls.Load())
	}
	// The failed events are exactly the second request's, by the caller's index.
	first := be.Failures[0].Index
	for k, f := range be.Failures {
		if f.Index != first+k || f.Err.Error() != "second request failed" {
			t.Fatalf("failure %d = %+v", k, f)
		}
	}
	if first == 0 || len(be.Failures) == len(events) {
		t.Fatalf("failures %d from %d", len(be.Failures), first)
	}
	if n := len(h.created.output(0).events()); n != len(events) {
		t.Fatalf("plugin saw %d events, want %d", n, len(events))
	}
}

func sampleEvents(n int) []*plugins.Event {
	out := make([]*plugins.Event, n)
	for i := range out {
		o, err := plugins.ParseObject([]byte(`{"@timestamp":"2026-01-01T00:00:00.000Z","event":{"id":"e` + string(rune('a'+i%26)) +
			`","action":"login"},"source":{"ip":"203.0.113.7"},"n":1.5e3,"tags":["a","b"],"msg":"caf\u00e9 \"quoted\"","none":null}`))
		if err != nil {
			panic(err)
		}
		out[i] = &plugins.Event{Fields: o, Meta: plugins.Meta{Source: "s", Dataset: "d", ID: "id",
			Time: time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC), Received: time.Unix(1, 2).UTC()}}
	}
	return out
}
