package plugins

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"sync"
)

// Factory describes a component type and creates instances of it.
type Factory interface {
	// Type is the `type:` value in pipeline.yaml (lower snake_case).
	Type() string
	// Kind says whether the type is a source, transform or output.
	Kind() Kind
	// Description is one line for `forwarder plugins`.
	Description() string
	// SampleConfig is the documented example, shown by `forwarder plugins --sample`.
	SampleConfig() []byte
	// CreateDefaultConfig returns a new pointer to the config struct,
	// filled with defaults; the engine decodes the user's keys over it.
	CreateDefaultConfig() any
	// Create builds the component from a decoded and validated config
	// (a value CreateDefaultConfig returned). It returns a Source,
	// Transform or Output according to Kind.
	Create(ctx context.Context, set Settings, cfg any) (Component, error)
}

type factory[C any, T Component] struct {
	typ, desc string
	kind      Kind
	sample    []byte
	defaults  func() *C
	create    func(context.Context, Settings, *C) (T, error)
}

func (f *factory[C, T]) Type() string             { return f.typ }
func (f *factory[C, T]) Kind() Kind               { return f.kind }
func (f *factory[C, T]) Description() string      { return f.desc }
func (f *factory[C, T]) SampleConfig() []byte     { return f.sample }
func (f *factory[C, T]) CreateDefaultConfig() any { return f.defaults() }

func (f *factory[C, T]) Create(ctx context.Context, set Settings, cfg any) (Component, error) {
	c, ok := cfg.(*C)
	if !ok {
		return nil, fmt.Errorf("%s %q: config has type %T, want %T", f.kind, f.typ, cfg, new(C))
	}
	return f.create(ctx, set, c)
}

// NewSourceFactory returns the Factory of a source type whose config is C.
func NewSourceFactory[C any](typ, description string, sample []byte, defaults func() *C,
	create func(context.Context, Settings, *C) (Source, error)) Factory {
	return &factory[C, Source]{typ: typ, desc: description, kind: KindSource, sample: sample, defaults: defaults, create: create}
}

// NewTransformFactory returns the Factory of a transform type whose config is C.
func NewTransformFactory[C any](typ, description string, sample []byte, defaults func() *C,
	create func(context.Context, Settings, *C) (Transform, error)) Factory {
	return &factory[C, Transform]{typ: typ, desc: description, kind: KindTransform, sample: sample, defaults: defaults, create: create}
}

// NewOutputFactory returns the Factory of an output type whose config is C.
func NewOutputFactory[C any](typ, description string, sample []byte, defaults func() *C,
	create func(context.Context, Settings, *C) (Output, error)) Factory {
	return &factory[C, Output]{typ: typ, desc: description, kind: KindOutput, sample: sample, defaults: defaults, create: create}
}

var typeNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// ValidTypeName reports whether name is a legal component type name.
func ValidTypeName(name string) bool { return typeNameRE.MatchString(name) }

// Registry maps (kind, type) to factories. It is the only mutable shared
// state of the forwarder: filled once at start from the explicit list of
// built-ins and the external plugins found, then read.
type Registry struct {
	mu sync.RWMutex
	m  map[Kind]map[string]Factory
}

// NewRegistry returns a registry holding the given factories.
func NewRegistry(factories ...Factory) (*Registry, error) {
	r := &Registry{m: map[Kind]map[string]Factory{}}
	for _, f := range factories {
		if err := r.Register(f); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds a factory; a second factory for the same kind and type, or
// an invalid type name, is an error.
func (r *Registry) Register(f Factory) error {
	if !ValidTypeName(f.Type()) {
		return fmt.Errorf("component type %q: must match %s", f.Type(), typeNameRE)
	}
	if f.Kind() < KindSource || f.Kind() > KindOutput {
		return fmt.Errorf("component type %q: invalid kind %d", f.Type(), f.Kind())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[f.Kind()] == nil {
		r.m[f.Kind()] = map[string]Factory{}
	}
	if _, dup := r.m[f.Kind()][f.Type()]; dup {
		return fmt.Errorf("%s type %q is registered twice", f.Kind(), f.Type())
	}
	r.m[f.Kind()][f.Type()] = f
	return nil
}

// Lookup returns the factory for a kind and type.
func (r *Registry) Lookup(kind Kind, typ string) (Factory, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.m[kind][typ]
	return f, ok
}

// Types returns the registered type names of a kind, sorted.
func (r *Registry) Types(kind Kind) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for t := range r.m[kind] {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// All returns every factory, sorted by kind then type.
func (r *Registry) All() []Factory {
	var out []Factory
	for _, k := range []Kind{KindSource, KindTransform, KindOutput} {
		for _, t := range r.Types(k) {
			f, _ := r.Lookup(k, t)
			out = append(out, f)
		}
	}
	return out
}
