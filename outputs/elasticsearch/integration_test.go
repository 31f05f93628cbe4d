package elasticsearch

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditforwarder/forwarder/plugins"
)

// generatePipeline is `generate` → elasticsearch, as the tests run it.
func generatePipeline(dataDir, index string, count, batch int, extraSource, extraOutput string) string {
	return fmt.Sprintf(`data_dir: %s
shutdown_timeout: 30s
api:
  address: ""
log:
  level: warn
  format: json
sources:
  gen:
    type: generate
    count: %d
    batch_size: %d
    size: 400
%s
outputs:
  es:
    type: elasticsearch
    inputs: [gen]
    addresses: [%s]
    index: %s
%s
`, dataDir, count, batch, extraSource, esURL(), index, extraOutput)
}

// TestForwarder50kEventsAndReplay runs 50,000 generated events through the
// forwarder binary into a data stream, checks the count, every event.id
// exactly once and the ip mapping, then sends the same events again and
// checks that nothing changed.
func TestForwarder50kEventsAndReplay(t *testing.T) {
	requireES(t)
	const n = 50000
	ds := uniqueName("logs-cloudaudit-t")
	dir := t.TempDir()

	forwarderBinary(t) // build outside the timing
	start := time.Now()
	cfg := pipeline(t, dir, generatePipeline(filepath.Join(dir, "data1"), ds, n, 1000, "", ""))
	runForwarder(t, cfg, 3*time.Minute)()
	t.Logf("first run: %d events in %s", n, time.Since(start).Round(time.Millisecond))

	if got := esCount(t, ds); got != n {
		t.Fatalf("_count = %d, want %d", got, n)
	}
	start = time.Now()
	checkIDsExactlyOnce(t, ds, n)
	t.Logf("id check: %s", time.Since(start).Round(time.Millisecond))
	if typ := fieldType(t, ds, "source.ip"); typ != "ip" {
		t.Errorf("source.ip mapped as %q, want ip", typ)
	}
	if typ := fieldType(t, ds, "@timestamp"); typ != "date" {
		t.Errorf("@timestamp mapped as %q, want date", typ)
	}
	st, body := esReq(t, "GET", "/_index_template/"+ds, nil)
	if st != 200 || !strings.Contains(string(body), `"priority":200`) || !strings.Contains(string(body), `"data_stream":{`) {
		t.Errorf("index template %s: %d %s", ds, st, truncate(string(body), 500))
	}

	// The same events again, from a fresh data_dir (no checkpoint).
	start = time.Now()
	cfg = pipeline(t, dir, generatePipeline(filepath.Join(dir, "data2"), ds, n, 1000, "", ""))
	runForwarder(t, cfg, 3*time.Minute)()
	t.Logf("replay: %d events in %s", n, time.Since(start).Round(time.Millisecond))
	if got := esCount(t, ds); got != n {
		t.Fatalf("after sending the same events twice _count = %d, want %d", got, n)
	}
	if _, err := os.Stat(filepath.Join(dir, "data2", "dead_letter", "es.ndjson")); err == nil {
		t.Error("the replay wrote dead letters: duplicates must count as delivered")
	}
}

