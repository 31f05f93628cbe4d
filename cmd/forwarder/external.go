package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"

	"github.com/auditforwarder/forwarder/cmd/forwarder/internal/config"
	"github.com/auditforwarder/forwarder/plugins"
	"github.com/auditforwarder/forwarder/plugins/host"
)

// registerExternal adds to reg the components offered by the binaries of
// the pipeline's plugin_dir, so they resolve like built-ins. plugin_dir is
// read before the pipeline is loaded (the registry must be complete for
// that), with the same layering: the file, FORWARDER_PLUGIN_DIR, --set
// plugin_dir=…, and ${VAR} expansion. A missing or unreadable pipeline is
// left for config.Load to report. A component type already registered (a
// built-in, or another plugin's) is an error.
func registerExternal(reg *plugins.Registry, opts config.Options) error {
	dir, err := pluginDir(opts)
	if err != nil || dir == "" {
		return err
	}
	factories, err := host.Discover(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range factories {
		if err := reg.Register(f); err != nil {
			errs = append(errs, &plugins.FieldError{Path: "plugin_dir", Msg: fmt.Sprintf(
				"%s offers the %s type %q, which is already registered (by a built-in or another plugin)",
				f.(host.External).PluginPath(), f.Kind(), f.Type())})
		}
	}
	return errors.Join(errs...)
}

// pluginDir resolves the plugin_dir key of the pipeline.
func pluginDir(opts config.Options) (string, error) {
	data := opts.Bytes
	if data == nil {
		b, err := os.ReadFile(opts.Path)
		if err != nil {
			return "", nil
		}
		data = b
	}
	var doc struct {
		PluginDir any `yaml:"plugin_dir"`
	}
	if err := yamlv3.Unmarshal(data, &doc); err != nil {
		return "", nil
	}
	dir, _ := doc.PluginDir.(string)
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	if v, ok := env[config.EnvPrefix+"PLUGIN_DIR"]; ok {
		dir = v
	}
	for _, s := range opts.Set {
		if k, v, ok := strings.Cut(s, "="); ok && k == "plugin_dir" {
			dir = v
		}
	}
	dir, err := config.Expand(dir, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		return "", &plugins.FieldError{Path: "plugin_dir", Msg: err.Error()}
	}
	return dir, nil
}

// origin is how `forwarder plugins` labels a component type.
func origin(f plugins.Factory) string {
	if _, ok := f.(host.External); ok {
		return "external"
	}
	return "built-in"
}
