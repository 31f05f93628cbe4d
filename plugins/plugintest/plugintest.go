// Package plugintest is the conformance suite every component passes,
// built-in or external: call Run from a test with the component's factory.
//
//	func TestConformance(t *testing.T) {
//		plugintest.Run(t, NewFactory(), plugintest.Options{})
//	}
//
// It checks, as subtests:
//
//   - type: the type name is valid, the kind is one of the three, the
//     description is one line;
//   - default_config: CreateDefaultConfig returns a fresh pointer each call,
//     and the defaults either validate or fail with *plugins.FieldError
//     values only (key paths the user can act on);
//   - sample_config: the sample is YAML holding exactly the kind's section;
//     each component block of this type decodes strictly over the defaults
//     and validates; transforms and outputs list inputs, sources do not;
//     no secret of the decoded config shows when it is printed;
//   - unknown_key: a key the config does not have is refused, by name;
//   - lifecycle: with the sample config (or Options.Config), Create then
//     Close without Start, Close twice; Create, Start, then Process or
//     Write of an empty batch (a source: Run with a cancelled context
//     returns promptly), Close, Close again. Every call is bounded by
//     Options.Timeout, so a hanging component fails rather than hangs.
//
// The sample checks and the lifecycle run in a fresh temporary working
// directory, so relative paths of a sample land there; Options.Prepare can
// put there the files a sample names.
package plugintest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/auditforwarder/forwarder/plugins"
)

// Options adapts the suite to one component.
type Options struct {
	// Config, when set, is the component block used for the lifecycle
	// (the keys besides type and inputs) instead of the sample's first
	// block of this type: for components whose sample points at files or
	// services the test provides elsewhere.
	Config map[string]any
	// Env resolves ${VAR} and ${VAR:-default} in the sample. A variable
	// neither here nor set in the process gets its default, or else a
	// placeholder: http://127.0.0.1:9 when its name contains URL or
	// ENDPOINT, "placeholder" otherwise.
	Env map[string]string
	// SkipCreate, when set, says why Create cannot run in a unit test (it
	// needs a live service); the static checks still run.
	SkipCreate string
	// SkipStart, when set, says why Start cannot run in a unit test;
	// Create, Close without Start and Close twice still run.
	SkipStart string
	// Prepare, when set, fills the temporary working directory of the
	// sample checks and the lifecycle (say, with the file a sample names).
	Prepare func(t *testing.T, dir string)
	// Settings, when set, adjusts the Settings given to Create.
	Settings func(*plugins.Settings)
	// Timeout bounds each lifecycle call; 0 means 30s.
	Timeout time.Duration
}

// Run runs the conformance suite on f as subtests of t.
func Run(t *testing.T, f plugins.Factory, opts Options) {
	t.Helper()
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	dir := t.TempDir()
	if opts.Prepare != nil {
		opts.Prepare(t, dir)
	}
	t.Run("type", func(t *testing.T) { checkType(t, f) })
	t.Run("default_config", func(t *testing.T) { checkDefaults(t, f) })
	var block map[string]any
	t.Run("sample_config", func(t *testing.T) {
		t.Chdir(dir)
		block = checkSample(t, f, opts)
	})
	t.Run("unknown_key", func(t *testing.T) {
		t.Chdir(dir)
		checkUnknownKey(t, f, block)
	})
	t.Run("lifecycle", func(t *testing.T) {
		t.Chdir(dir)
		if opts.SkipCreate != "" {
			t.Skip("Create not run: " + opts.SkipCreate)
		}
		cfgBlock := opts.Config
		if cfgBlock == nil {
			cfgBlock = block
		}
		if cfgBlock == nil {
			t.Fatal("no config to create the component with: the sample has no usable block and Options.Config is nil")
		}
		checkLifecycle(t, f, cfgBlock, dir, opts)
	})
}

func checkType(t *testing.T, f plugins.Factory) {
	if !plugins.ValidTypeName(f.Type()) {
		t.Errorf("type %q is not a valid type name (lower snake_case, a letter first, at most 63 characters)", f.Type())
	}
	switch f.Kind() {
	case plugins.KindSource, plugins.KindTransform, plugins.KindOutput:
	default:
		t.Errorf("kind %d is not source, transform or output", f.Kind())
	}
	d := f.Description()
	if strings.TrimSpace(d) == "" || strings.ContainsAny(d, "\n\r") {
		t.Errorf("description %q must be one non-empty line", d)
	}
	if _, err := plugins.NewRegistry(f); err != nil {
		t.Errorf("the registry refuses the factory: %v", err)
	}
}

