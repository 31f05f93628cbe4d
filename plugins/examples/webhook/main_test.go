package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

func TestConformance(t *testing.T) {
	plugintest.Run(t, newFactory(), plugintest.Options{})
}

func TestREADMEShowsTheSample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(readme)
	if m == nil || string(m[1]) != string(sample) {
		t.Fatalf("README.md's yaml block differs from sample.yaml; copy sample.yaml into it")
	}
}

// receiver answers with the scripted statuses, then 200, recording bodies.
type receiver struct {
	mu      sync.Mutex
	script  []int
	bodies  []string
	headers []http.Header
	split   int  // answer 413 to bodies with more than split events
	refuse  bool // answer 413 to every body
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.headers = append(r.headers, req.Header.Clone())
	if r.refuse || r.split > 0 && strings.Count(string(body), "\n") > r.split {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		return
	}
	if len(r.script) > 0 {
		code := r.script[0]
		r.script = r.script[1:]
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(code)
		fmt.Fprint(w, "scripted failure")
		return
	}
	r.bodies = append(r.bodies, string(body))
}

func newOutput(t *testing.T, mod func(*Config)) (plugins.Output, *receiver) {
	t.Helper()
	rec := &receiver{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	cfg := defaultConfig()
	cfg.URL = srv.URL + "/hook"
	cfg.InitialBackoff = time.Millisecond
	if mod != nil {
		mod(cfg)
	}
	if err := plugins.ValidateConfig("", cfg); err != nil {
		t.Fatal(err)
	}
	c, err := newFactory().Create(context.Background(), plugins.NopSettings("hook"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c.(plugins.Output), rec
}

func events(n int) []*plugins.Event {
	out := make([]*plugins.Event, n)
	for i := range out {
		out[i] = plugins.NewEvent()
		out[i].Fields.Set("event.id", fmt.Sprintf("e%d", i))
	}
	return out
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name   string
		script []int
		mod    func(*Config)
		check  func(t *testing.T, err error, r *receiver)
	}{
		{"ndjson", nil, func(c *Config) { c.Token = "tok-123456"; c.Headers = map[string]string{"X-Source": "forwarder"} },
			func(t *testing.T, err error, r *receiver) {
				if err != nil || len(r.bodies) != 1 || r.bodies[0] != "{\"event\":{\"id\":\"e0\"}}\n{\"event\":{\"id\":\"e1\"}}\n" {
					t.Fatalf("err %v bodies %q", err, r.bodies)
				}
				h := r.headers[0]
				if h.Get("Authorization") != "Bearer tok-123456" || h.Get("X-Source") != "forwarder" || h.Get("Content-Type") != "application/x-ndjson" {
					t.Fatalf("headers %v", h)
				}
			}},
		{"json array", nil, func(c *Config) { c.Format = "json_array" }, func(t *testing.T, err error, r *receiver) {
			if err != nil || r.bodies[0] != `[{"event":{"id":"e0"}},{"event":{"id":"e1"}}]` {
				t.Fatalf("err %v bodies %q", err, r.bodies)
			}
		}},
		{"retried then accepted", []int{503, 429, 500}, nil, func(t *testing.T, err error, r *receiver) {
			if err != nil || len(r.headers) != 4 || len(r.bodies) != 1 {
				t.Fatalf("err %v after %d requests", err, len(r.headers))
			}
		}},
		{"retries exhausted: plain error", []int{503, 503, 503, 503, 503}, nil, func(t *testing.T, err error, r *receiver) {
			if err == nil || plugins.IsPermanent(err) || !strings.Contains(err.Error(), "503") || len(r.headers) != 4 {
				t.Fatalf("err %v after %d requests", err, len(r.headers))
			}
		}},
		{"refused payload: permanent", []int{400}, nil, func(t *testing.T, err error, r *receiver) {
			if !plugins.IsPermanent(err) || !strings.Contains(err.Error(), "scripted failure") || len(r.headers) != 1 {
				t.Fatalf("err %v after %d requests", err, len(r.headers))
			}
		}},
		{"unauthorized: retriable", []int{401, 401, 401, 401}, func(c *Config) { c.Token = "secret-token-1" }, func(t *testing.T, err error, r *receiver) {
			if err == nil || plugins.IsPermanent(err) || strings.Contains(err.Error(), "secret-token-1") {
				t.Fatalf("err %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, rec := newOutput(t, tt.mod)
			rec.script = tt.script
			err := o.Write(context.Background(), events(2))
			tt.check(t, err, rec)
		})
	}
}

func TestTooLargeSplits(t *testing.T) {
	o, rec := newOutput(t, nil)
	rec.split = 2
	if err := o.Write(context.Background(), events(7)); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, b := range rec.bodies {
		total += strings.Count(b, "\n")
	}
	if total != 7 || len(rec.bodies) < 4 {
		t.Fatalf("%d events in %d requests", total, len(rec.bodies))
	}
	// Events the endpoint refuses even alone are permanent per-event failures.
	o2, rec2 := newOutput(t, nil)
	rec2.refuse = true
	err := o2.Write(context.Background(), events(3))
	var be *plugins.BatchError
	if !errors.As(err, &be) || len(be.Failures) != 3 || !plugins.IsPermanent(be.Failures[2].Err) || be.Failures[2].Index != 2 {
		t.Fatalf("Write = %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.URL = "" }, "url: is required"},
		{func(c *Config) { c.URL = "ftp://x" }, "url: must be an http:// or https:// URL"},
		{func(c *Config) { c.URL = "https://u:p@x" }, "url: must not hold credentials"},
		{func(c *Config) { c.Headers = map[string]string{"Content-Type": "x"} }, "headers:"},
		{func(c *Config) { c.Format = "xml" }, `format: must be ndjson or json_array, got "xml"`},
		{func(c *Config) { c.MaxRetries = -1 }, "max_retries: must be between 0 and 100, got -1"},
		{func(c *Config) { c.InitialBackoff = time.Hour }, "initial_backoff: must be positive and at most 30s"},
	}
	for _, tt := range tests {
		cfg := defaultConfig()
		cfg.URL = "https://hooks.example.com/x"
		tt.mod(cfg)
		err := plugins.ValidateConfig("", cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate = %v, want %q", err, tt.want)
		}
	}
}
