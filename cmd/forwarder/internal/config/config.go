// Package config loads pipeline.yaml: koanf layering (defaults, file,
// FORWARDER_ environment overrides, --set flags), ${VAR} expansion, strict
// decoding of every component's keys and validation of the component graph.
// Every error names the key path it is about.
package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	yamlv3 "go.yaml.in/yaml/v3"

	"github.com/auditforwarder/forwarder/plugins"
)

// EnvPrefix starts every environment override.
const EnvPrefix = "FORWARDER_"

// topLevelKeys are the keys of pipeline.yaml's top level; an environment
// variable is an override only when it names one of them.
var topLevelKeys = map[string]bool{
	"data_dir": true, "shutdown_timeout": true, "api": true, "log": true, "plugin_dir": true,
	"cluster": true, "sources": true, "transforms": true, "outputs": true,
}

// Config is the decoded, validated pipeline.
type Config struct {
	DataDir         string        `koanf:"data_dir"`
	ShutdownTimeout time.Duration `koanf:"shutdown_timeout"`
	API             APIConfig     `koanf:"api"`
	Log             LogConfig     `koanf:"log"`
	// PluginDir is scanned for external plugin binaries at start (optional).
	PluginDir string `koanf:"plugin_dir"`
	// Cluster, when set, runs this instance as one of many sharing the
	// sources through Kafka (see cluster.go); nil = single instance.
	Cluster *ClusterConfig `koanf:"cluster"`

	Sources    map[string]map[string]any `koanf:"sources"`
	Transforms map[string]map[string]any `koanf:"transforms"`
	Outputs    map[string]map[string]any `koanf:"outputs"`

	// Components is the resolved graph, filled by Load.
	Components []*Component `koanf:"-"`
}

// APIConfig configures the HTTP endpoint for /metrics, /healthz and /readyz.
type APIConfig struct {
	Address string `koanf:"address"`
}

// LogConfig configures the forwarder's own logs.
type LogConfig struct {
	Level  string `koanf:"level"`
	Format string `koanf:"format"`
}

// Validate implements plugins.Validator.
func (l *LogConfig) Validate() error {
	var errs []error
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, plugins.FieldErrorf("level", "must be one of debug, info, warn, error, got %q", l.Level))
	}
	switch l.Format {
	case "json", "text":
	default:
		errs = append(errs, plugins.FieldErrorf("format", "must be json or text, got %q", l.Format))
	}
	return errors.Join(errs...)
}

// Validate implements plugins.Validator.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, plugins.FieldErrorf("data_dir", "must not be empty"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, plugins.FieldErrorf("shutdown_timeout", "must be positive, got %s", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}

// Component is one named node of the pipeline graph.
type Component struct {
	Name   string
	Kind   plugins.Kind
	Type   string
	Inputs []string
	// Delivery holds the engine's per-output settings (outputs only).
	Delivery Delivery
	// Raw is the component's own keys, before decoding.
	Raw map[string]any
	// Config is the decoded and validated component config.
	Config any
	// Factory made Config and will create the component.
	Factory plugins.Factory
}

// Path returns the component's key path, e.g. "sources.ncp".
func (c *Component) Path() string { return c.Kind.Section() + "." + c.Name }

// Delivery is how the engine sends batches to one output.
type Delivery struct {
	// Timeout bounds one Write call.
	Timeout time.Duration `koanf:"timeout"`
	// MaxInFlight is the number of concurrent Write calls.
	MaxInFlight int `koanf:"max_in_flight"`
	// MaxRetries is the number of retries of a failing batch; -1 retries forever.
	MaxRetries int `koanf:"max_retries"`
	// InitialBackoff is the first retry delay; it doubles up to MaxBackoff, with jitter.
	InitialBackoff time.Duration `koanf:"initial_backoff"`
	// MaxBackoff caps the retry delay.
	MaxBackoff time.Duration `koanf:"max_backoff"`
	// QueueSize is the number of batches queued before the output (backpressure bound).
	QueueSize int `koanf:"queue_size"`
}

// DefaultDelivery returns the delivery defaults: retry forever with backoff.
func DefaultDelivery() Delivery {
	return Delivery{Timeout: 30 * time.Second, MaxInFlight: 2, MaxRetries: -1,
		InitialBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second, QueueSize: 4}
}

