package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/sources/ncloud"
)

// TestDemoPipelineMatchesShipped fails when the demo's embedded pipeline
// and the shipped pipeline.yaml disagree on sources or transforms.
func TestDemoPipelineMatchesShipped(t *testing.T) {
	shipped, err := os.ReadFile(filepath.Join("..", "..", "pipeline.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	if err := yaml.Unmarshal(shipped, &a); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(demoPipeline, &b); err != nil {
		t.Fatal(err)
	}
	for _, sec := range []string{"sources", "transforms"} {
		if !reflect.DeepEqual(a[sec], b[sec]) {
			t.Errorf("cmd/forwarder/demo_pipeline.yaml's %s differ from pipeline.yaml's; copy them over", sec)
		}
	}
	outs, _ := b["outputs"].(map[string]any)
	if len(outs) != 1 || outs["archive"] == nil {
		t.Errorf("the demo pipeline must have exactly the file output `archive`, has %v", outs)
	}
}

func TestDemoDeliversBacklogAndSummarizes(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCLI("demo", "--dir", dir, "--ncp-events", "400", "--nhn-events", "300")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	path := filepath.Join(dir, "out", "events.ndjson")
	n := countLines(t, path)
	for _, want := range []string{
		fmt.Sprintf("%d events delivered", n),
		"ncloud_activity_tracer", "400 events", path, "sample ", "addresses:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	r, err := newRegistry()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Lookup(plugins.KindSource, "nhncloud_cloudtrail"); ok && !strings.Contains(out, "300 events") {
		t.Errorf("NHN source compiled in but its backlog is not in the summary:\n%s", out)
	}
	if n < 400 {
		t.Fatalf("%d events in the output file", n)
	}
}

func TestDemoFollowKeepsCollectingLiveEvents(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runDemo(ctx, demoOptions{follow: true, noConsole: true, dir: dir, ncpEvents: 50, nhnEvents: 50}, &out, &errb)
	}()
	// 100 backlog events, then live ones (about 1.5/s, polled every 2s).
	waitLines(t, filepath.Join(dir, "out", "events.ndjson"), 103, 30*time.Second)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo --follow: %v\n%s", err, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo --follow did not stop")
	}
	if !strings.Contains(out.String(), "events delivered") {
		t.Fatalf("no summary after Ctrl-C:\n%s", out.String())
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(data, []byte("\n"))
}

// ---- the ncloud source as a real subprocess against the simulator ----

// ncpPipeline writes a pipeline reading the simulator at endpoint into one
// NDJSON file (raw API items) and returns its path and the output path.
func ncpPipeline(t *testing.T, dir, endpoint string, extra string) (string, string) {
	t.Helper()
	out := filepath.Join(dir, "out.ndjson")
	cfg := fmt.Sprintf(`data_dir: %s
shutdown_timeout: 20s
api:
  address: ""
log:
  level: info
  format: json
sources:
  ncp:
    type: ncloud_activity_tracer
    endpoint: %s
    access_key: %s
    secret_key: ${TEST_NCP_SECRET}
    page_size: 100
    interval: 1s
    rate_limit: 20
%s
outputs:
  out:
    type: file
    inputs: [ncp]
    path: %s
`, filepath.Join(dir, "data"), endpoint, ncloud.SimAccessKey, extra, out)
	path := filepath.Join(dir, "pipeline.yaml")
	writeFile(t, path, cfg)
	return path, out
}

// forwarderCmd prepares the forwarder binary with the simulator's secret
// in the environment.
func forwarderCmd(secret string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(forwarderBin, args...)
	cmd.Env = append(os.Environ(), "TEST_NCP_SECRET="+secret)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	return cmd, &stderr
}

// historyIDs counts each historyId in the output file (none yet when it
// does not exist).
func historyIDs(t *testing.T, path string) map[string]int {
	t.Helper()
	ids := map[string]int{}
	if _, err := os.Stat(path); os.IsNotExist(err) {
		return ids
	}
	eachLine(t, path, func(line string) {
		var doc struct {
			HistoryID string `json:"historyId"`
		}
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			return // a torn tail after SIGKILL is repaired on restart
		}
		ids[doc.HistoryID]++
	})
	return ids
}

// waitLines waits until path has at least n lines.
// slowRateLimit rewrites the rate_limit of the pipeline file at path.
func slowRateLimit(t *testing.T, path string, perSecond int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, strings.Replace(string(data), "rate_limit: 20", fmt.Sprintf("rate_limit: %d", perSecond), 1))
}

func waitLines(t *testing.T, path string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil && bytes.Count(data, []byte("\n")) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not reach %d lines in %s", path, n, timeout)
}

