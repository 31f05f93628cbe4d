package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/plugintest"
)

func TestConformance(t *testing.T) {
	plugintest.Run(t, newFactory(), plugintest.Options{Prepare: func(t *testing.T, dir string) {
		if err := os.MkdirAll(filepath.Join(dir, "archive"), 0o750); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "archive", "a.ndjson"), `{"event":{"id":"1"}}`+"\n")
	}})
}

func TestREADMEShowsTheSample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(readme)
	if m == nil || string(m[1]) != string(sample) {
		t.Fatalf("README.md's yaml block differs from sample.yaml; copy sample.yaml into it")
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func lines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, `{"@timestamp":"2026-01-02T03:04:05.%03dZ","event":{"id":"e%d","dataset":"ds"}}`+"\n", i, i)
	}
	return b.String()
}

type collected struct {
	ids []string
	cps []plugins.Checkpoint
	evs []*plugins.Event
}

func (c *collected) emit(_ context.Context, b plugins.Batch) error {
	for _, ev := range b.Events {
		c.ids = append(c.ids, ev.Meta.ID)
		c.evs = append(c.evs, ev)
	}
	c.cps = append(c.cps, b.Checkpoint)
	return nil
}

func newSource(t *testing.T, dir string, once bool) plugins.Source {
	cfg := defaultConfig()
	cfg.Paths = []string{filepath.Join(dir, "*.ndjson"), filepath.Join(dir, "a.*")}
	cfg.BatchSize = 4
	cfg.Interval = 100 * time.Millisecond
	if err := plugins.ValidateConfig("", cfg); err != nil {
		t.Fatal(err)
	}
	set := plugins.NopSettings("replay")
	set.Once = once
	c, err := newFactory().Create(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c.(plugins.Source)
}

func TestReplayAndResume(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.ndjson"), lines(0, 6)+"not json\n\n"+lines(6, 7))
	writeFile(t, filepath.Join(dir, "b.ndjson"), lines(7, 10)+`{"event":{"id":"e10"}}`) // no final newline
	writeFile(t, filepath.Join(dir, "c.txt"), lines(100, 101))
	src := newSource(t, dir, true)
	var all collected
	if err := src.Run(context.Background(), nil, all.emit); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(all.ids, ","); got != "e0,e1,e2,e3,e4,e5,e6,e7,e8,e9,e10" {
		t.Fatalf("ids %s", got)
	}
	ev := all.evs[1]
	if ev.Meta.Dataset != "ds" || ev.Meta.Source != "replay" || !ev.Meta.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 1e6, time.UTC)) {
		t.Fatalf("meta %+v", ev.Meta)
	}
	// Resuming from every checkpoint yields exactly the events after it.
	for i, cp := range all.cps {
		var batch collected
		if err := newSource(t, dir, true).Run(context.Background(), cp, batch.emit); err != nil {
			t.Fatal(err)
		}
		want := all.ids[len(all.ids)-len(batch.ids):]
		if strings.Join(batch.ids, ",") != strings.Join(want, ",") {
			t.Fatalf("from checkpoint %d (%s): %v, want %v", i, cp, batch.ids, want)
		}
	}
}

func TestFollowsGrowingFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.ndjson")
	writeFile(t, path, lines(0, 2)+`{"event":{"id":"e2"`) // a partial line
	src := newSource(t, dir, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() {
		done <- src.Run(ctx, nil, func(_ context.Context, b plugins.Batch) error {
			for _, ev := range b.Events {
				got <- ev.Meta.ID
			}
			return nil
		})
	}()
	want := []string{"e0", "e1"}
	for _, w := range want {
		if id := <-got; id != w {
			t.Fatalf("got %s, want %s", id, w)
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "}}\n")
	f.Close()
	writeFile(t, filepath.Join(dir, "b.ndjson"), lines(3, 4))
	for _, w := range []string{"e2", "e3"} {
		select {
		case id := <-got:
			if id != w {
				t.Fatalf("got %s, want %s", id, w)
			}
		case <-ctx.Done():
			t.Fatalf("waiting for %s", w)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestBadCheckpoint(t *testing.T) {
	src := newSource(t, t.TempDir(), true)
	err := src.Run(context.Background(), plugins.Checkpoint("garbage"), func(context.Context, plugins.Batch) error { return nil })
	if !plugins.IsPermanent(err) {
		t.Fatalf("Run = %v", err)
	}
}

// FuzzDecodePosition: any checkpoint either decodes to a valid position
// that encodes back to itself, or fails cleanly.
func FuzzDecodePosition(f *testing.F) {
	f.Add([]byte(`{"file":"/a/b.ndjson","offset":12}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"offset":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := decodePosition(data)
		if err != nil {
			return
		}
		if p.Offset < 0 {
			t.Fatalf("negative offset accepted: %+v", p)
		}
		q, err := decodePosition(p.encode())
		if err != nil || q != p {
			t.Fatalf("round trip of %+v gave %+v, %v", p, q, err)
		}
		var m map[string]any
		if len(data) > 0 && json.Unmarshal(p.encode(), &m) != nil {
			t.Fatal("encoded position is not JSON")
		}
	})
}