func checkDefaults(t *testing.T, f plugins.Factory) {
	a, b := f.CreateDefaultConfig(), f.CreateDefaultConfig()
	if a == nil {
		t.Fatal("CreateDefaultConfig returned nil")
	}
	v := reflect.ValueOf(a)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		t.Fatalf("CreateDefaultConfig returned %T, want a pointer to a config struct", a)
	}
	if reflect.ValueOf(b).Pointer() == v.Pointer() {
		t.Error("CreateDefaultConfig returned the same pointer twice: decoding one config would change another")
	}
	err := plugins.ValidateConfig("", a)
	for _, e := range flatten(err) {
		var fe *plugins.FieldError
		if !errors.As(e, &fe) {
			t.Errorf("default config error %q is not a *plugins.FieldError: users need its key path", e)
		}
	}
}

func checkSample(t *testing.T, f plugins.Factory, opts Options) map[string]any {
	sample := f.SampleConfig()
	if len(strings.TrimSpace(string(sample))) == 0 {
		t.Fatal("empty sample config: `forwarder plugins --sample` shows it to users")
	}
	var doc map[string]any
	if err := yaml.Unmarshal(sample, &doc); err != nil {
		t.Fatalf("sample config is not valid YAML: %v", err)
	}
	section := f.Kind().Section()
	if len(doc) != 1 || doc[section] == nil {
		t.Fatalf("sample config must hold exactly a %q section, got keys %v", section, keys(doc))
	}
	comps, ok := doc[section].(map[string]any)
	if !ok || len(comps) == 0 {
		t.Fatalf("%s: must map component names to their config", section)
	}
	var first map[string]any
	for _, name := range sortedKeys(comps) {
		raw, ok := comps[name].(map[string]any)
		if !ok {
			t.Errorf("%s.%s: must be a mapping", section, name)
			continue
		}
		if raw["type"] != f.Type() {
			continue
		}
		path := section + "." + name
		block := make(map[string]any, len(raw))
		for k, v := range raw {
			block[k] = v
		}
		delete(block, "type")
		in, hasInputs := block["inputs"]
		delete(block, "inputs")
		switch {
		case f.Kind() == plugins.KindSource && hasInputs:
			t.Errorf("%s.inputs: sources take no inputs", path)
		case f.Kind() != plugins.KindSource:
			if list, ok := in.([]any); !ok || len(list) == 0 {
				t.Errorf("%s.inputs: a %s's sample must list its inputs", path, f.Kind())
			}
		}
		if f.Kind() == plugins.KindOutput {
			delete(block, "delivery") // the engine's keys
		}
		expanded, err := expand(block, opts.Env)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		block = expanded.(map[string]any)
		cfg := f.CreateDefaultConfig()
		if err := plugins.DecodeConfig(block, cfg); err != nil {
			t.Errorf("sample %s does not decode:\n%s", path, strings.Join(plugins.ErrorLines(plugins.PrefixErrors(path, err)), "\n"))
			continue
		}
		if err := plugins.ValidateConfig(path, cfg); err != nil {
			t.Errorf("sample %s does not validate:\n%s", path, strings.Join(plugins.ErrorLines(err), "\n"))
			continue
		}
		checkSecretsHidden(t, path, cfg)
		if first == nil {
			first = block
		}
	}
	if first == nil && !t.Failed() {
		t.Fatalf("sample config has no %s block with type: %s", section, f.Type())
	}
	return first
}

// checkSecretsHidden prints the config every way a log line might and
// looks for the values of its Secret fields.
func checkSecretsHidden(t *testing.T, path string, cfg any) {
	printed := fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg)
	for _, s := range plugins.CollectSecrets(cfg) {
		if len(s) >= 4 && strings.Contains(printed, s) {
			t.Errorf("%s: printing the config shows a secret value; use plugins.Secret", path)
		}
	}
}

func checkUnknownKey(t *testing.T, f plugins.Factory, block map[string]any) {
	const bogus = "conformance_unknown_key"
	raw := map[string]any{bogus: 1}
	for k, v := range block {
		raw[k] = v
	}
	cfg := f.CreateDefaultConfig()
	err := plugins.DecodeConfig(raw, cfg)
	if err == nil {
		// A plugin passing keys through decides in its Validate.
		err = plugins.ValidateConfig("", cfg)
	}
	if err == nil || !strings.Contains(err.Error(), bogus) {
		t.Fatalf("a config with the unknown key %q was accepted (or the error does not name it): %v", bogus, err)
	}
}

