package nhncloud

// End-to-end tests: the real forwarder binary, run as a subprocess with
// pipeline.yaml = this source → file output, against the simulator running
// in the test process, with faults on.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/cmd/forwarder/forwardertest"
	"github.com/auditforwarder/forwarder/plugins"
)

func TestMain(m *testing.M) { forwardertest.Main(m) }

func forwarderBinary(t *testing.T) string { return forwardertest.Binary(t) }

type e2e struct {
	t       *testing.T
	env     *testEnv
	dir     string
	version string
	out     string
	stderr  bytes.Buffer // every run's stderr, for the secret grep
	mu      sync.Mutex
	envVars []string
}

func newE2E(t *testing.T, env *testEnv, version string, extra string) *e2e {
	dir := t.TempDir()
	e := &e2e{t: t, env: env, dir: dir, version: version, out: filepath.Join(dir, "out", "events.ndjson")}
	pipeline := fmt.Sprintf(`data_dir: %s
shutdown_timeout: 20s
api:
  address: "%s"
log:
  level: debug
  format: json
sources:
  nhn:
    type: nhncloud_cloudtrail
    endpoint: %s
    api_version: %s
    app_key: ${NHN_APPKEY}
    user_access_key_id: ${NHN_USER_ACCESS_KEY_ID}
    secret_access_key: ${NHN_SECRET_ACCESS_KEY}
    page_size: 100
    rate_limit: 20
    interval: 500ms
    lookback: 720h
    overlap: 10m
    timeout: 5s
%s
outputs:
  out:
    type: file
    inputs: [nhn]
    path: %s
`, filepath.Join(dir, "data"), extraAPI(extra), env.srv.URL, version, extraSource(extra), e.out)
	if err := os.WriteFile(filepath.Join(dir, "pipeline.yaml"), []byte(pipeline), 0o600); err != nil {
		t.Fatal(err)
	}
	e.envVars = append(os.Environ(), "NHN_APPKEY="+testAppKey, "NHN_USER_ACCESS_KEY_ID="+testKeyID, "NHN_SECRET_ACCESS_KEY="+testSecret)
	return e
}

// extra is "api=<address>" and/or source lines, separated by "|".
func extraAPI(extra string) string {
	for _, p := range strings.Split(extra, "|") {
		if strings.HasPrefix(p, "api=") {
			return strings.TrimPrefix(p, "api=")
		}
	}
	return ""
}

func extraSource(extra string) string {
	var lines []string
	for _, p := range strings.Split(extra, "|") {
		if p != "" && !strings.HasPrefix(p, "api=") {
			lines = append(lines, "    "+p)
		}
	}
	return strings.Join(lines, "\n")
}

func (e *e2e) command(args ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.Command(forwarderBinary(e.t), args...)
	cmd.Dir = e.dir
	cmd.Env = e.envVars
	var errBuf bytes.Buffer
	cmd.Stderr = &lockedWriter{mu: &e.mu, w: io.MultiWriter(&errBuf, &e.stderr)}
	cmd.Stdout = io.Discard
	return cmd, &errBuf
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// lines returns the output's events: ids in order, and a count of lines
// that are not JSON objects.
func (e *e2e) lines() (ids []string, bad int) {
	f, err := os.Open(e.out)
	if err != nil {
		return nil, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		o, err := plugins.ParseObject(sc.Bytes())
		if err != nil {
			bad++
			continue
		}
		ids = append(ids, EventID(o))
	}
	return ids, bad
}

func (e *e2e) count() int {
	b, _ := os.ReadFile(e.out)
	return bytes.Count(b, []byte("\n"))
}

// runUntil starts `forwarder run`, waits until the pipeline runs and the
// output grew by at least delta lines, then sends sig and waits for the exit.
func (e *e2e) runUntil(delta int, sig syscall.Signal) {
	e.t.Helper()
	before := e.count()
	cmd, errBuf := e.command("run", "-c", "pipeline.yaml")
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	started := func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return strings.Contains(errBuf.String(), "pipeline started")
	}
	deadline := time.Now().Add(90 * time.Second)
	for !started() || e.count() < min(before+delta, e2eEvents) {
		if time.Now().After(deadline) {
			if !started() {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				e.t.Fatalf("the forwarder did not start; stderr:\n%s", tail(errBuf.String()))
			}
			// The output stopped growing (the source believes it caught
			// up). Stop this run anyway: the final --once run and
			// checkDelivery decide whether anything was lost.
			e.t.Logf("output stopped at %d lines, short of %d; stopping the run anyway", e.count(), before+delta)
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	at := e.count()
	_ = cmd.Process.Signal(sig)
	err := cmd.Wait()
	if sig == syscall.SIGTERM && err != nil {
		e.t.Fatalf("forwarder did not exit cleanly on SIGTERM: %v\n%s", err, tail(errBuf.String()))
	}
	e.t.Logf("%s at %d lines (run started at %d): output now %d lines", sig, at, before, e.count())
}

// runOnce runs `forwarder run --once` to the end.
func (e *e2e) runOnce() (string, error) {
	e.t.Helper()
	cmd, errBuf := e.command("run", "--once", "-c", "pipeline.yaml")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return errBuf.String(), err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		e.t.Fatalf("run --once did not finish; stderr:\n%s", tail(errBuf.String()))
	}
	return "", nil
}

func (e *e2e) assertNoSecretsInLogs() {
	e.mu.Lock()
	defer e.mu.Unlock()
	logs := e.stderr.String()
	if len(logs) == 0 {
		e.t.Fatal("no log output captured")
	}
	assertNoSecrets(e.t, "forwarder stderr", logs)
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

const e2eEvents = 10_000

func e2eFaults() Faults {
	return Faults{
		TransientRate: 0.03, HTTP503Rate: 0.02, UnknownRate: 0.01,
		QuotaRate: 0.005, QuotaRetryAfter: time.Second,
		Latency: 2 * time.Millisecond, LatencyJitter: 3 * time.Millisecond,
		LateRate: 0.02, LateDelay: 3 * time.Second,
	}
}

func e2eSim(t *testing.T, seed uint64) *testEnv {
	env := newTestEnv(t, SimulatorOptions{Seed: seed})
	env.sim.SetFaults(e2eFaults())
	now := time.Now()
	env.sim.Generate(e2eEvents, now.Add(-30*24*time.Hour), now)
	return env
}

// waitAllVisible sleeps until the simulator's late events are all visible.
func waitAllVisible(env *testEnv) {
	var last time.Time
	for _, ev := range env.sim.Events() {
		if ev.Visible.After(last) {
			last = ev.Visible
		}
	}
	time.Sleep(time.Until(last) + 10*time.Millisecond)
}

func (e *e2e) checkDelivery(exactlyOnce bool) {
	e.t.Helper()
	ids, bad := e.lines()
	if bad > 0 {
		e.t.Errorf("%d output lines are not JSON objects", bad)
	}
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	if len(seen) != e2eEvents {
		e.t.Fatalf("%d distinct events delivered, want %d", len(seen), e2eEvents)
	}
	if e.version == "v2" {
		for _, ev := range e.env.sim.Events() {
			if seen[ev.UUID] == 0 {
				e.t.Fatalf("event %s never delivered", ev.UUID)
			}
		}
	}
	if exactlyOnce && len(ids) != e2eEvents {
		e.t.Fatalf("%d events delivered for %d distinct: duplicates across clean restarts", len(ids), e2eEvents)
	}
	e.t.Logf("%d lines, %d distinct events", len(ids), len(seen))
}

func TestE2EExactlyOnceAcrossCleanRestarts(t *testing.T) {
	for i, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			env := e2eSim(t, uint64(100+i))
			e := newE2E(t, env, version, "")
			for range 3 {
				e.runUntil(500, syscall.SIGTERM)
			}
			waitAllVisible(env)
			if logs, err := e.runOnce(); err != nil {
				t.Fatalf("run --once: %v\n%s", err, tail(logs))
			}
			e.checkDelivery(true)
			e.assertNoSecretsInLogs()
		})
	}
}

