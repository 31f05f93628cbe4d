package elasticsearch

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// bulkDoc is one action + document of a bulk body, as a fake node sees it.
type bulkDoc struct {
	Op    string
	Index string
	ID    string
	Doc   map[string]any
}

// fakeES is an httptest server that speaks enough of the Elasticsearch API
// for the output: index templates, data stream creation, ping and _bulk.
// bulk decides each request's answer; nil answers 201 for every item.
type fakeES struct {
	*httptest.Server
	mu        sync.Mutex
	requests  []*http.Request
	bulks     [][]bulkDoc
	templates map[string][]byte
	templPuts int
	bulk      func(docs []bulkDoc) (status int, body string)
	// template answers GET/PUT _index_template when set.
	template func(r *http.Request) (int, string)
	// down makes every request fail with 503.
	down bool
}

func newFakeES(t *testing.T) *fakeES {
	t.Helper()
	f := &fakeES{templates: map[string][]byte{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeES) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			http.Error(w, "bad gzip", 400)
			return
		}
		body, _ = io.ReadAll(zr)
	}
	f.mu.Lock()
	f.requests = append(f.requests, r)
	down := f.down
	f.mu.Unlock()
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	if down {
		w.WriteHeader(503)
		_, _ = io.WriteString(w, `{"error":{"type":"master_not_discovered_exception","reason":"down"},"status":503}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/_index_template/"):
		if f.template != nil {
			f.mu.Lock()
			st, b := f.template(r)
			f.mu.Unlock()
			w.WriteHeader(st)
			_, _ = io.WriteString(w, b)
			return
		}
		name := strings.TrimPrefix(path, "/_index_template/")
		f.mu.Lock()
		defer f.mu.Unlock()
		switch r.Method {
		case http.MethodGet:
			b, ok := f.templates[name]
			if !ok {
				w.WriteHeader(404)
				_, _ = io.WriteString(w, `{"error":{"type":"resource_not_found_exception","reason":"index template matching [`+name+`] not found"},"status":404}`)
				return
			}
			fmt.Fprintf(w, `{"index_templates":[{"name":%q,"index_template":%s}]}`, name, b)
		case http.MethodPut:
			f.templates[name] = body
			f.templPuts++
			_, _ = io.WriteString(w, `{"acknowledged":true}`)
		}
	case strings.HasPrefix(path, "/_data_stream/"):
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"error":{"type":"resource_already_exists_exception","reason":"data_stream exists"},"status":400}`)
	case path == "/" || path == "":
		_, _ = io.WriteString(w, `{}`)
	case strings.HasSuffix(path, "/_bulk"):
		docs, err := parseBulkBody(body)
		if err != nil {
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error":{"type":"parse_exception","reason":%q},"status":400}`, err.Error())
			return
		}
		f.mu.Lock()
		f.bulks = append(f.bulks, docs)
		h := f.bulk
		if h == nil {
			h = func(docs []bulkDoc) (int, string) { return 200, itemsResponse(docs, nil) }
		}
		st, b := h(docs) // under the lock: handlers may keep state
		f.mu.Unlock()
		w.WriteHeader(st)
		_, _ = io.WriteString(w, b)
	default:
		w.WriteHeader(404)
		_, _ = io.WriteString(w, `{"error":"no handler"}`)
	}
}

func parseBulkBody(body []byte) ([]bulkDoc, error) {
	var out []bulkDoc
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil {
			return nil, fmt.Errorf("action line: %w", err)
		}
		if len(action) != 1 {
			return nil, fmt.Errorf("action line with %d keys", len(action))
		}
		var d bulkDoc
		for op, a := range action {
			d.Op, d.Index, d.ID = op, a.Index, a.ID
		}
		if !sc.Scan() {
			return nil, fmt.Errorf("action without document")
		}
		if err := json.Unmarshal(sc.Bytes(), &d.Doc); err != nil {
			return nil, fmt.Errorf("document line: %w", err)
		}
		out = append(out, d)
	}
	if len(body) > 0 && body[len(body)-1] != '\n' {
		return nil, fmt.Errorf("body does not end with a newline")
	}
	return out, sc.Err()
}

// itemsResponse answers each doc with status(doc) (201 when status is nil),
// in the shape filter_path=errors,items.*.status,items.*.error leaves.
func itemsResponse(docs []bulkDoc, status func(d bulkDoc) int) string {
	var b strings.Builder
	errs := false
	items := make([]string, len(docs))
	for i, d := range docs {
		st := 201
		if status != nil {
			st = status(d)
		}
		switch {
		case st < 300:
			items[i] = fmt.Sprintf(`{%q:{"status":%d}}`, d.Op, st)
		case st == 409:
			errs = true
			items[i] = fmt.Sprintf(`{%q:{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[%s]: version conflict, document already exists (current version [1])"}}}`, d.Op, d.ID)
		case st == 400:
			errs = true
			items[i] = fmt.Sprintf(`{%q:{"status":400,"error":{"type":"document_parsing_exception","reason":"[1:53] failed to parse field [source.ip] of type [ip] in document with id '%s'","caused_by":{"type":"illegal_argument_exception","reason":"'x' is not an IP string literal."}}}}`, d.Op, d.ID)
		case st == 429:
			errs = true
			items[i] = fmt.Sprintf(`{%q:{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}}}`, d.Op)
		default:
			errs = true
			items[i] = fmt.Sprintf(`{%q:{"status":%d,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}`, d.Op, st)
		}
	}
	fmt.Fprintf(&b, `{"errors":%t,"items":[%s]}`, errs, strings.Join(items, ","))
	return b.String()
}

func (f *fakeES) puts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.templPuts
}

func (f *fakeES) allBulks() [][]bulkDoc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]bulkDoc(nil), f.bulks...)
}

// testEvents returns n events shaped like the generate source's.
func testEvents(n int) []*plugins.Event {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]*plugins.Event, n)
	for i := range out {
		id := fmt.Sprintf("ev-%d", i)
		ts := base.Add(time.Duration(i) * time.Minute)
		o := plugins.NewObject(6)
		o.SetKey("@timestamp", ts.Format("2006-01-02T15:04:05.000Z"))
		o.Set("event.id", id)
		o.Set("event.dataset", "test")
		o.Set("source.ip", fmt.Sprintf("203.0.113.%d", i%250+1))
		o.Set("user.email", fmt.Sprintf("user%d@example.com", i%97))
		o.SetKey("message", strings.Repeat("x", 200))
		out[i] = &plugins.Event{Fields: o, Meta: plugins.Meta{Source: "test", Dataset: "test", ID: id, Time: ts}}
	}
	return out
}

// statusRecorder collects the statuses an output reports.
type statusRecorder struct {
	mu   sync.Mutex
	errs []error
}

func (s *statusRecorder) SetStatus(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
}

func (s *statusRecorder) last() (error, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) == 0 {
		return nil, false
	}
	return s.errs[len(s.errs)-1], true
}
