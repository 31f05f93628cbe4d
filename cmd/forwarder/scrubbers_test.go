package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/logging"
	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/transforms/mask"
)

// TestLogScrubbersMaskAddresses logs addresses hidden in an error, a URL
// and a group attribute through logging.New with logScrubbers and checks
// that none reaches the output, under the default policy and under the
// policy of the pipeline's mask transform.
func TestLogScrubbersMaskAddresses(t *testing.T) {
	hashed := mask.DefaultConfig()
	hashed.IP.Mode, hashed.Email.Mode, hashed.HashKey = mask.ModeHash, mask.ModeRedact, "log-test-key-0123456789"
	tests := []struct {
		name string
		cfg  *config.Config
		want []string
	}{
		{"no mask transform", &config.Config{}, []string{"203.0.113.0:443", "h***@navercorp.com", "[2001:db8:1::]"}},
		{"mask transform policy", &config.Config{Components: []*config.Component{
			{Name: "a", Kind: plugins.KindSource, Type: "generate"},
			{Name: "m", Kind: plugins.KindTransform, Type: "mask", Config: hashed},
		}}, []string{"ip-", "[REDACTED_EMAIL]"}},
		{"nil config", nil, []string{"203.0.113.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, format := range []string{"json", "text"} {
				var buf bytes.Buffer
				log, err := logging.New(&buf, "debug", format, logScrubbers(tt.cfg)...)
				if err != nil {
					t.Fatal(err)
				}
				err = fmt.Errorf("post https://api.example.com/users?email=hong%%40navercorp.com: %w",
					errors.New("dial tcp 203.0.113.77:443: connection refused"))
				log.Error("delivery failed for hong@navercorp.com", "error", err,
					"peer", "[2001:db8:1:2::7]:8443", slog.Group("user", "email", "HONG@NAVERCORP.COM"))
				out := buf.String()
				for _, leaked := range []string{"203.0.113.77", "hong@", "hong%40", "HONG@", "2001:db8:1:2::7"} {
					if strings.Contains(out, leaked) {
						t.Errorf("%s: %q leaked into the log line: %s", format, leaked, out)
					}
				}
				for _, w := range tt.want {
					if !strings.Contains(out, w) {
						t.Errorf("%s: log line lacks %q: %s", format, w, out)
					}
				}
			}
		})
	}
}

func TestLogScrubberKeepsInfrastructureAddresses(t *testing.T) {
	cfg := &config.Config{Components: []*config.Component{{
		Name: "kafka", Kind: plugins.KindOutput, Type: "kafka",
		Raw: map[string]any{"brokers": []any{"10.0.0.5:9092"}},
	}}}
	scrub := logScrubbers(cfg)[0]
	got := scrub("dial tcp 10.0.0.5:9092 and 127.0.0.1:19092: refused for user 203.0.113.77 bob@example.com")
	for _, keep := range []string{"10.0.0.5:9092", "127.0.0.1:19092"} {
		if !strings.Contains(got, keep) {
			t.Errorf("infrastructure address %s was masked: %s", keep, got)
		}
	}
	for _, gone := range []string{"203.0.113.77", "bob@example.com"} {
		if strings.Contains(got, gone) {
			t.Errorf("personal address %s survived: %s", gone, got)
		}
	}
}
