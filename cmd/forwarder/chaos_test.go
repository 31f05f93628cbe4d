package main

// The chaos suite: the whole pipeline (both API simulators → ecs → mask →
// Kafka, Elasticsearch, syslog over RELP, file) run as a real subprocess
// while the test breaks things around it — SIGKILL, services stopped, API
// faults, a corrupt checkpoint store, a full disk, an unwritable dead-letter
// directory — and a scan of every log line it wrote for secrets and
// addresses. One summary line per scenario, then `chaos: N passed, M failed`.
//
// The short form runs in CI with every other test (go test ./...); the long
// form (FORWARDER_CHAOS=long, run by .ci/chaos.sh) uses the sizes:
// 100 kills during a 100,000-event backfill, 60 s outages of all three
// services, and it holds the faulty backfill to 1.3× the fault-free time.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	yaml "go.yaml.in/yaml/v3"
	"golang.org/x/time/rate"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/checkpoint"
	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/sources/ncloud"
	"github.com/auditforwarder/forwarder/sources/nhncloud"
)

// Private service instances: the outage scenario stops its own broker,
// rsyslog and (long form) Elasticsearch, never the shared ones other
// packages test against at the same time. Their names, directories and
// ports are new for every run, so two suites running at once (CI and a
// developer, say) never stop each other's.
// maxBatchEvents is the most events an API source puts in one batch
// (httppoll's MaxBatch); the engine keeps at most maxPendingEvents events
// of a source unacknowledged (or one batch, when it is larger). A crash
// re-delivers those, plus what was acknowledged while its checkpoint was
// being saved: at most twice the window, per source.
const (
	maxBatchEvents     = 2000
	maxPendingEvents   = 16384
	chaosSourcesInKill = 2
	dupBound           = chaosSourcesInKill * 2 * max(maxPendingEvents, maxBatchEvents)
)

// TestChaos runs the chaos scenarios in order and prints their summary.
func TestChaos(t *testing.T) {
	e := newChaosEnv(t)
	form := "short form (FORWARDER_CHAOS=long or .ci/chaos.sh for the long one)"
	if e.long {
		form = "long form"
	}
	fmt.Printf("chaos: %s, run %s\n", form, e.runID)

	scenarios := []struct {
		name string
		run  func(*testing.T, *chaosReport)
	}{
		{"kill-9", e.scenarioKill},
		{"outage", e.scenarioOutage},
		{"api-faults", e.scenarioAPIFaults},
		{"corrupt-checkpoint", e.scenarioCorruptCheckpoint},
		{"full-disk", e.scenarioFullDisk},
		{"dead-letter", e.scenarioDeadLetter},
		{"log-scan", e.scenarioLogScan},
	}
	passed, failed := 0, 0
	for _, sc := range scenarios {
		rep := &chaosReport{}
		start := time.Now()
		ran := false
		ok := t.Run(sc.name, func(t *testing.T) { ran = true; sc.run(t, rep) })
		if !ran {
			continue // filtered out with -run
		}
		status := "PASS"
		if ok {
			passed++
		} else {
			failed++
			status = "FAIL"
		}
		summary := rep.String()
		if summary == "" {
			summary = "(stopped early: see the test log above)"
		}
		fmt.Printf("chaos: %s %-18s %6.1fs  %s\n", status, sc.name, time.Since(start).Seconds(), summary)
	}
	fmt.Printf("chaos: %d passed, %d failed\n", passed, failed)
}

// chaosReport collects the facts of one scenario for its summary line.
type chaosReport struct {
	mu    sync.Mutex
	parts []string
}

func (r *chaosReport) add(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.parts = append(r.parts, fmt.Sprintf(format, args...))
}

func (r *chaosReport) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.parts, "; ")
}

// ---- the environment: services, credentials, forwarder runs ----

type chaosEnv struct {
	long   bool
	runID  string
	dir    string
	logDir string
	creds  simCreds
	seq    atomic.Int64

	kafkaBrokers     []string // PLAINTEXT, for the test's own clients
	kafkaSASLBrokers []string
	kafkaUser        string
	kafkaPassword    string
	esURL            string

	priv *privateServices
	// logLevel of the forwarders (debug for the log scan); redact masks
	// addresses with redact instead of the defaults (truncate, partial);
	// discardStdout sends the forwarders' stdout (console output) away.
	logLevel      string
	redact        bool
	discardStdout bool

	mu   sync.Mutex
	logs []string
}

func newChaosEnv(t *testing.T) *chaosEnv {
	e := newTestEnv(t)
	e.long = os.Getenv("FORWARDER_CHAOS") == "long"
	e.logLevel, e.redact = "debug", true
	// The outage scenario's private instances start in the background
	// while the first scenarios run.
	e.priv = startPrivateServices(t, e.long)
	return e
}

// newTestEnv checks the shared services and prepares credentials and a
// log directory (for the chaos suite and the benchmark harness).
func newTestEnv(t *testing.T) *chaosEnv {
	e := &chaosEnv{
		logLevel:         "info",
		runID:            randHex(4),
		dir:              t.TempDir(),
		creds:            newSimCreds(),
		kafkaBrokers:     strings.Split(envOr("FORWARDER_TEST_KAFKA_BROKERS", "127.0.0.1:19092"), ","),
		kafkaSASLBrokers: strings.Split(envOr("FORWARDER_TEST_KAFKA_SASL_BROKERS", "127.0.0.1:19093"), ","),
		kafkaUser:        envOr("FORWARDER_TEST_KAFKA_SASL_USERNAME", "forwarder"),
		kafkaPassword:    envOr("FORWARDER_TEST_KAFKA_SASL_PASSWORD", "forwarder-test-secret"),
		esURL:            strings.TrimRight(envOr("FORWARDER_TEST_ES_URL", "http://127.0.0.1:19200"), "/"),
	}
	e.logDir = filepath.Join(e.dir, "logs")
	if err := os.MkdirAll(e.logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	requireTCP(t, "Kafka", e.kafkaBrokers[0], "kafka")
	requireTCP(t, "Kafka (SASL listener)", e.kafkaSASLBrokers[0], "kafka")
	requireTCP(t, "Elasticsearch", strings.TrimPrefix(strings.TrimPrefix(e.esURL, "http://"), "https://"), "elasticsearch")
	return e
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// requireTCP fails the test, saying how to start the service, when addr
// does not accept connections within 90 s (other packages' tests restart
// the shared services now and then).
func requireTCP(t testing.TB, what, addr, script string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not reachable at %s (%v): start it with `eval \"$(bash .ci/services/%s.sh start)\"`", what, addr, err, script)
		}
		time.Sleep(time.Second)
	}
}

func repoDir() string {
	d, _ := filepath.Abs(filepath.Join("..", ".."))
	return d
}

// serviceScript runs .ci/services/<name>.sh with args and extra env.
func serviceScript(name string, env []string, args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{filepath.Join(repoDir(), ".ci", "services", name+".sh")}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s.sh %s: %w\n%s", name, strings.Join(args, " "), err, lastLines(errb.String(), 15))
	}
	return out.String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// privateServices are the instances the outage scenario may stop.
type privateServices struct {
	long        bool
	dir         string
	kafkaEnv    []string
	kafkaBroker string
	syslogEnv   []string
	relpAddr    string
	relpFile    string
	esEnv       []string
	esURL       string

	ready chan struct{}
	err   error
}

