package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The example plugins, built once into the directory TestMain removes.
var (
	examplesOnce sync.Once
	examplesDir  string
	examplesErr  error
)

// examplePlugins builds plugins/examples/* and returns the directory
// holding the binaries asset-owner, ndjson-replay and webhook.
func examplePlugins(t *testing.T) string {
	t.Helper()
	examplesOnce.Do(func() {
		examplesDir = filepath.Join(filepath.Dir(forwarderBin), "plugins")
		out, err := exec.Command("go", "build", "-o", examplesDir+string(filepath.Separator), "../../plugins/examples/...").CombinedOutput()
		if err != nil {
			examplesErr = fmt.Errorf("building the example plugins: %v\n%s", err, out)
		}
	})
	if examplesErr != nil {
		t.Fatal(examplesErr)
	}
	return examplesDir
}

// extPluginDir copies the named example binaries into a fresh plugin_dir.
func extPluginDir(t *testing.T, names ...string) string {
	t.Helper()
	src := examplePlugins(t)
	dir := filepath.Join(t.TempDir(), "plugins")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func extSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// webhookReceiver records the events POSTed to it (NDJSON bodies).
type webhookReceiver struct {
	mu     sync.Mutex
	ids    map[string]int
	owners int
	total  int
	// pause, when set, is called (outside the lock) with the running total.
	pause func(total int)
}

func (r *webhookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var docs []map[string]any
	for sc.Scan() {
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		docs = append(docs, doc)
	}
	r.mu.Lock()
	for _, doc := range docs {
		ev, _ := doc["event"].(map[string]any)
		id, _ := ev["id"].(string)
		r.ids[id]++
		if labels, ok := doc["labels"].(map[string]any); ok && labels["owner"] == "kim@example.com" {
			r.owners++
		}
	}
	r.total += len(docs)
	total := r.total
	r.mu.Unlock()
	if r.pause != nil {
		r.pause(total)
	}
}

func (r *webhookReceiver) counts() (unique, total, owners int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ids), r.total, r.owners
}

// extArchive writes n NDJSON events over several files.
func extArchive(t *testing.T, dir string, n, files int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	per := (n + files - 1) / files
	for f := 0; f < files; f++ {
		var b strings.Builder
		for i := f * per; i < min(n, (f+1)*per); i++ {
			fmt.Fprintf(&b, `{"@timestamp":"2026-01-01T00:00:00.000Z","event":{"id":"ev-%d","dataset":"replay"},"cloud":{"account":{"id":"1234-5678"}}}`+"\n", i)
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("part-%02d.ndjson", f)), b.String())
	}
}

// extPipeline writes a pipeline using all three example plugins: the
// source and output found in plugin_dir, the transform as `type: plugin`
// with its sha256.
func extPipeline(t *testing.T, dir, pluginDir, hookURL, transform, transformSHA, transformConfig string) string {
	t.Helper()
	writeFile(t, filepath.Join(dir, "owners.csv"), "account,owner,team\n1234-5678,kim@example.com,platform\n")
	cfg := fmt.Sprintf(`data_dir: %[1]s/data
shutdown_timeout: 30s
plugin_dir: %[2]s
api: {address: ""}
log: {level: info, format: json}
sources:
  replay:
    type: ndjson_replay
    paths: [%[1]s/archive/*.ndjson]
    batch_size: 200
transforms:
  owners:
    type: plugin
    inputs: [replay]
    path: %[6]s
    sha256: "%[4]s"
    config:
%[5]s
outputs:
  hook:
    type: webhook
    inputs: [owners]
    url: %[3]s
    initial_backoff: 10ms
    delivery: {max_in_flight: 2, initial_backoff: 50ms, max_backoff: 1s}
`, dir, pluginDir, hookURL, transformSHA, transformConfig, transform)
	path := filepath.Join(dir, "pipeline.yaml")
	writeFile(t, path, cfg)
	return path
}

// extTransformBin puts the asset-owner binary beside the plugin_dir (not in
// it: it is used through `type: plugin`).
func extTransformBin(t *testing.T, pluginDir string) string {
	t.Helper()
	bin := filepath.Join(filepath.Dir(pluginDir), "bin")
	if err := os.MkdirAll(bin, 0o750); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(examplePlugins(t), "asset-owner"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(bin, "asset-owner")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// extEnv is the environment of a forwarder subprocess: TMPDIR (which its
// plugins inherit) points at a test directory, so the sockets of plugins
// killed outright are removed with it.
func extEnv(t *testing.T) []string {
	return append(os.Environ(), "TMPDIR="+t.TempDir())
}

// childPID finds a child of parent running the binary exe.
func childPID(parent int, exe string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
			continue
		}
		if link, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && link == exe {
			return pid
		}
	}
	return 0
}

