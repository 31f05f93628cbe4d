package syslog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/cmd/forwarder/forwardertest"
	"github.com/auditforwarder/forwarder/plugins"
)

func buildForwarder(t *testing.T) string { return forwardertest.Binary(t) }

func TestMain(m *testing.M) { forwardertest.Main(m) }

// TestForwarderBinaryToRsyslog runs the real binary: the generate source
// sends 10,000 events of 1 KB through the syslog output over RELP, in
// --once mode; every event must be in rsyslog's file.
func TestForwarderBinaryToRsyslog(t *testing.T) {
	env := rsyslog(t)
	bin := buildForwarder(t)
	const n = 10000
	host := runHost("binary")
	dir := t.TempDir()
	pipeline := fmt.Sprintf(`data_dir: %s
shutdown_timeout: 30s
api:
  address: ""
log:
  level: warn
  format: text
sources:
  synthetic:
    type: generate
    count: %d
    batch_size: 500
    size: 1024
    dataset: generate
outputs:
  siem:
    type: syslog
    inputs: [synthetic]
    address: relp://%s
    hostname: %s
    payload: json
`, filepath.Join(dir, "data"), n, env.addr["relp"], host)
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(cfgPath, []byte(pipeline), 0o600); err != nil {
		t.Fatal(err)
	}
	offset := fileSize(t, env.file["relp"])
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "-c", cfgPath, "--once")
	// The service scripts' FORWARDER_TEST_* variables would be read as
	// FORWARDER_<KEY> config overrides (and refused as unknown keys).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FORWARDER_TEST_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("forwarder run --once: %v\n%s", err, stderr.String())
	}
	elapsed := time.Since(start)
	lines := collect(t, env.file["relp"], offset, host, n, 3*time.Second)
	ids := map[string]bool{}
	for _, line := range lines {
		p := parse5424(t, line)
		if p.app != "forwarder" || p.msgID != "generate" || p.pri != 13*8+5 {
			t.Fatalf("header of %q", line)
		}
		doc, err := plugins.ParseObject([]byte(p.msg))
		if err != nil {
			t.Fatalf("payload: %v", err)
		}
		id, _ := doc.GetString("event.id")
		if sd := p.sd["forwarder@32473"]["id"]; sd != id {
			t.Fatalf("SD id %q, payload id %q", sd, id)
		}
		ids[id] = true
	}
	for i := 0; i < n; i++ {
		if !ids[fmt.Sprintf("gen-%d", i)] {
			t.Fatalf("gen-%d missing (%d of %d received)", i, len(ids), n)
		}
	}
	t.Logf("forwarder delivered %d events over RELP in %v (%d lines)", n, elapsed.Round(time.Millisecond), len(lines))
}
