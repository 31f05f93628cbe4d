package file

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	yaml "go.yaml.in/yaml/v3"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestSource(t *testing.T, cfg *Config, once bool) *source {
	t.Helper()
	set := plugins.NopSettings("replay")
	set.Once = once
	set.Now = func() time.Time { return fixedNow }
	s, err := newSource(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func cfgFor(dir, dataset string, batch int) *Config {
	c := defaultConfig()
	c.Path = filepath.Join(dir, "*.ndjson")
	c.Dataset = dataset
	c.BatchSize = batch
	c.PollInterval = 20 * time.Millisecond
	return c
}

func ncpLine(i int) string {
	return fmt.Sprintf(`{"historyId":"h%03d","eventTime":%d,"productName":"Server","actionDisplayName":"Create Server","actionResultType":"SUCCESS"}`,
		i, 1728529785000+int64(i))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// collector records emitted batches.
type collector struct {
	mu      sync.Mutex
	batches []plugins.Batch
	failAt  int // emit fails on this batch number (1-based); 0 = never
}

func (c *collector) emit(_ context.Context, b plugins.Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failAt > 0 && len(c.batches)+1 == c.failAt {
		return errors.New("shutting down")
	}
	c.batches = append(c.batches, b)
	return nil
}

func (c *collector) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, b := range c.batches {
		for _, ev := range b.Events {
			out = append(out, ev.Meta.ID)
		}
	}
	return out
}

func TestReadsFilesInOrderWithCheckpoints(t *testing.T) {
	dir := t.TempDir()
	var a, b strings.Builder
	for i := 0; i < 7; i++ {
		a.WriteString(ncpLine(i) + "\n")
	}
	for i := 7; i < 12; i++ {
		b.WriteString(ncpLine(i) + "\r\n") // CRLF exports
	}
	b.WriteString(ncpLine(12)) // no final newline
	writeFile(t, filepath.Join(dir, "2024-10-02.ndjson"), b.String())
	writeFile(t, filepath.Join(dir, "2024-10-01.ndjson"), "\n"+a.String()+"   \n")
	writeFile(t, filepath.Join(dir, "ignored.txt"), ncpLine(99)+"\n")

	s := newTestSource(t, cfgFor(dir, DatasetNCP, 5), true)
	c := &collector{}
	if err := s.Run(context.Background(), nil, c.emit); err != nil {
		t.Fatal(err)
	}
	got := c.ids()
	if len(got) != 13 {
		t.Fatalf("read %d events, want 13: %v", len(got), got)
	}
	for i, id := range got {
		if want := fmt.Sprintf("h%03d", i); id != want {
			t.Fatalf("event %d is %s, want %s (files out of order?)", i, id, want)
		}
	}
	ev := c.batches[0].Events[0]
	if ev.Meta.Dataset != DatasetNCP || ev.Meta.Source != "replay" || !ev.Meta.Received.Equal(fixedNow) ||
		!ev.Meta.Time.Equal(time.UnixMilli(1728529785000)) {
		t.Fatalf("meta = %+v", ev.Meta)
	}
	for i, b := range c.batches[:len(c.batches)-1] {
		if len(b.Events) != 5 {
			t.Errorf("batch %d has %d events, want 5", i, len(b.Events))
		}
	}
	last, err := decodeCheckpoint(c.batches[len(c.batches)-1].Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "2024-10-02.ndjson"))
	if !strings.HasSuffix(last.File, "2024-10-02.ndjson") || last.Offset != fi.Size() {
		t.Fatalf("last checkpoint %+v, want the end of the last file (%d)", last, fi.Size())
	}
	if got := testutil.ToFloat64(s.files); got != 2 {
		t.Errorf("files completed = %v", got)
	}
}

// Restarting from any batch's checkpoint yields exactly the events after
// it: nothing twice, nothing lost.
func TestResumeFromEveryCheckpoint(t *testing.T) {
	dir := t.TempDir()
	var all []string
	for f := 0; f < 3; f++ {
		var sb strings.Builder
		for i := 0; i < 4+f; i++ {
			n := len(all)
			all = append(all, fmt.Sprintf("h%03d", n))
			sb.WriteString(ncpLine(n) + "\n")
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("part-%d.ndjson", f)), sb.String())
	}
	c := &collector{}
	if err := newTestSource(t, cfgFor(dir, DatasetNCP, 3), true).Run(context.Background(), nil, c.emit); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for k, b := range c.batches {
		seen += len(b.Events)
		rest := &collector{}
		if err := newTestSource(t, cfgFor(dir, DatasetNCP, 3), true).Run(context.Background(), b.Checkpoint, rest.emit); err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(rest.ids(), ","), strings.Join(all[seen:], ","); got != want {
			t.Fatalf("resuming after batch %d (%s): got %s, want %s", k, b.Checkpoint, got, want)
		}
	}
}

