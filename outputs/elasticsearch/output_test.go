package elasticsearch

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditforwarder/forwarder/plugins"
)

// newTestOutput builds and starts an output against addr with cfg tweaks.
func newTestOutput(t *testing.T, addr string, tweak func(*Config)) (*output, *statusRecorder, *prometheus.Registry) {
	t.Helper()
	cfg := defaultConfig()
	cfg.Addresses = []string{addr}
	if tweak != nil {
		tweak(cfg)
	}
	if err := plugins.ValidateConfig("outputs.es", cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	set := plugins.NopSettings("es")
	rec := &statusRecorder{}
	reg := prometheus.NewRegistry()
	set.Status, set.Metrics = rec, reg
	o, err := newOutput(set, cfg)
	if err != nil {
		t.Fatalf("newOutput: %v", err)
	}
	if err := o.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	return o, rec, reg
}

func TestWriteActionLines(t *testing.T) {
	cases := []struct {
		name      string
		tweak     func(*Config)
		mutate    func(evs []*plugins.Event)
		wantOp    string
		wantIndex []string
		wantIDs   []string
	}{
		{
			name:      "data stream: op create, _id from Meta.ID",
			wantOp:    "create",
			wantIndex: []string{DefaultIndex, DefaultIndex, DefaultIndex},
			wantIDs:   []string{"ev-0", "ev-1", "ev-2"},
		},
		{
			name:   "index mode with a daily pattern from the event time",
			tweak:  func(c *Config) { c.DataStream = false; c.Index = "cloudaudit-%{+yyyy.MM.dd}" },
			wantOp: "index",
			mutate: func(evs []*plugins.Event) {
				evs[2].Meta.Time = time.Date(2026, 3, 4, 23, 59, 0, 0, time.FixedZone("KST", 9*3600))
			},
			wantIndex: []string{"cloudaudit-2026.01.01", "cloudaudit-2026.01.01", "cloudaudit-2026.03.04"},
			wantIDs:   []string{"ev-0", "ev-1", "ev-2"},
		},
		{
			name:   "index mode: date from @timestamp when Meta.Time is unset",
			tweak:  func(c *Config) { c.DataStream = false; c.Index = "audit-%{+yyyy.MM}" },
			mutate: func(evs []*plugins.Event) { evs[0].Meta.Time = time.Time{} },
			wantOp: "index", wantIndex: []string{"audit-2026.01", "audit-2026.01", "audit-2026.01"},
			wantIDs: []string{"ev-0", "ev-1", "ev-2"},
		},
		{
			name: "_id falls back to event.id, and is omitted without any id",
			mutate: func(evs []*plugins.Event) {
				evs[0].Meta.ID = ""
				evs[1].Meta.ID = ""
				evs[1].Fields.Delete("event.id")
			},
			wantOp:    "create",
			wantIndex: []string{DefaultIndex, DefaultIndex, DefaultIndex},
			wantIDs:   []string{"ev-0", "", "ev-2"},
		},
		{
			name:  "ids needing JSON escaping",
			tweak: func(c *Config) {},
			mutate: func(evs []*plugins.Event) {
				evs[0].Meta.ID = `a"b\c` + "\n"
			},
			wantOp:    "create",
			wantIndex: []string{DefaultIndex, DefaultIndex, DefaultIndex},
			wantIDs:   []string{`a"b\c` + "\n", "ev-1", "ev-2"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeES(t)
			o, _, _ := newTestOutput(t, f.URL, tc.tweak)
			evs := testEvents(3)
			if tc.mutate != nil {
				tc.mutate(evs)
			}
			if err := o.Write(context.Background(), evs); err != nil {
				t.Fatalf("Write: %v", err)
			}
			bulks := f.allBulks()
			if len(bulks) != 1 || len(bulks[0]) != 3 {
				t.Fatalf("want one bulk of 3 docs, got %d bulks", len(bulks))
			}
			for i, d := range bulks[0] {
				if d.Op != tc.wantOp || d.Index != tc.wantIndex[i] || d.ID != tc.wantIDs[i] {
					t.Errorf("doc %d: got op=%s index=%s id=%q, want op=%s index=%s id=%q",
						i, d.Op, d.Index, d.ID, tc.wantOp, tc.wantIndex[i], tc.wantIDs[i])
				}
				if d.Doc["message"] == nil {
					t.Errorf("doc %d: document body missing: %v", i, d.Doc)
				}
			}
		})
	}
}

func TestWriteDoesNotModifyEvents(t *testing.T) {
	f := newFakeES(t)
	o, _, _ := newTestOutput(t, f.URL, nil)
	evs := testEvents(5)
	before := make([]string, len(evs))
	for i, ev := range evs {
		before[i] = string(ev.AppendJSON(nil))
	}
	if err := o.Write(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	for i, ev := range evs {
		if got := string(ev.AppendJSON(nil)); got != before[i] {
			t.Fatalf("event %d changed:\n%s\n%s", i, before[i], got)
		}
	}
}

func TestWriteItemResults(t *testing.T) {
	// Item statuses by event index; the rest are 201.
	statuses := map[string]int{"ev-1": 409, "ev-2": 400, "ev-3": 429, "ev-4": 503, "ev-5": 404}
	f := newFakeES(t)
	f.bulk = func(docs []bulkDoc) (int, string) {
		return 200, itemsResponse(docs, func(d bulkDoc) int {
			if st, ok := statuses[d.ID]; ok {
				return st
			}
			return 201
		})
	}
	o, _, reg := newTestOutput(t, f.URL, nil)
	err := o.Write(context.Background(), testEvents(8))
	var be *plugins.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("want *plugins.BatchError, got %T %v", err, err)
	}
	got := map[int]bool{} // index → permanent
	for _, fl := range be.Failures {
		got[fl.Index] = plugins.IsPermanent(fl.Err)
	}
	want := map[int]bool{2: true, 3: false, 4: false, 5: false}
	if len(got) != len(want) {
		t.Fatalf("failures %v, want %v", got, want)
	}
	for i, perm := range want {
		if p, ok := got[i]; !ok || p != perm {
			t.Errorf("event %d: failed=%v permanent=%v, want permanent=%v", i, ok, p, perm)
		}
	}
	for _, fl := range be.Failures {
		if fl.Index == 2 && !strings.Contains(fl.Err.Error(), "failed to parse field [source.ip]") {
			t.Errorf("permanent failure should carry Elasticsearch's reason, got %v", fl.Err)
		}
	}
	if v := testutil.ToFloat64(o.m.indexed); v != 3 {
		t.Errorf("indexed = %v, want 3", v)
	}
	if v := testutil.ToFloat64(o.m.duplicates); v != 1 {
		t.Errorf("duplicates = %v, want 1", v)
	}
	if v := testutil.ToFloat64(o.m.failedVec.WithLabelValues("document_parsing_exception")); v != 1 {
		t.Errorf("failed{document_parsing_exception} = %v, want 1", v)
	}
	if v := testutil.ToFloat64(o.m.retriedVec.WithLabelValues("es_rejected_execution_exception")); v != 1 {
		t.Errorf("retried{es_rejected_execution_exception} = %v, want 1", v)
	}
	if n, err := testutil.GatherAndCount(reg, "forwarder_elasticsearch_docs_retried_total"); err != nil || n != 2 {
		t.Errorf("retried series = %d (%v), want 2 reasons", n, err)
	}
}

func TestWriteIndexModeConflictIsRetried(t *testing.T) {
	f := newFakeES(t)
	f.bulk = func(docs []bulkDoc) (int, string) {
		return 200, itemsResponse(docs, func(bulkDoc) int { return 409 })
	}
	o, _, _ := newTestOutput(t, f.URL, func(c *Config) { c.DataStream = false; c.Index = "audit" })
	err := o.Write(context.Background(), testEvents(2))
	var be *plugins.BatchError
	if !errors.As(err, &be) || len(be.Failures) != 2 || plugins.IsPermanent(be.Failures[0].Err) {
		t.Fatalf("with op index a 409 is not a duplicate: want 2 retriable failures, got %v", err)
	}
}

func TestWriteSplitsLargeBatches(t *testing.T) {
	cases := []struct {
		name      string
		maxBytes  int
		maxDocs   int
		n         int
		wantBulks int
	}{
		{"by docs", 5 << 20, 100, 250, 3},
		{"by bytes", 4096, 1000, 100, 0}, // computed below: every bulk ≤ 4096 bytes
		{"one doc larger than the limit goes alone", 1024, 1000, 3, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeES(t)
			o, _, _ := newTestOutput(t, f.URL, func(c *Config) { c.BulkMaxBytes, c.BulkMaxDocs = tc.maxBytes, tc.maxDocs })
			evs := testEvents(tc.n)
			if tc.name == "one doc larger than the limit goes alone" {
				evs[1].Fields.SetKey("message", strings.Repeat("y", 3000))
			}
			if err := o.Write(context.Background(), evs); err != nil {
				t.Fatal(err)
			}
			bulks := f.allBulks()
			seen := 0
			for _, b := range bulks {
				if len(b) > tc.maxDocs {
					t.Errorf("bulk of %d docs > max %d", len(b), tc.maxDocs)
				}
				for _, d := range b {
					if d.ID != evs[seen].Meta.ID {
						t.Fatalf("doc %d out of order: %s", seen, d.ID)
					}
					seen++
				}
			}
			if seen != tc.n {
				t.Fatalf("sent %d docs, want %d", seen, tc.n)
			}
			if tc.wantBulks > 0 && len(bulks) != tc.wantBulks {
				t.Errorf("bulks = %d, want %d", len(bulks), tc.wantBulks)
			}
			if tc.wantBulks == 0 && len(bulks) < 5 {
				t.Errorf("bulks = %d: a 4 KiB limit should split 100 docs of ~400 B into many requests", len(bulks))
			}
		})
	}
}

