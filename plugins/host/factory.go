package host

import (
	"context"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/rpc"
)

// PluginType is the `type:` of a component that runs an external plugin
// binary named by `path:`.
const PluginType = "plugin"

var (
	//go:embed sample_source.yaml
	sampleSource []byte
	//go:embed sample_transform.yaml
	sampleTransform []byte
	//go:embed sample_output.yaml
	sampleOutput []byte
)

// NewFactories returns the `type: plugin` factories, one per kind, for the
// explicit list of built-ins.
func NewFactories() []plugins.Factory {
	return []plugins.Factory{NewSourceFactory(), NewTransformFactory(), NewOutputFactory()}
}

// NewSourceFactory returns the factory of `type: plugin` sources.
func NewSourceFactory() plugins.Factory {
	return plugins.NewSourceFactory(PluginType, "a source served by an external plugin binary (path, sha256, config)",
		sampleSource, defaultsFor(plugins.KindSource),
		func(ctx context.Context, set plugins.Settings, cfg *Config) (plugins.Source, error) {
			c, err := cfg.create(ctx, set)
			if err != nil {
				return nil, err
			}
			return c.(plugins.Source), nil
		})
}

// NewTransformFactory returns the factory of `type: plugin` transforms.
func NewTransformFactory() plugins.Factory {
	return plugins.NewTransformFactory(PluginType, "a transform served by an external plugin binary (path, sha256, config)",
		sampleTransform, defaultsFor(plugins.KindTransform),
		func(ctx context.Context, set plugins.Settings, cfg *Config) (plugins.Transform, error) {
			c, err := cfg.create(ctx, set)
			if err != nil {
				return nil, err
			}
			return c.(plugins.Transform), nil
		})
}

// NewOutputFactory returns the factory of `type: plugin` outputs.
func NewOutputFactory() plugins.Factory {
	return plugins.NewOutputFactory(PluginType, "an output served by an external plugin binary (path, sha256, config)",
		sampleOutput, defaultsFor(plugins.KindOutput),
		func(ctx context.Context, set plugins.Settings, cfg *Config) (plugins.Output, error) {
			c, err := cfg.create(ctx, set)
			if err != nil {
				return nil, err
			}
			return c.(plugins.Output), nil
		})
}

func defaultsFor(kind plugins.Kind) func() *Config {
	return func() *Config { return &Config{StartTimeout: DefaultStartTimeout, kind: kind} }
}

// PluginConfig is a plugin's own config block. The host does not know its
// shape, so it passes it through as JSON for the plugin to decode and
// validate; and since it cannot know which keys are secrets, printing it
// shows only its key names.
type PluginConfig map[string]any

// Format implements fmt.Formatter: keys only, never values.
func (p PluginConfig) Format(f fmt.State, _ rune) {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(f, "{%s}", strings.Join(keys, " "))
}

// LogValue implements slog.LogValuer: keys only, never values.
func (p PluginConfig) LogValue() slog.Value { return slog.StringValue(fmt.Sprint(p)) }

// Config is the configuration of a `type: plugin` component.
type Config struct {
	// Path is the plugin binary, absolute or relative to the working directory.
	Path string `koanf:"path"`
	// SHA256, when set, is the hex SHA-256 the binary must have; it is
	// checked before every start of the process.
	SHA256 string `koanf:"sha256"`
	// Component picks one of the binary's components of this kind; it may
	// be left empty when the binary offers exactly one.
	Component string `koanf:"component"`
	// StartTimeout bounds the plugin's handshake.
	StartTimeout time.Duration `koanf:"start_timeout"`
	// Config is the plugin's own config block.
	Config PluginConfig `koanf:"config"`

	// Secrets are the values of the plugin config's Secret fields, as the
	// plugin reported them when it validated Config, so the forwarder's log
	// scrubber removes them too.
	Secrets []plugins.Secret `koanf:"-"`

	kind     plugins.Kind
	resolved string
	sum      []byte
}