// Validate implements plugins.Validator.
func (d *Delivery) Validate() error {
	var errs []error
	if d.Timeout <= 0 {
		errs = append(errs, plugins.FieldErrorf("timeout", "must be positive"))
	}
	if d.MaxInFlight < 1 || d.MaxInFlight > 64 {
		errs = append(errs, plugins.FieldErrorf("max_in_flight", "must be between 1 and 64, got %d", d.MaxInFlight))
	}
	if d.MaxRetries < -1 {
		errs = append(errs, plugins.FieldErrorf("max_retries", "must be -1 (forever) or >= 0, got %d", d.MaxRetries))
	}
	if d.InitialBackoff <= 0 || d.MaxBackoff < d.InitialBackoff {
		errs = append(errs, plugins.FieldErrorf("initial_backoff", "must be positive and not above max_backoff"))
	}
	if d.QueueSize < 1 || d.QueueSize > 1024 {
		errs = append(errs, plugins.FieldErrorf("queue_size", "must be between 1 and 1024, got %d", d.QueueSize))
	}
	return errors.Join(errs...)
}

// Options are the inputs of Load besides the file.
type Options struct {
	// Path of pipeline.yaml.
	Path string
	// Bytes, when set, is used instead of reading Path.
	Bytes []byte
	// Environ is the environment (os.Environ() when nil), for ${VAR} and overrides.
	Environ []string
	// Set holds "key.path=value" overrides from --set flags (applied last).
	Set []string
	// Registry resolves component types.
	Registry *plugins.Registry
}

func defaults() map[string]any {
	return map[string]any{
		"data_dir":         "./data",
		"shutdown_timeout": "30s",
		"api.address":      "127.0.0.1:8686",
		"log.level":        "info",
		"log.format":       "json",
	}
}

// Load reads, expands, decodes and validates a pipeline. All problems found
// are returned together, one per line, each naming its key.
func Load(opts Options) (*Config, error) {
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	lookup := envLookup(environ)

	k := koanf.New(".")
	if err := k.Load(confmap.Provider(defaults(), "."), nil); err != nil {
		return nil, err
	}
	if opts.Bytes != nil {
		if err := k.Load(rawBytes(opts.Bytes), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("%s: invalid YAML: %w", displayPath(opts.Path), err)
		}
	} else {
		if _, err := os.Stat(opts.Path); err != nil {
			return nil, fmt.Errorf("config file %s: %w", opts.Path, errors.Unwrap(err))
		}
		if err := k.Load(file.Provider(opts.Path), yaml.Parser()); err != nil {
			return nil, fmt.Errorf("%s: invalid YAML: %w", opts.Path, err)
		}
	}
	// FORWARDER_SOURCES__NCP__PAGE_SIZE=50 → sources.ncp.page_size = 50.
	// Values are read as YAML scalars so numbers and booleans keep their type.
	if err := k.Load(env.Provider(".", env.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return environ },
		TransformFunc: func(key, val string) (string, any) {
			key = strings.ToLower(strings.TrimPrefix(key, EnvPrefix))
			key = strings.ReplaceAll(key, "__", ".")
			// Only variables naming a top-level key are overrides; others
			// that share the prefix (FORWARDER_TEST_*, tooling) are not ours.
			top, _, _ := strings.Cut(key, ".")
			if !topLevelKeys[top] {
				return "", nil
			}
			return key, scalar(val)
		},
	}), nil); err != nil {
		return nil, err
	}
	if len(opts.Set) > 0 {
		m := map[string]any{}
		for _, s := range opts.Set {
			key, val, ok := strings.Cut(s, "=")
			if !ok || key == "" {
				return nil, fmt.Errorf("--set %q: want key.path=value", s)
			}
			m[key] = scalar(val)
		}
		if err := k.Load(confmap.Provider(m, "."), nil); err != nil {
			return nil, err
		}
	}

	raw := k.Raw()
	var errs []error
	expandAll(raw, "", lookup, &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	cfg := &Config{}
	if err := prepareCluster(raw, cfg); err != nil {
		return nil, err
	}
	if err := plugins.DecodeConfig(raw, cfg); err != nil {
		return nil, err
	}
	if cfg.Cluster != nil {
		cfg.Cluster.fill()
	}
	if err := plugins.ValidateConfig("", cfg); err != nil {
		errs = append(errs, err)
	}
	comps, err := resolve(cfg, opts.Registry)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	cfg.Components = comps
	return cfg, nil
}

