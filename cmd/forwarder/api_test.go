package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAPIEndpoints runs a real forwarder and reads /healthz, /readyz and
// /metrics while it works, and /readyz while its output is failing.
func TestAPIEndpoints(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	cfg := filepath.Join(dir, "p.yaml")
	writeFile(t, filepath.Join(dir, "blocker"), "")
	writeFile(t, cfg, fmt.Sprintf(`
data_dir: %s/data
api: {address: "%s"}
sources:
  gen: {type: generate, count: 0, batch_size: 10, interval: 5ms}
outputs:
  good: {type: file, inputs: [gen], path: %s/out.ndjson}
`, dir, addr, dir))
	cmd := exec.Command(forwarderBin, "run", "-c", cfg)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := get(base + "/healthz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/healthz never answered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if code, body := get(base + "/readyz"); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	code, body := get(base + "/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, want := range []string{
		`forwarder_component_events_in_total{component_id="gen",component_kind="source"}`,
		`forwarder_component_events_out_total{component_id="good",component_kind="output"}`,
		`forwarder_output_batch_latency_seconds_bucket{component_id="good"`,
		`forwarder_component_queue_depth{component_id="good"}`,
		`forwarder_source_checkpoint_age_seconds{component_id="gen"}`,
		`forwarder_source_checkpoints_committed_total{component_id="gen"}`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