func TestE2EAtLeastOnceAcrossSIGKILL(t *testing.T) {
	for i, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			env := e2eSim(t, uint64(200+i))
			e := newE2E(t, env, version, "")
			for range 3 {
				e.runUntil(500, syscall.SIGKILL)
			}
			waitAllVisible(env)
			if logs, err := e.runOnce(); err != nil {
				t.Fatalf("run --once: %v\n%s", err, tail(logs))
			}
			e.checkDelivery(false)
			e.assertNoSecretsInLogs()
		})
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestE2EWrongSecretIsClear(t *testing.T) {
	env := newTestEnv(t, SimulatorOptions{Seed: 300})
	env.sim.Generate(100, time.Now().Add(-time.Hour), time.Now())
	addr := freeAddr(t)
	e := newE2E(t, env, "v2", "api="+addr)
	const wrong = "tWRONGe2eSecret42"
	for i, v := range e.envVars {
		if strings.HasPrefix(v, "NHN_SECRET_ACCESS_KEY=") {
			e.envVars[i] = "NHN_SECRET_ACCESS_KEY=" + wrong
		}
	}
	const want = "authentication failed (HTTP 200, resultCode 40100: Authentication failed): check app_key, user_access_key_id and secret_access_key"

	// --once: the run fails, naming the cause.
	logs, err := e.runOnce()
	if err == nil {
		t.Fatal("run --once succeeded with a wrong secret")
	}
	if !strings.Contains(logs, want) {
		t.Fatalf("stderr lacks %q:\n%s", want, tail(logs))
	}

	// run: the ERROR is logged, /readyz says why, and the process keeps going.
	cmd, errBuf := e.command("run", "-c", "pipeline.yaml")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var body string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			body = string(b)
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(body, "authentication failed") {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(body, "resultCode 40100") {
		t.Fatalf("/readyz does not explain the failure: %s", body)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	out := errBuf.String()
	if !strings.Contains(out, `"level":"ERROR"`) || !strings.Contains(out, want) {
		t.Fatalf("no ERROR line with %q:\n%s", want, tail(out))
	}
	e.assertNoSecretsInLogs()
	if strings.Contains(e.stderr.String(), wrong) || strings.Contains(body, wrong) {
		t.Fatal("the wrong secret was logged")
	}
}

func TestE2EValidatePageSize(t *testing.T) {
	env := newTestEnv(t, SimulatorOptions{Seed: 301})
	e := newE2E(t, env, "v2", "")
	p := filepath.Join(e.dir, "pipeline.yaml")
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, bytes.Replace(b, []byte("page_size: 100"), []byte("page_size: 5000"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, errBuf := e.command("validate", "-c", "pipeline.yaml")
	err := cmd.Run()
	var ee *exec.ExitError
	if !errorsAs(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("validate: %v, want exit 1", err)
	}
	if !strings.Contains(errBuf.String(), "sources.nhn.page_size: must be between 1 and 1000, got 5000") {
		t.Fatalf("validate output:\n%s", errBuf.String())
	}
	e.assertNoSecretsInLogs()
}

func errorsAs(err error, target **exec.ExitError) bool {
	ee, ok := err.(*exec.ExitError)
	if ok {
		*target = ee
	}
	return ok
}