func displayPath(p string) string {
	if p == "" {
		return "config"
	}
	return p
}

type rawBytes []byte

func (b rawBytes) ReadBytes() ([]byte, error)    { return b, nil }
func (b rawBytes) Read() (map[string]any, error) { return nil, errors.New("not supported") }

// scalar interprets an override string as YAML would: 50 → int, true → bool.
func scalar(s string) any {
	var v any
	if err := yamlv3.Unmarshal([]byte(s), &v); err != nil {
		return s
	}
	switch v.(type) {
	case int, bool, float64, string, []any:
		return v
	case nil:
		if s == "" {
			return ""
		}
		return nil
	}
	return s
}

func envLookup(environ []string) func(string) (string, bool) {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func expandAll(v any, path string, lookup func(string) (string, bool), errs *[]error) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = expandAll(e, join(path, k), lookup, errs)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = expandAll(e, fmt.Sprintf("%s[%d]", path, i), lookup, errs)
		}
		return t
	case string:
		s, err := Expand(t, lookup)
		if err != nil {
			*errs = append(*errs, &plugins.FieldError{Path: path, Msg: err.Error()})
			return t
		}
		return s
	}
	return v
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// Expand replaces ${VAR} and ${VAR:-default} in s; $${ is a literal ${.
// An unset variable without a default is an error naming the variable.
func Expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in value")
		}
		expr := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validVarName(name) {
			return "", fmt.Errorf("invalid variable name %q in ${...}", name)
		}
		val, ok := lookup(name)
		switch {
		case ok && (val != "" || !hasDef):
			b.WriteString(val)
		case hasDef:
			b.WriteString(def)
		default:
			return "", fmt.Errorf("environment variable %s is not set (use ${%s:-default} for a default)", name, name)
		}
		i += end + 1
	}
	return b.String(), nil
}

