package ncloud

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/sources/internal/httppoll"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type collector struct {
	mu      sync.Mutex
	events  []*plugins.Event
	batches []plugins.Batch
}

func (c *collector) emit(_ context.Context, b plugins.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches = append(c.batches, b)
	c.events = append(c.events, b.Events...)
	return nil
}

func (c *collector) ids() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]int{}
	for _, ev := range c.events {
		m[ev.Meta.ID]++
	}
	return m
}

func (c *collector) lastCheckpoint() plugins.Checkpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.batches) - 1; i >= 0; i-- {
		if c.batches[i].Checkpoint != nil {
			return c.batches[i].Checkpoint
		}
	}
	return nil
}

func testConfig(endpoint string) *Config {
	c := defaultConfig()
	c.Endpoint = endpoint
	c.AccessKey = SimAccessKey
	c.SecretKey = SimSecretKey
	c.RateLimit = 500
	return c
}

// fastRetries shortens backoffs so fault tests run in milliseconds.
func fastRetries(pc *httppoll.Config) {
	pc.Retry.Initial, pc.Retry.Max = time.Millisecond, 5*time.Millisecond
	pc.Retry.AuthInitial, pc.Retry.AuthMax = 10*time.Millisecond, 20*time.Millisecond
}

func newTestSource(t *testing.T, cfg *Config, once bool, log *syncBuffer) *source {
	t.Helper()
	set := plugins.NopSettings("ncp")
	set.Once = once
	set.DataDir = t.TempDir()
	if log != nil {
		set.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	if err := plugins.ValidateConfig("sources.ncp", cfg); err != nil {
		t.Fatal(err)
	}
	s, err := newSource(set, cfg, fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startSim(t *testing.T, cfg SimulatorConfig) (*Simulator, string) {
	t.Helper()
	sim := NewSimulator(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

func TestBackfillAgainstSimulatorWithFaults(t *testing.T) {
	sim, url := startSim(t, SimulatorConfig{Events: 3000, Seed: 11, FailEvery: 7, RetryAfter: time.Second,
		FailStatuses: []int{503, 500, 504}, MalformedEvery: 0, Record: true, PlainContentType: true})
	var log syncBuffer
	s := newTestSource(t, testConfig(url), true, &log)
	var c collector
	if err := s.Run(context.Background(), nil, c.emit); err != nil {
		t.Fatal(err)
	}
	ids := c.ids()
	want := sim.Events()
	for _, ev := range want {
		if ids[ev.ID] != 1 {
			t.Fatalf("event %s delivered %d times", ev.ID, ids[ev.ID])
		}
	}
	if len(ids) != len(want) {
		t.Fatalf("%d distinct events, want %d", len(ids), len(want))
	}
	if sim.Failures() == 0 {
		t.Fatal("no fault was injected")
	}
	ev := c.events[0]
	if ev.Meta.Source != "ncp" || ev.Meta.Dataset != "ncloud.activity_tracer" || ev.Meta.Received.IsZero() {
		t.Fatalf("meta %+v", ev.Meta)
	}
	if id, _ := ev.Fields.GetString("historyId"); id != ev.Meta.ID {
		t.Fatalf("Meta.ID %s, historyId %s", ev.Meta.ID, id)
	}
	// Requests carry integers, a JSON content type and valid signatures.
	for _, r := range sim.Recorded()[:5] {
		if !bytes.Contains(r.Body, []byte(`"pageIndex":0`)) && !bytes.Contains(r.Body, []byte(`"pageIndex":1`)) {
			t.Fatalf("request body %s: pageIndex not an integer", r.Body)
		}
		if r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("content type %q", r.Header.Get("Content-Type"))
		}
	}
	// Shapes: FAIL results, masked and IPv6 source addresses are present.
	var fail, masked, v6 bool
	for _, e := range c.events {
		r, _ := e.Fields.GetString("actionResultType")
		ip, _ := e.Fields.GetString("sourceIp")
		fail = fail || r == "FAIL"
		masked = masked || ip == MaskedIP
		v6 = v6 || strings.Contains(ip, ":")
	}
	if !fail || !masked || !v6 {
		t.Fatalf("simulated items lack variety: FAIL %v, masked %v, IPv6 %v", fail, masked, v6)
	}
}

func TestRestartFromCheckpointExactlyOnce(t *testing.T) {
	sim, url := startSim(t, SimulatorConfig{Events: 2000, Seed: 5, FailEvery: 5, FailStatuses: []int{503}})
	got := map[string]int{}
	var cp plugins.Checkpoint
	finished := false
	for round := 0; round < 300 && !finished; round++ {
		stopAt := 3 + round%13
		s := newTestSource(t, testConfig(url), true, nil)
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		err := s.Run(ctx, cp, func(_ context.Context, b plugins.Batch) error {
			if n == stopAt { // a clean stop after a few batches
				cancel()
				return context.Canceled
			}
			n++
			for _, ev := range b.Events {
				got[ev.Meta.ID]++
			}
			if b.Checkpoint != nil {
				cp = b.Checkpoint
			}
			return nil
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		finished = n < stopAt // finished before the stop
	}
	if !finished {
		t.Fatal("never caught up")
	}
	for _, ev := range sim.Events() {
		if got[ev.ID] != 1 {
			t.Fatalf("event %s delivered %d times across restarts", ev.ID, got[ev.ID])
		}
	}
}

func TestAuthFailureMessageAndNoEvents(t *testing.T) {
	_, url := startSim(t, SimulatorConfig{Events: 50})
	cfg := testConfig(url)
	cfg.SecretKey = "wrong-secret"
	var log syncBuffer
	s := newTestSource(t, cfg, true, &log)
	var c collector
	err := s.Run(context.Background(), nil, c.emit)
	if !plugins.IsPermanent(err) {
		t.Fatalf("once mode: %v, want a permanent error", err)
	}
	for _, want := range []string{"authentication failed", "HTTP 401", `NCP error 200 \"Authentication Failed\"`, "Signature mismatch", "x-ncp-trace-id"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	if strings.Contains(log.String(), "wrong-secret") || strings.Contains(err.Error(), "wrong-secret") {
		t.Fatal("secret in log or error")
	}
	if len(c.events) != 0 {
		t.Fatalf("%d events emitted", len(c.events))
	}

	// Run mode: not ready, retried on the long backoff, ERROR once per step.
	set := plugins.NopSettings("ncp")
	var mu sync.Mutex
	var status error = errors.New("unset")
	set.Status = plugins.StatusFunc(func(err error) { mu.Lock(); status = err; mu.Unlock() })
	var log2 syncBuffer
	set.Logger = slog.New(slog.NewTextHandler(&log2, nil))
	s2, err := newSource(set, cfg, fastRetries)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if err := s2.Run(ctx, nil, c.emit); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if status == nil || !strings.Contains(status.Error(), "authentication failed") {
		t.Fatalf("status %v, want not ready with the auth error", status)
	}
	// 150ms with a 10..20ms long backoff: a handful of steps, never a spin.
	if n := strings.Count(log2.String(), "level=ERROR"); n < 2 || n > 20 {
		t.Fatalf("%d ERROR lines in 150ms", n)
	}
}

func TestPermissionDenied(t *testing.T) {
	_, url := startSim(t, SimulatorConfig{Events: 5, DenyPermission: true, NumericErrorCodes: true})
	s := newTestSource(t, testConfig(url), true, nil)
	err := s.Run(context.Background(), nil, (&collector{}).emit)
	if err == nil || !strings.Contains(err.Error(), `permission denied: HTTP 401, NCP error 210 "Permission Denied"`) {
		t.Fatalf("error %v", err)
	}
}

func TestClockSkewCorrected(t *testing.T) {
	sim, url := startSim(t, SimulatorConfig{Events: 300, Now: func() time.Time { return time.Now().Add(17 * time.Minute) }})
	var log syncBuffer
	s := newTestSource(t, testConfig(url), true, &log)
	var c collector
	if err := s.Run(context.Background(), nil, c.emit); err != nil {
		t.Fatal(err)
	}
	if len(c.ids()) == 0 {
		t.Fatal("nothing collected")
	}
	if !strings.Contains(log.String(), "local clock is off") || !strings.Contains(log.String(), "clock_offset=17m") {
		t.Fatalf("no clock correction logged:\n%s", log.String())
	}
	// Events after the local "now" (the simulator runs 17m ahead) are the
	// next poll's; everything up to the local now is here.
	for _, ev := range sim.Events() {
		if ev.Time.Before(time.Now().Add(-time.Minute)) && c.ids()[ev.ID] != 1 {
			t.Fatalf("event %s missing", ev.ID)
		}
	}
}

func TestLateEventsInsideOverlapCollected(t *testing.T) {
	sim, url := startSim(t, SimulatorConfig{Events: 1, Span: time.Hour, LiveRate: 200, LateFraction: 0.3, LateBy: 700 * time.Millisecond, Seed: 3})
	cfg := testConfig(url)
	cfg.Interval = 100 * time.Millisecond
	cfg.Overlap = time.Minute
	s := newTestSource(t, cfg, false, nil)
	var c collector
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx, nil, c.emit) }()
	time.Sleep(2500 * time.Millisecond)
	stop := time.Now()
	time.Sleep(1500 * time.Millisecond) // > LateBy + interval: the late ones have been polled
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ids := c.ids()
	late, total := 0, 0
	for _, ev := range sim.Events() {
		if ev.Time.After(stop) {
			continue
		}
		total++
		if ev.VisibleAt.After(ev.Time) {
			late++
		}
		if ids[ev.ID] != 1 {
			t.Fatalf("event %s (late %v) delivered %d times", ev.ID, ev.VisibleAt.After(ev.Time), ids[ev.ID])
		}
	}
	if late < 10 || total < 100 {
		t.Fatalf("only %d events, %d late: the test proves nothing", total, late)
	}
}

func TestSimulatorGatewayChecks(t *testing.T) {
	sim, url := startSim(t, SimulatorConfig{Events: 10, Now: func() time.Time { return time.UnixMilli(1728529785024) }})
	post := func(body string, mutate func(*http.Request)) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url+ActivitiesPath, strings.NewReader(body))
		SignRequest(req, 1728529785024, SimAccessKey, SimSecretKey)
		if mutate != nil {
			mutate(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		if resp.Header.Get(HeaderTraceID) == "" {
			t.Error("no x-ncp-trace-id")
		}
		return resp.StatusCode, b.String()
	}
	cases := []struct {
		name, body string
		mutate     func(*http.Request)
		status     int
		contains   string
	}{
		{"ok, strings as in the doc", `{"pageIndex":"0","pageSize":"4"}`, nil, 200, `"pageSize":4,"itemCount":4,"hasMore":true`},
		{"page size 101", `{"pageSize":101}`, nil, 400, `{"error":{"errorCode":"100","message":"Bad Request Exception","details":"pageSize must be 100 or less"}}`},
		{"bad signature", `{}`, func(r *http.Request) { r.Header.Set(HeaderSignature, "AAAA") }, 401, `"errorCode":"200","message":"Authentication Failed"`},
		{"unknown key", `{}`, func(r *http.Request) { SignRequest(r, 1728529785024, "other", SimSecretKey) }, 401, `Invalid access key`},
		{"skewed timestamp", `{}`, func(r *http.Request) { SignRequest(r, 1728529785024-301000, SimAccessKey, SimSecretKey) }, 401, `Invalid timestamp`},
		{"missing header", `{}`, func(r *http.Request) { r.Header.Del(HeaderAccessKey) }, 401, `x-ncp-iam-access-key is missing`},
		{"signature covers the query", `{}`, func(r *http.Request) { r.URL.RawQuery = "x=1" }, 401, `Signature mismatch`},
	}
	for _, c := range cases {
		st, body := post(c.body, c.mutate)
		if st != c.status || !strings.Contains(body, c.contains) {
			t.Errorf("%s: %d %s\nwant %d containing %s", c.name, st, body, c.status, c.contains)
		}
	}
	if sim.Requests() != int64(len(cases)) {
		t.Fatalf("%d requests counted", sim.Requests())
	}
}

func TestSimulatorNewestFirstAndStableIDs(t *testing.T) {
	now := func() time.Time { return time.UnixMilli(1728529785024) }
	a := NewSimulator(SimulatorConfig{Events: 500, Seed: 9, Now: now})
	b := NewSimulator(SimulatorConfig{Events: 500, Seed: 9, Now: now})
	ea, eb := a.Events(), b.Events()
	for i := range ea {
		if ea[i].ID != eb[i].ID {
			t.Fatal("same seed, different ids")
		}
	}
	page := a.page(simRequest{from: 0, to: now().UnixMilli(), pageSize: 100}, now().UnixMilli())
	pg, err := ParsePage(page)
	if err != nil {
		t.Fatal(err)
	}
	prev := int64(1 << 62)
	for _, it := range pg.Items {
		v, _ := it.GetKey("eventTime")
		ms, _ := toInt64(v)
		if ms > prev {
			t.Fatal("items not newest first")
		}
		prev = ms
	}
	if !pg.HasMore || len(pg.Items) != 100 {
		t.Fatalf("first page: %d items, hasMore %v", len(pg.Items), pg.HasMore)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Setenv(EnvAccessKey, "")
	t.Setenv(EnvSecretKey, "")
	cases := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"defaults", func(*Config) {}, ""},
		{"gov endpoint", func(c *Config) { c.Endpoint = GovEndpoint }, ""},
		{"fin endpoint", func(c *Config) { c.Endpoint = FinancialEndpoint + "/" }, ""},
		{"test endpoint", func(c *Config) { c.Endpoint = "http://127.0.0.1:8080" }, ""},
		{"page size", func(c *Config) { c.PageSize = 500 }, "sources.ncp.page_size: must be between 1 and 100, got 500"},
		{"lookback 40 days", func(c *Config) { c.Lookback = 960 * time.Hour }, "sources.ncp.lookback: must be between 1s and 720h"},
		{"endpoint path", func(c *Config) { c.Endpoint = PublicEndpoint + "/api/v1/activities" }, "sources.ncp.endpoint: must be the API's base URL"},
		{"endpoint scheme", func(c *Config) { c.Endpoint = "ftp://x" }, "sources.ncp.endpoint: must be an http(s) URL"},
		{"no keys", func(c *Config) { c.AccessKey, c.SecretKey = "", "" }, "sources.ncp.access_key: is required (or set NCLOUD_ACCESS_KEY_ID)"},
		{"rate", func(c *Config) { c.RateLimit = 0 }, "sources.ncp.rate_limit"},
		{"retries", func(c *Config) { c.MaxRetries = -2 }, "sources.ncp.max_retries"},
		{"ca file", func(c *Config) { c.TLS.CAFile = "/nonexistent/ca.pem" }, "sources.ncp.tls.ca_file: cannot be read"},
	}
	for _, c := range cases {
		cfg := defaultConfig()
		cfg.AccessKey, cfg.SecretKey = "ak", "sk"
		c.mutate(cfg)
		err := plugins.ValidateConfig("sources.ncp", cfg)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Credentials from the environment.
	t.Setenv(EnvAccessKey, "env-ak")
	t.Setenv(EnvSecretKey, "env-sk")
	cfg := defaultConfig()
	if err := plugins.ValidateConfig("sources.ncp", cfg); err != nil {
		t.Fatal(err)
	}
	if ak, sk := cfg.credentials(); ak.Reveal() != "env-ak" || sk.Reveal() != "env-sk" {
		t.Fatal("env credentials not used")
	}
	cfg.SecretKey = "supersecret"
	if s := fmt.Sprintf("%+v %v", cfg, cfg); strings.Contains(s, "supersecret") {
		t.Fatal("secret printed")
	}
}

func TestFactoryDecodesSample(t *testing.T) {
	f := NewFactory()
	if f.Type() != TypeName {
		t.Fatal(f.Type())
	}
	raw := map[string]any{"endpoint": GovEndpoint, "access_key": "a", "secret_key": "b", "page_size": 50, "rate_limit": 2.5, "tls": map[string]any{"ca_file": ""}}
	cfg := f.CreateDefaultConfig()
	if err := plugins.DecodeConfig(raw, cfg); err != nil {
		t.Fatal(err)
	}
	if err := plugins.ValidateConfig("sources.ncp", cfg); err != nil {
		t.Fatal(err)
	}
	c, err := f.Create(context.Background(), plugins.NopSettings("ncp"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close(context.Background())
}