func TestExternalPluginsPipelineSurvivesTransformKill(t *testing.T) {
	const events = 20000
	dir := t.TempDir()
	pluginDir := extPluginDir(t, "ndjson-replay", "webhook")
	transform := extTransformBin(t, pluginDir)
	extArchive(t, filepath.Join(dir, "archive"), events, 4)

	killed := make(chan int, 1)
	release := make(chan struct{})
	var once sync.Once
	rec := &webhookReceiver{ids: map[string]int{}}
	rec.pause = func(total int) {
		if total >= events/4 {
			// Hold deliveries until the transform plugin has been killed:
			// the kill lands mid-run, with batches in flight.
			once.Do(func() { killed <- total })
			<-release
		}
	}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	cfg := extPipeline(t, dir, pluginDir, srv.URL, transform, extSHA256(t, transform), "      table: "+filepath.Join(dir, "owners.csv"))

	var stderr bytes.Buffer
	cmd := exec.Command(forwarderBin, "run", "--once", "-c", cfg)
	cmd.Env = extEnv(t)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	select {
	case <-killed:
	case err := <-exited:
		t.Fatalf("forwarder exited before the kill: %v\n%s", err, stderr.String())
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("no delivery reached %d events\n%s", events/4, stderr.String())
	}
	pid := childPID(cmd.Process.Pid, transform)
	if pid == 0 {
		close(release)
		_ = cmd.Process.Kill()
		t.Fatal("the transform plugin process was not found among the forwarder's children")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The restarted plugin, to check it is stopped with the forwarder.
	restarted := 0
	for deadline := time.Now().Add(30 * time.Second); restarted == 0 || restarted == pid; {
		if time.Now().After(deadline) {
			close(release)
			_ = cmd.Process.Kill()
			t.Fatalf("the transform plugin was not restarted\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
		restarted = childPID(cmd.Process.Pid, transform)
	}
	close(release)

	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("forwarder: %v\n%s", err, stderr.String())
		}
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("forwarder did not finish\n%s", stderr.String())
	}
	unique, total, owners := rec.counts()
	if unique != events {
		t.Fatalf("%d of %d events delivered (%d deliveries)\n%s", unique, events, total, stderr.String())
	}
	if owners != total {
		t.Fatalf("%d of %d deliveries went through the transform", owners, total)
	}
	logs := stderr.String()
	for _, want := range []string{
		`"msg":"plugin crashed; restarting it","component_id":"owners"`,
		`"msg":"plugin restarted","component_id":"owners"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s\n%s", want, logs)
		}
	}
	if alive(restarted) {
		t.Errorf("the transform plugin (pid %d) outlived the forwarder", restarted)
	}
	t.Logf("%d events, %d deliveries after killing the transform plugin at %d", unique, total, events/4)
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	return len(fields) > 0 && fields[0] != "Z"
}

// TestPluginsDieWithTheForwarder: a forwarder killed outright takes its
// plugin processes with it (Linux parent-death signal).
func TestPluginsDieWithTheForwarder(t *testing.T) {
	dir := t.TempDir()
	pluginDir := extPluginDir(t, "ndjson-replay", "webhook")
	transform := extTransformBin(t, pluginDir)
	extArchive(t, filepath.Join(dir, "archive"), 10, 1)
	srv := httptest.NewServer(&webhookReceiver{ids: map[string]int{}})
	defer srv.Close()
	cfg := extPipeline(t, dir, pluginDir, srv.URL, transform, "", "      table: "+filepath.Join(dir, "owners.csv"))
	cmd := exec.Command(forwarderBin, "run", "-c", cfg)
	cmd.Env = extEnv(t)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	bins := []string{transform, filepath.Join(pluginDir, "ndjson-replay"), filepath.Join(pluginDir, "webhook")}
	var pids []int
	for deadline := time.Now().Add(time.Minute); len(pids) < len(bins); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("plugins not all started: %v", pids)
		}
		pids = pids[:0]
		for _, b := range bins {
			if p := childPID(cmd.Process.Pid, b); p != 0 {
				pids = append(pids, p)
			}
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var left []int
		for _, p := range pids {
			if alive(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes %v outlived the killed forwarder", left)
		}
	}
}

func TestValidatePrintsThePluginsOwnKeyPaths(t *testing.T) {
	dir := t.TempDir()
	pluginDir := extPluginDir(t, "ndjson-replay", "webhook")
	transform := extTransformBin(t, pluginDir)
	extArchive(t, filepath.Join(dir, "archive"), 1, 1)
	cfg := extPipeline(t, dir, pluginDir, "http://127.0.0.1:9/hook", transform, extSHA256(t, transform),
		"      tabel: ./owners.csv\n      on_missing: drop")
	// A typo in a plugin_dir component's own keys too.
	data, _ := os.ReadFile(cfg)
	writeFile(t, cfg, strings.Replace(string(data), "batch_size: 200", "batch_sise: 200", 1))

	code, stdout, stderr := runCLI("validate", "-c", cfg)
	if code != 1 {
		t.Fatalf("validate exited %d\n%s%s", code, stdout, stderr)
	}
	// As for a built-in, keys that do not decode stop that block's check
	// before its values are validated.
	for _, want := range []string{
		"sources.replay.batch_sise: unknown key\n",
		"transforms.owners.config.tabel: unknown key\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("validate output lacks %q:\n%s", want, stderr)
		}
	}
	// Values the plugin's Validate refuses.
	data, _ = os.ReadFile(cfg)
	fixed := strings.Replace(strings.Replace(string(data), "batch_sise: 200", "batch_size: 0", 1), "tabel:", "key_column:", 1)
	writeFile(t, cfg, fixed)
	code, _, stderr = runCLI("validate", "-c", cfg)
	if code != 1 {
		t.Fatalf("validate exited %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"sources.replay.batch_size: must be between 1 and 10000, got 0\n",
		"transforms.owners.config.table: is required: the CSV file of asset owners\n",
		`transforms.owners.config.on_missing: must be keep or tag, got "drop"` + "\n",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("validate output lacks %q:\n%s", want, stderr)
		}
	}
}

func TestWrongSHA256IsRefused(t *testing.T) {
	dir := t.TempDir()
	pluginDir := extPluginDir(t, "ndjson-replay", "webhook")
	transform := extTransformBin(t, pluginDir)
	extArchive(t, filepath.Join(dir, "archive"), 10, 1)
	wrong := strings.Repeat("0", 64)
	cfg := extPipeline(t, dir, pluginDir, "http://127.0.0.1:9/hook", transform, wrong, "      table: ./owners.csv")
	want := "transforms.owners.sha256: does not match " + transform + ", whose SHA-256 is " + extSHA256(t, transform) + ": refusing to run it"
	for _, args := range [][]string{{"validate", "-c", cfg}, {"run", "--once", "-c", cfg}} {
		code, _, stderr := runCLI(args...)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s: exit %d, output:\n%s\nwant %q", args[0], code, stderr, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "checkpoints.db")); err == nil {
		t.Error("run went ahead with a refused plugin")
	}
}

func TestPluginsCommandListsExternalComponents(t *testing.T) {
	dir := t.TempDir()
	pluginDir := extPluginDir(t, "asset-owner", "ndjson-replay", "webhook")
	cfg := filepath.Join(dir, "pipeline.yaml")
	writeFile(t, cfg, "plugin_dir: "+pluginDir+"\n")
	code, out, errOut := runCLI("plugins", "-c", cfg)
	if code != 0 {
		t.Fatalf("plugins exited %d: %s", code, errOut)
	}
	for _, want := range []string{
		"source     ndjson_replay            external  ",
		"transform  asset_owner              external  ",
		"output     webhook                  external  ",
		"output     plugin                   built-in  ",
		"output     file                     built-in  ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("plugins output lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runCLI("plugins", "-c", cfg, "--sample", "asset_owner")
	if code != 0 || !strings.Contains(out, "type: asset_owner") {
		t.Errorf("--sample asset_owner: %d %s", code, out)
	}

	// FORWARDER_PLUGIN_DIR overrides the file; a type offered twice is an error.
	if err := os.Link(filepath.Join(pluginDir, "webhook"), filepath.Join(pluginDir, "webhook-copy")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FORWARDER_PLUGIN_DIR", pluginDir)
	writeFile(t, cfg, "plugin_dir: /nonexistent\n")
	code, _, errOut = runCLI("plugins", "-c", cfg)
	if code != 1 || !strings.Contains(errOut, `webhook-copy offers the output type "webhook", which is already registered`) {
		t.Errorf("duplicate type: exit %d, %s", code, errOut)
	}
}

// TestPluginClashingWithABuiltinIsRefused builds a plugin whose transform
// is called "ecs", like the built-in: plugin_dir must refuse it.
func TestPluginClashingWithABuiltinIsRefused(t *testing.T) {
	readme, err := os.ReadFile("../../plugins/README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("no Go example in plugins/README.md")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	writeFile(t, src, strings.ReplaceAll(string(m[1]), "team_tag", "ecs"))
	pluginDir := filepath.Join(dir, "plugins")
	if out, err := exec.Command("go", "build", "-o", filepath.Join(pluginDir, "ecs-impostor"), src).CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "pipeline.yaml")
	writeFile(t, cfg, "plugin_dir: "+pluginDir+"\n")
	code, _, errOut := runCLI("plugins", "-c", cfg)
	if code != 1 || !strings.Contains(errOut, `ecs-impostor offers the transform type "ecs", which is already registered`) {
		t.Fatalf("exit %d, %s", code, errOut)
	}
}
