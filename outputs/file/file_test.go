package file

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
)

func events(batch, n int) []*plugins.Event {
	evs := make([]*plugins.Event, n)
	for i := range evs {
		o := plugins.NewObject(2)
		o.SetKey("id", fmt.Sprintf("b%d-e%d", batch, i))
		evs[i] = &plugins.Event{Fields: o}
	}
	return evs
}

func lines(t *testing.T, paths ...string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			o, err := plugins.ParseObject(sc.Bytes())
			if err != nil {
				t.Fatalf("%s: line %q is not JSON: %v", p, sc.Text(), err)
			}
			id, _ := o.GetString("id")
			got[id]++
		}
		_ = f.Close()
	}
	return got
}

// Concurrent Writes (delivery.max_in_flight) share fsyncs and rotation:
// every batch ends up whole, once, across the rotated files.
func TestConcurrentWritesGroupCommitAndRotation(t *testing.T) {
	for _, maxBytes := range []int64{0, 1024} {
		dir := t.TempDir()
		path := filepath.Join(dir, "out.ndjson")
		o := newFileOutput(plugins.NopSettings("out"), &Config{Path: path, Sync: true, MaxBytes: maxBytes, MaxFiles: 1000})
		ctx := context.Background()
		if err := o.Start(ctx); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := w; b < 200; b += 4 {
					if err := o.Write(ctx, events(b, 5)); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := o.Close(ctx); err != nil {
			t.Fatal(err)
		}
		paths, _ := filepath.Glob(path + "*")
		got := lines(t, paths...)
		if len(got) != 1000 {
			t.Fatalf("max_bytes %d: %d distinct events in %d files, want 1000", maxBytes, len(got), len(paths))
		}
		for id, n := range got {
			if n != 1 {
				t.Fatalf("max_bytes %d: %s written %d times", maxBytes, id, n)
			}
		}
		if maxBytes > 0 && len(paths) < 10 {
			t.Fatalf("max_bytes %d: only %d files: no rotation", maxBytes, len(paths))
		}
		if o.synced != o.appended || o.appended != 200 {
			t.Fatalf("max_bytes %d: %d batches appended, %d synced", maxBytes, o.appended, o.synced)
		}
	}
}

// A device such as /dev/null cannot be fsynced: sync is skipped there
// instead of failing every batch forever.
func TestSyncOnADevice(t *testing.T) {
	o := newFileOutput(plugins.NopSettings("out"), &Config{Path: os.DevNull, Sync: true, MaxFiles: 5})
	ctx := context.Background()
	if err := o.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for b := range 3 {
		if err := o.Write(ctx, events(b, 10)); err != nil {
			t.Fatalf("write to %s: %v", os.DevNull, err)
		}
	}
	if err := o.Close(ctx); err != nil {
		t.Fatalf("close %s: %v", os.DevNull, err)
	}
}
