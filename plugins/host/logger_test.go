package host

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestPluginLogAdapter(t *testing.T) {
	buf := &logBuffer{}
	l := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component_id", "c1")
	pl := newPluginLog(l, "/opt/plugins/enrich")
	root := pl.hclogger()
	stderr := root.Named("enrich")
	stdio := root.Named("stdio")

	root.Debug("starting plugin", "path", "/opt/plugins/enrich") // below info: dropped
	root.Info("plugin started")                                  // go-plugin chatter: debug, dropped
	stdio.Debug("waiting for stdio data")                        // not the plugin's stderr: dropped
	stderr.Info("table loaded", "rows", 12, "timestamp", "x")    // an hclog record from the plugin
	stderr.Debug("plain line printed by the plugin")             // a raw stderr line
	stderr.Error("panic: boom")
	stderr.Error("")
	stderr.Error("goroutine 1 [running]:")
	stderr.Error("main.main()")
	root.Error("plugin process exited", "error", "exit status 2")
	if got := root.GetLevel(); got != hclog.Info {
		t.Errorf("GetLevel = %v", got)
	}

	out := buf.String()
	for _, want := range []string{
		`level=INFO msg="table loaded" component_id=c1 rows=12` + "\n",
		`level=INFO msg="plain line printed by the plugin" component_id=c1 stream=stderr`,
		`level=ERROR msg="plugin panicked" component_id=c1 panic="panic: boom" stack="goroutine 1 [running]:\nmain.main()"`,
		`level=ERROR msg="plugin process exited" component_id=c1 error="exit status 2"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s\n%s", want, out)
		}
	}
	for _, bad := range []string{"starting plugin", "plugin started", "waiting for stdio", "timestamp"} {
		if strings.Contains(out, bad) {
			t.Errorf("log has %q:\n%s", bad, out)
		}
	}
	if strings.Count(out, "\n") != 4 {
		t.Errorf("want 4 records:\n%s", out)
	}
	if p := pl.LastPanic(); p != "panic: boom\n\ngoroutine 1 [running]:\nmain.main()" {
		t.Errorf("LastPanic = %q", p)
	}
}

func TestLineWriter(t *testing.T) {
	var lines []string
	w := &lineWriter{emit: func(s string) { lines = append(lines, s) }}
	for _, chunk := range []string{"a\nb", "c\r\n", "\n", "d\n"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Join(lines, "|") != "a|bc|d" {
		t.Fatalf("lines = %q", lines)
	}
}