// TestForwarderDeadLetter writes into a data stream whose template (ours,
// not the output's) maps event.sequence as a byte: the generated event with
// sequence 128 violates the mapping and must land in the dead-letter file
// with Elasticsearch's reason; the 128 others are indexed.
func TestForwarderDeadLetter(t *testing.T) {
	requireES(t)
	ds := uniqueName("logs-dltest-t")
	st, body := esReq(t, "PUT", "/_index_template/"+ds, map[string]any{
		"index_patterns": []string{ds},
		"priority":       500,
		"data_stream":    map[string]any{},
		"template": map[string]any{"mappings": map[string]any{"properties": map[string]any{
			"@timestamp": map[string]any{"type": "date"},
			"event":      map[string]any{"properties": map[string]any{"sequence": map[string]any{"type": "byte"}}},
		}}},
	})
	if st != 200 {
		t.Fatalf("put template: %d %s", st, body)
	}
	t.Cleanup(func() { esReq(t, "DELETE", "/_index_template/"+ds, nil) })

	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfg := pipeline(t, dir, generatePipeline(data, ds, 129, 50, "", "    manage_template: false"))
	runForwarder(t, cfg, 2*time.Minute)()

	if got := esCount(t, ds); got != 128 {
		t.Errorf("_count = %d, want 128 (all but the violating document)", got)
	}
	f, err := os.Open(filepath.Join(data, "dead_letter", "es.ndjson"))
	if err != nil {
		t.Fatalf("dead-letter file: %v", err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("dead-letter line: %v", err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 1 {
		t.Fatalf("dead-letter file has %d lines, want 1", len(lines))
	}
	reason, _ := lines[0]["reason"].(string)
	if lines[0]["event_id"] != "gen-128" || !strings.Contains(reason, "event.sequence") || !strings.Contains(reason, "status 400") {
		t.Errorf("dead letter: event_id=%v reason=%q", lines[0]["event_id"], reason)
	}
	if _, ok := lines[0]["event"].(map[string]any); !ok {
		t.Error("dead letter does not carry the document")
	}
}

// goldenEvents loads the ecs transform's golden documents as events.
func goldenEvents(t *testing.T) []*plugins.Event {
	t.Helper()
	files, _ := filepath.Glob("../../testdata/*/*/expected.json")
	if len(files) == 0 {
		t.Fatal("no golden ECS documents under ../../testdata")
	}
	var out []*plugins.Event
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		o, err := plugins.ParseObject(data)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		id, _ := o.GetString("event.id")
		out = append(out, &plugins.Event{Fields: o, Meta: plugins.Meta{ID: id}})
	}
	return out
}

// moveIPsToMasked does to a document what the mask transform does in hash
// mode: every <parent>.ip moves, pseudonymised, to <parent>.ip_masked.
func moveIPsToMasked(ev *plugins.Event) *plugins.Event {
	c := ev.Clone()
	pseudo := func(v any) any {
		s := fmt.Sprint(v)
		sum := sha256.Sum256([]byte(s))
		return "ip-" + hex.EncodeToString(sum[:8])
	}
	for _, parent := range []string{"source", "destination", "client", "server", "host", "related"} {
		o, ok := c.Fields.GetObject(parent)
		if !ok {
			continue
		}
		v, ok := o.GetKey("ip")
		if !ok {
			continue
		}
		o.DeleteKey("ip")
		if arr, isArr := v.([]any); isArr {
			m := make([]any, len(arr))
			for i, e := range arr {
				m[i] = pseudo(e)
			}
			o.SetKey("ip_masked", m)
		} else {
			o.SetKey("ip_masked", pseudo(v))
		}
	}
	if o, ok := c.Fields.GetObject("user"); ok {
		if _, ok := o.GetKey("email"); ok {
			o.SetKey("email", "user-9b2e41c0@example.com")
		}
	}
	c.Meta.ID += "-masked"
	c.Fields.Set("event.id", c.Meta.ID)
	return c
}

// TestOutputAgainstElasticsearch drives the output directly: template and
// data stream, every golden ECS document (as is and as the mask transform
// leaves it in hash mode) indexed without a mapping error, a document that
// violates the mapping reported permanent with the reason, duplicates
// acknowledged, and the index mode with a daily pattern.
func TestOutputAgainstElasticsearch(t *testing.T) {
	u := requireES(t)
	ds := uniqueName("logs-cloudaudit-o")
	o, rec, _ := newTestOutput(t, u, func(c *Config) { c.Index = ds })
	if st, _ := rec.last(); st != nil {
		t.Fatalf("not ready after Start: %v", st)
	}
	ctx := context.Background()

	golden := goldenEvents(t)
	masked := make([]*plugins.Event, len(golden))
	for i, ev := range golden {
		masked[i] = moveIPsToMasked(ev)
	}
	all := append(append([]*plugins.Event{}, golden...), masked...)
	if err := o.Write(ctx, all); err != nil {
		t.Fatalf("golden ECS documents (plain and masked) were not all indexed: %v", err)
	}
	if got := esCount(t, ds); got != len(all) {
		t.Fatalf("_count = %d, want %d", got, len(all))
	}
	for field, want := range map[string]string{
		"source.ip": "ip", "related.ip": "ip", "source.ip_masked": "keyword", "related.ip_masked": "keyword",
		"event.id": "keyword", "user.email": "keyword", "ncloud": "flattened", "nhncloud": "flattened",
	} {
		if got := fieldType(t, ds, field); got != want {
			t.Errorf("%s mapped as %q, want %q", field, got, want)
		}
	}

	// Re-sending is harmless: 409s are delivered.
	if err := o.Write(ctx, golden); err != nil {
		t.Fatalf("re-sent documents: %v", err)
	}
	if d := testutil.ToFloat64(o.m.duplicates); d != float64(len(golden)) {
		t.Errorf("duplicates = %v, want %d", d, len(golden))
	}

	// One document that violates the mapping among good ones.
	evs := testEvents(3)
	evs[1].Fields.Set("source.ip", "not-an-ip")
	for _, ev := range evs {
		ev.Meta.ID += "-" + ds
	}
	err := o.Write(ctx, evs)
	var be *plugins.BatchError
	if !errors.As(err, &be) || len(be.Failures) != 1 || be.Failures[0].Index != 1 || !plugins.IsPermanent(be.Failures[0].Err) {
		t.Fatalf("want only event 1 failed permanently, got %v", err)
	}
	if msg := be.Failures[0].Err.Error(); !strings.Contains(msg, "source.ip") || !strings.Contains(msg, "status 400") {
		t.Errorf("reason should be Elasticsearch's: %s", msg)
	}
	if got := esCount(t, ds); got != len(all)+2 {
		t.Errorf("_count = %d, want %d", got, len(all)+2)
	}

	t.Run("index mode with a daily pattern", func(t *testing.T) {
		prefix := uniqueName("cloudaudit-i")
		o2, _, _ := newTestOutput(t, u, func(c *Config) {
			c.DataStream = false
			c.Index = prefix + "-%{+yyyy.MM.dd}"
		})
		evs := testEvents(3000) // one per minute from 2026-01-01: spans three days
		for round := 0; round < 2; round++ {
			if err := o2.Write(ctx, evs); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		for day, want := range map[string]int{"2026.01.01": 1440, "2026.01.02": 1440, "2026.01.03": 120} {
			if got := esCount(t, prefix+"-"+day); got != want {
				t.Errorf("%s-%s: _count %d, want %d", prefix, day, got, want)
			}
		}
		if typ := fieldType(t, prefix+"-2026.01.01", "source.ip"); typ != "ip" {
			t.Errorf("index mode template not applied: source.ip is %q", typ)
		}
		esReq(t, "DELETE", "/"+prefix+"-*", nil)
		esReq(t, "DELETE", "/_index_template/"+prefix, nil)
	})
}

// TestForwarderECSAndMaskModes sends the raw API items of the ecs
// transform's golden cases through the real pipeline — file source → ecs
// (keep_original) → mask → this output with its template — under each IP
// masking mode: every document is indexed, none is dead-lettered (hash and
// redact move addresses to *_masked keyword siblings).
func TestForwarderECSAndMaskModes(t *testing.T) {
	requireES(t)
	dir := t.TempDir()
	total := 0
	for _, dataset := range []string{"ncloud.activity_tracer", "nhncloud.cloudtrail"} {
		files, _ := filepath.Glob("../../testdata/" + dataset + "/*/input.json")
		if len(files) == 0 {
			t.Fatalf("no raw items under ../../testdata/%s/*/input.json", dataset)
		}
		var nd bytes.Buffer
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Compact(&nd, data); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			nd.WriteByte('\n')
		}
		total += len(files)
		if err := os.WriteFile(filepath.Join(dir, dataset+".ndjson"), nd.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, mode := range []string{"truncate", "hash", "redact"} {
		t.Run(mode, func(t *testing.T) {
			ds := uniqueName("logs-cloudaudit-m" + mode[:1])
			data := filepath.Join(dir, "data-"+mode)
			cfg := pipeline(t, dir, fmt.Sprintf(`data_dir: %s
api: {address: ""}
log: {level: warn, format: json}
sources:
  ncp: {type: file, path: %s, dataset: ncloud.activity_tracer}
  nhn: {type: file, path: %s, dataset: nhncloud.cloudtrail}
transforms:
  ecs: {type: ecs, inputs: [ncp, nhn], keep_original: true}
  mask:
    type: mask
    inputs: [ecs]
    ip: {mode: %s}
    email: {mode: %s}
    hash_key: 0123456789abcdef0123456789abcdef
outputs:
  es:
    type: elasticsearch
    inputs: [mask]
    addresses: [%s]
    index: %s
`, data, filepath.Join(dir, "ncloud.activity_tracer.ndjson"), filepath.Join(dir, "nhncloud.cloudtrail.ndjson"),
				mode, map[string]string{"truncate": "partial", "hash": "hash", "redact": "redact"}[mode], esURL(), ds))
			runForwarder(t, cfg, 2*time.Minute)()
			if dl, err := os.ReadFile(filepath.Join(data, "dead_letter", "es.ndjson")); err == nil {
				t.Fatalf("dead letters with ip.mode %s:\n%s", mode, truncate(string(dl), 2000))
			}
			if got := esCount(t, ds); got != total {
				t.Fatalf("_count = %d, want %d", got, total)
			}
			masked := fieldType(t, ds, "source.ip_masked")
			plain := fieldType(t, ds, "source.ip")
			if mode == "truncate" && plain != "ip" {
				t.Errorf("truncate: source.ip mapped as %q, want ip", plain)
			}
			if mode != "truncate" && masked != "keyword" {
				t.Errorf("%s: source.ip_masked mapped as %q, want keyword", mode, masked)
			}
		})
	}
}

// esScript runs .ci/services/elasticsearch.sh with the given command.
func esScript(t *testing.T, command string) string {
	t.Helper()
	cmd := exec.Command("bash", "../../.ci/services/elasticsearch.sh", command)
	cmd.Env = append(os.Environ(), "FORWARDER_ES_KEEP_DATA=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("elasticsearch.sh %s: %v\n%s", command, err, stderr.String())
	}
	return string(out)
}

// TestForwarderSurvivesElasticsearchRestart stops Elasticsearch for 30 s
// in the middle of a run and starts it again: the forwarder keeps
// retrying, and every event arrives exactly once.
//
// It must stay the last test of the package that needs Elasticsearch (it
// takes the node away), and it needs the node the service script manages.
func TestForwarderSurvivesElasticsearchRestart(t *testing.T) {
	requireES(t)
	if esURL() != defaultTestESURL {
		t.Fatalf("this test stops and restarts the node of .ci/services/elasticsearch.sh at %s, but FORWARDER_TEST_ES_URL is %s", defaultTestESURL, esURL())
	}
	const n = 10000
	ds := uniqueName("logs-cloudaudit-r")
	dir := t.TempDir()
	cfg := pipeline(t, dir, generatePipeline(filepath.Join(dir, "data"), ds, n, 250,
		"    interval: 100ms",
		"    delivery:\n      max_backoff: 2s\n      timeout: 10s"))
	wait := runForwarder(t, cfg, 4*time.Minute)

	// Let part of the stream in, then take the node away.
	deadline := time.Now().Add(90 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("no document arrived within 90s")
		}
		st, body := esReq(t, "GET", "/"+ds+"/_count", nil)
		var r struct {
			Count int `json:"count"`
		}
		_ = json.Unmarshal(body, &r)
		if st == 200 && r.Count >= 1000 {
			t.Logf("stopping Elasticsearch with %d documents in", r.Count)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t0 := time.Now()
	esScript(t, "stop")
	t.Logf("stopped in %s", time.Since(t0).Round(time.Millisecond))
	stopped := true
	defer func() {
		if stopped {
			esScript(t, "start")
		}
	}()
	time.Sleep(30 * time.Second)
	t0 = time.Now()
	out := esScript(t, "start")
	t.Logf("started again in %s", time.Since(t0).Round(time.Millisecond))
	stopped = false
	if !strings.Contains(out, "export FORWARDER_TEST_ES_URL="+defaultTestESURL) {
		t.Errorf("start printed %q", out)
	}
	t0 = time.Now()
	wait()
	t.Logf("forwarder finished %s after the restart", time.Since(t0).Round(time.Millisecond))
	if got := esCount(t, ds); got != n {
		t.Fatalf("_count = %d, want %d", got, n)
	}
	checkIDsExactlyOnce(t, ds, n)
}