// Validate implements plugins.Validator. Beyond its own keys it runs the
// binary (after the sha256 check), finds the component and has the plugin
// validate Config: the plugin's errors come back under `config.`.
func (c *Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, plugins.FieldErrorf("path", "is required: the plugin binary to run"))
	}
	sum, err := parseSHA256(c.SHA256)
	if err != nil {
		errs = append(errs, plugins.FieldErrorf("sha256", "%v", err))
	}
	if c.StartTimeout < 100*time.Millisecond || c.StartTimeout > 5*time.Minute {
		errs = append(errs, plugins.FieldErrorf("start_timeout", "must be between 100ms and 5m, got %s", c.StartTimeout))
	}
	if c.Component != "" && !plugins.ValidTypeName(c.Component) {
		errs = append(errs, plugins.FieldErrorf("component", "must be a component type name such as asset_owner, got %q", c.Component))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := checkExecutable(c.Path); err != nil {
		return plugins.FieldErrorf("path", "%v", err)
	}
	if sum != nil {
		got, err := fileSHA256(c.Path)
		if err != nil {
			return plugins.FieldErrorf("path", "%v", err)
		}
		if hex.EncodeToString(got) != hex.EncodeToString(sum) {
			return plugins.FieldErrorf("sha256", "does not match %s, whose SHA-256 is %s: refusing to run it", c.Path, hex.EncodeToString(got))
		}
	}
	c.sum = sum
	data, err := json.Marshal(map[string]any(c.Config))
	if err != nil {
		return plugins.FieldErrorf("config", "cannot be encoded as JSON: %v", err)
	}
	res, err := probe(c.launchConfig(nil), c.kind, c.Component, data)
	if err != nil {
		return err
	}
	c.resolved = res.typ
	c.Secrets = toSecrets(res.secrets)
	return plugins.PrefixErrors("config", res.configErr)
}

func (c *Config) launchConfig(log *slog.Logger) launchConfig {
	return launchConfig{path: c.Path, sha256: c.sum, logger: log, startTimeout: c.StartTimeout}
}

func (c *Config) create(ctx context.Context, set plugins.Settings) (plugins.Component, error) {
	if c.resolved == "" {
		if err := plugins.ValidateConfig("", c); err != nil {
			return nil, err
		}
	}
	data, err := json.Marshal(map[string]any(c.Config))
	if err != nil {
		return nil, err
	}
	return newRemote(ctx, spec{launch: c.launchConfig(set.Logger), kind: c.kind, typ: c.resolved, config: data, set: set})
}

func parseSHA256(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	s = strings.ToLower(strings.TrimSpace(s))
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("must be 64 hexadecimal digits (as sha256sum prints), got %d characters", len(s))
	}
	return b, nil
}

func toSecrets(values []string) []plugins.Secret {
	out := make([]plugins.Secret, len(values))
	for i, v := range values {
		out[i] = plugins.Secret(v)
	}
	return out
}

// probeResult is what probing a binary for one component found.
type probeResult struct {
	typ       string
	secrets   []string
	configErr error
}

// probe starts the binary, picks the component of kind (component names
// it, or the binary offers exactly one), has the plugin validate the
// config, and stops the binary. Problems with the binary or the component
// come back as the error (a FieldError on path or component); problems
// with the config as configErr.
func probe(lc launchConfig, kind plugins.Kind, component string, config []byte) (probeResult, error) {
	p, err := launch(lc)
	if err != nil {
		if errors.Is(err, ErrChecksum) {
			return probeResult{}, plugins.FieldErrorf("sha256", "%v", err)
		}
		return probeResult{}, plugins.FieldErrorf("path", "%v", err)
	}
	defer p.kill()
	ctx, cancel := context.WithTimeout(context.Background(), lc.startTimeout+30*time.Second)
	defer cancel()
	infos, err := p.rpc.Describe(ctx)
	if err != nil {
		return probeResult{}, plugins.FieldErrorf("path", "plugin %s: %v", lc.path, err)
	}
	var offered []string
	typ := ""
	for _, in := range infos {
		if in.Kind != kind {
			continue
		}
		offered = append(offered, in.Type)
		if component == in.Type {
			typ = in.Type
		}
	}
	switch {
	case component != "" && typ == "":
		return probeResult{}, plugins.FieldErrorf("component", "plugin %s has no %s %q (it offers: %s)", lc.path, kind, component, listOrNone(offered))
	case component == "" && len(offered) == 1:
		typ = offered[0]
	case component == "":
		return probeResult{}, plugins.FieldErrorf("component", "is required: plugin %s offers %s %ss (%s)", lc.path, countWord(len(offered)), kind, listOrNone(offered))
	}
	secrets, err := p.rpc.Validate(ctx, kind, typ, config)
	if err != nil && !isConfigError(err) {
		return probeResult{}, plugins.FieldErrorf("path", "plugin %s: %v", lc.path, err)
	}
	return probeResult{typ: typ, secrets: secrets, configErr: err}, nil
}