func startPrivateServices(t *testing.T, long bool) *privateServices {
	id := randHex(4)
	dir := "/tmp/forwarder-services-chaos-" + id
	kafkaBase, syslogBase, esBase := freePortBlock(3), freePortBlock(5), freePortBlock(2)
	p := &privateServices{
		long:        long,
		dir:         dir,
		kafkaEnv:    []string{"FORWARDER_KAFKA_INSTANCE=kafka-chaos-" + id, "FORWARDER_KAFKA_PORT_BASE=" + strconv.Itoa(kafkaBase)},
		kafkaBroker: fmt.Sprintf("127.0.0.1:%d", kafkaBase),
		syslogEnv: []string{
			"FORWARDER_SERVICES_DIR=" + dir,
			fmt.Sprintf("FORWARDER_TEST_SYSLOG_UDP_PORT=%d", syslogBase),
			fmt.Sprintf("FORWARDER_TEST_SYSLOG_TCP_PORT=%d", syslogBase+1),
			fmt.Sprintf("FORWARDER_TEST_SYSLOG_TLS_PORT=%d", syslogBase+2),
			fmt.Sprintf("FORWARDER_TEST_SYSLOG_RELP_PORT=%d", syslogBase+3),
			fmt.Sprintf("FORWARDER_TEST_SYSLOG_MTLS_PORT=%d", syslogBase+4),
		},
		relpAddr: fmt.Sprintf("127.0.0.1:%d", syslogBase+3),
		relpFile: filepath.Join(dir, "rsyslog", "out", "relp.log"),
		esEnv: []string{"FORWARDER_SERVICES_DIR=" + dir,
			fmt.Sprintf("FORWARDER_ES_PORT=%d", esBase), fmt.Sprintf("FORWARDER_ES_TRANSPORT_PORT=%d", esBase+1)},
		esURL: fmt.Sprintf("http://127.0.0.1:%d", esBase),
		ready: make(chan struct{}),
	}
	go func() {
		defer close(p.ready)
		var errs []error
		if _, err := serviceScript("kafka", p.kafkaEnv, "start"); err != nil {
			errs = append(errs, err)
		}
		if _, err := serviceScript("rsyslog", p.syslogEnv, "start"); err != nil {
			errs = append(errs, err)
		}
		if long {
			if _, err := serviceScript("elasticsearch", p.esEnv, "start"); err != nil {
				errs = append(errs, err)
			}
		}
		p.err = errors.Join(errs...)
	}()
	t.Cleanup(func() {
		<-p.ready
		_, _ = serviceScript("kafka", p.kafkaEnv, "stop")
		_, _ = serviceScript("rsyslog", p.syslogEnv, "stop")
		if long {
			_, _ = serviceScript("elasticsearch", p.esEnv, "stop")
		}
		_ = os.RemoveAll(p.dir)
	})
	return p
}

// freePortBlock returns the first of n consecutive free loopback ports
// (TCP and UDP), below the ephemeral range.
func freePortBlock(n int) int {
	for tries := 0; tries < 500; tries++ {
		base := 20000 + mrand.IntN(10000-n)
		free := true
		for i := 0; i < n && free; i++ {
			addr := fmt.Sprintf("127.0.0.1:%d", base+i)
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				free = false
				break
			}
			_ = ln.Close()
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				free = false
				break
			}
			_ = pc.Close()
		}
		if free {
			return base
		}
	}
	panic("no free block of loopback ports")
}

func (p *privateServices) wait(t *testing.T, rep *chaosReport) {
	t.Helper()
	select {
	case <-p.ready:
	case <-time.After(5 * time.Minute):
		rep.add("the private service instances did not start within 5 minutes")
		t.Fatal("the private service instances did not start within 5 minutes")
	}
	if p.err != nil {
		rep.add("private service instances: %s", shorten(strings.ReplaceAll(p.err.Error(), "\n", " | "), 300))
		t.Fatalf("private service instances (%s): %v", p.dir, p.err)
	}
}

// ---- simulators ----

// simCreds are fresh credentials for both simulators; none of them may
// ever appear in a log line.
type simCreds struct {
	ncpAccess, ncpSecret, nhnAppKey, nhnKeyID, nhnSecret string
}

func newSimCreds() simCreds {
	return simCreds{
		ncpAccess: "chaos-ncp-access-" + randHex(6),
		ncpSecret: "chaos-ncp-secret-" + randHex(6),
		nhnAppKey: "chaos-nhn-appkey-" + randHex(6),
		nhnKeyID:  "chaos-nhn-keyid-" + randHex(6),
		nhnSecret: "chaos-nhn-secret-" + randHex(6),
	}
}

func (c simCreds) env() []string {
	return []string{
		"CHAOS_NCP_ACCESS_KEY=" + c.ncpAccess, "CHAOS_NCP_SECRET_KEY=" + c.ncpSecret,
		"CHAOS_NHN_APPKEY=" + c.nhnAppKey, "CHAOS_NHN_KEY_ID=" + c.nhnKeyID, "CHAOS_NHN_SECRET=" + c.nhnSecret,
	}
}

func (c simCreds) values() []string {
	return []string{c.ncpAccess, c.ncpSecret, c.nhnAppKey, c.nhnKeyID, c.nhnSecret}
}

// simSpec describes a pair of simulators.
type simSpec struct {
	ncpEvents, nhnEvents int
	seed                 uint64
	// live is the NCP simulator's new events per second (NHN gets half).
	live float64
	// ncp carries the NCP simulator's fault knobs.
	ncp ncloud.SimulatorConfig
	// nhnFaults are the NHN simulator's.
	nhnFaults nhncloud.Faults
	// slowEvery delays every Nth request of each simulator by slowFor;
	// truncateNHNEvery cuts every Nth NHN answer in half (invalid JSON).
	slowEvery        int
	slowFor          time.Duration
	truncateNHNEvery int
	recordNHN        bool
	// pace caps the requests each simulator serves per second, with no
	// burst: however fast the machine and however often the forwarder
	// restarts (each start brings a fresh client-side burst), a backfill
	// takes a known least time, so kills land in the middle of it.
	pace float64
}

type chaosSims struct {
	ncp            *ncloud.Simulator
	nhn            *nhncloud.Simulator
	ncpURL, nhnURL string
	ncpMW, nhnMW   *faultMiddleware
}

func startSims(t testing.TB, c simCreds, s simSpec) *chaosSims {
	cfg := s.ncp
	cfg.AccessKey, cfg.SecretKey = c.ncpAccess, c.ncpSecret
	cfg.Events, cfg.Seed, cfg.LiveRate = s.ncpEvents, s.seed, s.live
	ncp := ncloud.NewSimulator(cfg)
	nhn := nhncloud.NewSimulator(nhncloud.SimulatorOptions{AppKey: c.nhnAppKey, UserAccessKeyID: c.nhnKeyID,
		SecretAccessKey: c.nhnSecret, Seed: s.seed + 1, RecordRequests: s.recordNHN})
	now := time.Now()
	nhn.Generate(s.nhnEvents, now.Add(-29*24*time.Hour), now)
	nhn.SetFaults(s.nhnFaults)
	if s.live > 0 {
		nhn.Live(s.live / 2)
	}
	sims := &chaosSims{ncp: ncp, nhn: nhn,
		ncpMW: &faultMiddleware{h: ncp, slowEvery: s.slowEvery, slowFor: s.slowFor},
		nhnMW: &faultMiddleware{h: nhn, slowEvery: s.slowEvery, slowFor: s.slowFor, truncateEvery: s.truncateNHNEvery},
	}
	if s.pace > 0 {
		sims.ncpMW.pace = rate.NewLimiter(rate.Limit(s.pace), 1)
		sims.nhnMW.pace = rate.NewLimiter(rate.Limit(s.pace), 1)
	}
	a, b := httptest.NewServer(sims.ncpMW), httptest.NewServer(sims.nhnMW)
	t.Cleanup(func() {
		a.CloseClientConnections()
		b.CloseClientConnections()
		a.Close()
		b.Close()
	})
	sims.ncpURL, sims.nhnURL = a.URL, b.URL
	return sims
}

