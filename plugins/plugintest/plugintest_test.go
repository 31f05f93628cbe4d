package plugintest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

type fakeConfig struct {
	Path  string         `koanf:"path"`
	Count int            `koanf:"count"`
	Token plugins.Secret `koanf:"token"`
	Wait  time.Duration  `koanf:"wait"`
}

func (c *fakeConfig) Validate() error {
	if c.Count < 1 {
		return plugins.FieldErrorf("count", "must be positive, got %d", c.Count)
	}
	return nil
}

// leakyConfig prints its secret: the suite must notice.
type leakyConfig struct {
	Path  string         `koanf:"path"`
	Count int            `koanf:"count"`
	Token plugins.Secret `koanf:"token"`
	Wait  time.Duration  `koanf:"wait"`
}

func (c *leakyConfig) String() string { return "token=" + c.Token.Reveal() }

type fake struct {
	broken string
	closes int
}

func (f *fake) Start(ctx context.Context) error {
	if f.broken == "start_hangs" {
		<-ctx.Done()
		time.Sleep(time.Hour)
	}
	return nil
}

func (f *fake) Close(context.Context) error {
	f.closes++
	if f.broken == "close_twice" && f.closes > 1 {
		return errors.New("already closed")
	}
	return nil
}

func (f *fake) Process(_ context.Context, events []*plugins.Event) ([]*plugins.Event, error) {
	if f.broken == "process_adds" {
		return append(events, plugins.NewEvent()), nil
	}
	return events, nil
}

func (f *fake) Run(ctx context.Context, _ plugins.Checkpoint, _ plugins.Emit) error {
	if f.broken == "run_ignores_ctx" {
		time.Sleep(time.Hour)
	}
	<-ctx.Done()
	return nil
}

const goodTransformSample = `transforms:
  t:
    type: fake
    inputs: [s]
    path: ./x
    count: 3             # comment
    token: ${FAKE_TOKEN}
    wait: 1s
`

func transformFactory(broken, sample string) plugins.Factory {
	typ := "fake"
	if broken == "bad_type" {
		typ = "Fake-Type"
	}
	return plugins.NewTransformFactory(typ, "a fake transform", []byte(sample),
		func() *fakeConfig {
			if broken == "bad_defaults" {
				return &fakeConfig{Count: -1}
			}
			return &fakeConfig{Count: 1}
		},
		func(context.Context, plugins.Settings, *fakeConfig) (plugins.Transform, error) {
			return &fake{broken: broken}, nil
		})
}

func TestGoodComponentsPass(t *testing.T) {
	Run(t, transformFactory("", goodTransformSample), Options{Env: map[string]string{"FAKE_TOKEN": "s3cret-value"}})
	Run(t, plugins.NewSourceFactory("fake_source", "a fake source", []byte("sources:\n  s:\n    type: fake_source\n    count: 2\n"),
		func() *fakeConfig { return &fakeConfig{Count: 1} },
		func(context.Context, plugins.Settings, *fakeConfig) (plugins.Source, error) { return &fake{}, nil }), Options{})
	Run(t, plugins.NewOutputFactory("fake_output", "a fake output", []byte("outputs:\n  o:\n    type: fake_output\n    inputs: [t]\n    delivery: {max_in_flight: 1}\n"),
		func() *fakeConfig { return &fakeConfig{Count: 1} },
		func(context.Context, plugins.Settings, *fakeConfig) (plugins.Output, error) {
			return &fakeOutput{}, nil
		}),
		Options{SkipStart: "not needed"})
}

type fakeOutput struct{ fake }

func (*fakeOutput) Write(context.Context, []*plugins.Event) error { return nil }

