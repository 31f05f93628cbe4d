package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestCrashNeverLosesEvents SIGKILLs a real forwarder (generate source →
// file output) at random moments and restarts it; the output file must hold
// every event the source produced. It reports the duplicate ratio.
func TestCrashNeverLosesEvents(t *testing.T) {
	const total, batch, kills = 200000, 500, 20
	dir := t.TempDir()
	out := filepath.Join(dir, "out", "events.ndjson")
	cfg := filepath.Join(dir, "pipeline.yaml")
	writeFile(t, cfg, fmt.Sprintf(`
data_dir: %s/data
api: {address: ""}
log: {level: warn}
sources:
  gen:
    type: generate
    count: %d
    batch_size: %d
    size: 400
    interval: 2ms
outputs:
  archive:
    type: file
    inputs: [gen]
    path: %s
`, dir, total, batch, out))

	killed := 0
	for i := 0; i < kills; i++ {
		cmd := exec.Command(forwarderBin, "run", "-c", cfg)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(30+rand.IntN(400)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err == nil {
			killed++
		}
		_ = cmd.Wait()
	}
	// Let it finish.
	cmd := exec.Command(forwarderBin, "run", "--once", "-c", cfg)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("final run: %v", err)
	}

	ids := readIDs(t, out)
	lines := 0
	for i := 0; i < total; i++ {
		n := ids[fmt.Sprintf("gen-%d", i)]
		if n == 0 {
			t.Fatalf("event gen-%d lost after %d kills", i, killed)
		}
		lines += n
	}
	if len(ids) != total {
		t.Fatalf("%d distinct ids, want %d", len(ids), total)
	}
	dups := lines - total
	t.Logf("%d SIGKILLs: %d events, %d duplicates (%.2f%%, %.0f per crash)",
		killed, total, dups, 100*float64(dups)/float64(total), float64(dups)/float64(killed))
	// Duplicates per crash are bounded by the unacknowledged window (at
	// most 8 pending batches) plus what was acknowledged since the last
	// checkpoint save, at most 100 ms of this source: 50 batches at one
	// per 2 ms.
	if max := killed * (8 + 50) * batch; dups > max {
		t.Fatalf("%d duplicates exceed the bound %d", dups, max)
	}
}

// TestSIGTERMDrainsAndExitsZero stops a running forwarder with SIGTERM: it
// must exit 0 and a restart must continue without re-delivering anything.
func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "events.ndjson")
	cfg := filepath.Join(dir, "pipeline.yaml")
	writeFile(t, cfg, fmt.Sprintf(`
data_dir: %s/data
api: {address: ""}
sources:
  gen: {type: generate, count: 50000, batch_size: 100, interval: 1ms}
outputs:
  archive: {type: file, inputs: [gen], path: %s}
`, dir, out))
	cmd := exec.Command(forwarderBin, "run", "-c", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("SIGTERM exit: %v", err)
	}
	if code, _, stderr := runCLI("run", "--once", "-c", cfg); code != 0 {
		t.Fatalf("second run exit %d: %s", code, stderr)
	}
	ids := readIDs(t, out)
	if len(ids) != 50000 {
		t.Fatalf("%d distinct events, want 50000", len(ids))
	}
	for id, n := range ids {
		if n != 1 {
			t.Fatalf("%s delivered %d times across a clean stop and restart", id, n)
		}
	}
}