func TestInvalidAndLongLinesAreSkippedAndCounted(t *testing.T) {
	dir := t.TempDir()
	long := `{"historyId":"long","pad":"` + strings.Repeat("x", 5000) + `"}`
	writeFile(t, filepath.Join(dir, "a.ndjson"), ncpLine(1)+"\nnot json\n[1,2]\n"+long+"\n"+ncpLine(2)+"\n")
	cfg := cfgFor(dir, DatasetNCP, 100)
	cfg.MaxLineBytes = 1024
	s := newTestSource(t, cfg, true)
	c := &collector{}
	if err := s.Run(context.Background(), nil, c.emit); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.ids(), ","); got != "h001,h002" {
		t.Fatalf("ids = %s", got)
	}
	if inv, tl := testutil.ToFloat64(s.invalid), testutil.ToFloat64(s.tooLong); inv != 2 || tl != 1 {
		t.Fatalf("invalid = %v, too_long = %v", inv, tl)
	}
}

// A long line spanning several reader buffers is read whole.
func TestLineLongerThanBuffer(t *testing.T) {
	dir := t.TempDir()
	big := `{"historyId":"big","pad":"` + strings.Repeat("y", 600<<10) + `"}`
	writeFile(t, filepath.Join(dir, "a.ndjson"), big+"\n"+ncpLine(1)+"\n")
	c := &collector{}
	if err := newTestSource(t, cfgFor(dir, DatasetNCP, 100), true).Run(context.Background(), nil, c.emit); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.ids(), ","); got != "big,h001" {
		t.Fatalf("ids = %s", got)
	}
	if pad, _ := c.batches[0].Events[0].Fields.GetString("pad"); len(pad) != 600<<10 {
		t.Fatalf("long line truncated to %d", len(pad))
	}
}

// NHN v1.0 items have no eventLogUuid: their id is the fingerprint, the
// same however the line is formatted.
func TestNHNIDs(t *testing.T) {
	dir := t.TempDir()
	v1a := `{"eventTime":"2019-09-04T10:31:49.348+0000","eventId":"event_id.iam.member.role.update","userId":"a@example.com"}`
	v1b := `{ "userId" : "a@example.com", "eventId":"event_id.iam.member.role.update", "eventTime":"2019-09-04T10:31:49.348+0000" }`
	v2 := `{"eventTime":"2019-11-01T10:31:49.348+0000","eventLogUuid":"17278c08-8338-4fd9-9693-931290adb9ec"}`
	writeFile(t, filepath.Join(dir, "a.ndjson"), v1a+"\n"+v1b+"\n"+v2+"\n")
	c := &collector{}
	if err := newTestSource(t, cfgFor(dir, DatasetNHN, 10), true).Run(context.Background(), nil, c.emit); err != nil {
		t.Fatal(err)
	}
	ids := c.ids()
	item, _ := plugins.ParseObject([]byte(v1a))
	if len(ids) != 3 || ids[0] != plugins.Fingerprint(item) || ids[1] != ids[0] || ids[2] != "17278c08-8338-4fd9-9693-931290adb9ec" {
		t.Fatalf("ids = %v", ids)
	}
	if got := c.batches[0].Events[0].Meta.Time; !got.Equal(time.Date(2019, 9, 4, 10, 31, 49, 348e6, time.UTC)) {
		t.Fatalf("time = %v", got)
	}
}

