package logging

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestSecretsAreScrubbedEverywhere(t *testing.T) {
	const secret = "AKIA-super-secret-123"
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log, err := New(&buf, "debug", format, SecretScrubber([]string{secret, "ab"}))
		if err != nil {
			t.Fatal(err)
		}
		l := log.With("url", "https://api.example/appkeys/"+secret+"/events")
		l.Debug("request to "+secret+" failed",
			"error", fmt.Errorf("post https://x/%s: %w", secret, errors.New("refused")),
			"group", map[string]string{"k": secret},
			"stringer", bytes.NewBufferString(secret))
		l.WithGroup("g").Info("x", "inner", secret)
		out := buf.String()
		if strings.Contains(out, secret) {
			t.Fatalf("%s: secret leaked:\n%s", format, out)
		}
		if !strings.Contains(out, "[REDACTED]") || !strings.Contains(out, "refused") {
			t.Fatalf("%s: scrubbed output lost context:\n%s", format, out)
		}
	}
}

func TestLevelsAndFormats(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, "warn", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "component_id", "ncp")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"component_id":"ncp"`) {
		t.Fatalf("got %s", buf.String())
	}
	if _, err := New(&buf, "loud", "json"); err == nil {
		t.Fatal("bad level accepted")
	}
	if _, err := New(&buf, "info", "xml"); err == nil {
		t.Fatal("bad format accepted")
	}
}