// ids returns every event id the simulators hold now (event.id after ecs).
func (s *chaosSims) ids() []string {
	var out []string
	for _, ev := range s.ncp.Events() {
		out = append(out, ev.ID)
	}
	for _, ev := range s.nhn.Events() {
		out = append(out, ev.UUID)
	}
	return out
}

// sources returns the pipeline's two API sources reading the simulators.
func (s *chaosSims) sources(rate float64, ncpPage, nhnPage int) map[string]any {
	return map[string]any{
		"ncp": map[string]any{
			"type": "ncloud_activity_tracer", "endpoint": s.ncpURL,
			"access_key": "${CHAOS_NCP_ACCESS_KEY}", "secret_key": "${CHAOS_NCP_SECRET_KEY}",
			"page_size": ncpPage, "rate_limit": rate, "interval": "1s",
		},
		"nhn": map[string]any{
			"type": "nhncloud_cloudtrail", "endpoint": s.nhnURL, "api_version": "v2",
			"app_key": "${CHAOS_NHN_APPKEY}", "user_access_key_id": "${CHAOS_NHN_KEY_ID}",
			"secret_access_key": "${CHAOS_NHN_SECRET}", "page_size": nhnPage, "rate_limit": rate, "interval": "1s",
		},
	}
}

// faultMiddleware adds slow pages and truncated answers in front of a
// simulator, on every Nth request.
type faultMiddleware struct {
	h                        http.Handler
	slowEvery, truncateEvery int
	slowFor                  time.Duration
	pace                     *rate.Limiter
	n, slowed, truncated     atomic.Int64
}

func (m *faultMiddleware) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if m.pace != nil && m.pace.Wait(r.Context()) != nil {
		return
	}
	n := m.n.Add(1)
	if m.slowEvery > 0 && n%int64(m.slowEvery) == 0 {
		m.slowed.Add(1)
		select {
		case <-time.After(m.slowFor):
		case <-r.Context().Done():
			return
		}
	}
	if m.truncateEvery > 0 && n%int64(m.truncateEvery) == 0 {
		m.truncated.Add(1)
		rec := httptest.NewRecorder()
		m.h.ServeHTTP(rec, r)
		for k, v := range rec.Header() {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(rec.Code)
		body := rec.Body.Bytes()
		_, _ = w.Write(body[:len(body)/2])
		return
	}
	m.h.ServeHTTP(w, r)
}

// ---- pipelines ----