// Outside --once the source picks up appended lines and new files, and
// holds a last line until its newline arrives.
func TestFollowsAppendsAndNewFiles(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "a.ndjson")
	writeFile(t, first, ncpLine(0)+"\n"+ncpLine(1)[:20])
	s := newTestSource(t, cfgFor(dir, DatasetNCP, 100), false)
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, nil, c.emit) }()
	waitFor(t, c, "h000")
	time.Sleep(60 * time.Millisecond)
	if got := strings.Join(c.ids(), ","); got != "h000" {
		t.Fatalf("a partial last line was read: %s", got)
	}
	f, _ := os.OpenFile(first, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(ncpLine(1)[20:] + "\n" + ncpLine(2) + "\n")
	f.Close()
	waitFor(t, c, "h000,h001,h002")
	writeFile(t, filepath.Join(dir, "b.ndjson"), ncpLine(3)+"\n")
	waitFor(t, c, "h000,h001,h002,h003")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, c *collector, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Join(c.ids(), ",") == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("ids = %s, want %s", strings.Join(c.ids(), ","), want)
}

func TestShrunkFileIsReadAgain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.ndjson")
	writeFile(t, path, ncpLine(5)+"\n")
	abs, _ := filepath.Abs(path)
	cp := position{File: abs, Offset: 10_000}.encode()
	c := &collector{}
	if err := newTestSource(t, cfgFor(dir, DatasetNCP, 10), true).Run(context.Background(), cp, c.emit); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.ids(), ","); got != "h005" {
		t.Fatalf("ids = %s", got)
	}
}

func TestBadCheckpointIsPermanent(t *testing.T) {
	s := newTestSource(t, cfgFor(t.TempDir(), DatasetNCP, 10), true)
	err := s.Run(context.Background(), plugins.Checkpoint("42"), (&collector{}).emit)
	if !plugins.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
}

// When emit fails (the pipeline shuts down) Run returns at once.
func TestEmitErrorStopsRun(t *testing.T) {
	dir := t.TempDir()
	var sb strings.Builder
	for i := 0; i < 10; i++ {
		sb.WriteString(ncpLine(i) + "\n")
	}
	writeFile(t, filepath.Join(dir, "a.ndjson"), sb.String())
	c := &collector{failAt: 2}
	err := newTestSource(t, cfgFor(dir, DatasetNCP, 3), true).Run(context.Background(), nil, c.emit)
	if err == nil || len(c.batches) != 1 {
		t.Fatalf("err = %v after %d batches", err, len(c.batches))
	}
}

func TestNoMatchingFileInOnceMode(t *testing.T) {
	c := &collector{}
	if err := newTestSource(t, cfgFor(t.TempDir(), DatasetNCP, 10), true).Run(context.Background(), nil, c.emit); err != nil {
		t.Fatal(err)
	}
	if len(c.batches) != 0 {
		t.Fatal("events from nowhere")
	}
}

