package plugins

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type tlsCfg struct {
	Enabled bool   `koanf:"enabled"`
	CAFile  string `koanf:"ca_file"`
}

func (t *tlsCfg) Validate() error {
	if t.Enabled && t.CAFile == "" {
		return FieldErrorf("ca_file", "is required when enabled")
	}
	return nil
}

type testCfg struct {
	PageSize int           `koanf:"page_size"`
	Interval time.Duration `koanf:"interval"`
	Secret   Secret        `koanf:"secret_key"`
	Names    []string      `koanf:"names"`
	TLS      tlsCfg        `koanf:"tls"`
	Ratio    float64       `koanf:"ratio"`
}

func (c *testCfg) Validate() error {
	if c.PageSize < 1 || c.PageSize > 100 {
		return FieldErrorf("page_size", "must be between 1 and 100, got %d", c.PageSize)
	}
	return nil
}

func TestDecodeConfig(t *testing.T) {
	tests := []struct {
		name    string
		raw     map[string]any
		wantErr []string // substrings, each must appear
	}{
		{"ok", map[string]any{"page_size": 50, "interval": "1m", "secret_key": "s3cr3t-value", "names": []any{"a"}, "ratio": 1}, nil},
		{"unknown key", map[string]any{"page_sise": 50}, []string{"page_sise: unknown key"}},
		{"nested unknown", map[string]any{"tls": map[string]any{"enabld": true}}, []string{"tls.enabld: unknown key"}},
		{"string for int", map[string]any{"page_size": "50"}, []string{"page_size: must be an integer, got a string"}},
		{"float for int", map[string]any{"page_size": 1.5}, []string{"page_size: must be an integer"}},
		{"bad duration", map[string]any{"interval": "1 minute"}, []string{"interval: must be a duration"}},
		{"int duration", map[string]any{"interval": 60}, []string{"interval: must be a duration string"}},
		{"bool for string", map[string]any{"tls": map[string]any{"ca_file": true}}, []string{"tls.ca_file: must be a string"}},
		{"scalar for list", map[string]any{"names": "a"}, []string{"names: must be a list"}},
		{"int secret does not echo", map[string]any{"secret_key": 987654321}, []string{"secret_key: must be a string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &testCfg{PageSize: 100}
			err := DecodeConfig(tt.raw, cfg)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if cfg.Interval != time.Minute || cfg.Secret.Reveal() != "s3cr3t-value" || cfg.Ratio != 1 {
					t.Fatalf("decoded %+v", cfg)
				}
				return
			}
			if err == nil {
				t.Fatal("expected an error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "987654321") {
				t.Errorf("error echoes the value: %v", err)
			}
		})
	}
}

func TestValidateConfigPaths(t *testing.T) {
	cfg := &testCfg{PageSize: 500, TLS: tlsCfg{Enabled: true}}
	err := ValidateConfig("sources.ncp", cfg)
	lines := ErrorLines(err)
	want := []string{
		"sources.ncp.page_size: must be between 1 and 100, got 500",
		"sources.ncp.tls.ca_file: is required when enabled",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %q", lines)
	}
}

func TestDecodeJSONConfigKeepsIntegers(t *testing.T) {
	cfg := &testCfg{}
	if err := DecodeJSONConfig([]byte(`{"page_size": 9007199254740993}`), cfg); err == nil {
		// fits in int on 64-bit; check exactness
		if cfg.PageSize != 9007199254740993 {
			t.Fatalf("integer rounded: %d", cfg.PageSize)
		}
	}
	if err := DecodeJSONConfig([]byte(`{"page_sise": 1}`), cfg); err == nil || !strings.Contains(err.Error(), "page_sise: unknown key") {
		t.Fatalf("got %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const v = "hunter2-very-secret"
	cfg := testCfg{Secret: v}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("cfg", "secret", cfg.Secret, "cfg", cfg)
	js, _ := json.Marshal(cfg)
	outs := []string{
		fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%s", cfg.Secret),
		fmt.Sprintf("%q", cfg.Secret), fmt.Sprintf("%x", cfg.Secret), fmt.Sprint(cfg.Secret), string(js), buf.String(),
	}
	for _, o := range outs {
		if strings.Contains(o, v) || strings.Contains(o, fmt.Sprintf("%x", v)) {
			t.Errorf("secret leaked: %s", o)
		}
		if !strings.Contains(o, Redacted) {
			t.Errorf("no [REDACTED] marker in %s", o)
		}
	}
	if cfg.Secret.Reveal() != v {
		t.Fatal("Reveal")
	}
	if got := CollectSecrets(&cfg); len(got) != 1 || got[0] != v {
		t.Fatalf("CollectSecrets = %v", got)
	}
}

func TestPermanentAndBatchError(t *testing.T) {
	base := errors.New("boom")
	p := Permanent(fmt.Errorf("wrapped: %w", base))
	if !IsPermanent(p) || !errors.Is(p, base) || IsPermanent(base) {
		t.Fatal("permanent classification")
	}
	if !IsPermanent(fmt.Errorf("outer: %w", p)) {
		t.Fatal("wrapped permanent")
	}
	if Permanent(nil) != nil {
		t.Fatal("Permanent(nil)")
	}
	var be BatchError
	if be.Err() != nil {
		t.Fatal("empty batch error must be nil")
	}
	be.Add(1, base)
	be.Add(3, Permanent(base))
	if be.Err() == nil || !strings.Contains(be.Error(), "2 events failed (1 permanently)") {
		t.Fatalf("got %v", be.Error())
	}
}

func TestRegistry(t *testing.T) {
	mk := func(typ string, k Kind) Factory {
		switch k {
		case KindSource:
			return NewSourceFactory(typ, "d", nil, func() *testCfg { return &testCfg{} }, nil)
		default:
			return NewOutputFactory(typ, "d", nil, func() *testCfg { return &testCfg{} }, nil)
		}
	}
	r, err := NewRegistry(mk("file", KindSource), mk("file", KindOutput))
	if err != nil {
		t.Fatalf("same type in two kinds must be allowed: %v", err)
	}
	if err := r.Register(mk("file", KindOutput)); err == nil || !strings.Contains(err.Error(), "registered twice") {
		t.Fatalf("duplicate: %v", err)
	}
	if err := r.Register(mk("Bad-Name", KindOutput)); err == nil {
		t.Fatal("invalid name accepted")
	}
	if _, ok := r.Lookup(KindSource, "file"); !ok {
		t.Fatal("lookup")
	}
	if got := len(r.All()); got != 2 {
		t.Fatalf("All() = %d", got)
	}
}
