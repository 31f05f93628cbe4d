package host

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/rpc"
)

// remoteTr is a remote transform, serial or parallel, with its plugin's pid.
type remoteTr interface {
	plugins.Transform
	Pid() int
}

func crashFile(t *testing.T) string {
	f := filepath.Join(t.TempDir(), "crash")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestTransformCrashIsRetried(t *testing.T) {
	set, logs, _ := settings(t, "enrich")
	crash := crashFile(t)
	tr := create(t, plugins.KindTransform, map[string]any{"crash_once_file": crash, "label": "ok"}, set).(remoteTr)
	if err := tr.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	pid := tr.Pid()
	in := events(5)
	out, err := tr.Process(ctxT(t), in)
	if err != nil {
		t.Fatalf("Process across a crash = %v", err)
	}
	if len(out) != 5 {
		t.Fatalf("%d events out", len(out))
	}
	for _, ev := range out {
		if v, _ := ev.Fields.Get("labels.plugin"); v != "ok" {
			t.Fatalf("event not processed after the restart: %s", ev.AppendJSON(nil))
		}
	}
	if p := tr.Pid(); p == pid || p == 0 {
		t.Fatalf("pid %d after restart, was %d", p, pid)
	}
	l := logs.String()
	for _, want := range []string{
		`"msg":"plugin panicked","component_id":"enrich","panic":"panic: test plugin: crash requested by ` + crash,
		`"msg":"plugin crashed; restarting it","component_id":"enrich"`,
		`"msg":"plugin restarted","component_id":"enrich"`,
	} {
		if !strings.Contains(l, want) {
			t.Errorf("logs lack %s", want)
		}
	}
	if !strings.Contains(l, `"stack":"\ngoroutine `) && !strings.Contains(l, `"stack":"goroutine `) {
		t.Errorf("the panic's stack is not in the log:\n%s", l)
	}
}

func TestPoisonBatchBecomesPermanent(t *testing.T) {
	set, logs, st := settings(t, "poison")
	tr := create(t, plugins.KindTransform, nil, set).(remoteTr)
	if err := tr.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	bad := events(3)
	bad[1].Fields.SetKey("crash", true)
	_, err := tr.Process(ctxT(t), bad)
	if !plugins.IsPermanent(err) || !strings.Contains(err.Error(), "crashed 5 times in a row on this batch") ||
		!strings.Contains(err.Error(), "last panic: panic: test plugin: event asked to crash") {
		t.Fatalf("Process of a poison batch = %v", err)
	}
	if e := st.get(); e == nil || !strings.Contains(e.Error(), "crashed 5 times in a row") {
		t.Fatalf("status after repeated crashes = %v, want not ready", e)
	}
	if !strings.Contains(logs.String(), `"msg":"plugin keeps crashing; the component is not ready until it runs again"`) {
		t.Error("no not-ready log record")
	}
	// A good batch makes it ready again (it was restarted and Started).
	if _, err := tr.Process(ctxT(t), events(2)); err != nil {
		t.Fatal(err)
	}
	if e := st.get(); e != nil {
		t.Fatalf("status after a good batch = %v, want ready", e)
	}
}

func TestSourceCrashResumesFromLastEmitted(t *testing.T) {
	set, _, _ := settings(t, "src")
	set.Once = true
	crash := crashFile(t)
	src := create(t, plugins.KindSource, map[string]any{"count": 30, "batch_size": 10, "crash_once_file": crash, "crash_at_batch": 2}, set).(*remoteSource)
	if err := src.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var last plugins.Checkpoint
	emit := func(_ context.Context, b plugins.Batch) error {
		for _, ev := range b.Events {
			ids = append(ids, ev.Meta.ID)
		}
		last = b.Checkpoint
		return nil
	}
	err := src.Run(ctxT(t), nil, emit)
	if !errors.Is(err, rpc.ErrCrashed) || plugins.IsPermanent(err) {
		t.Fatalf("first Run = %v, want a retriable crash", err)
	}
	if string(last) != "10" {
		t.Fatalf("checkpoint after the crash = %q", last)
	}
	// The engine runs it again from the last emitted checkpoint.
	if err := src.Run(ctxT(t), last, emit); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 30 {
		t.Fatalf("%d events", len(ids))
	}
	for i, id := range ids {
		if id != "ev-"+strconv.Itoa(i) {
			t.Fatalf("event %d is %s", i, id)
		}
	}
}

func TestOutputCrashIsRetriable(t *testing.T) {
	set, _, _ := settings(t, "out")
	crash := crashFile(t)
	path := filepath.Join(t.TempDir(), "out.ndjson")
	o := create(t, plugins.KindOutput, map[string]any{"crash_once_file": crash, "path": path}, set).(*remoteOutput)
	if err := o.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	in := events(4)
	err := o.Write(ctxT(t), in)
	if !errors.Is(err, rpc.ErrCrashed) || plugins.IsPermanent(err) {
		t.Fatalf("Write during a crash = %v, want a retriable crash", err)
	}
	// The engine retries; Write waits for the restart.
	if err := o.Write(ctxT(t), in); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
	}
	if n != 4 {
		t.Fatalf("%d lines written", n)
	}
}

func TestKilledIdlePluginIsRestarted(t *testing.T) {
	set, logs, _ := settings(t, "idle")
	tr := create(t, plugins.KindTransform, nil, set).(remoteTr)
	if err := tr.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	pid := tr.Pid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restart", func() bool { p := tr.Pid(); return p != 0 && p != pid })
	if _, err := tr.Process(ctxT(t), events(1)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"msg":"plugin crashed; restarting it"`) {
		t.Fatal("the crash was not logged")
	}
}