func TestConfigValidation(t *testing.T) {
	cfg := defaultConfig()
	cfg.Path = "[bad"
	cfg.Dataset = "aws"
	cfg.BatchSize = 0
	cfg.MaxLineBytes = 10
	cfg.PollInterval = 0
	err := plugins.ValidateConfig("sources.replay", cfg)
	for _, want := range []string{"sources.replay.path: is not a valid glob", "sources.replay.dataset: must be ncloud.activity_tracer or nhncloud.cloudtrail",
		"sources.replay.batch_size", "sources.replay.max_line_bytes", "sources.replay.poll_interval"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	if err := plugins.ValidateConfig("sources.replay", defaultConfig()); err == nil || !strings.Contains(err.Error(), "path: is required") {
		t.Errorf("missing path accepted: %v", err)
	}
}

func TestFactoryAndSample(t *testing.T) {
	f := NewFactory()
	if f.Type() != "file" || f.Kind() != plugins.KindSource {
		t.Fatalf("%s %s", f.Kind(), f.Type())
	}
	var doc struct {
		Sources map[string]map[string]any `yaml:"sources"`
	}
	if err := yaml.Unmarshal(f.SampleConfig(), &doc); err != nil {
		t.Fatal(err)
	}
	raw := doc.Sources["replay"]
	delete(raw, "type")
	cfg := f.CreateDefaultConfig()
	if err := plugins.DecodeConfig(raw, cfg); err != nil {
		t.Fatal(err)
	}
	if err := plugins.ValidateConfig("sources.replay", cfg); err != nil {
		t.Fatal(err)
	}
	set := plugins.NopSettings("replay")
	set.Metrics = prometheus.NewRegistry()
	c, err := f.Create(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestREADMEShowsSample(t *testing.T) { plugintest.READMEShowsSample(t, sample) }

// TestReleasedBatchMemoryIsReused: a batch's memory comes back only
// through Release. Batches released at once are reused (and poisoned in
// between, so reading a released batch would show); one never released
// stays intact to the end.
func TestReleasedBatchMemoryIsReused(t *testing.T) {
	dir := t.TempDir()
	var content strings.Builder
	want := map[string]string{} // historyId → the line as JSON
	for i := 0; i < 200; i++ {
		line := ncpLine(i)
		content.WriteString(line + "\n")
		want[fmt.Sprintf("h%03d", i)] = line
	}
	writeFile(t, filepath.Join(dir, "a.ndjson"), content.String())
	s := newTestSource(t, cfgFor(dir, DatasetNCP, 10), true)
	s.poison = true

	check := func(b plugins.Batch) {
		t.Helper()
		for _, ev := range b.Events {
			id, _ := ev.Fields.GetString("historyId")
			if got := string(ev.AppendJSON(nil)); got != want[id] {
				t.Fatalf("event %q reads %s, want %s", id, got, want[id])
			}
		}
	}
	var held plugins.Batch
	slabs := map[*plugins.Event]bool{}
	n := 0
	emit := func(_ context.Context, b plugins.Batch) error {
		check(b)
		if b.Release == nil {
			t.Fatal("batch without Release")
		}
		n++
		slabs[b.Events[0]] = true
		if n == 1 {
			held = b
			return nil
		}
		b.Release()
		return nil
	}
	if err := s.Run(context.Background(), nil, emit); err != nil {
		t.Fatal(err)
	}
	if n != 20 {
		t.Fatalf("%d batches, want 20", n)
	}
	check(held)
	// sync.Pool may drop what it is given (the race detector makes it drop
	// a quarter on purpose), so only ask for some reuse.
	if len(slabs) >= 16 {
		t.Errorf("%d distinct batch memories for 20 batches released at once: not reused", len(slabs))
	}
}

// TestDebugLogNamesEveryFile: at debug level every file read is logged
// with the offsets read, the last one being the file's size.
func TestDebugLogNamesEveryFile(t *testing.T) {
	dir := t.TempDir()
	content := ncpLine(1) + "\n" + ncpLine(2) + "\n"
	writeFile(t, filepath.Join(dir, "a.ndjson"), content)
	var logs strings.Builder
	set := plugins.NopSettings("replay")
	set.Once, set.Now = true, func() time.Time { return fixedNow }
	set.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := newSource(set, cfgFor(dir, DatasetNCP, 10))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(context.Background(), nil, (&collector{}).emit); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`msg="file read" file=%s from_offset=0 to_offset=%d`, filepath.Join(dir, "a.ndjson"), len(content))
	if !strings.Contains(logs.String(), want) {
		t.Fatalf("debug log lacks %q:\n%s", want, logs.String())
	}
}
