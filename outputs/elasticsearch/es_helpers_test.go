package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/cmd/forwarder/forwardertest"
)

// The integration tests talk to a real Elasticsearch 8 at
// FORWARDER_TEST_ES_URL (default http://127.0.0.1:19200), as started by
// .ci/services/elasticsearch.sh.
const defaultTestESURL = "http://127.0.0.1:19200"

const startHint = "start it with: bash .ci/services/elasticsearch.sh start"

func esURL() string {
	if u := os.Getenv("FORWARDER_TEST_ES_URL"); u != "" {
		return strings.TrimRight(u, "/")
	}
	return defaultTestESURL
}

var httpc = &http.Client{Timeout: 60 * time.Second}

// requireES fails the test when no node answers.
func requireES(t testing.TB) string {
	t.Helper()
	u := esURL()
	c := &http.Client{Timeout: 5 * time.Second}
	res, err := c.Get(u + "/_cluster/health")
	if err != nil {
		t.Fatalf("Elasticsearch is not reachable at %s (%v); %s", u, err, startHint)
	}
	_ = res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("Elasticsearch at %s answered %d to _cluster/health; %s", u, res.StatusCode, startHint)
	}
	return u
}

// esReq sends a request to the test node and returns status and body.
func esReq(t testing.TB, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, esURL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := httpc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v; %s", method, path, err, startHint)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

// uniqueName returns a fresh lowercase name for a data stream or index.
func uniqueName(prefix string) string {
	return prefix + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// esCount refreshes target and returns its document count.
func esCount(t testing.TB, target string) int {
	t.Helper()
	esReq(t, "POST", "/"+target+"/_refresh", nil)
	st, body := esReq(t, "GET", "/"+target+"/_count", nil)
	if st != 200 {
		t.Fatalf("_count %s: %d %s", target, st, body)
	}
	var r struct {
		Count int `json:"count"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	return r.Count
}

// idCounts returns, for every event.id in target, how many documents hold
// it: a composite aggregation paged through all ids (exact, unlike a
// cardinality aggregation).
func idCounts(t testing.TB, target string) map[string]int {
	t.Helper()
	esReq(t, "POST", "/"+target+"/_refresh", nil)
	out := map[string]int{}
	var after map[string]any
	for {
		comp := map[string]any{
			"size":    10000,
			"sources": []any{map[string]any{"id": map[string]any{"terms": map[string]any{"field": "event.id"}}}},
		}
		if after != nil {
			comp["after"] = after
		}
		st, body := esReq(t, "POST", "/"+target+"/_search", map[string]any{
			"size": 0, "track_total_hits": true,
			"aggs": map[string]any{"ids": map[string]any{"composite": comp}},
		})
		if st != 200 {
			t.Fatalf("composite aggregation on %s: %d %s", target, st, body)
		}
		var r struct {
			Aggregations struct {
				IDs struct {
					AfterKey map[string]any `json:"after_key"`
					Buckets  []struct {
						Key      map[string]string `json:"key"`
						DocCount int               `json:"doc_count"`
					} `json:"buckets"`
				} `json:"ids"`
			} `json:"aggregations"`
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		for _, b := range r.Aggregations.IDs.Buckets {
			out[b.Key["id"]] += b.DocCount
		}
		if len(r.Aggregations.IDs.Buckets) == 0 || r.Aggregations.IDs.AfterKey == nil {
			return out
		}
		after = r.Aggregations.IDs.AfterKey
	}
}

// checkIDsExactlyOnce checks that target holds gen-0 … gen-(n-1), each once.
func checkIDsExactlyOnce(t testing.TB, target string, n int) {
	t.Helper()
	counts := idCounts(t, target)
	if len(counts) != n {
		t.Errorf("%s holds %d distinct event.id, want %d", target, len(counts), n)
	}
	bad := 0
	for i := 0; i < n; i++ {
		id := "gen-" + strconv.Itoa(i)
		if c := counts[id]; c != 1 {
			if bad < 5 {
				t.Errorf("event.id %s present %d times, want exactly once", id, c)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d ids not present exactly once", bad)
	}
}

// fieldType returns the mapped type of a field in any index behind target.
func fieldType(t testing.TB, target, field string) string {
	t.Helper()
	st, body := esReq(t, "GET", "/"+target+"/_mapping/field/"+field, nil)
	if st != 200 {
		t.Fatalf("field mapping %s %s: %d %s", target, field, st, body)
	}
	var r map[string]struct {
		Mappings map[string]struct {
			Mapping map[string]struct {
				Type string `json:"type"`
			} `json:"mapping"`
		} `json:"mappings"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	leaf := field[strings.LastIndexByte(field, '.')+1:]
	for _, idx := range r {
		if m, ok := idx.Mappings[field]; ok {
			return m.Mapping[leaf].Type
		}
	}
	return ""
}

func TestMain(m *testing.M) { forwardertest.Main(m) }

func forwarderBinary(t testing.TB) string { return forwardertest.Binary(t) }

// pipeline writes a pipeline.yaml into dir and returns its path.
func pipeline(t testing.TB, dir, yaml string) string {
	t.Helper()
	p := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runForwarder starts `forwarder run --once -c cfg` and returns a function
// that waits for it (bounded by timeout) and fails the test on a non-zero exit.
func runForwarder(t testing.TB, cfg string, timeout time.Duration) (wait func()) {
	t.Helper()
	bin := forwarderBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	cmd := exec.CommandContext(ctx, bin, "run", "--once", "-c", cfg)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Env = append(os.Environ(), "ES_API_KEY=")
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	return func() {
		defer cancel()
		err := cmd.Wait()
		if err != nil {
			tail := logs.String()
			if len(tail) > 6000 {
				tail = tail[len(tail)-6000:]
			}
			t.Fatalf("forwarder run --once: %v (timeout %s)\n%s", err, timeout, tail)
		}
	}
}