func checkLifecycle(t *testing.T, f plugins.Factory, block map[string]any, dir string, opts Options) {
	newSettings := func(id string) plugins.Settings {
		set := plugins.NopSettings(id)
		set.DataDir = dir + "/data/" + id
		set.Once = true
		if opts.Settings != nil {
			opts.Settings(&set)
		}
		return set
	}
	create := func(t *testing.T, id string) plugins.Component {
		t.Helper()
		cfg := f.CreateDefaultConfig()
		if err := plugins.DecodeConfig(block, cfg); err != nil {
			t.Fatalf("config does not decode: %v", err)
		}
		if err := plugins.ValidateConfig(id, cfg); err != nil {
			t.Fatalf("config does not validate: %v", err)
		}
		var c plugins.Component
		call(t, opts.Timeout, "Create", func(ctx context.Context) error {
			var err error
			c, err = f.Create(ctx, newSettings(id), cfg)
			return err
		})
		if c == nil {
			t.Fatal("Create returned a nil component and no error")
		}
		var ok bool
		switch f.Kind() {
		case plugins.KindSource:
			_, ok = c.(plugins.Source)
		case plugins.KindTransform:
			_, ok = c.(plugins.Transform)
		case plugins.KindOutput:
			_, ok = c.(plugins.Output)
		}
		if !ok {
			_ = c.Close(context.Background())
			t.Fatalf("Create returned %T, which is not a %s", c, f.Kind())
		}
		return c
	}

	t.Run("close_without_start", func(t *testing.T) {
		c := create(t, "conformance_a")
		call(t, opts.Timeout, "Close", c.Close)
		call(t, opts.Timeout, "second Close", c.Close)
	})
	t.Run("start_use_close", func(t *testing.T) {
		if opts.SkipStart != "" {
			t.Skip("Start not run: " + opts.SkipStart)
		}
		c := create(t, "conformance_b")
		closed := false
		defer func() {
			if !closed {
				_ = c.Close(context.Background())
			}
		}()
		call(t, opts.Timeout, "Start", c.Start)
		switch f.Kind() {
		case plugins.KindTransform:
			comp := c.(plugins.Transform)
			for _, in := range [][]*plugins.Event{{}, nil} {
				var out []*plugins.Event
				call(t, opts.Timeout, "Process of an empty batch", func(ctx context.Context) error {
					var err error
					out, err = comp.Process(ctx, in)
					return err
				})
				if len(out) != 0 {
					t.Errorf("Process of an empty batch returned %d events", len(out))
				}
			}
		case plugins.KindOutput:
			comp := c.(plugins.Output)
			call(t, opts.Timeout, "Write of an empty batch", func(ctx context.Context) error {
				return comp.Write(ctx, []*plugins.Event{})
			})
		case plugins.KindSource:
			comp := c.(plugins.Source)
			call(t, opts.Timeout, "Run with a cancelled context", func(ctx context.Context) error {
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				err := comp.Run(cctx, nil, func(ectx context.Context, _ plugins.Batch) error { return ectx.Err() })
				if errors.Is(err, context.Canceled) {
					return nil
				}
				return err
			})
		}
		closed = true
		call(t, opts.Timeout, "Close", c.Close)
		call(t, opts.Timeout, "second Close", c.Close)
	})
}

// call runs fn with a deadline and fails the test if it errs or hangs.
func call(t *testing.T, timeout time.Duration, what string, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(timeout + min(timeout, 5*time.Second)):
		t.Fatalf("%s did not return within %s", what, timeout)
	}
}

// expand resolves ${VAR} and ${VAR:-default} in every string of v.
func expand(v any, env map[string]string) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			x, err := expand(e, env)
			if err != nil {
				return nil, err
			}
			out[k] = x
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			x, err := expand(e, env)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	case string:
		return expandString(t, env)
	}
	return v, nil
}

func expandString(s string, env map[string]string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' { // $${ is a literal ${
			b.WriteString(s[:i-1] + "${")
			s = s[i+2:]
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s)
		}
		name, def, hasDef := strings.Cut(s[i+2:i+end], ":-")
		val, ok := env[name]
		if !ok {
			val, ok = os.LookupEnv(name)
		}
		switch {
		case ok && val != "":
		case hasDef:
			val = def
		case strings.Contains(name, "URL") || strings.Contains(name, "ENDPOINT"):
			val = "http://127.0.0.1:9"
		default:
			val = "placeholder"
		}
		b.WriteString(s[:i] + val)
		s = s[i+end+1:]
	}
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func keys(m map[string]any) []string { return sortedKeys(m) }

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