func TestWriteWholeRequestFailures(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
	}{
		{"429", 429, `{"error":{"type":"es_rejected_execution_exception","reason":"rejected"},"status":429}`},
		{"503", 503, `{"error":{"type":"cluster_block_exception","reason":"blocked"},"status":503}`},
		{"401", 401, `{"error":{"type":"security_exception","reason":"unable to authenticate"},"status":401}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeES(t)
			o, rec, _ := newTestOutput(t, f.URL, nil)
			f.mu.Lock()
			f.bulk = func([]bulkDoc) (int, string) { return tc.status, tc.body }
			f.mu.Unlock()
			err := o.Write(context.Background(), testEvents(3))
			var be *plugins.BatchError
			if err == nil || errors.As(err, &be) || plugins.IsPermanent(err) {
				t.Fatalf("want a plain retriable error, got %T %v", err, err)
			}
			if st, _ := rec.last(); st == nil {
				t.Errorf("status should be not-ready after %s", tc.name)
			}
			f.mu.Lock()
			f.bulk = nil
			f.mu.Unlock()
			if err := o.Write(context.Background(), testEvents(3)); err != nil {
				t.Fatal(err)
			}
			if st, ok := rec.last(); !ok || st != nil {
				t.Errorf("status should be ready after a successful write, got %v", st)
			}
		})
	}
}

func TestWriteLaterChunkFailsAfterEarlierSucceeded(t *testing.T) {
	f := newFakeES(t)
	calls := 0
	f.bulk = func(docs []bulkDoc) (int, string) {
		calls++
		if calls >= 2 { // 503 is retried by the client a few times: fail them all
			return 503, `{"error":{"type":"unavailable_shards_exception","reason":"x"},"status":503}`
		}
		return 200, itemsResponse(docs, nil)
	}
	o, _, _ := newTestOutput(t, f.URL, func(c *Config) { c.BulkMaxDocs = 10 })
	err := o.Write(context.Background(), testEvents(30))
	var be *plugins.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("want BatchError, got %v", err)
	}
	if len(be.Failures) != 20 || be.Failures[0].Index != 10 || plugins.IsPermanent(be.Failures[0].Err) {
		t.Fatalf("want events 10..29 retriable, got %d failures from %d", len(be.Failures), be.Failures[0].Index)
	}
}

func TestWriteRequestTooLargeIsBisected(t *testing.T) {
	f := newFakeES(t)
	f.bulk = func(docs []bulkDoc) (int, string) {
		for _, d := range docs {
			if d.ID == "ev-5" {
				return 413, `{"error":{"type":"content_too_long","reason":"Request Entity Too Large"},"status":413}`
			}
		}
		return 200, itemsResponse(docs, nil)
	}
	o, _, _ := newTestOutput(t, f.URL, nil)
	err := o.Write(context.Background(), testEvents(9))
	var be *plugins.BatchError
	if !errors.As(err, &be) || len(be.Failures) != 1 || be.Failures[0].Index != 5 || !plugins.IsPermanent(be.Failures[0].Err) {
		t.Fatalf("want exactly event 5 permanent, got %v", err)
	}
	if v := testutil.ToFloat64(o.m.indexed); v != 8 {
		t.Errorf("indexed = %v, want 8", v)
	}
}

func TestWriteUnreachable(t *testing.T) {
	o, rec, _ := newTestOutput(t, "http://127.0.0.1:1", nil)
	if st, _ := rec.last(); st == nil {
		t.Fatal("Start against a closed port should report not-ready")
	}
	err := o.Write(context.Background(), testEvents(2))
	if err == nil || plugins.IsPermanent(err) {
		t.Fatalf("want a retriable error, got %v", err)
	}
	var be *plugins.BatchError
	if errors.As(err, &be) {
		t.Fatalf("nothing was sent: want a plain error, got a BatchError")
	}
}

func TestStartRefusals(t *testing.T) {
	f := newFakeES(t)
	f.template = func(*http.Request) (int, string) {
		return 401, `{"error":{"type":"security_exception","reason":"missing authentication credentials"},"status":401}`
	}
	cfg := defaultConfig()
	cfg.Addresses = []string{f.URL}
	o, err := newOutput(plugins.NopSettings("es"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(context.Background())
	if err := o.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "security_exception") {
		t.Fatalf("a 401 on the template should fail Start clearly, got %v", err)
	}
}

func TestTemplateInstalledOnce(t *testing.T) {
	f := newFakeES(t)
	for i := 0; i < 2; i++ {
		o, _, _ := newTestOutput(t, f.URL, nil)
		if err := o.Write(context.Background(), testEvents(1)); err != nil {
			t.Fatal(err)
		}
		_ = o.Close(context.Background())
	}
	if f.puts() != 1 {
		t.Fatalf("template PUT %d times; the second start should find it current", f.puts())
	}
	// A different priority is a different template: installed again.
	newTestOutput(t, f.URL, func(c *Config) { c.TemplatePriority = 300 })
	if f.puts() != 2 {
		t.Fatalf("changed template not reinstalled (puts=%d)", f.puts())
	}
}

func TestTemplateInstalledBeforeFirstWriteWhenStartedOffline(t *testing.T) {
	f := newFakeES(t)
	up := false
	f.template = func(r *http.Request) (int, string) {
		if !up {
			return 503, `{"error":{"type":"master_not_discovered_exception","reason":"no master"},"status":503}`
		}
		if r.Method == http.MethodGet {
			return 404, `{}`
		}
		f.templPuts++
		return 200, `{"acknowledged":true}`
	}
	o, rec, _ := newTestOutput(t, f.URL, nil)
	if st, _ := rec.last(); st == nil {
		t.Fatal("want not-ready while the template cannot be installed")
	}
	if err := o.Write(context.Background(), testEvents(1)); err == nil {
		t.Fatal("a write before the template is installed must fail (retriable)")
	}
	if n := len(f.allBulks()); n != 0 {
		t.Fatalf("no document may be written before the template is installed; %d bulks sent", n)
	}
	f.mu.Lock()
	up = true
	f.mu.Unlock()
	if err := o.Write(context.Background(), testEvents(1)); err != nil {
		t.Fatal(err)
	}
	if f.puts() != 1 || len(f.allBulks()) != 1 {
		t.Fatalf("template puts=%d bulks=%d, want 1 and 1", f.puts(), len(f.allBulks()))
	}
}

func TestAuthHeadersAndGzip(t *testing.T) {
	cases := []struct {
		name  string
		tweak func(*Config)
		want  string
	}{
		{"api key id:key", func(c *Config) { c.APIKey = "myid:mykey" }, "APIKey " + base64.StdEncoding.EncodeToString([]byte("myid:mykey"))},
		{"api key encoded", func(c *Config) { c.APIKey = "bXlpZDpteWtleQ==" }, "APIKey bXlpZDpteWtleQ=="},
		{"basic", func(c *Config) { c.Username, c.Password = "elastic", "s3cret"; c.Compression = "gzip" },
			"Basic " + base64.StdEncoding.EncodeToString([]byte("elastic:s3cret"))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeES(t)
			o, _, _ := newTestOutput(t, f.URL, tc.tweak)
			if err := o.Write(context.Background(), testEvents(2)); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			reqs := append([]*http.Request(nil), f.requests...)
			f.mu.Unlock()
			for _, r := range reqs {
				if got := r.Header.Get("Authorization"); got != tc.want {
					t.Fatalf("%s %s: Authorization %q, want %q", r.Method, r.URL.Path, got, tc.want)
				}
				if strings.HasSuffix(r.URL.Path, "/_bulk") && (o.cfg.Compression == "gzip") != (r.Header.Get("Content-Encoding") == "gzip") {
					t.Fatalf("compression %s but Content-Encoding %q", o.cfg.Compression, r.Header.Get("Content-Encoding"))
				}
			}
			if len(f.allBulks()) != 1 || len(f.allBulks()[0]) != 2 {
				t.Fatal("bulk not received intact")
			}
		})
	}
}

func TestClassifyItem(t *testing.T) {
	mk := func(status int, typ string) bulkItem {
		r := &itemResult{Status: status}
		if typ != "" {
			r.Error = &esError{Type: typ, Reason: "r"}
		}
		return bulkItem{Create: r}
	}
	cases := []struct {
		item     bulkItem
		opCreate bool
		want     itemKind
	}{
		{mk(201, ""), true, itemIndexed},
		{mk(200, ""), false, itemIndexed},
		{mk(409, "version_conflict_engine_exception"), true, itemDuplicate},
		{mk(409, "version_conflict_engine_exception"), false, itemRetry},
		{mk(400, "document_parsing_exception"), true, itemPermanent},
		{mk(400, "mapper_parsing_exception"), true, itemPermanent},
		{mk(400, "illegal_argument_exception"), true, itemPermanent},
		{mk(413, "content_too_long"), true, itemPermanent},
		{mk(400, "index_closed_exception"), true, itemRetry},
		{mk(404, "index_not_found_exception"), true, itemRetry},
		{mk(403, "cluster_block_exception"), true, itemRetry},
		{mk(429, "es_rejected_execution_exception"), true, itemRetry},
		{mk(500, "exception"), true, itemRetry},
		{mk(503, "unavailable_shards_exception"), true, itemRetry},
		{bulkItem{}, true, itemRetry},
	}
	for i, tc := range cases {
		if got := classifyItem(tc.item, tc.opCreate); got.kind != tc.want {
			t.Errorf("case %d: kind %d, want %d", i, got.kind, tc.want)
		}
	}
}

func TestCloseWithoutStartAndTwice(t *testing.T) {
	cfg := defaultConfig()
	o, err := newOutput(plugins.NopSettings("es"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestHealthProbe(t *testing.T) {
	f := newFakeES(t)
	o, rec, _ := newTestOutput(t, f.URL, func(c *Config) { c.HealthCheckInterval = time.Second })
	if st, ok := rec.last(); !ok || st != nil {
		t.Fatalf("want ready after Start, got %v", st)
	}
	waitStatus := func(wantReady bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if st, _ := rec.last(); (st == nil) == wantReady {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("status never became ready=%v", wantReady)
	}
	f.mu.Lock()
	f.down = true
	f.mu.Unlock()
	waitStatus(false)
	if v := testutil.ToFloat64(o.m.up); v != 0 {
		t.Errorf("up = %v while down", v)
	}
	f.mu.Lock()
	f.down = false
	f.mu.Unlock()
	waitStatus(true)
}

func FuzzBulkResponse(f *testing.F) {
	docs := []bulkDoc{{Op: "create", ID: "a"}, {Op: "create", ID: "b"}, {Op: "create", ID: "c"}}
	f.Add([]byte(itemsResponse(docs, func(d bulkDoc) int { return map[string]int{"a": 201, "b": 409, "c": 400}[d.ID] })))
	f.Add([]byte(`{"errors":false,"items":[]}`))
	f.Add([]byte(`{"errors":true,"items":[{"index":{"status":429,"error":{"type":"x","reason":"y","caused_by":{"type":"z"}}}},{},null]}`))
	f.Add([]byte(`{"error":"plain"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = parseErrorJSON(data).String()
		r, err := parseBulkResponse(data)
		if err != nil {
			return
		}
		for _, it := range r.Items {
			out := classifyItem(it, true)
			if out.kind == itemRetry || out.kind == itemPermanent {
				if out.err == nil || out.reason == "" {
					t.Fatalf("failure without reason: %+v", out)
				}
			}
		}
		w := &writeState{o: &output{m: newMetrics(nil), opCreate: true}, events: make([]*plugins.Event, len(r.Items))}
		_ = w.items(data, 0, len(r.Items))
	})
}