// isConfigError reports whether a Validate error is about the config (the
// plugin answered) rather than the transport.
func isConfigError(err error) bool {
	return !errors.Is(err, rpc.ErrCrashed) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled)
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func countWord(n int) string {
	if n == 0 {
		return "no"
	}
	return fmt.Sprint(n)
}

// External is implemented by the factories of components found in a
// plugin_dir binary.
type External interface {
	plugins.Factory
	// PluginPath is the binary that serves the component.
	PluginPath() string
}

// externalFactory is a component a plugin_dir binary described. It joins
// the registry like a built-in: `type: <its type>` and its own keys inline.
type externalFactory struct {
	path         string
	sum          []byte
	info         rpc.Info
	startTimeout time.Duration
}

var _ External = (*externalFactory)(nil)

func (f *externalFactory) Type() string         { return f.info.Type }
func (f *externalFactory) Kind() plugins.Kind   { return f.info.Kind }
func (f *externalFactory) Description() string  { return f.info.Description }
func (f *externalFactory) SampleConfig() []byte { return f.info.Sample }
func (f *externalFactory) PluginPath() string   { return f.path }

// CreateDefaultConfig returns an ExternalConfig: it accepts any keys, and
// its Validate has the plugin decode and validate them.
func (f *externalFactory) CreateDefaultConfig() any { return &ExternalConfig{f: f} }

// Create starts the plugin process and creates the component in it.
func (f *externalFactory) Create(ctx context.Context, set plugins.Settings, cfg any) (plugins.Component, error) {
	c, ok := cfg.(*ExternalConfig)
	if !ok {
		return nil, fmt.Errorf("%s %q: config has type %T, want *host.ExternalConfig", f.Kind(), f.Type(), cfg)
	}
	data, err := json.Marshal(map[string]any(c.Keys))
	if err != nil {
		return nil, err
	}
	return newRemote(ctx, spec{launch: f.launchConfig(set.Logger), kind: f.Kind(), typ: f.Type(), config: data, set: set})
}

func (f *externalFactory) launchConfig(log *slog.Logger) launchConfig {
	return launchConfig{path: f.path, sha256: f.sum, logger: log, startTimeout: f.startTimeout}
}

// ExternalConfig holds the config block of a plugin_dir component. The
// strict decoding and validation happen in the plugin, with the plugin's
// own config struct; errors keep their key paths, so a typo reads exactly
// as it would for a built-in.
type ExternalConfig struct {
	// Keys are the component's keys (besides type and inputs).
	Keys PluginConfig `koanf:",remain"`
	// Secrets: see Config.Secrets.
	Secrets []plugins.Secret `koanf:"-"`

	f *externalFactory
}

// Validate implements plugins.Validator by asking the plugin.
func (c *ExternalConfig) Validate() error {
	if c.f == nil {
		return errors.New("external config without its factory")
	}
	data, err := json.Marshal(map[string]any(c.Keys))
	if err != nil {
		return fmt.Errorf("cannot be encoded as JSON: %v", err)
	}
	p, err := launch(c.f.launchConfig(nil))
	if err != nil {
		return err
	}
	defer p.kill()
	ctx, cancel := context.WithTimeout(context.Background(), c.f.startTimeout+30*time.Second)
	defer cancel()
	secrets, err := p.rpc.Validate(ctx, c.f.Kind(), c.f.Type(), data)
	if err != nil && !isConfigError(err) {
		return fmt.Errorf("plugin %s: %v", filepath.Base(c.f.path), err)
	}
	c.Secrets = toSecrets(secrets)
	return err
}