func faultySimulator(t *testing.T, events int) (*ncloud.Simulator, string) {
	t.Helper()
	sim := ncloud.NewSimulator(ncloud.SimulatorConfig{
		Events: events, Span: 719 * time.Hour, Seed: 42,
		FailEvery: 15, FailStatuses: []int{429, 503, 500}, RetryAfter: time.Second,
		MalformedEvery: 37, PageLatency: 2 * time.Millisecond,
	})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

func TestNcloudExactlyOnceAcrossCleanRestart(t *testing.T) {
	sim, url := faultySimulator(t, 10000)
	dir := t.TempDir()
	cfg, out := ncpPipeline(t, dir, url, "")
	// A slower API, so the SIGTERM surely lands mid-backfill: the engine
	// drains every window already emitted, which on a fast run can be all.
	slowRateLimit(t, cfg, 8)

	// First run: stop it cleanly (SIGTERM) part way through the backlog.
	cmd, stderr := forwarderCmd(ncloud.SimSecretKey, "run", "-c", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitLines(t, out, 2000, 60*time.Second)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("first run: %v\n%s", err, stderr)
	}
	first := len(historyIDs(t, out))
	if first >= 10000 {
		t.Fatalf("the first run delivered everything (%d); the restart proves nothing", first)
	}
	// Second run: --once from the checkpoint.
	cmd, stderr = forwarderCmd(ncloud.SimSecretKey, "run", "--once", "-c", cfg)
	if err := cmd.Run(); err != nil {
		t.Fatalf("second run: %v\n%s", err, stderr)
	}
	ids := historyIDs(t, out)
	for _, ev := range sim.Events() {
		if ids[ev.ID] != 1 {
			t.Fatalf("event %s at %s delivered %d times (first run delivered %d)", ev.ID, ev.Time, ids[ev.ID], first)
		}
	}
	if len(ids) != 10000 {
		t.Fatalf("%d distinct events, want 10000", len(ids))
	}
	if sim.Failures() < 10 {
		t.Fatalf("only %d faults injected", sim.Failures())
	}
	t.Logf("first run %d events, %d requests, %d faults", first, sim.Requests(), sim.Failures())
}

func TestNcloudAtLeastOnceAcrossSIGKILL(t *testing.T) {
	sim, url := faultySimulator(t, 10000)
	dir := t.TempDir()
	cfg, out := ncpPipeline(t, dir, url, "")
	// A slower API, so windows arrive one by one and each kill lands mid-backfill.
	slowRateLimit(t, cfg, 8)
	for i, at := range []int{1500, 4000, 7000} {
		cmd, stderr := forwarderCmd(ncloud.SimSecretKey, "run", "-c", cfg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitLines(t, out, at, 60*time.Second)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if n := len(historyIDs(t, out)); n >= 10000 {
			t.Fatalf("kill %d came after everything was delivered\n%s", i, stderr)
		}
	}
	cmd, stderr := forwarderCmd(ncloud.SimSecretKey, "run", "--once", "-c", cfg)
	if err := cmd.Run(); err != nil {
		t.Fatalf("final run: %v\n%s", err, stderr)
	}
	ids := historyIDs(t, out)
	for _, ev := range sim.Events() {
		if ids[ev.ID] < 1 {
			t.Fatalf("event %s at %s lost across SIGKILLs", ev.ID, ev.Time)
		}
	}
}

func TestNcloudAuthFailureIsClearAndWritesNothing(t *testing.T) {
	_, url := faultySimulator(t, 100)
	dir := t.TempDir()
	cfg, out := ncpPipeline(t, dir, url, "")
	cmd, stderr := forwarderCmd("not-the-secret", "run", "--once", "-c", cfg)
	err := cmd.Run()
	var ee *exec.ExitError
	if !asExit(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("exit %v, want a failure\n%s", err, stderr)
	}
	for _, want := range []string{"authentication failed", "HTTP 401", `NCP error 200 \"Authentication Failed\"`, "x-ncp-trace-id", "check access_key and secret_key"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr.String(), "not-the-secret") {
		t.Fatal("the secret reached the log")
	}
	if ids := historyIDs(t, out); len(ids) != 0 {
		t.Fatalf("%d events written despite the auth failure", len(ids))
	}
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
}

func TestNcloudValidateNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := ncpPipeline(t, dir, "https://cloudactivitytracer.apigw.gov-ntruss.com", "    lookback: 960h\n")
	data, _ := os.ReadFile(cfg)
	writeFile(t, cfg, strings.Replace(string(data), "page_size: 100", "page_size: 500", 1))
	cmd, stderr := forwarderCmd("s", "validate", "-c", cfg)
	err := cmd.Run()
	var ee *exec.ExitError
	if !asExit(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("validate: %v, want exit 1\n%s", err, stderr)
	}
	for _, want := range []string{
		"sources.ncp.page_size: must be between 1 and 100, got 500",
		"sources.ncp.lookback: must be between 1s and 720h (the API keeps 30 days), got 960h",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("validate output lacks %q:\n%s", want, stderr)
		}
	}
}

// TestNcloudThroughHTTPSProxyWithCustomCA reaches a TLS simulator named
// example.com (which does not resolve here) only through HTTPS_PROXY, and
// trusts its certificate only through tls.ca_file.
func TestNcloudThroughHTTPSProxyWithCustomCA(t *testing.T) {
	sim := ncloud.NewSimulator(ncloud.SimulatorConfig{Events: 500, Seed: 8})
	srv := httptest.NewTLSServer(sim)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	var connects atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "CONNECT only", http.StatusMethodNotAllowed)
			return
		}
		connects.Add(1)
		up, err := net.Dial("tcp", "127.0.0.1:"+port) // example.com:port → the simulator
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		hj, _ := w.(http.Hijacker)
		conn, buf, err := hj.Hijack()
		if err != nil {
			return
		}
		_, _ = conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = io.Copy(up, buf); _ = up.(*net.TCPConn).CloseWrite() }()
		go func() { defer wg.Done(); _, _ = io.Copy(conn, up); _ = conn.Close() }()
		wg.Wait()
		_ = up.Close()
	}))
	t.Cleanup(proxy.Close)

	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	writeFile(t, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	cfg, out := ncpPipeline(t, dir, "https://example.com:"+port, "    tls:\n      ca_file: "+ca+"\n")
	cmd, stderr := forwarderCmd(ncloud.SimSecretKey, "run", "--once", "-c", cfg)
	cmd.Env = append(cmd.Env, "HTTPS_PROXY="+proxy.URL, "NO_PROXY=", "no_proxy=")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	if n := len(historyIDs(t, out)); n != 500 {
		t.Fatalf("%d events through the proxy, want 500\n%s", n, stderr)
	}
	if connects.Load() == 0 {
		t.Fatal("the proxy saw no CONNECT")
	}
}