// pipeline writes dir/pipeline.yaml: the sources, then (with transforms)
// ecs and mask (when the build has it; redacting every address when
// e.redact), then the outputs, each reading the last transform unless it
// names its inputs. It returns the file's path.
func (e *chaosEnv) pipeline(t testing.TB, dir string, sources, outputs map[string]any, transforms bool) string {
	t.Helper()
	doc := map[string]any{
		"data_dir":         filepath.Join(dir, "data"),
		"shutdown_timeout": "10s",
		"api":              map[string]any{"address": ""},
		"log":              map[string]any{"level": e.logLevel, "format": "json"},
		"sources":          sources,
		"outputs":          outputs,
	}
	var last []string
	for name := range sources {
		last = append(last, name)
	}
	sort.Strings(last)
	if transforms {
		tr := map[string]any{"ecs": map[string]any{"type": "ecs", "inputs": last}}
		last = []string{"ecs"}
		if hasMask(t) {
			m := map[string]any{"type": "mask", "inputs": last}
			if e.redact {
				m["ip"] = map[string]any{"mode": "redact"}
				m["email"] = map[string]any{"mode": "redact"}
			}
			tr["mask"] = m
			last = []string{"mask"}
		}
		doc["transforms"] = tr
	}
	for _, o := range outputs {
		if m := o.(map[string]any); m["inputs"] == nil {
			m["inputs"] = last
		}
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// hasMask reports whether the mask transform is compiled in (it is being
// built in parallel; the suite runs without it, and says so).
func hasMask(t testing.TB) bool {
	reg, err := newRegistry()
	if err != nil {
		t.Fatal(err)
	}
	_, ok := reg.Lookup(plugins.KindTransform, "mask")
	return ok
}

func chaosFileOutput(path string) map[string]any {
	return map[string]any{"type": "file", "path": path}
}

// ---- forwarder processes ----

type fwdRun struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	api     string
	started time.Time
	done    chan struct{}
	err     error
	took    time.Duration
	hwm     *atomic.Int64
}

// start runs the forwarder on cfg (run, or run --once) with its stderr in
// a log file that the log scan reads at the end. api, when set, is the
// address of /readyz and /metrics.
func (e *chaosEnv) start(t testing.TB, name, cfg string, once bool, api string, env ...string) *fwdRun {
	t.Helper()
	args := []string{"run", "-c", cfg}
	if once {
		args = append(args, "--once")
	}
	logPath := filepath.Join(e.logDir, fmt.Sprintf("%04d-%s.log", e.seq.Add(1), name))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(forwarderBin, args...)
	cmd.Env = append(os.Environ(), e.creds.env()...)
	cmd.Env = append(cmd.Env, "CHAOS_KAFKA_PASSWORD="+e.kafkaPassword)
	if api != "" {
		cmd.Env = append(cmd.Env, "FORWARDER_API__ADDRESS="+api)
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = f, f
	if e.discardStdout {
		cmd.Stdout = nil // /dev/null
	}
	p := &fwdRun{name: name, cmd: cmd, logPath: logPath, api: api, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		t.Fatal(err)
	}
	e.mu.Lock()
	e.logs = append(e.logs, logPath)
	e.mu.Unlock()
	p.hwm = sampleHWM(cmd.Process.Pid, p.done)
	go func() {
		p.err = cmd.Wait()
		p.took = time.Since(p.started)
		_ = f.Close()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *fwdRun) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits for the process to exit and returns its error (nil: exit 0).
func (p *fwdRun) wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("%s did not exit within %s", p.name, timeout)
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *fwdRun) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits for the exit.
func (p *fwdRun) term(timeout time.Duration) error {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	return p.wait(timeout)
}

func (p *fwdRun) stderr() string {
	data, _ := os.ReadFile(p.logPath)
	return string(data)
}

func (p *fwdRun) exitCode() int {
	if p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// rusage returns the CPU time (user + system, from the exited process's
// rusage) and its peak RSS (VmHWM, sampled while it ran: ru_maxrss is no
// good here, as Linux carries the parent's high-water mark over the exec
// of a child that Go starts with vfork, so a child of a big test process
// reports at least the test's RSS).
func (p *fwdRun) rusage() (time.Duration, int64) {
	ps := p.cmd.ProcessState
	if ps == nil {
		return 0, 0
	}
	return ps.UserTime() + ps.SystemTime(), p.hwm.Load()
}

// sampleHWM records the peak resident set (VmHWM) of pid every 50 ms until
// done is closed.
func sampleHWM(pid int, done <-chan struct{}) *atomic.Int64 {
	v := new(atomic.Int64)
	path := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if data, err := os.ReadFile(path); err == nil {
				if kb := statusKB(data, "VmHWM:"); kb*1024 > v.Load() {
					v.Store(kb * 1024)
				}
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return v
}

// statusKB reads a "Key:   123 kB" line of /proc/<pid>/status.
func statusKB(status []byte, key string) int64 {
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, key) {
			if f := strings.Fields(line); len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb
			}
		}
	}
	return 0
}

func chaosFreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// readyzState returns /readyz's status code and body (0 when unreachable).
func readyzState(addr string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// waitReadyz waits until /readyz answers want and its body contains
// contains; it returns how long that took.
func waitReadyz(t *testing.T, p *fwdRun, want int, contains string, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	code, body := 0, ""
	for time.Since(start) < timeout {
		if code, body = readyzState(p.api); code == want && strings.Contains(body, contains) {
			return time.Since(start)
		}
		if p.exited() {
			t.Fatalf("%s exited (%v) while waiting for /readyz %d:\n%s", p.name, p.err, want, lastLines(p.stderr(), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("/readyz did not answer %d with %q within %s; last: %d %s", want, contains, timeout, code, body)
	return 0
}

// ---- reading the outputs back ----

// ndjsonTail reads the complete lines of an NDJSON file from an offset:
// the event ids, and the offset after the last complete line (a torn last
// line after SIGKILL is left for the forwarder to repair).
func ndjsonTail(t testing.TB, path string, from int64, visit func(line []byte)) ([]string, int64) {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, from
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	var ids []string
	off := from
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: read it whole.
			rest, err2 := r.ReadBytes('\n')
			line = append(append([]byte(nil), line...), rest...)
			err = err2
		}
		if err != nil {
			break // EOF: a missing newline means a torn tail
		}
		off += int64(len(line))
		ids = append(ids, eventID(line))
		if visit != nil {
			visit(line)
		}
	}
	return ids, off
}

// eventID returns event.id of an ECS document ("" when absent). The ecs
// transform writes it first in "event": a quick look finds it without
// decoding the document (the kill loop reads the output as it grows).
func eventID(doc []byte) string {
	const head = `"event":{"id":"`
	if i := bytes.Index(doc, []byte(head)); i >= 0 {
		rest := doc[i+len(head):]
		if j := bytes.IndexByte(rest, '"'); j >= 0 && bytes.IndexByte(rest[:j], '\\') < 0 {
			return string(rest[:j])
		}
	}
	var d struct {
		Event struct {
			ID string `json:"id"`
		} `json:"event"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return ""
	}
	return d.Event.ID
}

// idSet is the ids an output holds, with their counts.
type idSet map[string]int

func (s idSet) addAll(ids []string) (dups int) {
	for _, id := range ids {
		if s[id] > 0 {
			dups++
		}
		s[id]++
	}
	return dups
}

// missing returns the wanted ids the set lacks (at most 5 examples) and how many.
func (s idSet) missing(want []string) (int, []string) {
	n := 0
	var ex []string
	for _, id := range want {
		if s[id] == 0 {
			n++
			if len(ex) < 5 {
				ex = append(ex, id)
			}
		}
	}
	return n, ex
}

func (s idSet) total() int {
	n := 0
	for _, c := range s {
		n += c
	}
	return n
}

// kafkaAdmin returns an admin client on brokers.
func kafkaAdmin(t testing.TB, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// createTopic creates a one-partition topic and deletes it at the end.
func createTopic(t testing.TB, brokers []string, name string) string {
	t.Helper()
	adm := kafkaAdmin(t, brokers)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, 1, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("creating topic %s on %v: %v", name, brokers, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, name)
	})
	return name
}

func endOffset(t testing.TB, adm *kadm.Client, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	offs, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("end offsets of %s: %v", topic, err)
	}
	var end int64
	offs.Each(func(o kadm.ListedOffset) { end += o.Offset })
	return end
}

// kafkaReader consumes a one-partition topic from its start, incrementally.
type kafkaReader struct {
	cl   *kgo.Client
	keys []string // by offset
	bad  int      // records whose value's event.id differs from the key
}

func newKafkaReader(t testing.TB, brokers []string, topic string) *kafkaReader {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &kafkaReader{cl: cl}
}

// poll reads what is there now, for up to d.
func (k *kafkaReader) poll(d time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for ctx.Err() == nil {
		fs := k.cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			for int64(len(k.keys)) < r.Offset {
				k.keys = append(k.keys, "") // a gap (never in a plain topic)
			}
			k.keys = append(k.keys, string(r.Key))
			if id := eventID(r.Value); id != string(r.Key) {
				k.bad++
			}
		})
		if fs.NumRecords() == 0 {
			return
		}
	}
}

// readUntil polls until end records are read or the timeout passes.
func (k *kafkaReader) readUntil(end int64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for int64(len(k.keys)) < end && time.Now().Before(deadline) {
		k.poll(2 * time.Second)
	}
}

// es runs one request against Elasticsearch and decodes the answer.
func esRequest(method, url string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %.300s", method, url, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// esCheck refreshes index and returns its document count and, for ids,
// how often each was found (a data stream could hold an id twice only in
// two backing indices).
func esCheck(base, index string, ids []string) (int, idSet, error) {
	// Other packages' tests restart the shared node now and then: wait
	// for it rather than fail on a refused connection.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := esRequest("POST", base+"/"+index+"/_refresh", nil, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			return 0, nil, err
		}
		time.Sleep(2 * time.Second)
	}
	var cnt struct {
		Count int `json:"count"`
	}
	if err := esRequest("GET", base+"/"+index+"/_count", nil, &cnt); err != nil {
		return 0, nil, err
	}
	found := idSet{}
	const chunk = 1000
	for i := 0; i < len(ids); i += chunk {
		part := ids[i:min(i+chunk, len(ids))]
		var res struct {
			Hits struct {
				Hits []struct {
					ID string `json:"_id"`
				} `json:"hits"`
			} `json:"hits"`
		}
		q := map[string]any{"size": 2 * len(part), "_source": false, "query": map[string]any{"ids": map[string]any{"values": part}}}
		if err := esRequest("POST", base+"/"+index+"/_search", q, &res); err != nil {
			return 0, nil, err
		}
		for _, h := range res.Hits.Hits {
			found[h.ID]++
		}
	}
	return cnt.Count, found, nil
}

// relpIDs reads the ids of the syslog messages with our hostname from
// rsyslog's output file, from an offset.
var sdID = regexp.MustCompile(` id="([^"]+)"`)

func relpTail(t testing.TB, path, hostname string, from int64) ([]string, int64) {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, from
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	off := from
	var ids []string
	marker := " " + hostname + " "
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		off += int64(len(line))
		if !strings.Contains(line, marker) {
			continue
		}
		if m := sdID.FindStringSubmatch(line); m != nil {
			ids = append(ids, m[1])
		}
	}
	return ids, off
}

// ---- address and secret scanning ----

var (
	ipv4Re  = regexp.MustCompile(`(?:^|[^0-9.])((?:[0-9]{1,3}\.){3}[0-9]{1,3})(?:[^0-9.]|$)`)
	ipv6Re  = regexp.MustCompile(`[0-9A-Fa-f]*(?::[0-9A-Fa-f]*){2,}`)
	emailRe = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`)
)

// addressesIn returns the IPv4 (other than loopback and 0.0.0.0), IPv6
// (other than :: and ::1) and email addresses in s.
func addressesIn(s string) []string {
	var out []string
	for _, m := range ipv4Re.FindAllStringSubmatch(s, -1) {
		ip := net.ParseIP(m[1])
		if ip == nil || ip.IsLoopback() || ip.IsUnspecified() {
			continue
		}
		out = append(out, m[1])
	}
	for _, m := range ipv6Re.FindAllString(s, -1) {
		ip := net.ParseIP(m)
		if ip == nil || ip.To4() != nil || ip.IsLoopback() || ip.IsUnspecified() {
			continue
		}
		out = append(out, m)
	}
	out = append(out, emailRe.FindAllString(s, -1)...)
	return out
}

// ---- scenario: kill -9 during a backfill ----

func (e *chaosEnv) scenarioKill(t *testing.T, rep *chaosReport) {
	n, kills := 20000, 10
	if e.long {
		n, kills = 100000, 100
	}
	// 40 pages of 20 items a second per simulator: a backfill of at
	// least n/1600 s (12.5 s short, 62.5 s long).
	s := startSims(t, e.creds, simSpec{ncpEvents: n / 2, nhnEvents: n - n/2, seed: 11, pace: 40})
	want := s.ids()
	dir := t.TempDir()
	topic := createTopic(t, e.kafkaBrokers, "chaos-kill-"+e.runID)
	index := "logs-fwdchaos-kill" + e.runID
	out := filepath.Join(dir, "out", "events.ndjson")
	// Pages of 20 items make windows of ~400 events, so each run makes
	// progress in small steps and the kills spread over the backfill.
	cfg := e.pipeline(t, dir, s.sources(100, 20, 20), map[string]any{
		"kafka": map[string]any{"type": "kafka", "brokers": e.kafkaSASLBrokers, "topic": topic,
			"sasl": map[string]any{"mechanism": "SCRAM-SHA-512", "username": e.kafkaUser, "password": "${CHAOS_KAFKA_PASSWORD}"}},
		"es":      map[string]any{"type": "elasticsearch", "addresses": []string{e.esURL}, "index": index},
		"archive": chaosFileOutput(out),
	}, true)
	adm := kafkaAdmin(t, e.kafkaBrokers)

	// The file output is read as it grows: its distinct ids are the
	// progress of the backfill (it is written and fsynced batch by batch,
	// unlike Elasticsearch's count, which lags a refresh behind), and the
	// duplicates each run writes are those caused by the kill before it.
	fileIDs := idSet{}
	var fileOff int64
	runDups := 0
	readFile := func() int {
		ids, next := ndjsonTail(t, out, fileOff, nil)
		fileOff = next
		runDups += fileIDs.addAll(ids)
		return len(fileIDs)
	}
	var fileDups []int
	kafkaEnds := []int64{0}
	early, capped, mid := 0, 0, 0
	last := n - n/20 // kill points stay short of the end
	for i := 0; i < kills; i++ {
		prev := readFile()
		target := min(last, prev+1+mrand.IntN(max(1, (last-prev)/(kills-i))))
		p := e.start(t, fmt.Sprintf("kill9-%03d", i), cfg, false, "")
		how := killMoment(p, func() bool { return readFile() >= target }, e.long)
		p.kill()
		if readFile() < n {
			mid++
		}
		switch how {
		case "early":
			early++
		case "cap":
			capped++
		case "exited":
			t.Fatalf("run %d exited by itself (%v):\n%s", i, p.err, lastLines(p.stderr(), 20))
		}
		fileDups = append(fileDups, runDups)
		runDups = 0
		kafkaEnds = append(kafkaEnds, endOffset(t, adm, topic))
	}
	var esCount struct {
		Count int `json:"count"`
	}
	_ = esRequest("POST", e.esURL+"/"+index+"/_refresh", nil, nil)
	_ = esRequest("GET", e.esURL+"/"+index+"/_count", nil, &esCount)
	inFile := len(fileIDs)
	final := e.start(t, "kill9-final", cfg, true, "")
	timeout := 3 * time.Minute
	if e.long {
		timeout = 10 * time.Minute
	}
	if err := final.wait(timeout); err != nil {
		t.Fatalf("final run --once: %v\n%s", err, lastLines(final.stderr(), 30))
	}
	addrs := 0
	ids, _ := ndjsonTail(t, out, fileOff, func(line []byte) {
		if len(addressesIn(string(line))) > 0 {
			addrs++
		}
	})
	fileDups = append(fileDups, runDups+fileIDs.addAll(ids))
	kafkaEnds = append(kafkaEnds, endOffset(t, adm, topic))
	rep.add("%d kills (%d during the backfill; %d in the first 1.5 s of a run, %d on the time cap), %d events; before the final --once run %.0f%% in the file, %.0f%% in Elasticsearch",
		kills, mid, early, capped, n, 100*float64(inFile)/float64(n), 100*float64(esCount.Count)/float64(n))
	// A self-check of the test, not of the product: on a fast, quiet
	// machine the later runs can finish the backfill before their kill.
	if mid < max(2, kills/5) {
		t.Errorf("only %d of %d kills landed during the backfill", mid, kills)
	}

	// File: everything, duplicates per crash within the unacknowledged window.
	bound := dupBound
	if miss, ex := fileIDs.missing(want); miss > 0 {
		t.Errorf("file: %d of %d events lost (e.g. %v)", miss, n, ex)
	}
	fileMax, fileSum := maxSum(fileDups[1:])
	rep.add("file: %d lines, %d duplicates (%.0f/crash, max %d)", fileIDs.total(), fileSum, float64(fileSum)/float64(kills), fileMax)
	if fileMax > bound {
		t.Errorf("file: %d duplicates after one crash, above twice the unacknowledged window of %d sources (%d)", fileMax, chaosSourcesInKill, bound)
	}
	if hasMask(t) && addrs > 0 {
		t.Errorf("file: %d documents of the last run still hold an IP or email address after mask (redact)", addrs)
	}

	// Kafka: every event, duplicates attributed to the run that wrote them.
	kr := newKafkaReader(t, e.kafkaBrokers, topic)
	kr.readUntil(kafkaEnds[len(kafkaEnds)-1], 2*time.Minute)
	kIDs := idSet{}
	var kafkaDups []int
	for r := 1; r < len(kafkaEnds); r++ {
		lo, hi := kafkaEnds[r-1], min(kafkaEnds[r], int64(len(kr.keys)))
		if lo > hi {
			lo = hi
		}
		kafkaDups = append(kafkaDups, kIDs.addAll(kr.keys[lo:hi]))
	}
	if miss, ex := kIDs.missing(want); miss > 0 {
		t.Errorf("kafka: %d of %d events lost (e.g. %v); %d records read", miss, n, ex, len(kr.keys))
	}
	if kr.bad > 0 {
		t.Errorf("kafka: %d records whose key is not their event.id", kr.bad)
	}
	kMax, kSum := maxSum(kafkaDups[1:])
	rep.add("kafka: %d records, %d duplicates (%.0f/crash, max %d)", len(kr.keys), kSum, float64(kSum)/float64(kills), kMax)
	if kMax > bound {
		t.Errorf("kafka: %d duplicates after one crash, above the unacknowledged window", kMax)
	}

	// Elasticsearch: exactly one document per event.
	count, found, err := esCheck(e.esURL, index, want)
	if err != nil {
		t.Fatalf("elasticsearch: %v", err)
	}
	miss, ex := found.missing(want)
	twice := 0
	for _, c := range found {
		if c > 1 {
			twice++
		}
	}
	rep.add("elasticsearch: %d documents, %d missing, %d twice", count, miss, twice)
	if count != n || miss > 0 || twice > 0 {
		t.Errorf("elasticsearch: %d documents for %d events, %d ids missing (e.g. %v), %d ids twice", count, n, miss, ex, twice)
	}
}

func maxSum(v []int) (int, int) {
	m, s := 0, 0
	for _, x := range v {
		m = max(m, x)
		s += x
	}
	return m, s
}

// killMoment waits for a random moment to kill p: one time in four a
// random instant of its first 1.5 s (start-up, template checks, first
// pages); otherwise once reached() (the backfill got to a random point),
// plus up to 250 ms — or at a time cap when the pipeline makes no progress.
func killMoment(p *fwdRun, reached func() bool, long bool) string {
	if mrand.IntN(4) == 0 {
		d := time.Duration(50+mrand.IntN(1450)) * time.Millisecond
		select {
		case <-time.After(d):
			return "early"
		case <-p.done:
			return "exited"
		}
	}
	deadline := time.Now().Add(8 * time.Second)
	if long {
		deadline = time.Now().Add(15 * time.Second)
	}
	how := "cap"
	for time.Now().Before(deadline) {
		if p.exited() {
			return "exited"
		}
		if reached() {
			how = "progress"
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Duration(mrand.IntN(250)) * time.Millisecond)
	if p.exited() {
		return "exited"
	}
	return how
}

// ---- scenario: services stopped mid-run ----

type outageTarget struct {
	service, component string
	stop, start        func() error
}

func (e *chaosEnv) scenarioOutage(t *testing.T, rep *chaosReport) {
	hold := 10 * time.Second
	backlog, live := 3000, 20.0
	if e.long {
		hold, backlog = 60*time.Second, 20000
	}
	if v := os.Getenv("FORWARDER_CHAOS_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("FORWARDER_CHAOS_OUTAGE: %v", err)
		}
		hold = d
	}
	e.priv.wait(t, rep)
	p := e.priv
	s := startSims(t, e.creds, simSpec{ncpEvents: backlog, nhnEvents: backlog, seed: 21, live: live})
	dir := t.TempDir()
	privBrokers := []string{p.kafkaBroker}
	topic := createTopic(t, privBrokers, "chaos-outage-"+e.runID)
	hostname := "chaos-outage-" + e.runID
	out := filepath.Join(dir, "out", "events.ndjson")
	delivery := map[string]any{"timeout": "10s", "max_backoff": "5s"}
	outputs := map[string]any{
		"kafka": map[string]any{"type": "kafka", "brokers": privBrokers, "topic": topic, "delivery": delivery},
		"siem": map[string]any{"type": "syslog", "address": "relp://" + p.relpAddr, "hostname": hostname,
			"reconnect": map[string]any{"max_backoff": "2s"}, "delivery": delivery},
		"archive": chaosFileOutput(out),
	}
	index := "logs-fwdchaos-outage" + e.runID
	targets := []outageTarget{
		{"Kafka", "kafka",
			func() error { _, err := serviceScript("kafka", p.kafkaEnv, "stop-broker"); return err },
			func() error { _, err := serviceScript("kafka", p.kafkaEnv, "start-broker"); return err }},
		{"rsyslog", "siem",
			func() error { _, err := serviceScript("rsyslog", p.syslogEnv, "stop"); return err },
			func() error { _, err := serviceScript("rsyslog", p.syslogEnv, "start"); return err }},
	}
	if e.long {
		outputs["es"] = map[string]any{"type": "elasticsearch", "addresses": []string{p.esURL}, "index": index,
			"health_check_interval": "2s", "delivery": delivery}
		targets = append(targets, outageTarget{"Elasticsearch", "es",
			func() error { _, err := serviceScript("elasticsearch", p.esEnv, "stop"); return err },
			func() error {
				_, err := serviceScript("elasticsearch", append(p.esEnv, "FORWARDER_ES_KEEP_DATA=1"), "start")
				return err
			}})
	} else {
		rep.add("short form: Kafka and rsyslog only (Elasticsearch in the long form)")
	}
	cfg := e.pipeline(t, dir, s.sources(20, 100, 1000), outputs, true)
	var relpOff int64 // the receiver's file outlives runs: read only what this one adds
	if fi, err := os.Stat(p.relpFile); err == nil {
		relpOff = fi.Size()
	}
	api := chaosFreeAddr(t)
	fwd := e.start(t, "outage", cfg, false, api)
	waitReadyz(t, fwd, http.StatusOK, `"ready":true`, 90*time.Second)
	waitLines(t, out, 1000, 2*time.Minute)

	for _, tg := range targets {
		stopped := time.Now()
		if err := tg.stop(); err != nil {
			t.Fatalf("stopping %s: %v", tg.service, err)
		}
		detect := waitReadyz(t, fwd, http.StatusServiceUnavailable, `"`+tg.component+`"`, 60*time.Second)
		readyDuring, samples := 0, 0
		for time.Since(stopped) < hold {
			if code, _ := readyzState(api); code == http.StatusOK {
				readyDuring++
			}
			samples++
			time.Sleep(250 * time.Millisecond)
		}
		down := time.Since(stopped)
		if err := tg.start(); err != nil {
			t.Fatalf("restarting %s: %v", tg.service, err)
		}
		recovered := waitReadyz(t, fwd, http.StatusOK, `"ready":true`, 2*time.Minute)
		rep.add("%s down %.0fs: /readyz not ready after %.1fs, ready %.1fs after it answered again",
			tg.service, down.Seconds(), detect.Seconds(), recovered.Seconds())
		if readyDuring > 0 {
			t.Errorf("%s stopped: /readyz said ready in %d of %d samples during the outage", tg.service, readyDuring, samples)
		}
	}

	// Nothing lost: every event the simulators held once the last service
	// was back reaches every output, without a restart of the forwarder.
	want := s.ids()
	kr := newKafkaReader(t, privBrokers, topic)
	fileIDs, relpIDs, kIDs := idSet{}, idSet{}, idSet{}
	var fileOff int64
	esMissing := want
	kOff := 0
	deadline := time.Now().Add(3 * time.Minute)
	if e.long {
		deadline = time.Now().Add(8 * time.Minute)
	}
	var status string
	for {
		ids, off := ndjsonTail(t, out, fileOff, nil)
		fileOff = off
		fileIDs.addAll(ids)
		ids, off = relpTail(t, p.relpFile, hostname, relpOff)
		relpOff = off
		relpIDs.addAll(ids)
		kr.poll(time.Second)
		kIDs.addAll(kr.keys[kOff:])
		kOff = len(kr.keys)
		fm, _ := fileIDs.missing(want)
		rm, _ := relpIDs.missing(want)
		km, _ := kIDs.missing(want)
		em := 0
		if e.long {
			if _, found, err := esCheck(p.esURL, index, esMissing); err == nil {
				var still []string
				for _, id := range esMissing {
					if found[id] == 0 {
						still = append(still, id)
					}
				}
				esMissing = still
			}
			em = len(esMissing)
		}
		status = fmt.Sprintf("missing: file %d, kafka %d, relp %d, elasticsearch %d of %d", fm, km, rm, em, len(want))
		if fm+rm+km+em == 0 {
			break
		}
		if fwd.exited() {
			t.Fatalf("the forwarder exited during the outages (%v); %s\n%s", fwd.err, status, lastLines(fwd.stderr(), 30))
		}
		if time.Now().After(deadline) {
			t.Fatalf("events lost after the outages: %s", status)
		}
		time.Sleep(2 * time.Second)
	}
	if err := fwd.term(60 * time.Second); err != nil {
		t.Errorf("SIGTERM after the outages: %v\n%s", err, lastLines(fwd.stderr(), 20))
	}
	rep.add("all %d events in every output (kafka %d records, relp %d messages)", len(want), kIDs.total(), relpIDs.total())
}

// ---- scenario: API faults ----

func (e *chaosEnv) scenarioAPIFaults(t *testing.T, rep *chaosReport) {
	n := 3000
	if e.long {
		n = 20000
	}
	base := simSpec{ncpEvents: n, nhnEvents: n, seed: 31, recordNHN: true}
	faulty := base
	// ~15% of requests: 429 (Retry-After 1s) / 500 / 503 / 504 and
	// truncated JSON from NCP; HTTP-200 errors, 503 and quota 403s from
	// NHN, plus truncated answers; 1.5 s pages from both.
	faulty.ncp = ncloud.SimulatorConfig{FailEvery: 10, FailStatuses: []int{429, 500, 503, 504}, RetryAfter: time.Second, MalformedEvery: 37}
	faulty.nhnFaults = nhncloud.Faults{TransientRate: 0.045, HTTP503Rate: 0.03, QuotaRate: 0.02, QuotaRetryAfter: time.Second}
	faulty.slowEvery, faulty.slowFor = 31, 1500*time.Millisecond
	faulty.truncateNHNEvery = 37

	clean, _, _ := e.backfill(t, "faults-clean", base)
	dirty, faults, requests := e.backfill(t, "faults-injected", faulty)
	ratio := dirty.Seconds() / clean.Seconds()
	rep.add("%d events; %d of %d requests faulty (%.0f%%); fault-free %.1fs, with faults %.1fs: %.2f×",
		2*n, faults, requests, 100*float64(faults)/float64(requests), clean.Seconds(), dirty.Seconds(), ratio)
	if frac := float64(faults) / float64(requests); frac < 0.08 {
		t.Errorf("only %.0f%% of requests were faulty; the scenario proves little", 100*frac)
	}
	if e.long && ratio > 1.3 {
		t.Errorf("the backfill with faults took %.2f× the fault-free time (limit 1.3×)", ratio)
	}
}

// backfill runs the simulators of spec → ecs → mask → file with --once at
// the API's default rate limit, checks that every event arrived and returns
// the run time, the faults injected and the requests served.
func (e *chaosEnv) backfill(t *testing.T, name string, spec simSpec) (time.Duration, int, int) {
	s := startSims(t, e.creds, spec)
	want := s.ids()
	dir := t.TempDir()
	out := filepath.Join(dir, "out", "events.ndjson")
	cfg := e.pipeline(t, dir, s.sources(5, 100, 100), map[string]any{"archive": chaosFileOutput(out)}, true)
	p := e.start(t, name, cfg, true, "")
	timeout := 3 * time.Minute
	if e.long {
		timeout = 10 * time.Minute
	}
	if err := p.wait(timeout); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, lastLines(p.stderr(), 30))
	}
	got := idSet{}
	ids, _ := ndjsonTail(t, out, 0, nil)
	got.addAll(ids)
	if miss, ex := got.missing(want); miss > 0 {
		t.Errorf("%s: %d of %d events lost (e.g. %v)", name, miss, len(want), ex)
	}
	dead, _ := filepath.Glob(filepath.Join(dir, "data", "components", "*", "dead_letter_windows.ndjson"))
	for _, d := range dead {
		if data, _ := os.ReadFile(d); len(data) > 0 {
			t.Errorf("%s: windows were dead-lettered (%s):\n%.500s", name, d, data)
		}
	}
	faults := int(s.ncp.Failures() + s.ncpMW.slowed.Load() + s.nhnMW.slowed.Load() + s.nhnMW.truncated.Load())
	for _, r := range s.nhn.Requests() {
		if r.HTTPStatus != http.StatusOK || r.ResultCode != 0 {
			faults++
		}
	}
	requests := int(s.ncpMW.n.Load() + s.nhnMW.n.Load())
	return p.took, faults, requests
}

// ---- scenario: corrupt checkpoint store ----

func (e *chaosEnv) scenarioCorruptCheckpoint(t *testing.T, rep *chaosReport) {
	s := startSims(t, e.creds, simSpec{ncpEvents: 1000, nhnEvents: 1000, seed: 41, live: 4})
	dir := t.TempDir()
	out := filepath.Join(dir, "out", "events.ndjson")
	cfg := e.pipeline(t, dir, s.sources(50, 100, 1000), map[string]any{"archive": chaosFileOutput(out)}, true)
	store := filepath.Join(dir, "data", "checkpoints.db")
	run := func(name string) *fwdRun {
		p := e.start(t, name, cfg, true, "")
		_ = p.wait(2 * time.Minute)
		return p
	}
	if p := run("corrupt-initial"); p.err != nil {
		t.Fatalf("initial run: %v\n%s", p.err, lastLines(p.stderr(), 20))
	}
	good, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	variants := []struct {
		name    string
		corrupt func([]byte) []byte
	}{
		{"random bytes", func(g []byte) []byte { b := make([]byte, len(g)); _, _ = rand.Read(b); return b }},
		{"garbage after the meta pages", func(g []byte) []byte {
			b := append([]byte(nil), g...)
			_, _ = rand.Read(b[2*page:])
			return b
		}},
		{"truncated to 3 pages", func(g []byte) []byte { return append([]byte(nil), g[:3*page]...) }},
	}
	fileIDs := idSet{}
	var fileOff int64
	last := time.Now()
	for i, v := range variants {
		// New events after the last run, so a checkpoint read from garbage
		// that skips ahead would lose them.
		time.Sleep(20 * time.Millisecond)
		s.nhn.Generate(50, last, time.Now())
		last = time.Now()
		want := s.ids()
		if err := os.WriteFile(store, v.corrupt(good), 0o600); err != nil {
			t.Fatal(err)
		}
		p := run(fmt.Sprintf("corrupt-%d", i))
		errText := p.stderr()
		outcome := ""
		switch {
		case strings.Contains(errText, "panic:") || strings.Contains(errText, "fatal error:") || strings.Contains(errText, "SIGBUS") || strings.Contains(errText, "SIGSEGV"):
			outcome = "CRASH (" + firstMatch(errText, "panic:", "fatal error:") + ")"
			t.Errorf("%s: the forwarder crashed instead of reporting a corrupt store:\n%s", v.name, headLines(errText, 12))
		case p.err == nil:
			outcome = "ran (the damage missed the live pages)"
		case !strings.Contains(errText, store) || !strings.Contains(errText, "corrupt"):
			outcome = fmt.Sprintf("exit %d without naming the store", p.exitCode())
			t.Errorf("%s: exit %d, but the error does not name %s as corrupt:\n%s", v.name, p.exitCode(), store, lastLines(errText, 5))
		default:
			outcome = fmt.Sprintf("clear error, exit %d", p.exitCode())
		}
		if p.err != nil {
			// The message says to move the store away; a rerun then
			// starts from the lookback and delivers everything again.
			if err := os.Rename(store, store+fmt.Sprintf(".corrupt-%d", i)); err != nil {
				t.Fatal(err)
			}
			if p2 := run(fmt.Sprintf("corrupt-%d-rerun", i)); p2.err != nil {
				t.Errorf("%s: rerun after moving the store away: %v\n%s", v.name, p2.err, lastLines(p2.stderr(), 10))
			}
		}
		ids, off := ndjsonTail(t, out, fileOff, nil)
		fileOff = off
		fileIDs.addAll(ids)
		if miss, ex := fileIDs.missing(want); miss > 0 {
			t.Errorf("%s: %d events lost (e.g. %v)", v.name, miss, ex)
			outcome += fmt.Sprintf(", %d LOST", miss)
		}
		rep.add("%s: %s", v.name, outcome)
	}
}

// cliError returns the "error: …" line the forwarder prints when it fails.
func cliError(stderr string) string {
	for _, line := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(line, "error: ") {
			return line
		}
	}
	return ""
}

func firstMatch(s string, subs ...string) string {
	for _, line := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(line, sub) {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

func headLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// ---- scenario: full disk in data_dir ----

func (e *chaosEnv) scenarioFullDisk(t *testing.T, rep *chaosReport) {
	s := startSims(t, e.creds, simSpec{ncpEvents: 1000, nhnEvents: 1000, seed: 51})
	want := s.ids()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", data).CombinedOutput(); err != nil {
		t.Fatalf("mount -t tmpfs -o size=2m tmpfs %s (needs root): %v %s", data, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", data).Run() })
	fill := filepath.Join(data, "fill")
	f, err := os.Create(fill)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", data, err)
			}
			break
		}
	}
	_ = f.Close()
	out := filepath.Join(dir, "out", "events.ndjson")
	cfg := e.pipeline(t, dir, s.sources(50, 100, 1000), map[string]any{"archive": chaosFileOutput(out)}, true)
	p := e.start(t, "full-disk", cfg, true, "")
	_ = p.wait(2 * time.Minute)
	errText := p.stderr()
	if strings.Contains(errText, "panic:") || strings.Contains(errText, "fatal error:") {
		t.Errorf("panic on a full data_dir:\n%s", headLines(errText, 15))
	}
	if p.err == nil {
		t.Errorf("the forwarder ran with a full data_dir and reported nothing")
	} else if !strings.Contains(errText, data) || !strings.Contains(errText, "no space left on device") {
		t.Errorf("exit %d, but no error naming %s and 'no space left on device':\n%s", p.exitCode(), data, lastLines(errText, 5))
	}
	rep.add("full: exit %d, %q", p.exitCode(), shorten(cliError(errText), 200))
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	p2 := e.start(t, "full-disk-rerun", cfg, true, "")
	if err := p2.wait(2 * time.Minute); err != nil {
		t.Fatalf("rerun after freeing space: %v\n%s", err, lastLines(p2.stderr(), 20))
	}
	got := idSet{}
	ids, _ := ndjsonTail(t, out, 0, nil)
	got.addAll(ids)
	miss, ex := got.missing(want)
	if miss > 0 {
		t.Errorf("after freeing space: %d of %d events lost (e.g. %v)", miss, len(want), ex)
	}
	rep.add("after freeing space: %d of %d events delivered", len(want)-miss, len(want))
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// ---- scenario: unwritable dead-letter directory ----

func (e *chaosEnv) scenarioDeadLetter(t *testing.T, rep *chaosReport) {
	const count = 200
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	deadDir := filepath.Join(data, "dead_letter")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, deadDir, "a regular file where the dead-letter directory should be\n")
	// Every event is larger than max_message_bytes: a permanent failure
	// that can only go to the dead-letter file.
	cfg := e.pipeline(t, dir, map[string]any{
		"gen": map[string]any{"type": "generate", "count": count, "batch_size": 50, "size": 1024},
	}, map[string]any{
		"siem": map[string]any{"type": "syslog", "address": "udp://127.0.0.1:9", "max_message_bytes": 480,
			"delivery": map[string]any{"max_backoff": "2s"}},
	}, false)
	api := chaosFreeAddr(t)
	p := e.start(t, "dead-letter", cfg, false, api, "FORWARDER_SHUTDOWN_TIMEOUT=2s")
	waited := waitReadyz(t, p, http.StatusServiceUnavailable, "dead_letter", 60*time.Second)
	code, body := readyzState(api)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stderr(), deadDir) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	errText := p.stderr()
	if !strings.Contains(errText, deadDir) {
		t.Errorf("no log line names %s:\n%s", deadDir, lastLines(errText, 10))
	}
	time.Sleep(2 * time.Second) // give a wrong commit the time to happen
	if err := p.term(60 * time.Second); err != nil {
		t.Logf("SIGTERM with undeliverable batches: %v", err)
	}
	termCode := p.exitCode()
	if strings.Contains(p.stderr(), "panic:") {
		t.Errorf("panic:\n%s", headLines(p.stderr(), 15))
	}
	cp := loadCheckpoint(t, filepath.Join(data, "checkpoints.db"), "gen")
	if len(cp) != 0 {
		t.Errorf("the checkpoint advanced to %s although no event was delivered or dead-lettered", cp)
	}
	rep.add("/readyz %d after %.1fs (%s); SIGTERM exit %d; checkpoint not advanced: %v",
		code, waited.Seconds(), shorten(body, 140), termCode, len(cp) == 0)

	if err := os.Remove(deadDir); err != nil {
		t.Fatal(err)
	}
	p2 := e.start(t, "dead-letter-fixed", cfg, true, "")
	if err := p2.wait(2 * time.Minute); err != nil {
		t.Fatalf("rerun after fixing the directory: %v\n%s", err, lastLines(p2.stderr(), 20))
	}
	lines, err := os.ReadFile(filepath.Join(deadDir, "siem.ndjson"))
	if err != nil {
		t.Fatalf("after the fix: %v", err)
	}
	ids := map[string]bool{}
	for _, l := range bytes.Split(bytes.TrimSpace(lines), []byte("\n")) {
		var d struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(l, &d) == nil && d.EventID != "" {
			ids[d.EventID] = true
		}
	}
	if len(ids) != count {
		t.Errorf("%d distinct events in the dead-letter file after the fix, want %d", len(ids), count)
	}
	cp = loadCheckpoint(t, filepath.Join(data, "checkpoints.db"), "gen")
	if len(cp) == 0 {
		t.Errorf("the checkpoint did not advance once the events were dead-lettered")
	}
	rep.add("after the fix: %d of %d events dead-lettered, checkpoint %s", len(ids), count, shorten(string(cp), 60))
}

func loadCheckpoint(t *testing.T, path, key string) []byte {
	t.Helper()
	st, err := checkpoint.OpenBolt(path)
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	defer st.Close()
	cp, err := st.Load(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// ---- scenario: the log scan ----

func (e *chaosEnv) scenarioLogScan(t *testing.T, rep *chaosReport) {
	e.mu.Lock()
	logs := append([]string(nil), e.logs...)
	e.mu.Unlock()
	secrets := append(e.creds.values(), e.kafkaPassword)
	var lines, bytesRead, secretHits, addrHits, panics int
	var examples []string
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			line := sc.Text()
			lines++
			bytesRead += len(line) + 1
			for _, s := range secrets {
				if strings.Contains(line, s) {
					secretHits++
					if len(examples) < 6 {
						examples = append(examples, fmt.Sprintf("%s: secret %q in %s", filepath.Base(path), s, shorten(line, 300)))
					}
				}
			}
			if a := addressesIn(line); len(a) > 0 {
				addrHits++
				if len(examples) < 6 {
					examples = append(examples, fmt.Sprintf("%s: address %v in %s", filepath.Base(path), a, shorten(line, 300)))
				}
			}
			if strings.Contains(line, "panic:") {
				panics++
			}
		}
		_ = f.Close()
	}
	rep.add("%d lines (%.1f MB) in %d debug-level logs: %d with a secret, %d with an address, %d with panic:",
		lines, float64(bytesRead)/1e6, len(logs), secretHits, addrHits, panics)
	if keep := os.Getenv("FORWARDER_CHAOS_KEEP_LOGS"); keep != "" {
		if err := os.MkdirAll(keep, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, path := range logs {
			if data, err := os.ReadFile(path); err == nil {
				_ = os.WriteFile(filepath.Join(keep, filepath.Base(path)), data, 0o644)
			}
		}
		rep.add("logs kept in %s", keep)
	}
	if len(logs) == 0 || lines == 0 {
		t.Fatal("no forwarder log to scan")
	}
	if secretHits+addrHits+panics > 0 {
		t.Errorf("%d lines with a secret, %d with an unmasked address, %d with panic:\n%s",
			secretHits, addrHits, panics, strings.Join(examples, "\n"))
	}
}
