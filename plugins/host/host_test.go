package host

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
	"github.com/auditforwarder/forwarder/plugins/rpc"
)

// testPlugin is the binary built from internal/testplugin.
var testPlugin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "host-test-")
	if err != nil {
		panic(err)
	}
	testPlugin = filepath.Join(dir, "testplugin")
	out, err := exec.Command("go", "build", "-o", testPlugin, "./internal/testplugin").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the test plugin: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// logBuffer is a concurrency-safe slog destination.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// statusLog records status reports.
type statusLog struct {
	mu   sync.Mutex
	last error
	n    int
}

func (s *statusLog) SetStatus(err error) {
	s.mu.Lock()
	s.last, s.n = err, s.n+1
	s.mu.Unlock()
}

func (s *statusLog) get() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func settings(t *testing.T, id string) (plugins.Settings, *logBuffer, *statusLog) {
	logs := &logBuffer{}
	st := &statusLog{}
	set := plugins.NopSettings(id)
	set.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("component_id", id)
	set.Status = st
	set.DataDir = t.TempDir()
	return set, logs, st
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// create builds a `type: plugin` component of kind over the test plugin.
func create(t *testing.T, kind plugins.Kind, config map[string]any, set plugins.Settings) plugins.Component {
	t.Helper()
	f := map[plugins.Kind]plugins.Factory{plugins.KindSource: NewSourceFactory(),
		plugins.KindTransform: NewTransformFactory(), plugins.KindOutput: NewOutputFactory()}[kind]
	cfg := f.CreateDefaultConfig()
	raw := map[string]any{"path": testPlugin, "config": config}
	if err := plugins.DecodeConfig(raw, cfg); err != nil {
		t.Fatal(err)
	}
	if err := plugins.ValidateConfig("x", cfg); err != nil {
		t.Fatal(err)
	}
	c, err := f.Create(ctxT(t), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func events(n int) []*plugins.Event {
	out := make([]*plugins.Event, n)
	for i := range out {
		out[i] = plugintest.Event(i, 300)
	}
	return out
}

func TestHostEnvironmentIsNotPassed(t *testing.T) {
	t.Setenv("NCP_SECRET_KEY", "do-not-leak")
	t.Setenv("HTTPS_PROXY", "http://user:pass@proxy:3128")
	set, _, _ := settings(t, "env")
	tr := create(t, plugins.KindTransform, map[string]any{"env": true}, set).(plugins.Transform)
	out, err := tr.Process(ctxT(t), events(1))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := out[0].Fields.Get("plugin.env")
	names := fmt.Sprint(v)
	for _, bad := range []string{"NCP_SECRET_KEY", "HTTPS_PROXY"} {
		if strings.Contains(names, bad) {
			t.Errorf("plugin saw %s: %s", bad, names)
		}
	}
	for _, want := range []string{"PATH", rpc.LogLevelEnv, rpc.Handshake.MagicCookieKey} {
		if !strings.Contains(names, want) {
			t.Errorf("plugin environment lacks %s: %s", want, names)
		}
	}
}

func TestSHA256(t *testing.T) {
	sum, err := fileSHA256(testPlugin)
	if err != nil {
		t.Fatal(err)
	}
	good := hex.EncodeToString(sum)
	bad := strings.Repeat("ab", 32)
	tests := []struct {
		sha  string
		want string
	}{
		{good, ""},
		{strings.ToUpper(good), ""},
		{bad, "transforms.t.sha256: does not match " + testPlugin + ", whose SHA-256 is " + good + ": refusing to run it"},
		{"abc", "transforms.t.sha256: must be 64 hexadecimal digits"},
	}
	for _, tt := range tests {
		t.Run(tt.sha, func(t *testing.T) {
			cfg := NewTransformFactory().CreateDefaultConfig()
			if err := plugins.DecodeConfig(map[string]any{"path": testPlugin, "sha256": tt.sha}, cfg); err != nil {
				t.Fatal(err)
			}
			err := plugins.ValidateConfig("transforms.t", cfg)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.want)) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
	// The launch itself refuses a mismatch (go-plugin's SecureConfig), which
	// covers a binary swapped after validation.
	_, err = launch(launchConfig{path: testPlugin, sha256: bytes.Repeat([]byte{0xab}, 32)})
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "refusing to start it") {
		t.Fatalf("launch with a wrong sha256 = %v", err)
	}
}

func TestPluginConfigErrorsKeepKeyPaths(t *testing.T) {
	tests := []struct {
		name   string
		raw    map[string]any
		want   []string
		secret string
	}{
		{"typo", map[string]any{"path": testPlugin, "config": map[string]any{"lable": "x"}},
			[]string{"transforms.t.config.lable: unknown key"}, ""},
		{"value", map[string]any{"path": testPlugin, "config": map[string]any{"batch_size": 0}},
			[]string{"transforms.t.config.batch_size: must be between 1 and 10000, got 0"}, ""},
		{"type", map[string]any{"path": testPlugin, "config": map[string]any{"interval": 5}},
			[]string{"transforms.t.config.interval: must be a duration string such as 30s, got an integer"}, ""},
		{"secret", map[string]any{"path": testPlugin, "config": map[string]any{"token": "hunter2-token", "interval": "1m"}}, nil, "hunter2-token"},
		{"missing path", map[string]any{}, []string{"transforms.t.path: is required"}, ""},
		{"not a plugin", map[string]any{"path": "/bin/true"}, []string{"transforms.t.path: starting plugin /bin/true"}, ""},
		{"unknown component", map[string]any{"path": testPlugin, "component": "nope"},
			[]string{`transforms.t.component: plugin ` + testPlugin + ` has no transform "nope" (it offers: test_transform)`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := NewTransformFactory().CreateDefaultConfig()
			if err := plugins.DecodeConfig(tt.raw, cfg); err != nil {
				t.Fatal(err)
			}
			lines := plugins.ErrorLines(plugins.ValidateConfig("transforms.t", cfg))
			if len(lines) != len(tt.want) {
				t.Fatalf("errors = %q, want %q", lines, tt.want)
			}
			for i := range lines {
				if !strings.HasPrefix(lines[i], tt.want[i]) {
					t.Errorf("error = %q, want prefix %q", lines[i], tt.want[i])
				}
			}
			if tt.secret != "" {
				if got := plugins.CollectSecrets(cfg); len(got) != 1 || got[0] != tt.secret {
					t.Errorf("CollectSecrets = %q", got)
				}
				if s := fmt.Sprintf("%+v %v", cfg, cfg); strings.Contains(s, tt.secret) {
					t.Errorf("the config prints its secret: %s", s)
				}
			}
		})
	}
}

func TestDiscover(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(testPlugin)
	if err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"testplugin": 0o755, "README.md": 0o644, ".hidden": 0o755} {
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			t.Fatal(err)
		}
	}
	fs, err := Discover(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fs {
		e, ok := f.(External)
		if !ok || e.PluginPath() != filepath.Join(dir, "testplugin") {
			t.Fatalf("factory %s is not External with its path", f.Type())
		}
		got = append(got, f.Kind().String()+"/"+f.Type())
	}
	if strings.Join(got, " ") != "source/test_source transform/test_transform output/test_output" {
		t.Fatalf("discovered %v", got)
	}
	// Their config: inline keys, decoded and validated by the plugin.
	f := fs[1]
	cfg := f.CreateDefaultConfig()
	if err := plugins.DecodeConfig(map[string]any{"lable": "x", "batch_size": 0}, cfg); err != nil {
		t.Fatalf("decode: %v", err)
	}
	lines := plugins.ErrorLines(plugins.ValidateConfig("transforms.t", cfg))
	if strings.Join(lines, "\n") != "transforms.t.lable: unknown key" {
		t.Fatalf("errors = %q", lines)
	}
	cfg = f.CreateDefaultConfig()
	if err := plugins.DecodeConfig(map[string]any{"label": "disc"}, cfg); err != nil {
		t.Fatal(err)
	}
	if err := plugins.ValidateConfig("transforms.t", cfg); err != nil {
		t.Fatal(err)
	}
	set, _, _ := settings(t, "disc")
	c, err := f.Create(ctxT(t), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	out, err := c.(plugins.Transform).Process(ctxT(t), events(2))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := out[1].Fields.Get("labels.plugin"); v != "disc" {
		t.Fatalf("labels.plugin = %v", v)
	}

	// An executable that is not a plugin is an error naming it.
	if err := os.WriteFile(filepath.Join(dir, "broken"), []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Discover(dir); err == nil || !strings.Contains(err.Error(), "broken: it did not answer the plugin handshake") {
		t.Fatalf("Discover with a broken binary = %v", err)
	}
	os.Remove(filepath.Join(dir, "broken"))
	// A binary changed after discovery is refused at start.
	// (Replaced by rename: the running binary cannot be written.)
	if err := os.WriteFile(filepath.Join(dir, "new"), append(data, 0), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "new"), filepath.Join(dir, "testplugin")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Create(ctxT(t), set, cfg); !errors.Is(err, ErrChecksum) {
		t.Fatalf("Create after the binary changed = %v, want ErrChecksum", err)
	}
}

func TestRunByHandPrintsUsage(t *testing.T) {
	out, err := exec.Command(testPlugin).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit = %v", err)
	}
	if !strings.Contains(string(out), "is an Audit Forwarder plugin") || !strings.Contains(string(out), "test_transform") {
		t.Fatalf("output = %s", out)
	}
}

func TestLifecycleAndLogs(t *testing.T) {
	set, logs, st := settings(t, "life")
	c := create(t, plugins.KindTransform, map[string]any{"status": "degraded: backend slow"}, set)
	pid := c.(remoteTr).Pid()
	if pid == 0 {
		t.Fatal("no pid")
	}
	// The plugin's transform is a ParallelTransform: so is its remote side,
	// and the engine keeps several batches in flight to it.
	if _, ok := c.(plugins.ParallelTransform); !ok {
		t.Fatalf("remote transform %T is not a plugins.ParallelTransform", c)
	}
	// On Linux the batches cross in memory shared with the process.
	if got := c.(interface{ sharedMemory() bool }).sharedMemory(); got != (runtime.GOOS == "linux") {
		t.Fatalf("shared memory: %v on %s", got, runtime.GOOS)
	}
	if err := c.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the plugin's status", func() bool { e := st.get(); return e != nil && e.Error() == "degraded: backend slow" })
	if _, err := c.(plugins.Transform).Process(ctxT(t), events(3)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the plugin's log record", func() bool { return strings.Contains(logs.String(), `"msg":"first batch"`) })
	var rec map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"first batch"`) {
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	if rec["component_id"] != "life" || rec["level"] != "INFO" || fmt.Sprint(rec["events"]) != "3" {
		t.Fatalf("plugin record = %v", rec)
	}
	for i := 0; i < 2; i++ {
		if err := c.Close(ctxT(t)); err != nil {
			t.Fatalf("Close %d: %v", i, err)
		}
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("plugin process %d still alive after Close", pid)
	}
	if _, err := c.(plugins.Transform).Process(ctxT(t), events(1)); !errors.Is(err, errClosed) {
		t.Fatalf("Process after Close = %v", err)
	}

	// Close without Start.
	c2 := create(t, plugins.KindOutput, map[string]any{"path": filepath.Join(t.TempDir(), "o")}, set)
	if err := c2.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}