func validVarName(n string) bool {
	if n == "" {
		return false
	}
	for i, c := range n {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// resolve decodes every component and checks the graph.
func resolve(cfg *Config, reg *plugins.Registry) ([]*Component, error) {
	var errs []error
	byName := map[string]*Component{}
	var comps []*Component
	sections := []struct {
		kind plugins.Kind
		m    map[string]map[string]any
	}{{plugins.KindSource, cfg.Sources}, {plugins.KindTransform, cfg.Transforms}, {plugins.KindOutput, cfg.Outputs}}

	for _, sec := range sections {
		names := make([]string, 0, len(sec.m))
		for n := range sec.m {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			c, err := decodeComponent(sec.kind, name, sec.m[name], reg)
			if err != nil {
				errs = append(errs, err)
			}
			if c == nil {
				continue
			}
			if prev, dup := byName[name]; dup {
				errs = append(errs, &plugins.FieldError{Path: c.Path(), Msg: fmt.Sprintf("name is already used by %s; names must be unique across sources, transforms and outputs", prev.Path())})
				continue
			}
			byName[name] = c
			comps = append(comps, c)
		}
	}
	if len(cfg.Sources) == 0 {
		errs = append(errs, &plugins.FieldError{Path: "sources", Msg: "at least one source is required"})
	}
	if len(cfg.Outputs) == 0 {
		errs = append(errs, &plugins.FieldError{Path: "outputs", Msg: "at least one output is required"})
	}
	errs = append(errs, checkGraph(comps, byName)...)
	return comps, errors.Join(errs...)
}

func decodeComponent(kind plugins.Kind, name string, raw map[string]any, reg *plugins.Registry) (*Component, error) {
	c := &Component{Name: name, Kind: kind, Delivery: DefaultDelivery()}
	path := c.Path()
	if !validName(name) {
		return nil, &plugins.FieldError{Path: path, Msg: "component names use letters, digits, '_' and '-' only"}
	}
	own := make(map[string]any, len(raw))
	for k, v := range raw {
		own[k] = v
	}
	typ, _ := own["type"].(string)
	delete(own, "type")
	if typ == "" {
		return nil, &plugins.FieldError{Path: path + ".type", Msg: fmt.Sprintf("is required (one of: %s)", strings.Join(reg.Types(kind), ", "))}
	}
	c.Type = typ
	if in, ok := own["inputs"]; ok {
		delete(own, "inputs")
		list, ok := in.([]any)
		if !ok {
			return nil, &plugins.FieldError{Path: path + ".inputs", Msg: "must be a list of component names"}
		}
		for _, e := range list {
			s, ok := e.(string)
			if !ok {
				return nil, &plugins.FieldError{Path: path + ".inputs", Msg: "must be a list of component names"}
			}
			c.Inputs = append(c.Inputs, s)
		}
	}
	var errs []error
	if d, ok := own["delivery"]; ok && kind == plugins.KindOutput {
		delete(own, "delivery")
		dm, ok := d.(map[string]any)
		if !ok {
			errs = append(errs, &plugins.FieldError{Path: path + ".delivery", Msg: "must be a mapping"})
		} else if err := plugins.DecodeConfig(dm, &c.Delivery); err != nil {
			errs = append(errs, plugins.PrefixErrors(path+".delivery", err))
		} else if err := plugins.ValidateConfig(path+".delivery", &c.Delivery); err != nil {
			errs = append(errs, err)
		}
	}
	c.Raw = own
	f, ok := reg.Lookup(kind, typ)
	if !ok {
		errs = append(errs, &plugins.FieldError{Path: path + ".type", Msg: fmt.Sprintf("unknown %s type %q (known: %s)", kind, typ, strings.Join(reg.Types(kind), ", "))})
		return c, errors.Join(errs...)
	}
	c.Factory = f
	cfg := f.CreateDefaultConfig()
	if err := plugins.DecodeConfig(own, cfg); err != nil {
		errs = append(errs, plugins.PrefixErrors(path, err))
	} else if err := plugins.ValidateConfig(path, cfg); err != nil {
		errs = append(errs, err)
	}
	c.Config = cfg
	return c, errors.Join(errs...)
}

func validName(n string) bool {
	if n == "" {
		return false
	}
	for _, c := range n {
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func checkGraph(comps []*Component, byName map[string]*Component) []error {
	var errs []error
	readers := map[string]int{}
	for _, c := range comps {
		switch c.Kind {
		case plugins.KindSource:
			if len(c.Inputs) > 0 {
				errs = append(errs, &plugins.FieldError{Path: c.Path() + ".inputs", Msg: "sources take no inputs"})
			}
		default:
			if len(c.Inputs) == 0 {
				errs = append(errs, &plugins.FieldError{Path: c.Path() + ".inputs", Msg: "is required: list the sources or transforms this " + c.Kind.String() + " reads from"})
			}
		}
		seen := map[string]bool{}
		for _, in := range c.Inputs {
			if seen[in] {
				errs = append(errs, &plugins.FieldError{Path: c.Path() + ".inputs", Msg: fmt.Sprintf("%q is listed twice", in)})
				continue
			}
			seen[in] = true
			up, ok := byName[in]
			switch {
			case !ok:
				errs = append(errs, &plugins.FieldError{Path: c.Path() + ".inputs", Msg: fmt.Sprintf("unknown component %q", in)})
			case up.Kind == plugins.KindOutput:
				errs = append(errs, &plugins.FieldError{Path: c.Path() + ".inputs", Msg: fmt.Sprintf("%q is an output; only sources and transforms can be inputs", in)})
			default:
				readers[in]++
			}
		}
	}
	for _, c := range comps {
		if c.Kind != plugins.KindOutput && readers[c.Name] == 0 {
			errs = append(errs, &plugins.FieldError{Path: c.Path(), Msg: "is not used: no transform or output lists it in inputs"})
		}
	}
	// Cycles: depth-first search over transform inputs.
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var visit func(c *Component, stack []string) bool
	visit = func(c *Component, stack []string) bool {
		color[c.Name] = grey
		for _, in := range c.Inputs {
			up, ok := byName[in]
			if !ok || up.Kind != plugins.KindTransform {
				continue
			}
			switch color[in] {
			case grey:
				cycle := append(append([]string{}, stack...), c.Name, in)
				errs = append(errs, &plugins.FieldError{Path: c.Path() + ".inputs", Msg: "cycle: " + strings.Join(cycle, " -> ")})
				return true
			case white:
				if visit(up, append(stack, c.Name)) {
					return true
				}
			}
		}
		color[c.Name] = black
		return false
	}
	for _, c := range comps {
		if c.Kind == plugins.KindTransform && color[c.Name] == white {
			visit(c, nil)
		}
	}
	return errs
}