func TestExpand(t *testing.T) {
	t.Setenv("PT_SET", "from-env")
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"${PT_SET}", "from-env"},
		{"${PT_OPT}", "option"},
		{"a${PT_UNSET:-def}b", "adefb"},
		{"${SOME_ENDPOINT}", "http://127.0.0.1:9"},
		{"${SOME_KEY}", "placeholder"},
		{"$${LITERAL}", "${LITERAL}"},
	}
	for _, tt := range tests {
		got, err := expandString(tt.in, map[string]string{"PT_OPT": "option"})
		if err != nil || got != tt.want {
			t.Errorf("expand(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestSuiteCatchesBrokenComponents runs the suite on broken components in
// a child test process and checks that it fails, saying why.
func TestSuiteCatchesBrokenComponents(t *testing.T) {
	tests := []struct{ broken, want string }{
		{"bad_type", `type "Fake-Type" is not a valid type name`},
		{"bad_defaults_plain_error", "is not a *plugins.FieldError"},
		{"typo_in_sample", "transforms.t.cuont: unknown key"},
		{"invalid_sample", "transforms.t.count: must be positive, got 0"},
		{"no_inputs", "transforms.t.inputs: a transform's sample must list its inputs"},
		{"not_yaml", "sample config is not valid YAML"},
		{"wrong_section", `sample config must hold exactly a "transforms" section`},
		{"leaky", "printing the config shows a secret value"},
		{"lenient", `a config with the unknown key "conformance_unknown_key" was accepted`},
		{"close_twice", "second Close: already closed"},
		{"process_adds", "Process of an empty batch returned 1 events"},
		{"start_hangs", "Start did not return within 1s"},
		{"run_ignores_ctx", "Run with a cancelled context did not return within 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.broken, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBrokenComponent$", "-test.v")
			cmd.Env = append(os.Environ(), "PLUGINTEST_BROKEN="+tt.broken)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a broken component:\n%s", out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Fatalf("the suite failed without saying %q:\n%s", tt.want, out)
			}
		})
	}
}

// TestBrokenComponent is run by TestSuiteCatchesBrokenComponents.
func TestBrokenComponent(t *testing.T) {
	broken := os.Getenv("PLUGINTEST_BROKEN")
	if broken == "" {
		t.Skip("run by TestSuiteCatchesBrokenComponents")
	}
	sample := goodTransformSample
	opts := Options{Timeout: time.Second, Env: map[string]string{"FAKE_TOKEN": "s3cret-value"}}
	var f plugins.Factory
	switch broken {
	case "bad_defaults_plain_error":
		f = plugins.NewTransformFactory("fake", "d", []byte(sample), func() *plainErrConfig { return &plainErrConfig{} },
			func(context.Context, plugins.Settings, *plainErrConfig) (plugins.Transform, error) {
				return &fake{}, nil
			})
	case "typo_in_sample":
		sample = strings.Replace(sample, "count:", "cuont:", 1)
	case "invalid_sample":
		sample = strings.Replace(sample, "count: 3", "count: 0", 1)
	case "no_inputs":
		sample = strings.Replace(sample, "    inputs: [s]\n", "", 1)
	case "not_yaml":
		sample = "transforms: [\n"
	case "wrong_section":
		sample = strings.Replace(sample, "transforms:", "outputs:", 1)
	case "leaky":
		f = plugins.NewTransformFactory("fake", "d", []byte(sample), func() *leakyConfig { return &leakyConfig{Count: 1} },
			func(context.Context, plugins.Settings, *leakyConfig) (plugins.Transform, error) { return &fake{}, nil })
	case "lenient":
		f = plugins.NewTransformFactory("fake", "d", []byte(sample), func() *map[string]any { return &map[string]any{} },
			func(context.Context, plugins.Settings, *map[string]any) (plugins.Transform, error) {
				return &fake{}, nil
			})
	case "run_ignores_ctx":
		f = plugins.NewSourceFactory("fake", "d", []byte("sources:\n  s:\n    type: fake\n    count: 1\n"),
			func() *fakeConfig { return &fakeConfig{Count: 1} },
			func(context.Context, plugins.Settings, *fakeConfig) (plugins.Source, error) {
				return &fake{broken: broken}, nil
			})
	}
	if f == nil {
		f = transformFactory(broken, sample)
	}
	Run(t, f, opts)
}

type plainErrConfig struct {
	Count int            `koanf:"count"`
	Path  string         `koanf:"path"`
	Token plugins.Secret `koanf:"token"`
	Wait  time.Duration  `koanf:"wait"`
}

func (c *plainErrConfig) Validate() error {
	if c.Count == 0 {
		return errors.New("count is zero")
	}
	return nil
}
